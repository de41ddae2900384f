"""ComfyUI custom nodes for the style-transfer task: one node per method, widgets from the schema.

ComfyUI is not on PyPI, so these classes follow its documented node conventions (and its
`execution.py`/`nodes.py`), and the tests call them the way its executor does:

- `INPUT_TYPES()` returns {"required": {...}, "optional": {...}}; IMAGE inputs are float32
  (B, H, W, C) in 0..1, MASK is (B, H, W) or (H, W); widgets are ("INT", {default, min, max,
  step}), ("FLOAT", {...}), ("BOOLEAN", {...}), ("STRING", {...}) and ([choices], {...}) combos.
- The executor calls `VALIDATE_INPUTS(**widgets)` before running (a string return is shown as
  the validation error), then `getattr(node, FUNCTION)(**inputs)` inside `torch.inference_mode()`,
  and takes a tuple matching `RETURN_TYPES`.
- Errors raised while running reach the user as `exception_message`: ours are one plain line
  naming the input and the fix (`StyleTransferError`), raised `from None`.

Everything about parameters comes from the task's schema through the plugin API, at the time
ComfyUI asks (`INPUT_TYPES` is a classmethod for that reason); the node classes themselves, one
per registered method, are made when ComfyUI loads the folder. So a parameter or a third-party
method appears here without editing this file. Progress goes to ComfyUI's progress bar and
ComfyUI's Cancel stops the task between steps, when the `comfy` package is there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

from nst_plugin import (
    Cancelled,
    NSTError,
    Picture,
    PictureFrames,
    Progress,
    api,
    from_bhwc,
    to_bhwc,
)

TASK_ID = "nst.style_transfer"
VIDEO_TASK_ID = "video.style_transfer"
CATEGORY = "image/style transfer"
INT_LIMIT = 0xFFFFFFFFFFFFFFFF  # what ComfyUI's own seed widgets use for "no limit"
FLOAT_LIMIT = 1e12  # JSON has no infinity; the frontend needs finite bounds


class StyleTransferError(ValueError):
    """An input ComfyUI handed us that the task cannot use; the message says which and why."""


def _schema(task_id: str = TASK_ID) -> list[dict[str, Any]]:
    return api.list_tasks()[task_id]["params"]


def _float_step(param: dict[str, Any]) -> float:
    """About a hundred steps over a finite range, else a tenth of the default's magnitude."""
    lo, hi = param.get("min"), param.get("max")
    if lo is not None and hi is not None and hi > lo:
        return 10.0 ** round(math.log10((hi - lo) / 100.0))
    default = abs(float(param["default"]))
    return 10.0 ** (math.floor(math.log10(default)) - 1) if default else 0.01


def widget(param: dict[str, Any]) -> tuple[Any, ...]:
    """One schema entry as a ComfyUI widget tuple."""
    kind, default = param["type"], param["default"]
    opts: dict[str, Any] = {"default": default, "tooltip": param["description"]}
    lo, hi = param.get("min"), param.get("max")
    if kind == "choice":
        return (list(param["choices"]), opts)
    if kind == "bool":
        return ("BOOLEAN", opts)
    if kind == "int":
        opts.update(
            min=-INT_LIMIT if lo is None else int(lo),
            max=INT_LIMIT if hi is None else int(hi),
            step=1,
        )
        return ("INT", opts)
    if kind == "float":
        # round=False: the frontend would otherwise round values to the step (1e-6 -> 0).
        opts.update(
            min=-FLOAT_LIMIT if lo is None else float(lo),
            max=FLOAT_LIMIT if hi is None else float(hi),
            step=_float_step(param),
            round=False,
        )
        return ("FLOAT", opts)
    if kind == "floats":
        opts["default"] = ", ".join(f"{v:g}" for v in default)
    return ("STRING", {**opts, "multiline": False})


def _to_pictures(batch: Any, name: str) -> list[Picture]:
    try:
        return from_bhwc(batch)
    except NSTError as exc:
        raise StyleTransferError(f"input {name!r}: {exc}") from None


