"""The style-transfer task: content (+ styles, mask, init) in, the stylized image out.

It is the one validation boundary: parameters (by the schema, whose method entries are declared
with the engines' options), style images, masks, style weights, the init image and style models
are checked here, once, and the chosen method gets typed, trusted values in a `StyleRequest`:
style weights summing to one, masks (S, H, W) in 0..1 at the content's working size, tensors on
the device. The engines keep only cheap shape asserts, and the few refusals that follow from a
method's maths (a pass too small for the network's deepest layer, an empty guided region), made
where the run is planned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from .. import plugins
from ..devices import resolve_device
from ..engine.errors import Cancelled, InputError
from ..engine.progress import Progress, ProgressCallback, StopCheck
from ..engine.temporal import blend_detail
from ..images import Picture, resize_longer, resize_to
from ..memory import available_bytes
from ..methods import MethodSpec, StyleRequest
from ..params import Param
from ..task import Port, Task

MEMORY_MARGIN = 0.9  # of the free memory a run may plan on: the estimate is a fit, not a bound

COMMON_PARAMS = (
    Param(
        "size",
        "int",
        512,
        "longer side of the output in pixels; 0 keeps the content's size",
        min=0,
        max=8192,
    ),
    Param(
        "style_weights",
        "floats",
        [],
        "blend weight per style image (empty: equal weights)",
        min=0.0,
    ),
    Param(
        "preserve_color",
        "choice",
        "none",
        "keep the content's colours: 'luminance' transfers only lightness, 'match' recolours "
        "the style to the content's colour statistics first",
        choices=("none", "luminance", "match"),
    ),
    Param("seed", "int", 0, "random seed, for reproducible results", min=0),
    Param(
        "device",
        "choice",
        "auto",
        "where to compute; a missing device is an error",
        choices=("auto", "cpu", "cuda", "mps"),
    ),
    Param(
        "preview_every", "int", 0, "hand a preview image to progress every N steps (0: none)", min=0
    ),
)


class StyleTransferTask(Task):
    """Stylize a content image with one or more style images, by any registered method."""

    id = "nst.style_transfer"
    title = "Neural style transfer"
    description = (
        "Repaint a content image in the style of one or more style images, by optimization "
        "(Gatys et al.) or arbitrary style transfer (AdaIN), or in a trained preset's style "
        "(fast, Johnson et al.)."
    )
    inputs = (
        Port("content", "image", "the photo to repaint"),
        Port(
            "styles",
            "image",
            "one or more style images (none for the fast method)",
            required=False,
            multiple=True,
        ),
        Port(
            "mask",
            "mask",
            "regions per style: (H, W) with one or two styles, or (S, H, W)",
            required=False,
        ),
        Port(
            "init", "image", "start image for methods that iterate (init='image')", required=False
        ),
        Port(
            "previous",
            "image",
            "video: the previous frame's result warped onto this frame, to stay consistent with",
            required=False,
        ),
        Port(
            "previous_weight",
            "mask",
            "video: per pixel, how much to hold to 'previous' (0..1: its reliability x strength)",
            required=False,
        ),
    )
    outputs = (
        Port("image", "image", "the stylized image, at the output size, alpha restored"),
        Port("reference", "image", "the style model's painting (fast method)", required=False),
        Port(
            "history", "history", "per-step progress records (losses, size, time)", required=False
        ),
    )

    @classmethod
    def schema(cls) -> list[Param]:
        methods = plugins.methods()
        method = Param(
            "method",
            "choice",
            "optimization" if "optimization" in methods else next(iter(methods)),
            "how to stylize: " + "; ".join(f"{m.name}: {m.description}" for m in methods.values()),
            choices=tuple(methods),
        )
        params = [method, *COMMON_PARAMS]
        for spec in methods.values():
            params.extend(spec.params)
        return params

    @classmethod
    def _method_of(cls, params: Mapping[str, Any]) -> str | None:
        return str(params.get("method", cls.schema()[0].default))

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        p = self.params
        spec = plugins.get_method(p["method"])
        device = resolve_device(p["device"])
        _check_pictures(inputs)
        content_pic = resize_longer(inputs["content"], p["size"] or None)
        styles = [s.rgb[None] for s in inputs.get("styles") or []]
        extras = _style_model_paths(spec, p)
        regions = _regions(spec, styles, extras)
        weights = _style_weights(p["style_weights"], regions) if spec.needs_styles else []
        masks = _masks(inputs.get("mask"), regions, inputs["content"], content_pic)
        _check_memory(spec, p, content_pic, styles, device)
        init = inputs.get("init")
        _check_init(spec, p, init)
        if init is not None:
            extras["init_image"] = init.rgb[None].to(device)
        carried = _carried(inputs, content_pic)
        if carried is not None and spec.takes_carried:
            extras["carried"] = (carried[0].to(device), carried[1].to(device))
        history: list[dict[str, Any]] = []

        def progress(record: Progress) -> None:
            keys = ("step", "total", "size", "losses", "elapsed")
            history.append({key: getattr(record, key) for key in keys})
            if on_progress is not None:
                preview = None if record.preview is None else _picture(record.preview)
                on_progress(dataclasses.replace(record, preview=preview))

        request = StyleRequest(
            content=content_pic.rgb[None].to(device),
            styles=[s.to(device) for s in styles],
            style_weights=weights,
            masks=None if masks is None else masks.to(device),
            params={k: v for k, v in p.items()},
            device=device,
            preview_every=p["preview_every"],
            extras=extras,
        )
        size = tuple(content_pic.rgb.shape[-2:])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p["seed"])
            try:
                out = spec.run(request, progress, should_stop)
            except Cancelled as exc:
                partial = exc.partial
                if partial is not None:
                    partial = _picture(partial, size, content_pic.alpha)
                raise Cancelled(str(exc), partial=partial) from None
        if carried is not None and not spec.takes_carried:
            out = blend_detail(out, carried[0].to(out.device), carried[1] * spec.carry)
        picture = _picture(out, size, content_pic.alpha)
        return {"image": picture, "history": history, **request.outputs}


def _check_memory(
    spec: MethodSpec,
    params: dict[str, Any],
    content: Picture,
    styles: list[torch.Tensor],
    device: torch.device,
) -> None:
    """Refuse, before any work, a size whose estimated working memory is more than is free.

    The largest image runs through the network last or first, so the peak follows it; the
    estimates are fp32 figures, on the safe side where bf16 halves the activations."""
    if spec.memory is None:
        return
    h, w = content.rgb.shape[-2:]
    largest = max([(h * w, "the content", (h, w))] + [
        (s.shape[-2] * s.shape[-1], "a style image", tuple(s.shape[-2:])) for s in styles
    ])  # fmt: skip
    pixels, what, (lh, lw) = largest
    need = spec.memory(params, pixels)
    free = available_bytes(device)
    if free is None or need <= MEMORY_MARGIN * free:
        return
    longer = int(max(lh, lw) * math.sqrt(MEMORY_MARGIN * free / need)) // 64 * 64
    if longer < 64:
        fix = "free some memory first"
    elif what == "the content":
        fix = f"use size {longer} or less"
    else:
        fix = f"downscale the style image to {longer} px or less"
    raise InputError(
        f"{lw}x{lh} ({what}) by {spec.name} needs about {need / 2**30:.1f} GiB of memory and "
        f"{free / 2**30:.1f} GiB is free on {device.type}; {fix}"
    )


def _picture(
    image: torch.Tensor | Picture,
    size: tuple[int, ...] | None = None,
    alpha: torch.Tensor | None = None,
) -> Picture:
    """An engine tensor ((1, 3, H, W) or (3, H, W)) as what hosts get: a Picture, on the CPU,
    at the output size when one is given, with the content's alpha."""
    if isinstance(image, Picture):
        return image
    t = image.detach().float().cpu()
    t = t[0] if t.ndim == 4 else t
    if size is not None and tuple(t.shape[-2:]) != size:
        t = resize_to(Picture(t), size).rgb
    return Picture(t.clamp(0, 1), alpha if size is not None else None)


