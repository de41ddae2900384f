"""nst-plugin: neural style transfer as a workflow node that image-processing hosts drop in.

A host needs three calls (and two to load images)::

    import nst_plugin as nst
    task = nst.create_task("nst.style_transfer", method="adain", alpha=0.8)
    photo, art = nst.load_image("photo.jpg"), nst.load_image("art.jpg")
    result = task.run({"content": photo, "styles": [art]})

`result["image"]` is an `nst.Picture`; `nst.save_image`, `nst.to_pil`, `nst.to_numpy` and
`nst.to_bhwc` convert it for the host. Names are imported lazily, so `import nst_plugin` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_task": "nst_plugin.api",
    "list_tasks": "nst_plugin.api",
    "task_class": "nst_plugin.api",
    "list_methods": "nst_plugin.api",
    "list_style_models": "nst_plugin.api",
    "style_model_reference": "nst_plugin.api",
    "Picture": "nst_plugin.images",
    "load_image": "nst_plugin.images",
    "save_image": "nst_plugin.images",
    "from_pil": "nst_plugin.images",
    "to_pil": "nst_plugin.images",
    "from_numpy": "nst_plugin.images",
    "to_numpy": "nst_plugin.images",
    "from_bhwc": "nst_plugin.images",
    "to_bhwc": "nst_plugin.images",
    "resize_longer": "nst_plugin.images",
    "list_images": "nst_plugin.images",
    "IMAGE_SUFFIXES": "nst_plugin.images",
    "FrameStream": "nst_plugin.video",
    "PictureFrames": "nst_plugin.video",
    "VIDEO_SUFFIXES": "nst_plugin.video",
    "resolve_device": "nst_plugin.devices",
    "write_examples": "nst_plugin.examples",
    "example_photo": "nst_plugin.examples",
    "example_painting": "nst_plugin.examples",
    "Progress": "nst_plugin.engine.progress",
    "NSTError": "nst_plugin.engine.errors",
    "InputError": "nst_plugin.engine.errors",
    "WeightsError": "nst_plugin.engine.errors",
    "WriteError": "nst_plugin.engine.errors",
    "Cancelled": "nst_plugin.engine.errors",
    "Param": "nst_plugin.params",
    "Port": "nst_plugin.task",
    "Task": "nst_plugin.task",
    "MethodSpec": "nst_plugin.methods",
    "StyleRequest": "nst_plugin.methods",
    "hookimpl": "nst_plugin.hookspecs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nst_plugin' has no attribute {name!r}")