def _mask(mask: Any, styles: int) -> torch.Tensor | None:
    """ComfyUI's MASK as the task's mask: one (H, W) mask, or one per style as (S, H, W)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise StyleTransferError(f"input 'mask': expected a (B, H, W) mask, got {got}")
    if mask.ndim == 2 or mask.shape[0] == 1:
        return mask.reshape(mask.shape[-2:]).float()
    if mask.shape[0] != styles:
        raise StyleTransferError(
            f"input 'mask': a batch of {mask.shape[0]} masks for {styles} style image(s); give "
            f"one mask (for one or two styles) or one mask per style ({styles})"
        )
    return mask.float()


def _comfy() -> tuple[Any, Any]:
    """ComfyUI's model_management and utils modules, or (None, None) outside ComfyUI."""
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]
        import comfy.utils as cu  # type: ignore[import-not-found]
    except ImportError:
        return None, None
    return mm, cu


class StyleTransferNode:
    """Base of the generated nodes; `METHOD` is set per subclass."""

    METHOD: str = ""
    TASK = TASK_ID
    NEEDS_STYLES = True  # False for methods that carry their style (fast: a model combo instead)
    DESCRIPTION = ""
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "stylize"
    CATEGORY = CATEGORY
    OUTPUT_NODE = False

    @classmethod
    def params(cls) -> list[dict[str, Any]]:
        """The schema entries this node shows: all but `method`, that apply to its method."""
        return [
            p
            for p in _schema(cls.TASK)
            if p["name"] != "method" and (not p.get("methods") or cls.METHOD in p["methods"])
        ]

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple[Any, ...]]]:  # noqa: N802 (ComfyUI's name)
        """Images required; widgets optional, so that an API-format workflow saved before a
        parameter was added still validates (a missing one takes the schema's default)."""
        required = {
            "content": ("IMAGE", {"tooltip": "photos to repaint; every image of the batch"}),
        }
        optional: dict[str, tuple[Any, ...]] = {p["name"]: widget(p) for p in cls.params()}
        if cls.NEEDS_STYLES:
            required["style"] = (
                "IMAGE",
                {"tooltip": "style images; every image of the batch is a style"},
            )
            optional["style_2"] = ("IMAGE", {"tooltip": "more style images, of any size"})
            regions = "one mask for one or two styles (0: first, 1: second), or one per style"
        else:
            regions = "where the style goes; with second_model, 0: model, 1: second_model"
        optional["mask"] = ("MASK", {"tooltip": f"regions: {regions}"})
        return {"required": required, "optional": optional}

    @classmethod
    def VALIDATE_INPUTS(cls, **inputs: Any) -> bool | str:  # noqa: N802 (ComfyUI's name)
        """Widget values checked by the schema before the queue runs anything.

        Taking **kwargs tells ComfyUI this function checks every input, so its own min/max and
        combo checks step aside; linked inputs arrive as None and are skipped here."""
        names = {p["name"] for p in cls.params()}
        values = {k: v for k, v in inputs.items() if k in names and v is not None}
        try:
            api.create_task(cls.TASK, method=cls.METHOD, **values)
        except NSTError as exc:
            return str(exc)
        return True

    def _task(self, widgets: dict[str, Any]) -> Any:
        try:
            return api.create_task(self.TASK, method=self.METHOD, **widgets)
        except NSTError as exc:
            raise StyleTransferError(str(exc)) from None

    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor | None = None,
        style_2: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        **widgets: Any,
    ) -> tuple[torch.Tensor, ...]:
        """Stylize every image of the content batch with all the styles; a batch comes back."""
        mm, cu = _comfy()
        # ComfyUI runs nodes under inference_mode; optimization needs autograd, and tensors made
        # in inference mode cannot enter a graph, so convert and run outside it.
        with torch.inference_mode(False), torch.enable_grad():
            task = self._task(widgets)
            contents = _to_pictures(_plain(content), "content")
            styles = _styles(style, style_2)
            regions = len(styles) if self.NEEDS_STYLES else 1 + bool(widgets.get("second_model"))
            masks = _mask(None if mask is None else _plain(mask), regions)
            report = _reporter(cu, len(contents))
            should_stop: Callable[[], bool] | None = mm.processing_interrupted if mm else None
            out, reference = [], None
            for i, picture in enumerate(contents):
                inputs = {"content": picture, "styles": styles, "mask": masks}
                try:
                    result = task.run(
                        inputs, on_progress=lambda r, i=i: report(i, r), should_stop=should_stop
                    )
                except Cancelled:
                    if mm is not None:  # ComfyUI's own interrupt exception, as its nodes do
                        mm.throw_exception_if_processing_interrupted()
                    raise
                except NSTError as exc:
                    where = f" (content image {i + 1} of {len(contents)})"
                    raise StyleTransferError(f"{exc}{where if len(contents) > 1 else ''}") from None
                out.append(result["image"])
                reference = result.get("reference", reference)
        if self.NEEDS_STYLES:
            return (to_bhwc(out),)
        return to_bhwc(out), to_bhwc([reference] if reference else [Picture(torch.zeros(3, 8, 8))])


