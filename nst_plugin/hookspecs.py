"""Hook specifications: what a plugin may add. Each hook receives a `register` callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "nst_plugin"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_commands(subparsers: Any) -> None:
    """Add `nst` subcommands: subparsers.add_parser(...) with set_defaults(func=...)."""


@hookspec
def register_tasks(register: Callable[[type], None]) -> None:
    """Register workflow task classes (subclasses of `nst_plugin.task.Task`)."""


@hookspec
def register_methods(register: Callable[[Any], None]) -> None:
    """Register style-transfer methods (`nst_plugin.methods.MethodSpec`)."""


@hookspec
def register_encoders(register: Callable[[str, Callable[..., Any], str], None]) -> None:
    """Register feature encoders: register(name, loader(pooling=...) -> VGGEncoder, description)."""


@hookspec
def register_style_models(register: Callable[[Any], None]) -> None:
    """Register fast style models: register(path) for each .safetensors style model file."""
