"""The Gradio demo host: `build_app()` makes the page, `launch()` serves it (`nst demo`).

Names load on first use: `nst` imports `commands` to build its parser, and that must not
import Gradio (seconds) for every command.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Limits", "build_app", "launch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(f"{__name__}.app"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
