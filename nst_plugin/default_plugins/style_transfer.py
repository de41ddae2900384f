"""The style-transfer task: content (+ styles, mask, init) in, the stylized image out.

It is the one validation boundary: parameters (by the schema), masks, style weights and style
models are checked here, once, and the chosen method gets typed, trusted values in a
`StyleRequest`; the engine keeps only cheap shape asserts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from .. import plugins
from ..devices import resolve_device
from ..engine.adain import normalized_weights
from ..engine.errors import Cancelled, InputError
from ..engine.progress import Progress, ProgressCallback, StopCheck
from ..images import Picture, resize_longer, resize_to
from ..methods import MethodSpec, StyleRequest
from ..params import Param
from ..task import Port, Task

COMMON_PARAMS = (
    Param("size", "int", 512, "longer side of the output in pixels; 0 keeps the content's size",
          min=0, max=8192),
    Param("style_weights", "floats", [], "blend weight per style image (empty: equal weights)",
          min=0.0),
    Param("preserve_color", "choice", "none",
          "keep the content's colours: 'luminance' transfers only lightness, 'match' recolours "
          "the style to the content's colour statistics first",
          choices=("none", "luminance", "match")),
    Param("seed", "int", 0, "random seed, for reproducible results", min=0),
    Param("device", "choice", "auto", "where to compute; a missing device is an error",
          choices=("auto", "cpu", "cuda", "mps")),
    Param("preview_every", "int", 0, "hand a preview image to progress every N steps (0: none)",
          min=0),
)  # fmt: skip


class StyleTransferTask(Task):
    """Stylize a content image with one or more style images, by any registered method."""

    id = "nst.style_transfer"
    title = "Neural style transfer"
    description = (
        "Repaint a content image in the style of one or more style images, by optimization "
        "(Gatys et al.) or fast arbitrary style transfer (AdaIN)."
    )
    inputs = (
        Port("content", "image", "the photo to repaint"),
        Port("styles", "image", "one or more style images (none for the fast method)",
             required=False, multiple=True),
        Port("mask", "mask", "regions per style: (H, W) with one or two styles, or (S, H, W)",
             required=False),
        Port("init", "image", "start image for methods that iterate (init='image')",
             required=False),
    )  # fmt: skip
    outputs = (
        Port("image", "image", "the stylized image, at the output size, alpha restored"),
        Port("reference", "image", "the style model's painting (fast method)", required=False),
        Port("history", "history", "per-step progress records (losses, size, time)",
             required=False),
    )  # fmt: skip

    @classmethod
    def schema(cls) -> list[Param]:
        methods = plugins.methods()
        method = Param("method", "choice", "optimization" if "optimization" in methods else
                       next(iter(methods)), "how to stylize: " + "; ".join(
                           f"{m.name}: {m.description}" for m in methods.values()),
                       choices=tuple(methods))  # fmt: skip
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
        content_pic = resize_longer(inputs["content"], p["size"] or None)
        styles = [s.rgb[None] for s in inputs.get("styles") or []]
        extras = _style_model_paths(spec, p)
        if spec.needs_styles:
            if not styles:
                raise InputError(f"method {spec.name!r} needs at least one style image")
            regions = len(styles)
            weights = normalized_weights(p["style_weights"] or [1.0] * regions, regions)
        else:
            if styles:
                raise InputError(
                    f"method {spec.name!r} paints its model's style and takes no style images"
                )
            regions, weights = len(extras), []
        masks = _masks(inputs.get("mask"), regions, inputs["content"], content_pic)
        if inputs.get("init") is not None:
            extras["init_image"] = inputs["init"].rgb[None]
        history: list[dict[str, Any]] = []

        def progress(record: Progress) -> None:
            history.append({"step": record.step, "total": record.total, "size": record.size,
                            "losses": record.losses, "elapsed": record.elapsed})  # fmt: skip
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
        picture = _picture(out, size, content_pic.alpha)
        return {"image": picture, "history": history, **request.outputs}


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