class VideoStyleTransferNode(StyleTransferNode):
    """The content batch as consecutive video frames (from a video loader node): each frame is
    held to the previous result along the optical flow, so the sequence does not flicker."""

    TASK = VIDEO_TASK_ID

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple[Any, ...]]]:  # noqa: N802 (ComfyUI's name)
        types = super().INPUT_TYPES()
        types["required"]["content"] = ("IMAGE", {"tooltip": "the video's frames, in order"})
        types["optional"].pop("mask")
        return types

    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor | None = None,
        style_2: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        **widgets: Any,
    ) -> tuple[torch.Tensor, ...]:
        mm, cu = _comfy()
        with torch.inference_mode(False), torch.enable_grad():
            task = self._task(widgets)
            frames = _to_pictures(_plain(content), "content")
            styles = _styles(style, style_2)
            should_stop: Callable[[], bool] | None = mm.processing_interrupted if mm else None
            bar = cu.ProgressBar(len(frames)) if cu is not None else None
            out = []
            try:
                stream = task.run({"frames": PictureFrames(frames), "styles": styles},
                                  should_stop=should_stop)["frames"]  # fmt: skip
                for frame in stream.frames():
                    out.append(frame.picture)
                    if bar is not None:
                        bar.update_absolute(frame.index + 1, len(frames))
                    if should_stop is not None and should_stop():
                        raise Cancelled(f"stopped after frame {frame.index + 1}")
            except Cancelled:
                if mm is not None:
                    mm.throw_exception_if_processing_interrupted()
                raise
            except NSTError as exc:
                raise StyleTransferError(f"{exc} (frame {len(out) + 1} of {len(frames)})") from None
        return (to_bhwc(out),)


def _styles(style: Any, style_2: Any) -> list[Picture]:
    """Every image of both style inputs (each batch may hold several styles)."""
    styles = [] if style is None else _to_pictures(_plain(style), "style")
    return styles + ([] if style_2 is None else _to_pictures(_plain(style_2), "style_2"))


def _plain(t: Any) -> Any:
    """A normal tensor from a possibly inference-mode one (anything else passes through)."""
    return t.clone() if isinstance(t, torch.Tensor) else t


def _reporter(cu: Any, count: int) -> Callable[[int, Progress], None]:
    """Feeds ComfyUI's progress bar across the whole batch; a no-op outside ComfyUI."""
    bar: list[Any] = []

    def report(index: int, record: Progress) -> None:
        if cu is None:
            return
        total = max(record.total, 1) * count
        if not bar:
            bar.append(cu.ProgressBar(total))
        bar[0].update_absolute(index * max(record.total, 1) + record.step, total)

    return report


def node_class_mappings() -> tuple[dict[str, type], dict[str, str]]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS): a node class per registered method."""
    method_param = next(p for p in _schema() if p["name"] == "method")
    descriptions = api.list_methods()
    classes: dict[str, type] = {}
    names: dict[str, str] = {}
    for method in method_param["choices"]:
        key = "NSTStyleTransfer_" + re.sub(r"\W", "_", method)
        text, needs = descriptions[method]["description"], descriptions[method]["needs_styles"]
        outputs = (
            {}
            if needs
            else {"RETURN_TYPES": ("IMAGE", "IMAGE"), "RETURN_NAMES": ("image", "reference")}
        )
        classes[key] = type(
            key,
            (StyleTransferNode,),
            {
                "METHOD": method,
                "NEEDS_STYLES": needs,
                "DESCRIPTION": text,
                **outputs,
                "__doc__": f"Neural style transfer by {method}: {text}",
            },
        )
        names[key] = f"Neural Style Transfer ({method})"
        video_key = "NSTVideoStyleTransfer_" + re.sub(r"\W", "_", method)
        classes[video_key] = type(
            video_key,
            (VideoStyleTransferNode,),
            {
                "METHOD": method,
                "NEEDS_STYLES": needs,
                "DESCRIPTION": f"{text}; frames of a video, without flicker",
                "__doc__": f"Video style transfer by {method}: {text}",
            },
        )
        names[video_key] = f"Neural Style Transfer, video frames ({method})"
    return classes, names
