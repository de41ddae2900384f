"""Folders of images -> the cached tensors AdaIN training reads (`engine.training.TrainData`).

Each image's entry is stored under the cache folder keyed by a hash of its bytes, the encoder and
the settings, so a second run (or a later resumed one) loads in seconds instead of re-encoding, and
an interrupted first run keeps what it had computed.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from .engine.adain import CONTENT_TAP, STYLE_TAPS, calc_mean_std
from .engine.atomic import atomic_path
from .engine.encoders import VGGEncoder
from .engine.errors import InputError, WriteError
from .engine.training import TrainData
from .images import list_images, load_image, resize_to

T = TypeVar("T")
CACHE_VERSION = 2  # 2: style entries keep their crops' pixels


def default_cache_dir(kind: str = "adain") -> Path:
    """Where `kind` of training cache lives unless a folder is given: "adain" (encoded images),
    "teachers" (`train_fast`'s teacher images)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nst-plugin" / kind


def _resize_shorter(rgb: torch.Tensor, shorter: int, minimum: int) -> torch.Tensor | None:
    """Shorter side down to `shorter` (never up); None when the image is below `minimum`."""
    h, w = rgb.shape[-2:]
    if min(h, w) < minimum:
        return None
    if min(h, w) > shorter:
        s = shorter / min(h, w)
        rgb = resize_to(_pic(rgb), (round(h * s), round(w * s))).rgb
    h, w = rgb.shape[-2:]
    return rgb[:, : h - h % 8, : w - w % 8]


def _pic(rgb: torch.Tensor):  # noqa: ANN202 - tiny adapter for images.resize_to
    from .images import Picture

    return Picture(rgb)


def _key(path: Path, tag: str) -> str:
    digest = hashlib.sha1(path.read_bytes())
    digest.update(tag.encode())
    return digest.hexdigest()


def kept(file: Path, compute: Callable[[], T]) -> T:
    """What `file` holds, or else `compute()`'s result, written there atomically for the next
    run (None is not written). A half-written or stale file is computed again; a cache that
    cannot be written warns and the run goes on with what it computed."""
    if file.exists():
        try:
            return torch.load(file, weights_only=True)
        except Exception:
            file.unlink(missing_ok=True)
    entry = compute()
    if entry is not None:
        try:
            with atomic_path(file) as tmp:
                torch.save(entry, tmp)
        except WriteError as exc:
            warnings.warn(f"not kept for the next run: {exc}", stacklevel=2)
    return entry


def _cached(
    files: list[Path],
    folder: Path,
    tag: str,
    compute: Callable[[Path], dict[str, torch.Tensor] | None],
    progress: Callable[[str, int, int], None] | None,
    what: str,
) -> list[tuple[Path, dict[str, torch.Tensor]]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, path in enumerate(files):
        if progress:
            progress(what, i, len(files))
        try:
            entry_file = folder / f"{_key(path, tag)}.pt"
        except OSError as exc:
            warnings.warn(f"skipping {path}: {exc}", stacklevel=2)
            continue
        try:
            entry = kept(entry_file, lambda: compute(path))  # noqa: B023 - called at once
        except InputError as exc:
            warnings.warn(f"skipping {path}: {exc}", stacklevel=2)
            continue
        if entry is None:
            warnings.warn(f"skipping {path}: smaller than the training crop", stacklevel=2)
            continue
        out.append((path, entry))
    if progress:
        progress(what, len(files), len(files))
    return out


@torch.no_grad()
def build_train_data(
    encoder: VGGEncoder,
    content_dir: str | os.PathLike,
    style_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    shorter_side: int = 512,
    min_side: int = 128,
    style_crops: int = 3,
    style_crop: int = 192,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> TrainData:
    """Encode every content image once (relu4_1) and every style crop once (moments; the
    crops' pixels are kept for a lite network, which encodes them itself)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    # channels_last: oneDNN's fast layout, several times faster than contiguous on CPU.
    enc = copy.deepcopy(encoder.truncated(CONTENT_TAP)).to(memory_format=torch.channels_last)
    tag = f"v{CACHE_VERSION}|{encoder.name}|{encoder.pooling}|{shorter_side}|{min_side}"

    def content_entry(path: Path) -> dict[str, torch.Tensor] | None:
        rgb = _resize_shorter(load_image(path).rgb, shorter_side, min_side)
        if rgb is None:
            return None
        x = rgb[None].contiguous(memory_format=torch.channels_last)
        feat = enc(x, [CONTENT_TAP])[CONTENT_TAP][0].contiguous()
        return {"feat": feat.half(), "pixels": (rgb * 255 + 0.5).to(torch.uint8)}

    def style_entry(path: Path) -> dict[str, torch.Tensor] | None:
        rgb = _resize_shorter(load_image(path).rgb, shorter_side, min_side)
        if rgb is None:
            return None
        side = min(style_crop, *rgb.shape[-2:])
        gen = torch.Generator().manual_seed(seed + int(_key(path, "")[:8], 16))
        crops = []
        for _ in range(style_crops):
            y = int(torch.randint(rgb.shape[-2] - side + 1, (1,), generator=gen))
            x = int(torch.randint(rgb.shape[-1] - side + 1, (1,), generator=gen))
            crop = rgb[:, y : y + side, x : x + side]
            if side < style_crop:  # a small artwork: every row of the set has one size
                crop = resize_to(_pic(crop), (style_crop, style_crop)).rgb
            crops.append(crop)
        batch = torch.stack(crops)
        taps = enc(batch.contiguous(memory_format=torch.channels_last), STYLE_TAPS)
        entry = {"pixels": (batch * 255 + 0.5).to(torch.uint8)}
        for tap in STYLE_TAPS:
            m, s = calc_mean_std(taps[tap])
            entry[f"mean.{tap}"] = m.flatten(1)
            entry[f"std.{tap}"] = s.flatten(1)
        return entry

    content_files = list_images(content_dir)
    style_files = list_images(style_dir)
    if not content_files:
        raise InputError(f"no images found in content folder {content_dir}")
    if not style_files:
        raise InputError(f"no images found in style folder {style_dir}")
    contents = _cached(
        content_files, cache / "content", tag, content_entry, progress, "content features"
    )
    stag = f"{tag}|{style_crops}|{style_crop}|{seed}"
    styles = _cached(style_files, cache / "style", stag, style_entry, progress, "style moments")
    if not styles:
        raise InputError(f"no usable style images in {style_dir}")
    return TrainData(
        features=[c["feat"] for _, c in contents],
        pixels=[c["pixels"] for _, c in contents],
        style_mean={t: torch.cat([s[f"mean.{t}"] for _, s in styles]) for t in STYLE_TAPS},
        style_std={t: torch.cat([s[f"std.{t}"] for _, s in styles]) for t in STYLE_TAPS},
        style_pixels=torch.cat([s["pixels"] for _, s in styles]),
        style_rows=[str(p) for p, s in styles for _ in range(len(s[f"mean.{CONTENT_TAP}"]))],
    )
