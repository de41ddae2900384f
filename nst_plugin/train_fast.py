"""`nst train fast`: train (or resume) one painting's fast style network from a folder of photos.

The same loop as `nst train adain` (`training_loop.run_training`); the model file is both the
shipped preset and the checkpoint. `--init` starts from another style model's weights: a network
that already draws one painting learns the next far sooner than one from scratch. `--from-adain`
starts from the package's AdaIN network with the painting's moments fixed
(`fast.AdaINPreset`): it draws our AdaIN's picture from the first step. The teacher terms
compare with our AdaIN's rendering of each photo, or with `--teacher`'s, a trained style model:
a smaller network then learns that model's picture (distillation, Hinton et al. 2015).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .devices import resolve_device
from .engine import fast
from .engine.encoders import load_encoder
from .engine.errors import InputError
from .engine.style_models import (
    INFO_FIELDS,
    StyleModelInfo,
    info_from_metadata,
    load_style_model,
    read_metadata,
    read_style_model,
    save_style_model,
)
from .engine.training import FastSettings, FastTrainer, TrainState
from .images import (
    Picture,
    from_pil,
    list_images,
    load_image,
    resize_longer,
    save_image,
    to_pil,
)
from .shipped import SHIPPED_DECODER
from .training_data import default_cache_dir, kept
from .training_loop import checked_output, run_training

SAMPLE_COUNT = 4
SAMPLE_SIDE = 256
PHOTO_SHORTER = 320  # photos are kept at most this size in memory: crops are 128-256 px
REFERENCE_LONGER = 512  # the painting as shipped inside the model, for hosts to show
DEFAULT_STYLE_SIZE = 512  # the painting's longer side for the Gram targets, unless asked


def _load_photos(folder: str, minimum: int) -> list[torch.Tensor]:
    photos = []
    for path in list_images(folder):
        try:
            pic = load_image(path)
        except InputError:
            continue
        h, w = pic.size[1], pic.size[0]
        if min(h, w) > PHOTO_SHORTER:
            pic = resize_longer(pic, round(max(h, w) * PHOTO_SHORTER / min(h, w)))
        if min(pic.rgb.shape[-2:]) >= minimum:
            photos.append((pic.rgb * 255 + 0.5).to(torch.uint8))
    if not photos:
        raise InputError(f"no usable photos (at least {minimum} px a side) in {folder}")
    return photos


def _jpeg(picture: Picture) -> bytes:
    buf = io.BytesIO()
    to_pil(picture).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def train_fast(
    *,
    style: str,
    content_dir: str,
    out: str,
    steps: int,
    info: dict[str, str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    init: str | None = None,
    from_adain: bool = False,
    teacher: str | None = None,  # a style model file
    style_size: int | None = None,
    time_limit_min: float | None = None,
    hours: float | None = None,
    checkpoint_every: int = 200,
    checkpoint_minutes: float = 5.0,
    sample_every: int = 1000,
    settings: dict[str, Any] | None = None,
    device: str = "cpu",
    quiet: bool = False,
    cache_dir: str | None = None,
) -> TrainState:
    """Run training to `steps` total steps; returns the final state (also saved in `out`)."""
    started = time.monotonic()
    out_path = checked_output(out, resume=resume, overwrite=overwrite)
    overrides = {k: v for k, v in (settings or {}).items() if v is not None}
    if resume and (init or from_adain):
        raise InputError("--init and --from-adain start a new model: not with --resume")
    if init and from_adain:
        raise InputError("--init and --from-adain are two starts: pick one")
    if from_adain and overrides.get("lite_widths"):
        raise InputError("--from-adain keeps the package's widths: not with --lite-widths")
    if style_size is not None and style_size < 32:
        raise InputError(f"style size must be at least 32 px, got {style_size}")
    net = state = adam = taught_by = None
    given = {k: v for k, v in (info or {}).items() if v}
    if resume and out_path.exists():
        net, config, old_info, _ = load_style_model(out_path)
        tensors, _ = read_style_model(out_path)
        recorded = {
            k: v for k, v in old_info.settings.items() if k in FastSettings.__dataclass_fields__
        }
        train_settings = FastSettings(**{**recorded, **overrides})
        net, config, adam = _grown(net, config, train_settings, tensors)
        if train_settings.net_config() != config:
            raise InputError(f"{out_path} holds a {config} network; cannot resume with another")
        state = TrainState(**old_info.state)
        given = {**{k: getattr(old_info, k) for k in INFO_FIELDS}, **given}
        # the painting's size sets the strokes' scale: a resumed run keeps the recorded one
        if style_size is None:
            style_size = int(old_info.settings.get("style_size", DEFAULT_STYLE_SIZE))
        # so does the teacher: its images are what the teacher terms were fitted to
        if teacher is None:
            teacher = old_info.settings.get("teacher")
        taught_by = old_info.settings.get("teacher_sha256")
    else:
        train_settings = FastSettings(**overrides)
        if init:
            net, config, _, _ = load_style_model(init)
            net, config, _ = _grown(net, config, train_settings, {})
            if config != train_settings.net_config():
                raise InputError(f"--init {init} holds a {config} network, not the one asked for")
            net.requires_grad_(True)
            train_settings.recon_steps = 0
    if style_size is None:
        style_size = DEFAULT_STYLE_SIZE
    if teacher and not train_settings.needs_teachers():
        raise InputError("--teacher needs a teacher term: --teacher-weight, "
                         "--teacher-content-weight or --teacher-style-mix")  # fmt: skip
    teacher_sha = _teacher_hash(teacher) if teacher else None
    if teacher_sha and taught_by and teacher_sha != taught_by:
        raise InputError(f"teacher {teacher} is not the model this one was trained against")
    painting = resize_longer(load_image(style), style_size)
    reference = _jpeg(resize_longer(painting, REFERENCE_LONGER))
    if from_adain and net is None:
        # the moments of the painting as the file ships it: `adain` given the model's reference
        # image draws what the new model draws, until training moves it
        net = _from_adain(from_pil(Image.open(io.BytesIO(reference)).convert("RGB")))
        train_settings.lite_widths, train_settings.slope = net.lite.widths, net.lite.slope
        train_settings.recon_steps = 0
    torch.manual_seed(train_settings.seed)
    model_info = StyleModelInfo(**{"name": out_path.stem, **given})

    photos = _load_photos(content_dir, train_settings.crop + train_settings.margin)
    teachers = None
    if train_settings.needs_teachers():
        cache = Path(cache_dir) if cache_dir else default_cache_dir("teachers")
        teachers = _teachers(photos, painting, cache, quiet, Path(teacher) if teacher else None)
    trainer = FastTrainer(
        load_encoder("vgg19"),
        photos,
        painting.rgb[None],
        train_settings,
        net=net,
        state=state,
        adam_tensors=adam,
        device=resolve_device(device),
        teachers=teachers,
    )

    def save_file() -> None:
        model_info.settings = {**trainer.settings_dict(), "style_size": style_size}
        if teacher:
            model_info.settings["teacher"] = teacher
            model_info.settings["teacher_sha256"] = teacher_sha
        model_info.state = asdict(trainer.state)
        model_info.state.pop("history", None)
        save_style_model(
            out_path,
            trainer.net,
            train_settings.net_config(),
            model_info,
            reference,
            extra_tensors=trainer.adam_tensors(),
        )

    samples = _sample_photos(photos)
    run_training(
        trainer,
        out_path=out_path,
        steps=steps,
        save_file=save_file,
        write_samples=lambda path: _write_samples(trainer, samples, path),
        desc=f"train fast {model_info.name}",
        started=started,
        time_limit_min=time_limit_min,
        hours=hours,
        checkpoint_every=checkpoint_every,
        checkpoint_minutes=checkpoint_minutes,
        sample_every=sample_every,
        quiet=quiet,
    )
    return trainer.state


def _grown(
    net: torch.nn.Sequential,
    config: fast.NetConfig,
    settings: FastSettings,
    tensors: dict[str, torch.Tensor],
) -> tuple[torch.nn.Sequential, fast.NetConfig, dict[str, torch.Tensor]]:
    """A file's network and Adam state, given the noise channels the settings ask for when the
    file has none (`fast.with_noise_input`) and the noise cell they ask for
    (`fast.with_noise_cell`); otherwise as they are."""
    adam = {k: v for k, v in tensors.items() if k.startswith("adam.")}
    if settings.noise_channels > 0 and not config.noise_channels:
        net, config, grown = fast.with_noise_input(net, config, settings.noise_channels, adam)
        adam = grown or {}
    if config.noise_channels and settings.noise_cell != config.noise_cell:
        net, config = fast.with_noise_cell(net, config, settings.noise_cell)
    return net, config, adam


def _teacher_hash(teacher: str) -> str:
    """The teacher model file's recorded weights hash (checked as the file is read)."""
    if not Path(teacher).is_file():
        raise InputError(f"teacher model {teacher} not found")
    return info_from_metadata(read_metadata(teacher)).sha256


