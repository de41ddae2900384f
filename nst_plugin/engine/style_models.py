"""Fast style model files: one safetensors file is one named style, shipped or trained here.

Tensors: `net.*` the network, `reference` the painting as JPEG bytes (what hosts show beside
the model's name), `adam.*` the optimizer moments a resumed training needs. Metadata (strings):
the architecture, the painting (artist, title, year, licence, source), the training settings
and state, and a SHA-256 over the weights and the reference, checked at every load. safetensors
holds no code, so a model file from anywhere cannot run anything when it is opened.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import fast
from .atomic import atomic_path
from .errors import WeightsError
from .hashing import weights_hash

FORMAT = "nst-plugin/fast-style"
HASHED = ("net.", "reference")
INFO_FIELDS = ("name", "title", "artist", "painting", "year", "licence", "source")


@dataclass
class StyleModelInfo:
    """What a host lists about a model; every field but `name` may be empty."""

    name: str
    title: str = ""
    artist: str = ""
    painting: str = ""
    year: str = ""
    licence: str = ""
    source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""

    def summary(self) -> str:
        bits = [b for b in (self.artist, self.painting, self.year) if b]
        return ", ".join(bits)


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    return weights_hash(tensors, HASHED)


def save_style_model(
    path: str | os.PathLike,
    net: torch.nn.Module,
    config: fast.NetConfig,
    info: StyleModelInfo,
    reference_jpeg: bytes,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> str:
    """Write atomically; returns the content hash recorded in the file."""
    tensors = {
        f"net.{k}": v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()
    }
    tensors["reference"] = torch.frombuffer(bytearray(reference_jpeg), dtype=torch.uint8)
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    digest = content_hash(tensors)
    meta = {
        "format": FORMAT,
        "architecture_version": str(config.version),
        "config": json.dumps(config.to_dict(), sort_keys=True),
        **{k: str(getattr(info, k)) for k in INFO_FIELDS},
        "settings": json.dumps(info.settings, sort_keys=True),
        "state": json.dumps(info.state, sort_keys=True),
        "sha256": digest,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return digest


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header only (no weights read): enough to list a model or refuse a foreign file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"style model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors style model: {exc}") from None
    if raw.get("format") != FORMAT:
        raise WeightsError(
            f"{path} is not an nst-plugin style model (format {raw.get('format')!r})"
        )
    readable = (fast.ARCHITECTURE_VERSION, fast.PRESET_VERSION)
    if raw.get("architecture_version") not in {str(v) for v in readable}:
        raise WeightsError(
            f"{path} holds style network v{raw.get('architecture_version')}, "
            f"this version reads v{' and v'.join(map(str, readable))}"
        )
    return raw


def info_from_metadata(raw: dict[str, str]) -> StyleModelInfo:
    return StyleModelInfo(
        **{k: raw.get(k, "") for k in INFO_FIELDS},
        settings=json.loads(raw.get("settings", "{}")),
        state=json.loads(raw.get("state", "{}")),
        sha256=raw.get("sha256", ""),
    )


def read_style_model(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and raw metadata, after checking format, version and hash."""
    raw = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors style model: {exc}") from None
    if content_hash(tensors) != raw.get("sha256"):
        raise WeightsError(f"{path} is corrupt: its weights do not match their recorded SHA-256")
    return tensors, raw


def net_config(raw: dict[str, str]) -> fast.NetConfig:
    try:
        config = fast.NetConfig(**json.loads(raw["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"style model has no usable network config: {exc}") from None
    if str(config.version) != raw.get("architecture_version"):
        raise WeightsError(
            f"style model's network config is not a v{raw.get('architecture_version')} network"
        )
    return config


def load_style_model(
    path: str | os.PathLike,
) -> tuple[torch.nn.Module, fast.NetConfig, StyleModelInfo, bytes]:
    """The network (frozen, eval), its shape, its description and the reference JPEG."""
    tensors, raw = read_style_model(path)
    config = net_config(raw)
    net = fast.make_net(config)
    weights = {k[len("net.") :]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the recorded network: {exc}") from None
    net.requires_grad_(False).eval()
    reference = tensors["reference"].numpy().tobytes() if "reference" in tensors else b""
    return net, config, info_from_metadata(raw), reference
