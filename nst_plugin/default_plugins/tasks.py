"""Built-in workflow tasks."""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl
from .style_transfer import StyleTransferTask


@hookimpl
def register_tasks(register: Callable) -> None:
    register(StyleTransferTask)
