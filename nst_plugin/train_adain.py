"""`nst train adain`: train (or resume) the AdaIN decoder from folders of photos and artworks.

Checkpoints are written atomically every few minutes, at the time limit and on Ctrl-C, so a run
can be stopped at any moment without losing more than the current step. `--init OLD` continues
another file's training (weights, optimizer, step count) into a new file, OLD untouched; it is
how a decoder of the previous architecture moves to this one.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .devices import resolve_device
from .engine.adain import CONTENT_TAP, STYLE_TAPS
from .engine.checkpoints import load_decoder, read_checkpoint, save_checkpoint
from .engine.encoders import load_encoder
from .engine.errors import InputError
from .engine.training import AdaINTrainer, TrainSettings, TrainState
from .images import Picture, load_image, resize_to, save_image
from .training_data import build_train_data
from .training_loop import checked_output, run_training

SAMPLE_COUNT = 4
SAMPLE_CELLS = 32  # 256 px sample crops


def train_adain(
    *,
    content_dir: str,
    style_dir: str,
    out: str,
    steps: int,
    resume: bool = False,
    overwrite: bool = False,
    init: str | None = None,
    time_limit_min: float | None = None,
    hours: float | None = None,
    checkpoint_every: int = 100,
    checkpoint_minutes: float = 5.0,
    sample_every: int = 500,
    cache_dir: str | None = None,
    settings: dict[str, Any] | None = None,
    device: str = "cpu",
    quiet: bool = False,
) -> TrainState:
    """Run training to `steps` total steps; returns the final state (also saved in `out`)."""
    started = time.monotonic()
    out_path = checked_output(out, resume=resume, overwrite=overwrite)
    overrides = {k: v for k, v in (settings or {}).items() if v is not None}
    decoder = state = adam = scales = None
    if resume and init:
        raise InputError("--init starts a new file from another; it cannot go with --resume")
    source = out_path if resume and out_path.exists() else init
    if source is not None:
        decoder, meta = load_decoder(source, upgrade=source == init)
        tensors, _ = read_checkpoint(source, upgrade=source == init)
        recorded = {
            k: v for k, v in meta["settings"].items() if k in TrainSettings.__dataclass_fields__
        }
        if "width" in overrides and overrides["width"] != meta["width"]:
            raise InputError(
                f"{source} holds a {meta['width']} decoder; cannot resume as {overrides['width']}"
            )
        train_settings = TrainSettings(**{**recorded, **overrides})
        state = TrainState(**meta["state"])
        adam = {k: v for k, v in tensors.items() if k.startswith("adam.")}
        scales = {t: tensors[f"loss_scale.{t}"].view(1, -1, 1, 1) for t in STYLE_TAPS}
    else:
        train_settings = TrainSettings(**overrides)
    torch.manual_seed(train_settings.seed)

    encoder = load_encoder("vgg19")
    bar_cache = None if quiet else tqdm(total=0, desc="caching", leave=False)

    def cache_progress(what: str, i: int, n: int) -> None:
        if bar_cache is not None:
            bar_cache.set_description(what)
            bar_cache.total = n
            bar_cache.n = i
            bar_cache.refresh()

    data = build_train_data(
        encoder,
        content_dir,
        style_dir,
        cache_dir=cache_dir,
        min_side=train_settings.crop,
        seed=train_settings.seed,
        progress=cache_progress,
    )
    if bar_cache is not None:
        bar_cache.close()
    trainer = AdaINTrainer(
        encoder,
        data,
        train_settings,
        decoder=decoder,
        state=state,
        adam_tensors=adam,
        scales=scales,
        device=resolve_device(device),
    )
    if decoder is not None:
        trainer.decoder.requires_grad_(True)

    def save_file() -> None:
        extra = dict(trainer.adam_tensors())
        extra.update({f"loss_scale.{t}": trainer.scales[t].flatten() for t in STYLE_TAPS})
        save_checkpoint(
            out_path,
            trainer.decoder,
            width=train_settings.width,
            encoder=encoder.name,
            settings=trainer.settings_dict(),
            state=asdict(trainer.state),
            extra_tensors=extra,
        )

    samples = _sample_set(trainer) if sample_every else None
    run_training(
        trainer,
        out_path=out_path,
        steps=steps,
        save_file=save_file,
        write_samples=(lambda path: _write_samples(trainer, samples, path)) if samples else None,
        desc="train adain",
        started=started,
        time_limit_min=time_limit_min,
        hours=hours,
        checkpoint_every=checkpoint_every,
        checkpoint_minutes=checkpoint_minutes,
        sample_every=sample_every,
        quiet=quiet,
        log_extra=(lambda: {"recycled": trainer.state.recycled}) if trainer.lite else None,
    )
    return trainer.state


def _sample_set(trainer: AdaINTrainer) -> dict[str, Any]:
    """Fixed content crops and styles, so grids from different steps compare like for like."""
    data = trainer.data
    n_c = len(data.features)
    idx = [i * n_c // SAMPLE_COUNT for i in range(SAMPLE_COUNT)]
    feats, pixels = [], []
    for i in idx:
        f = data.features[i]
        cells = min(SAMPLE_CELLS, *f.shape[-2:])
        feats.append(f[:, :cells, :cells].float())
        pixels.append(data.pixels[i][:, : 8 * cells, : 8 * cells].float() / 255)
    n_s = len(data.style_mean[CONTENT_TAP])
    rows = [(i * n_s) // SAMPLE_COUNT + 1 for i in range(SAMPLE_COUNT)]
    return {"feats": feats, "pixels": pixels, "rows": rows}


def _write_samples(trainer: AdaINTrainer, samples: dict[str, Any], path: Path) -> None:
    """A grid, one row per sample: content crop | style image | decoded AdaIN output."""
    data, tiles = trainer.data, []
    for feat, pix, row in zip(samples["feats"], samples["pixels"], samples["rows"]):
        out = trainer.preview(feat[None], pix[None], row)[0]
        h, w = pix.shape[-2:]
        style = pix.new_zeros(3, h, w)
        if data.style_rows:
            try:
                style = resize_to(load_image(data.style_rows[row]), (h, w)).rgb
            except InputError:
                pass
        tiles.append(torch.cat([pix, style, out[:, :h, :w]], dim=2))
    width = max(t.shape[-1] for t in tiles)
    grid = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[-1])) for t in tiles], dim=1)
    save_image(Picture(grid), path, overwrite=True)
