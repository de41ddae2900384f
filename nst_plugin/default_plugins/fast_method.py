"""The fast method as the task sees it: a named style model, strength, colour, two-model masks.

The shipped presets are registered here through `register_style_models`, the same hook a
third-party package uses to add its own (an entry point to a module that registers its files).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from .. import plugins
from ..engine import color, fast
from ..engine.errors import InputError
from ..engine.precision import autocast
from ..engine.progress import Progress, ProgressCallback, StopCheck
from ..engine.style_models import load_style_model, net_config, read_metadata, read_style_model
from ..hookspecs import hookimpl
from ..images import Picture, from_pil
from ..methods import MethodSpec, StyleRequest
from ..params import Param
from ..shipped import PRESETS_DIR

SUFFIX = ".safetensors"

PARAMS = (
    Param(
        "model",
        "choice",
        "starry_night",
        "the style model: an installed one by name (`nst models` lists them) or a model file",
        choices_from="style_models",
        path_suffix=SUFFIX,
    ),
    Param(
        "strength",
        "float",
        1.0,
        "blend with the photo in pixels: 0 returns the photo, 1 the full style",
        min=0.0,
        max=1.0,
    ),
    Param(
        "second_model",
        "choice",
        "",
        "with a mask: the model for the mask's white areas (the first paints the black)",
        choices_from="style_models",
        path_suffix=SUFFIX,
    ),
)


@functools.lru_cache(maxsize=8)
def _model_on(path: str, mtime: float, device: str) -> tuple[torch.nn.Module, int, Picture]:
    """Loaded once per process and device; reloaded only if the file changed."""
    net, config, _, reference = load_style_model(path)
    net = fast.for_inference(net).to(device, memory_format=torch.channels_last)
    picture = from_pil(Image.open(io.BytesIO(reference)).convert("RGB")) if reference else None
    return net, config.multiple, picture


@functools.lru_cache(maxsize=32)
def _reference(path: str, mtime: float) -> Picture | None:
    tensors, _ = read_style_model(path)
    if "reference" not in tensors:
        return None
    data = tensors["reference"].numpy().tobytes()
    return from_pil(Image.open(io.BytesIO(data)).convert("RGB"))


def reference_of(path: Path) -> Picture | None:
    """The painting inside a model file (hash-checked), cached per file version."""
    return _reference(str(path.resolve()), path.stat().st_mtime)


def model_on(path: Path, device: torch.device) -> tuple[torch.nn.Module, int, Picture | None]:
    return _model_on(str(path.resolve()), path.stat().st_mtime, str(device))


@functools.lru_cache(maxsize=32)
def _from_adain(path: str, mtime: float) -> bool:
    """Whether a model file holds a `fast.AdaINPreset` (a header read, once per file version)."""
    return bool(net_config(read_metadata(path)).lite_widths)


def _bytes_per_pixel(params: dict) -> int:
    """fp32 peak over a 128 px run, benchmarks/bench_memory.py: `fast.make_net`'s network 276
    B/px at 2048, 264 at 4096; a model from our AdaIN (`fast.AdaINPreset`) runs the lite AdaIN
    network, sized as adain's (470). The larger of the models asked for."""
    per_pixel = 280
    for name in (params.get("model"), params.get("second_model")):
        if name:
            path = plugins.get_style_model(name).path
            if _from_adain(str(path.resolve()), path.stat().st_mtime):
                per_pixel = 470
    return per_pixel


def run(
    request: StyleRequest, on_progress: ProgressCallback | None, should_stop: StopCheck | None
) -> torch.Tensor:
    p, device = request.params, request.device
    content = request.content
    if "model_path" not in request.extras:
        raise InputError("choose a style model (`nst models` lists the installed ones)")
    net, multiple, reference = model_on(request.extras["model_path"], device)
    with autocast(device):
        out = fast.stylize(net, content, multiple)
    if request.masks is not None:
        # one mask: where the style goes (the photo elsewhere); two: black, then white areas
        other = content
        if "second_model_path" in request.extras:
            second, second_multiple, _ = model_on(request.extras["second_model_path"], device)
            with autocast(device):
                other = fast.stylize(second, content, second_multiple)
        m = request.masks.sum(0) if len(request.masks) == 1 else request.masks[-1]
        first = m if len(request.masks) == 1 else 1.0 - m
        out = first[None, None] * out + (1.0 - first[None, None]) * other
    if p["preserve_color"] == "luminance":
        out = color.luminance_transfer(content, out)
    elif p["preserve_color"] == "match":
        out = color.match_color(out, content)
    out = p["strength"] * out + (1.0 - p["strength"]) * content
    if reference is not None:
        request.outputs["reference"] = reference
    if on_progress is not None:
        w, h = content.shape[-1], content.shape[-2]
        on_progress(Progress(step=1, total=1, size=(w, h), preview=out[0]))
    return out


SPEC = MethodSpec(
    name="fast",
    title="Fast (per-style network)",
    description="a network for one named painting (Johnson et al. 2016, or our AdaIN with "
    "the painting built in); no style image",
    params=PARAMS,
    run=run,
    needs_styles=False,
    memory=lambda params, pixels: _bytes_per_pixel(params) * pixels,
)


@hookimpl
def register_methods(register: Callable) -> None:
    register(SPEC)


@hookimpl
def register_style_models(register: Callable) -> None:
    for path in sorted(PRESETS_DIR.glob(f"*{SUFFIX}")):
        register(path)
