"""The plugin manager: built-in plugins first, then third-party ones from entry points.

Third-party plugins are found through the `nst_plugin` entry-point group. `NST_PLUGINS` narrows
what is loaded: unset loads all, an empty string loads none (what tests and manifests use), a
comma-separated list loads only those entry-point names. A plugin that fails to import or
breaks the hook contract is reported by name and skipped; it never takes the host down.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .engine.errors import InputError, NSTError
from .methods import MethodSpec
from .params import Param

if TYPE_CHECKING:
    from .engine.style_models import StyleModelInfo

ENTRY_POINT_GROUP = "nst_plugin"
DISTRIBUTION = "nst-plugin"
ENV_VAR = "NST_PLUGINS"
BUILTIN_PLUGINS = (
    "nst_plugin.default_plugins.encoders",
    "nst_plugin.default_plugins.optimization_method",
    "nst_plugin.default_plugins.adain_method",
    "nst_plugin.default_plugins.fast_method",
    "nst_plugin.default_plugins.tasks",
    "nst_plugin.default_plugins.image_tasks",
    "nst_plugin.default_plugins.video_tasks",
)


class PluginError(NSTError):
    """A plugin could not be loaded or registered something invalid."""


@dataclasses.dataclass(frozen=True)
class EncoderEntry:
    name: str
    loader: Callable[..., Any]
    description: str


@dataclasses.dataclass(frozen=True)
class StyleModelEntry:
    """An installed fast style model: its file and what the file says about its painting."""

    name: str
    path: Path
    plugin: str
    info: StyleModelInfo


def _new_manager() -> tuple[pluggy.PluginManager, list[str]]:
    """Hook specs and entry-point plugins only: what `nst` needs to build its commands.

    Entry points of this distribution (our own hosts' commands) always load; `NST_PLUGINS`
    narrows only the others'. Built-in plugins are added by `manager()`, on first real use, so
    that `nst --help` imports no torch.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    problems: list[str] = []
    wanted = os.environ.get(ENV_VAR)
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ours = ep.dist is not None and ep.dist.name == DISTRIBUTION
        if not ours and allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
            pm.check_pending()
        except Exception as exc:  # a broken plugin must not crash the host
            if ours:
                raise
            if pm.get_plugin(ep.name) is not None:
                pm.unregister(name=ep.name)
            message = f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
            problems.append(message)
            warnings.warn(message, stacklevel=2)
    return pm, problems


_PROBLEMS: list[str] = []


@functools.cache
def _entry_point_manager() -> pluggy.PluginManager:
    pm, problems = _new_manager()
    _PROBLEMS.extend(problems)
    return pm


@functools.cache
def manager() -> pluggy.PluginManager:
    """Every plugin: the built-in ones (methods, tasks, encoders) and the entry points'."""
    pm = _entry_point_manager()
    for name in BUILTIN_PLUGINS:
        if pm.get_plugin(name) is None:
            pm.register(importlib.import_module(name), name=name)
    return pm


def command_hooks() -> Any:
    """The hooks `nst` calls to build its parser (`register_commands`), without the built-ins."""
    return _entry_point_manager().hook


def load_problems() -> tuple[str, ...]:
    """What failed while loading or registering third-party plugins, for hosts to show."""
    methods(), tasks(), encoders(), style_models()
    return tuple(_PROBLEMS)


def reset() -> None:
    """Forget loaded plugins, so that a changed environment (tests, NST_PLUGINS) takes effect."""
    manager.cache_clear()
    _entry_point_manager.cache_clear()
    methods.cache_clear()
    tasks.cache_clear()
    encoders.cache_clear()
    style_models.cache_clear()
    _PROBLEMS.clear()


def _collect(hook: str) -> list[tuple[str, tuple]]:
    """Call one registration hook plugin by plugin, so each item knows who registered it."""
    pm = manager()
    out: list[tuple[str, tuple]] = []
    # Built-ins first, then in registration order: get_plugins() is a set, its order varies.
    ordered = sorted(pm.list_name_plugin(), key=lambda item: item[0] not in BUILTIN_PLUGINS)
    for name, plugin in ordered:
        impl = getattr(plugin, hook, None)
        if impl is None:
            continue
        items: list[tuple] = []
        try:
            impl(register=lambda *args, _items=items: _items.append(args))
        except Exception as exc:
            message = f"plugin {name!r} failed in {hook}: {exc}"
            if name in BUILTIN_PLUGINS:
                raise PluginError(message) from exc
            _PROBLEMS.append(message)
            warnings.warn(message, stacklevel=2)
            continue
        out.extend((name, args) for args in items)
    return out


@functools.cache
def methods() -> dict[str, MethodSpec]:
    found: dict[str, MethodSpec] = {}
    for plugin, args in _collect("register_methods"):
        spec = args[0] if args else None
        if not isinstance(spec, MethodSpec):
            _reject(plugin, f"register_methods got {type(spec).__name__}, not a MethodSpec")
            continue
        if spec.name in found:
            _reject(plugin, f"method {spec.name!r} is already registered")
            continue
        params = tuple(_bound(p, spec.name) for p in spec.params)
        found[spec.name] = dataclasses.replace(spec, params=params)
    return found


def _bound(param: Param, method: str) -> Param:
    """A method's parameter tied to that method, its registry-fed choices filled in."""
    if not param.methods:
        param = dataclasses.replace(param, methods=(method,))
    if param.choices_from == "encoders":
        names = tuple(encoders())
        default = param.default if param.default in names else names[0]
        param = dataclasses.replace(param, choices=names, default=default)
    if param.choices_from == "style_models":
        names = tuple(style_models())
        optional = param.default == "" or not names  # "" stands for none
        default = param.default if param.default in names else (names[0] if names else "")
        choices = ("", *names) if optional else names
        param = dataclasses.replace(param, choices=choices, default="" if optional else default)
    return param


@functools.cache
def tasks() -> dict[str, type]:
    from .task import Task

    found: dict[str, type] = {}
    for plugin, args in _collect("register_tasks"):
        cls = args[0] if args else None
        if not (isinstance(cls, type) and issubclass(cls, Task) and getattr(cls, "id", "")):
            _reject(plugin, f"register_tasks got {cls!r}, not a Task subclass with an id")
            continue
        if cls.id in found:
            _reject(plugin, f"task {cls.id!r} is already registered")
            continue
        found[cls.id] = cls
    return found


@functools.cache
def encoders() -> dict[str, EncoderEntry]:
    found: dict[str, EncoderEntry] = {}
    for plugin, args in _collect("register_encoders"):
        if len(args) != 3 or not callable(args[1]):
            _reject(plugin, "register_encoders takes (name, loader, description)")
            continue
        found.setdefault(args[0], EncoderEntry(*args))
    return found


@functools.cache
def style_models() -> dict[str, StyleModelEntry]:
    """Installed style models by name; a file that is not a valid model is reported, skipped."""
    from .engine.style_models import info_from_metadata, read_metadata

    found: dict[str, StyleModelEntry] = {}
    for plugin, args in _collect("register_style_models"):
        path = Path(args[0]) if len(args) == 1 and isinstance(args[0], str | Path) else None
        if path is None:
            _reject(plugin, "register_style_models takes one path")
            continue
        try:
            info = info_from_metadata(read_metadata(path))
        except NSTError as exc:
            _reject(plugin, str(exc))
            continue
        name = info.name or path.stem
        if name in found:
            _reject(plugin, f"style model {name!r} is already registered")
            continue
        found[name] = StyleModelEntry(name, path, plugin, info)
    return found


def get_style_model(name_or_path: str) -> StyleModelEntry:
    """An installed model by name, or any model file by path (read and checked on use)."""
    from .engine.style_models import info_from_metadata, read_metadata

    found = style_models()
    if name_or_path in found:
        return found[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() == ".safetensors" and path.is_file():
        info = info_from_metadata(read_metadata(path))
        return StyleModelEntry(info.name or path.stem, path, "file", info)
    raise InputError(
        f"unknown style model {name_or_path!r}; installed: {', '.join(found) or 'none'}"
    )


def _reject(plugin: str, why: str) -> None:
    message = f"plugin {plugin!r}: {why}"
    if plugin in BUILTIN_PLUGINS:
        raise PluginError(message)
    _PROBLEMS.append(message)
    warnings.warn(message, stacklevel=3)


def get_method(name: str) -> MethodSpec:
    found = methods()
    if name not in found:
        raise InputError(f"unknown method {name!r}; available: {', '.join(found)}")
    return found[name]


def get_encoder(name: str, *, pooling: str = "max") -> Any:
    found = encoders()
    if name not in found:
        raise InputError(f"unknown encoder {name!r}; available: {', '.join(found)}")
    return found[name].loader(pooling=pooling)


def get_task_class(task_id: str) -> type:
    found = tasks()
    if task_id not in found:
        raise InputError(f"unknown task {task_id!r}; available: {', '.join(found)}")
    return found[task_id]