def _shipped_adain(painting: Picture) -> tuple[Any, Any, Any]:
    """The package's AdaIN network, its VGG encoder (None for the lite network, which has its
    own) and the painting's moments: what the teacher images and `--from-adain` start from."""
    from .engine import adain
    from .engine.checkpoints import load_decoder
    from .engine.padding import pad_to_multiple

    decoder, _ = load_decoder(SHIPPED_DECODER)
    encoder = None if isinstance(decoder, adain.LiteNet) else load_encoder("vgg19")
    style, _, _ = pad_to_multiple(painting.rgb[None], adain.MULTIPLE)
    with torch.no_grad():
        moments = adain.style_moments(encoder, style, decoder)
    return decoder, encoder, moments


def _from_adain(painting: Picture) -> fast.AdaINPreset:
    """The package's AdaIN network with the painting's moments fixed, to train on."""
    decoder, encoder, moments = _shipped_adain(painting)
    if encoder is not None:
        raise InputError("--from-adain needs the package's lite AdaIN network")
    return fast.AdaINPreset.from_lite(decoder, moments).requires_grad_(True)


def _teachers(
    photos: list[torch.Tensor],
    painting: Picture,
    cache: Path,
    quiet: bool,
    model: Path | None = None,
) -> list[torch.Tensor]:
    """Our AdaIN's rendering of each photo with the painting (the shipped decoder, photo size),
    or the style `model`'s, as uint8 like the photos: what the teacher terms hold the network
    to. They take minutes for some hundred photos, and a run restarts several times (each
    change of crop or weights), so they are kept in `cache` under a hash of everything they
    depend on: photos, painting and the teacher's file."""
    from .engine import adain

    digest = hashlib.sha256(Path(model or SHIPPED_DECODER).read_bytes())
    for t in (painting.rgb, *photos):
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.contiguous().numpy().tobytes())

    def teacher() -> Any:
        if model is not None:
            net, config, _, _ = load_style_model(model)
            net = fast.for_inference(net)
            return lambda photo: fast.stylize(net, photo, config.multiple)
        decoder, encoder, moments = _shipped_adain(painting)
        return lambda photo: adain.stylize(encoder, decoder, photo, [moments])

    def paint() -> list[torch.Tensor]:
        render = teacher()
        out = []
        for k, photo in enumerate(photos):
            if not quiet and k % 100 == 0:
                print(f"teacher images: {k}/{len(photos)}", flush=True)
            image = render(photo[None].float() / 255)[0]
            out.append((image * 255 + 0.5).to(torch.uint8))
        return out

    return kept(cache / f"teachers-{digest.hexdigest()[:32]}.pt", paint)


def _sample_photos(photos: list[torch.Tensor]) -> torch.Tensor:
    """Fixed centre crops of evenly spaced photos, so grids from different steps compare."""
    picks = [photos[i * len(photos) // SAMPLE_COUNT] for i in range(SAMPLE_COUNT)]
    side = min(SAMPLE_SIDE, *(min(p.shape[-2:]) for p in picks))
    crops = []
    for p in picks:
        y, x = (p.shape[-2] - side) // 2, (p.shape[-1] - side) // 2
        crops.append(p[:, y : y + side, x : x + side].float() / 255)
    return torch.stack(crops)


def _write_samples(trainer: FastTrainer, samples: torch.Tensor, path: Path) -> None:
    """One row per photo: the photo | the network's output."""
    out = trainer.preview(samples)
    rows = [torch.cat([p, o], dim=2) for p, o in zip(samples, out)]
    save_image(Picture(torch.cat(rows, dim=1)), path, overwrite=True)
