"""Ikomia host: the style-transfer task as an Ikomia workflow task.

`translate.py` maps the task's schema to Ikomia's string parameters and numpy images and back; it
needs no Ikomia. `task.py` is the `CWorkflowTask` itself and imports `ikomia`, so its names are
loaded on first use: `from nst_plugin_hosts.ikomia import nst_style_transfer, register`.
"""

from __future__ import annotations

import importlib
from typing import Any

_TASK_NAMES = (
    "NAME",
    "StyleTransferError",
    "StyleTransferFactory",
    "StyleTransferParam",
    "StyleTransferParamFactory",
    "StyleTransferTask",
    "nst_style_transfer",
    "register",
)
__all__ = list(_TASK_NAMES)


def __getattr__(name: str) -> Any:
    if name in _TASK_NAMES:
        return getattr(importlib.import_module("nst_plugin_hosts.ikomia.task"), name)
    raise AttributeError(f"module 'nst_plugin_hosts.ikomia' has no attribute {name!r}")
