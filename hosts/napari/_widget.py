"""The napari dock widget: content and style layers in, a new stylized Image layer out.

It knows the task only through the plugin API (`nst_plugin.api`: the task's manifest and
`create_task`) and builds one magicgui control per entry of the task's parameter schema, so a
parameter or a third-party method that a plugin adds shows up here without editing this file.
Controls of other methods than the chosen one are hidden (`Param.methods`).

The task runs in a napari worker thread: the viewer stays responsive, napari's activity dock shows
the progress (step, total, working size), Cancel stops the task between steps and keeps its last
image, and errors a user can act on (`NSTError`) become a napari notification with the message
only, never a traceback. Input layers are read, never written.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    Widget,
)
from napari.layers import Image, Labels, Layer
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from superqt.utils import ensure_main_thread

from nst_plugin import Cancelled, NSTError, Picture, Progress, api, resize_longer, to_numpy
from nst_plugin_hosts.napari._convert import (
    layer_to_mask,
    layer_to_picture,
    result_layer_data,
    style_picture,
)

TASK_ID = "nst.style_transfer"


def _guard_triton() -> None:
    """Keep torch from importing triton into a process where Mesa's LLVM is already loaded.

    napari's canvas loads Mesa's OpenGL (llvmpipe, radeonsi), which loads libLLVM; importing
    triton after that crashes the whole process (seen here: napari 0.9.2, torch 2.14, Mesa 22,
    a segfault in triton's C extension). torch imports triton lazily the first time an optimizer
    steps, i.e. inside our worker. Marking triton absent makes torch treat it as not installed;
    only torch.compile uses it, and the task does not. Nothing happens where LLVM is not loaded.
    """
    if "triton" in sys.modules:
        return
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: no Mesa, no conflict
        return
    if "libLLVM" in maps:
        sys.modules["triton"] = None  # type: ignore[assignment]


_guard_triton()
QT_INT_MAX = 2**31 - 1  # Qt spin boxes hold C ints
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp)"


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def make_control(param: dict[str, Any]) -> Widget:
    """One magicgui control for one schema entry: type, default, range, choices, help text.

    Floats get a spin box only over a modest range (alpha 0..1); a weight of 1e4 or a learning rate
    from 1e-6 would be rounded by a spin box's fixed decimals, so those get a text field that the
    schema parses and checks on Run.
    """
    kind, default = param["type"], param["default"]
    opts: dict[str, Any] = {
        "name": param["name"],
        "label": _label(param["name"]),
        "tooltip": param["description"],
    }
    lo, hi = param.get("min"), param.get("max")
    if kind == "choice":
        return ComboBox(value=default, choices=list(param["choices"]), **opts)
    if kind == "bool":
        return CheckBox(value=bool(default), **opts)
    if kind == "int":
        lo = -QT_INT_MAX if lo is None else max(int(lo), -QT_INT_MAX)
        hi = QT_INT_MAX if hi is None else min(int(hi), QT_INT_MAX)
        return SpinBox(value=default, min=lo, max=hi, step=1, **opts)
    step = None if lo is None or hi is None else (hi - lo) / 100
    if kind == "float" and step and step <= 1 and (lo == 0 or lo >= step):
        return FloatSpinBox(value=default, min=lo, max=hi, step=step, **opts)
    if kind == "floats":
        return LineEdit(value=", ".join(f"{v:g}" for v in default), **opts)
    return LineEdit(value=f"{default:g}" if kind == "float" else str(default), **opts)


class StyleTransferWidget(Container):
    """Dock widget: pick content/style (layer or file)/mask, set parameters, Stylize, Cancel."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        manifest = api.list_tasks()[TASK_ID]
        self.schema = {p["name"]: p for p in manifest["params"]}
        self.content = ComboBox(label="Content", choices=self._images, tooltip="the photo")
        self.style = ComboBox(
            label="Style", choices=self._images, nullable=True, tooltip="the painting, as a layer"
        )
        self.style_file = FileEdit(
            label="or style file",
            mode="r",
            filter=IMAGE_FILTER,
            nullable=True,
            tooltip="a style image on disk, used instead of the style layer when set",
        )
        self.mask = ComboBox(
            label="Mask", choices=self._masks, nullable=True, tooltip=self._port("mask")
        )
        self.controls = {name: make_control(p) for name, p in self.schema.items()}
        self.run_button = PushButton(text="Stylize")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # messages name layers and sizes: they run long
        self.extend(
            [
                self.content,
                self.style,
                self.style_file,
                self.mask,
                *self.controls.values(),
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )
        self.controls["method"].changed.connect(self._show_for_method)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        for event in ("inserted", "removed", "moved", "changed"):
            getattr(self.viewer.layers.events, event).connect(self._refresh_layers)
        self.worker: FunctionWorker | None = None
        self.last_message = ""
        self._stop = threading.Event()
        self._finished = True
        self._outcome: tuple[str, Any] | None = None
        self._pbar: progress | None = None
        self._needs_styles = {m: v["needs_styles"] for m, v in api.list_methods().items()}
        if "model" in self.controls:
            _add_thumbnails(self.controls["model"])
        if "second_model" in self.controls:
            _add_thumbnails(self.controls["second_model"])
        self._show_for_method(self.controls["method"].value)

    # -- layers and controls ------------------------------------------------------------------

    def _port(self, name: str) -> str:
        ports = {p["name"]: p for p in api.list_tasks()[TASK_ID]["inputs"]}
        return ports[name]["description"]

    def _images(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _masks(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [
            (layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Labels | Image)
        ]

    def _refresh_layers(self, _event: Any = None) -> None:
        for combo in (self.content, self.style, self.mask):
            combo.reset_choices()

    def _show_for_method(self, method: str) -> None:
        for name, control in self.controls.items():
            methods = self.schema[name].get("methods")
            control.visible = not methods or method in methods
        self.style.visible = self.style_file.visible = self._needs_styles.get(method, True)

    def params(self) -> dict[str, Any]:
        """The chosen method and the values of the controls that apply to it, as typed."""
        method = self.controls["method"].value
        return {
            name: control.value
            for name, control in self.controls.items()
            if not self.schema[name].get("methods") or method in self.schema[name]["methods"]
        }

    def _style_path(self) -> str | None:
        value = self.style_file.value
        return str(value) if value and Path(value).is_file() else None

    # -- running --------------------------------------------------------------------------------

    def run(self, _value: Any = None) -> FunctionWorker | None:
        """Check everything, then start the task on a worker thread; None if nothing started."""
        if self.worker is not None:
            return None
        try:
            params = self.params()
            content = self.content.value
            inputs: dict[str, Any] = {"content": layer_to_picture(content, "content")}
            if self._needs_styles.get(params["method"], True):
                if self.style.value is None and self._style_path() is None:
                    raise NSTError("choose a style layer or a style file")
                inputs["styles"] = [style_picture(self.style.value, self._style_path())]
            mask = layer_to_mask(self.mask.value)
            if mask is not None:
                inputs["mask"] = mask
            task = api.create_task(TASK_ID, **params)
        except NSTError as exc:
            self._tell(str(exc), error=True)
            return None
        self._stop.clear()
        self._finished = False
        worker = create_worker(
            self._work,
            task,
            inputs,
            _start_thread=False,
            _progress={"desc": "Neural style transfer"},
        )
        self._pbar = getattr(worker, "pbar", None)
        # `finished`, not `returned`: a worker stopped by quit() (napari's own cancel button in
        # the activity dock) never emits `returned`, and its last image must still be shown.
        worker.finished.connect(lambda: self._idle(content, params["method"]))
        self.worker = worker
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self._tell(f"Running {params['method']}…")
        worker.start()
        return worker

    def cancel(self, _value: Any = None) -> None:
        """Stop after the current step; the last image is kept as a layer."""
        self._stop.set()

    def _should_stop(self) -> bool:
        return self._stop.is_set() or bool(self.worker and self.worker.abort_requested)

    def _work(self, task: Any, inputs: dict[str, Any]) -> None:
        """Runs on the worker thread. Expected failures become an outcome, not an exception:
        napari shows a worker's exception with its traceback, and these deserve a plain line."""
        try:
            result = task.run(inputs, on_progress=self._progress, should_stop=self._should_stop)
            self._outcome = ("done", result["image"])
        except Cancelled as exc:
            self._outcome = ("cancelled", exc.partial)
        except NSTError as exc:
            self._outcome = ("error", str(exc))

    @ensure_main_thread
    def _progress(self, record: Progress) -> None:
        """Called by the task on the worker thread; runs on the main thread (Qt objects)."""
        if self._finished:  # a late report, delivered after the run's result
            return
        w, h = record.size
        text = f"step {record.step}/{record.total}" + (f" at {w}×{h} px" if w else "")
        if self._pbar is not None:
            self._pbar.total = record.total
            self._pbar.update(record.step - self._pbar.n)
            self._pbar.set_description(f"Neural style transfer: {text}")
        self.status.value = text

    def _finish(self, outcome: tuple[str, Any], content: Image, method: str) -> None:
        kind, payload = outcome
        self._finished = True
        if kind == "error":
            self._tell(payload, error=True)
            return
        picture = payload  # the task hands results and cancelled partials as Pictures
        if picture is None:
            self._tell("Stopped before the first step; nothing to show.")
            return
        suffix = "" if kind == "done" else ", stopped"
        data, kwargs, _ = result_layer_data(picture, content, f"{content.name} ({method}{suffix})")
        self.viewer.add_image(data, **kwargs)
        self._tell(
            f"Added layer {kwargs['name']!r}."
            if kind == "done"
            else "Stopped; the last image was added as a layer."
        )

    def _idle(self, content: Image, method: str) -> None:
        outcome, self._outcome = self._outcome, None
        if outcome is not None:  # None: an unexpected exception, which napari reports itself
            self._finish(outcome, content, method)
        self._finished = True
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False

    def _tell(self, message: str, *, error: bool = False) -> None:
        """Status line and a napari notification: the message alone, no traceback."""
        self.last_message = message
        self.status.value = message
        (show_error if error else show_info)(message[:1].upper() + message[1:])


THUMBNAIL = 48  # px, the longer side of a painting in the model picker


def _add_thumbnails(combo: ComboBox) -> None:
    """Each style model's painting as the icon of its entry in the picker (Qt's own combo)."""
    from qtpy.QtCore import QSize
    from qtpy.QtGui import QIcon, QImage, QPixmap

    box = combo.native
    box.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
    models = api.list_style_models()  # once: each call reads every model's header
    for i in range(box.count()):
        name = box.itemText(i)
        if not name or name not in models:
            continue
        picture = api.style_model_reference(name)
        if picture is None:
            continue
        small = resize_longer(picture, THUMBNAIL)
        rgb = np.ascontiguousarray(to_numpy(Picture(small.rgb)))
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        box.setItemIcon(i, QIcon(QPixmap.fromImage(image)))
        box.setItemData(i, models[name]["summary"], 3)  # 3: Qt.ToolTipRole
