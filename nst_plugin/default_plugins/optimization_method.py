"""The optimization (Gatys) method as the task sees it: parameters mapped onto engine options."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engine import optimization
from ..engine.errors import InputError
from ..engine.progress import ProgressCallback, StopCheck
from ..hookspecs import hookimpl
from ..methods import MethodSpec, StyleRequest
from ..params import Param
from .models import encoder_on

_D = optimization.OptimizationOptions()

PARAMS = (
    Param("iterations", "int", _D.iterations, "optimizer passes (forward + backward) at each scale",
          min=1, max=100_000),
    Param("optimizer", "choice", _D.optimizer, "L-BFGS converges in fewer steps; Adam is steadier",
          choices=("lbfgs", "adam")),
    Param("learning_rate", "float", _D.lr, "Adam step size (pixels on the 0..1 scale)",
          min=1e-6, max=10.0),
    Param("content_weight", "float", _D.content_weight,
          "weight of the content loss (VGG-19 layer 4_2)", min=0.0),
    Param("style_weight", "float", _D.style_weight,
          "weight of the Gram style loss (layers 1_1..5_1), normalised across image sizes",
          min=0.0),
    Param("tv_weight", "float", _D.tv_weight, "weight of total variation (smoothness)", min=0.0),
    Param("init", "choice", _D.init,
          "start from the content image, from noise, or from the 'init' input image",
          choices=("content", "noise", "image")),
    Param("scales", "int", 0,
          "coarse-to-fine scales, each twice the last (0: automatic from about 256 px)",
          min=0, max=6),
    Param("style_scale", "float", _D.style_scale,
          "style image size relative to the output: larger gives larger brush strokes",
          min=0.1, max=4.0),
    Param("pooling", "choice", _D.pooling, "VGG pooling; 'avg' gives smoother results",
          choices=("max", "avg")),
)  # fmt: skip


def run(request: StyleRequest, on_progress: ProgressCallback | None,
        should_stop: StopCheck | None) -> torch.Tensor:  # fmt: skip
    p = request.params
    options = optimization.OptimizationOptions(
        content_weight=p["content_weight"], style_weight=p["style_weight"],
        tv_weight=p["tv_weight"], init=p["init"], optimizer=p["optimizer"],
        iterations=p["iterations"], lr=p["learning_rate"], seed=p["seed"],
        style_scale=p["style_scale"], scales=_scales(request.content, p["scales"]),
        preserve_color=p["preserve_color"], pooling=p["pooling"],
    )  # fmt: skip
    encoder = encoder_on("vgg19", p["pooling"], str(request.device))
    return optimization.stylize(
        encoder, request.content, request.styles, style_weights=request.style_weights,
        masks=request.masks, options=options, init_image=_init_image(request),
        on_progress=on_progress,
        should_stop=should_stop, preview_every=request.preview_every,
    )  # fmt: skip


def _init_image(request: StyleRequest) -> torch.Tensor | None:
    image = request.extras.get("init_image")
    if request.params["init"] == "image" and image is None:
        raise InputError("init='image' needs an image on the task's 'init' input")
    if request.params["init"] != "image" and image is not None:
        raise InputError("an 'init' image was given; set init='image' to start from it")
    return None if image is None else image.to(request.device)


def _scales(content: torch.Tensor, count: int) -> list[int] | None:
    if count == 0:
        return None
    longer = max(content.shape[-2:])
    return sorted({max(32, longer >> i) for i in range(count)})


SPEC = MethodSpec(
    name="optimization",
    title="Optimization (Gatys)",
    description="iteratively repaints the image to match VGG-19 statistics; slow, highest quality",
    params=PARAMS,
    run=run,
)


@hookimpl
def register_methods(register: Callable) -> None:
    register(SPEC)
