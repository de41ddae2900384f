"""The AdaIN method as the task sees it: parameters, colour modes, cached style statistics."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engine import adain, color
from ..engine.padding import pad_to_multiple
from ..engine.precision import autocast
from ..engine.progress import Progress, ProgressCallback, StopCheck
from ..hookspecs import hookimpl
from ..methods import MethodSpec, StyleRequest
from ..params import Param, options_from_params, params_from_fields
from .models import StyleCache, decoder_on, encoder_on

PARAMS = (
    # alpha is declared on the engine's options, with its range; decoder is this plugin's own.
    *params_from_fields(adain.AdaINOptions, "alpha"),
    Param("decoder", "str", "", "decoder weights file (.safetensors); empty: the shipped one"),
)

_moments = StyleCache(size=32)


def run(
    request: StyleRequest, on_progress: ProgressCallback | None, should_stop: StopCheck | None
) -> torch.Tensor:
    p, device = request.params, request.device
    dev = str(device)
    decoder, meta = decoder_on(p["decoder"] or None, dev)
    # a lite decoder file carries its own encoder: VGG-19 is then never built
    lite = isinstance(decoder, adain.LiteNet)
    encoder = None if lite else encoder_on("vgg19", "max", dev)
    # VGG moments serve every VGG decoder; a lite network's are its own
    space = meta["sha256"] if lite else "vgg19"
    content = request.content.contiguous(memory_format=torch.channels_last)
    moments = []
    for style in request.styles:
        if p["preserve_color"] == "match":
            style = color.match_color(style, content)
        key = _moments.key(style, dev, space)
        moments.append(_moments.get(key, lambda s=style: _style_moments(encoder, decoder, s)))
    with autocast(device):
        out = adain.stylize(
            encoder,
            decoder,
            content,
            moments,
            weights=request.style_weights,
            options=options_from_params(adain.AdaINOptions, p),
            masks=request.masks,
        )
    out = out.float()
    if p["preserve_color"] == "luminance":
        out = color.luminance_transfer(content, out)
    if on_progress is not None:
        w, h = content.shape[-1], content.shape[-2]
        on_progress(Progress(step=1, total=1, size=(w, h), preview=out[0]))
    return out


@torch.no_grad()
def _style_moments(encoder, decoder, style: torch.Tensor) -> adain.Moments:  # noqa: ANN001
    padded, _, _ = pad_to_multiple(style, adain.MULTIPLE)
    return adain.style_moments(encoder, padded, decoder)


SPEC = MethodSpec(
    name="adain",
    title="Arbitrary (AdaIN)",
    description="fast feed-forward transfer of any style (Huang & Belongie 2017)",
    params=PARAMS,
    run=run,
    # fp32 peak over a 128 px run, benchmarks/bench_memory.py: the shipped lite decoder 452 B/px
    # at 1024, 436 at 2048; a decoder file given may be a VGG-19 one (498 and 520)
    memory=lambda params, pixels: 530 * pixels if params["decoder"] else 470 * pixels,
    # Video: the decoder's strokes move more between frames than a fast network's, so a blend
    # fades them more (bench_video.py, a pan at 512 px: blend 0.5 put the style distance 1.15x
    # frame by frame's, 0.35 1.09x with the warping error 0.46x).
    carry=0.7,
)


@hookimpl
def register_methods(register: Callable) -> None:
    register(SPEC)
