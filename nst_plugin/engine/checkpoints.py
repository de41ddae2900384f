"""AdaIN decoder files: safetensors with metadata and a content hash checked at load.

One file is both the shipped model and the training checkpoint: tensors `decoder.*` are the
weights, `adam.*` the optimizer moments and `loss_scale.*` the loss normalisation a resumed run
must keep; the metadata holds the architecture, encoder, training settings and state as JSON.
A file of an older architecture is refused with its version named; `read_checkpoint(...,
upgrade=True)` (what `nst train adain --init` uses) lifts a v1 file to v2: its weights become the
decoder's body and the skip connections start at zero, so the decoder draws exactly as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .adain import (
    DECODER_VERSION,
    LEAKY_LITE_VERSION,
    LITE,
    LITE_VERSION,
    LITE_WIDTHS,
    MODULATED_LITE_VERSION,
    WIDE_LITE_VERSION,
    AnyDecoder,
    Decoder,
    LiteNet,
    architecture_version,
    make_decoder,
)
from .atomic import atomic_path
from .errors import WeightsError
from .hashing import weights_hash

FORMAT = "nst-plugin/adain-decoder"


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    return weights_hash(tensors, ("decoder.",))


def save_checkpoint(
    path: str | os.PathLike,
    decoder: AnyDecoder,
    *,
    width: str,
    encoder: str,
    settings: dict[str, Any],
    state: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> str:
    """Write atomically; returns the content hash recorded in the file."""
    tensors = {
        f"decoder.{k}": v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()
    }
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    digest = content_hash(tensors)
    meta = {
        "format": FORMAT,
        "architecture_version": str(architecture_version(decoder)),
        "width": width,
        "encoder": encoder,
        "settings": json.dumps(settings, sort_keys=True),
        "state": json.dumps(state, sort_keys=True),
        "sha256": digest,
    }
    if isinstance(decoder, LiteNet) and decoder.slope:
        meta["slope"] = repr(decoder.slope)
    if isinstance(decoder, LiteNet) and (decoder.widths != LITE_WIDTHS or decoder.modulated):
        meta["widths"] = ",".join(map(str, decoder.widths))
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return digest


def read_checkpoint(
    path: str | os.PathLike, *, upgrade: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and parsed metadata, after checking format, version and hash."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"AdaIN decoder file not found: {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors decoder file: {exc}") from None
    if raw.get("format") != FORMAT:
        raise WeightsError(
            f"{path} is not an nst-plugin AdaIN decoder (format {raw.get('format')!r})"
        )
    version = raw.get("architecture_version")
    lite_versions = tuple(
        str(v)
        for v in (LITE_VERSION, LEAKY_LITE_VERSION, WIDE_LITE_VERSION, MODULATED_LITE_VERSION)
    )
    *first, last = (f"v{v}" for v in (DECODER_VERSION, *lite_versions))
    readable = f"{', '.join(first)} and {last}"
    if version not in (str(DECODER_VERSION), *lite_versions) and not (upgrade and version == "1"):
        hint = " (start a new file from it: nst train adain --init OLD --out NEW)"
        raise WeightsError(
            f"{path} holds decoder architecture v{version}, this version reads {readable}"
            + (hint if version == "1" else "")
        )
    if (raw.get("width") == LITE) != (version in lite_versions):
        raise WeightsError(
            f"{path} records width {raw.get('width')!r} with architecture v{version}: "
            f"only the {LITE} network is " + " or ".join(f"v{v}" for v in lite_versions)
        )
    try:
        slope = float(raw.get("slope", "0"))
    except ValueError:
        raise WeightsError(f"{path} records an unreadable slope {raw.get('slope')!r}") from None
    leaky = 0.0 < slope < 1.0
    if version == str(LEAKY_LITE_VERSION):
        fits = leaky
    else:
        free = (str(WIDE_LITE_VERSION), str(MODULATED_LITE_VERSION))
        fits = slope == 0.0 or leaky and version in free
    if not fits:
        raise WeightsError(
            f"{path} records slope {raw.get('slope')!r} with architecture v{version}: "
            f"v{LEAKY_LITE_VERSION} has a slope between 0 and 1, v{WIDE_LITE_VERSION} and "
            f"v{MODULATED_LITE_VERSION} may have one, no other version has one"
        )
    widths = _recorded_widths(path, raw, version)
    if content_hash(tensors) != raw.get("sha256"):
        raise WeightsError(f"{path} is corrupt: its weights do not match their recorded SHA-256")
    if version == "1":
        tensors = _upgrade_v1(tensors, raw["width"])
    meta: dict[str, Any] = dict(raw)
    meta["settings"] = json.loads(raw.get("settings", "{}"))
    meta["state"] = json.loads(raw.get("state", "{}"))
    meta["slope"] = slope
    meta["widths"] = widths
    meta["modulated"] = version == str(MODULATED_LITE_VERSION)
    return tensors, meta


def _recorded_widths(path: Path, raw: dict[str, str], version: str | None) -> tuple[int, ...]:
    """A v5 file's four stage widths, other than LITE_WIDTHS; a v6 file's, any; every other
    file has none."""
    wide, modulated = str(WIDE_LITE_VERSION), str(MODULATED_LITE_VERSION)
    if version not in (wide, modulated):
        if "widths" in raw:
            raise WeightsError(
                f"{path} records widths with architecture v{version}: only v{wide} and "
                f"v{modulated} have them"
            )
        return LITE_WIDTHS
    try:
        widths = tuple(int(w) for w in raw["widths"].split(","))
    except (KeyError, ValueError):
        widths = ()
    if len(widths) != 4 or min(widths) < 1 or (widths == LITE_WIDTHS and version == wide):
        other = f", other than {LITE_WIDTHS}," if version == wide else ""
        raise WeightsError(
            f"{path} is architecture v{version} but records no usable widths "
            f"({raw.get('widths')!r}): four stage widths{other} are needed"
        )
    return widths


def _upgrade_v1(tensors: dict[str, torch.Tensor], width: str) -> dict[str, torch.Tensor]:
    """v1's `decoder.N.*` become `decoder.body.N.*`; the skips get their zero initialisation.
    Adam's moments are numbered by parameter, body first, so they keep their numbers."""
    out = {
        (key.replace("decoder.", "decoder.body.", 1) if key.startswith("decoder.") else key): value
        for key, value in tensors.items()
    }
    for key, value in Decoder(width).skips.state_dict().items():
        out[f"decoder.skips.{key}"] = value
    return out


def load_decoder(
    path: str | os.PathLike, *, upgrade: bool = False
) -> tuple[AnyDecoder, dict[str, Any]]:
    tensors, meta = read_checkpoint(path, upgrade=upgrade)
    decoder = make_decoder(
        meta["width"], slope=meta["slope"], widths=meta["widths"], modulated=meta["modulated"]
    )
    weights = {k[len("decoder.") :]: v for k, v in tensors.items() if k.startswith("decoder.")}
    try:
        decoder.load_state_dict(weights)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit a {meta['width']} decoder: {exc}") from None
    decoder.requires_grad_(False).eval()
    return decoder, meta
