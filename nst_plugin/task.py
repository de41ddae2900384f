"""Workflow tasks: typed input ports, typed output ports, a typed parameter schema, one `run`.

A host needs only this module and `params.py`: it lists a task's ports and parameters, builds its
controls from them, constructs the task with parameter values (checked at once, before any work)
and calls `run` with images in the documented form (`images.Picture`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .engine.adain import normalized_weights
from .engine.errors import InputError
from .engine.progress import ProgressCallback, StopCheck
from .images import Picture, resize_longer, resize_to
from .methods import StyleRequest
from .params import Param, validate_params

PORT_TYPES = {
    "image": "images.Picture: RGB float32 (3, H, W) in 0..1, optional alpha (H, W)",
    "mask": "torch.Tensor float32 (H, W) or (S, H, W) in 0..1; a Picture's grey levels also do",
    "history": "list of dicts: step, total, size, losses, elapsed",
    "path": "str or os.PathLike: a file on disk",
}


@dataclass(frozen=True)
class Port:
    name: str
    type: str
    description: str
    required: bool = True
    multiple: bool = False

    def to_manifest(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "required": self.required,
                "multiple": self.multiple, "description": self.description}  # fmt: skip


class Task:
    """Base of every workflow task. Subclasses set the class attributes and implement `_run`."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(self.schema(), params, method=self._method_of(params))
        self._given = dict(params)

    @classmethod
    def schema(cls) -> list[Param]:
        return []

    @classmethod
    def _method_of(cls, params: Mapping[str, Any]) -> str | None:
        return None

    @classmethod
    def manifest(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "title": cls.title,
            "description": cls.description,
            "inputs": [p.to_manifest() for p in cls.inputs],
            "outputs": [p.to_manifest() for p in cls.outputs],
            "params": [p.to_manifest() for p in cls.schema()],
        }

    def update(self, **params: Any) -> None:
        """Change parameters; models stay loaded (they are cached per process, not per task)."""
        merged = {**self._given, **params}
        self.params = validate_params(self.schema(), merged, method=self._method_of(merged))
        self._given = merged

    def check_inputs(self, inputs: Mapping[str, Any]) -> None:
        known = {p.name: p for p in self.inputs}
        unknown = sorted(set(inputs) - set(known))
        if unknown:
            raise InputError(
                f"task {self.id}: unknown input port(s) {', '.join(unknown)}; "
                f"ports: {', '.join(known)}"
            )
        for port in self.inputs:
            value = inputs.get(port.name)
            if value is None or (port.multiple and isinstance(value, list | tuple) and not value):
                if port.required:
                    raise InputError(f"task {self.id}: input {port.name!r} is required")
                continue
            items = list(value) if port.multiple and isinstance(value, list | tuple) else [value]
            for item in items:
                if not _fits(port.type, item):
                    raise InputError(
                        f"task {self.id}: input {port.name!r} expects {port.type} "
                        f"({PORT_TYPES.get(port.type, port.type)}), got {type(item).__name__}"
                    )

    def run(
        self,
        inputs: Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> dict[str, Any]:
        self.check_inputs(inputs)
        return self._run(dict(inputs), on_progress, should_stop)

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        raise NotImplementedError


def _fits(port_type: str, value: Any) -> bool:
    if port_type == "image":
        return isinstance(value, Picture)
    if port_type == "mask":
        return isinstance(value, Picture) or (
            isinstance(value, torch.Tensor) and value.ndim in (2, 3)
        )
    return True


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; a named device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' was asked for but Apple MPS is not available")
    return torch.device(name)


def _methods() -> dict[str, Any]:
    from . import plugins

    return plugins.methods()


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
        methods = _methods()
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
        from . import plugins

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

        def progress(record: Any) -> None:
            history.append({"step": record.step, "total": record.total, "size": record.size,
                            "losses": record.losses, "elapsed": record.elapsed})  # fmt: skip
            if on_progress is not None:
                on_progress(record)

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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p["seed"])
            out = spec.run(request, progress, should_stop)
        h, w = content_pic.rgb.shape[-2:]
        if out.shape[-2:] != (h, w):
            out = resize_to(Picture(out[0].float().cpu()), (h, w)).rgb[None]
        picture = Picture(out[0].detach().float().cpu().clamp(0, 1), content_pic.alpha)
        return {"image": picture, "history": history, **request.outputs}


def _style_model_paths(spec: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """Each style-model parameter that is set, resolved to its file: `<name>_path`."""
    from . import plugins

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


class StyleCache:
    """A small LRU keyed by image content: style statistics computed once for many contents."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()

    @staticmethod
    def key(tensor: torch.Tensor, *extra: Any) -> tuple:
        t = tensor.detach().float().cpu().contiguous()
        return (hashlib.sha1(t.numpy().tobytes()).hexdigest(), tuple(t.shape), *extra)

    def get(self, key: tuple, compute: Any) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = compute()
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value