def _style_model_paths(spec: MethodSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Each style-model parameter that is set, resolved to its file: `<name>_path`."""
    out = {}
    for param in spec.params:
        if param.choices_from == "style_models" and params.get(param.name):
            out[f"{param.name}_path"] = plugins.get_style_model(params[param.name]).path
    return out


def _check_pictures(inputs: Mapping[str, Any]) -> None:
    """Pictures are plain records anyone can build; what the engines compute on is RGB floats
    shaped (3, H, W), so a grey or batched tensor in one is said here, naming its input."""
    for port in ("content", "styles", "init", "previous"):
        value = inputs.get(port)
        many = isinstance(value, list | tuple)
        for i, picture in enumerate(value if many else [value]):
            if picture is None or _is_rgb(picture.rgb):
                continue
            rgb = picture.rgb
            got = f"{tuple(rgb.shape)} {rgb.dtype}" if hasattr(rgb, "shape") else type(rgb).__name__
            name = f"{port}[{i}]" if many else port
            raise InputError(
                f"input {name!r} must hold RGB floats in 0..1 shaped (3, H, W), got {got}"
            )


def _is_rgb(rgb: Any) -> bool:
    return (
        isinstance(rgb, torch.Tensor)
        and rgb.ndim == 3
        and rgb.shape[0] == 3
        and rgb.is_floating_point()
    )


def _regions(spec: MethodSpec, styles: list[torch.Tensor], extras: Mapping[str, Any]) -> int:
    """How many regions a mask may assign: one per style image, or, for a method that paints its
    style models' styles and takes no style images, one per model chosen."""
    if spec.needs_styles:
        if not styles:
            raise InputError(f"method {spec.name!r} needs at least one style image")
        return len(styles)
    if styles:
        raise InputError(f"method {spec.name!r} paints its model's style and takes no style images")
    return len(extras)


def _style_weights(weights: list[float], count: int) -> list[float]:
    """The blend weights, one per style image, normalised to sum to one (none given: equal).

    The schema has already refused negative ones; all zero would blend nothing."""
    weights = weights or [1.0] * count
    if len(weights) != count:
        raise InputError(f"got {len(weights)} style weights for {count} style images")
    total = float(sum(weights))
    if total <= 0:
        raise InputError("style weights must not all be zero")
    return [float(w) / total for w in weights]


def _check_init(spec: MethodSpec, params: Mapping[str, Any], init: Picture | None) -> None:
    """For a method with an `init` parameter, the choice and the 'init' input must agree: a
    forgotten image, or a forgotten init='image', is said rather than silently ignored."""
    if not any(param.name == "init" for param in spec.params):
        return
    if params["init"] == "image" and init is None:
        raise InputError("init='image' needs an image on the task's 'init' input")
    if params["init"] != "image" and init is not None:
        raise InputError("an 'init' image was given; set init='image' to start from it")


def _carried(inputs: Mapping[str, Any], working: Picture) -> tuple[torch.Tensor, ...] | None:
    """The previous frame's carried-forward result and its weight, at the working size; both
    or neither, each the content's size as given (a video task passes frames at their size)."""
    previous, weight = inputs.get("previous"), inputs.get("previous_weight")
    if previous is None and weight is None:
        return None
    if previous is None or weight is None:
        raise InputError("inputs 'previous' and 'previous_weight' go together: give both or none")
    original = inputs["content"]
    w = weight.rgb.mean(0) if isinstance(weight, Picture) else weight.float()
    if w.ndim != 2:
        raise InputError(f"'previous_weight' must be one (H, W) map, got {tuple(w.shape)}")
    for name, shape in (("previous", previous.rgb.shape[-2:]), ("previous_weight", w.shape)):
        if tuple(shape) != tuple(original.rgb.shape[-2:]):
            raise InputError(
                f"{name!r} is {shape[-1]}x{shape[-2]} but the content image is "
                f"{original.size[0]}x{original.size[1]}; they must match"
            )
    if float(w.min()) < 0 or float(w.max()) > 1:
        raise InputError("'previous_weight' values must be within 0..1")
    h, wd = working.rgb.shape[-2:]
    image = resize_to(previous, (h, wd)).rgb[None]
    if w.shape != (h, wd):
        w = torch.nn.functional.interpolate(w[None, None], size=(h, wd), mode="bilinear")[0, 0]
    return image, w.clamp(0, 1)


def _masks(mask: Any, count: int, original: Picture, working: Picture) -> torch.Tensor | None:
    """Normalise the mask port to (S, H, W) at the content's working size.

    The mask must match the content image as given (before resizing to the output size)."""
    if mask is None:
        return None
    m = mask.rgb.mean(0) if isinstance(mask, Picture) else mask.float()
    if m.ndim == 2:
        if count == 1:
            m = m[None]
        elif count == 2:
            m = torch.stack([1.0 - m, m])
        else:
            raise InputError(
                f"a single-channel mask assigns one or two styles; with {count} styles give "
                f"one mask per style, shaped ({count}, H, W)"
            )
    if m.shape[0] != count:
        raise InputError(f"got {m.shape[0]} masks for {count} style images")
    if float(m.min()) < 0 or float(m.max()) > 1:
        raise InputError("mask values must be within 0..1")
    if m.shape[-2:] != original.rgb.shape[-2:]:
        raise InputError(
            f"mask is {m.shape[-1]}x{m.shape[-2]} but the content image is "
            f"{original.size[0]}x{original.size[1]}; they must match"
        )
    h, w = working.rgb.shape[-2:]
    if m.shape[-2:] != (h, w):
        m = torch.nn.functional.interpolate(m[None], size=(h, w), mode="bilinear")[0]
    return m.clamp(0, 1)
