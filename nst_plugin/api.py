"""The public entry points for host applications: list tasks and methods, create a task."""

from __future__ import annotations

from typing import Any

from . import plugins
from .images import Picture
from .task import Task


def list_tasks() -> dict[str, dict[str, Any]]:
    """Every registered task's manifest entry (ports and parameters), by task id."""
    return {task_id: cls.manifest() for task_id, cls in plugins.tasks().items()}


def list_methods() -> dict[str, dict[str, Any]]:
    """Each method's title, description and whether it takes style images (`needs_styles`)."""
    return {name: {"title": spec.title, "description": spec.description,
                   "needs_styles": spec.needs_styles}
            for name, spec in plugins.methods().items()}  # fmt: skip


def list_style_models() -> dict[str, dict[str, Any]]:
    """Installed fast style models: name, title, artist, painting, year, licence, source."""
    out = {}
    for name, entry in plugins.style_models().items():
        info = entry.info
        fields = ("artist", "painting", "year", "licence", "source")
        out[name] = {"name": name, "title": info.title or name,
                     **{k: getattr(info, k) for k in fields},
                     "summary": info.summary(), "path": str(entry.path)}  # fmt: skip
    return out


def style_model_reference(name: str) -> Picture | None:
    """The painting a style model was trained on, as shipped inside the model file."""
    from .default_plugins.fast_method import reference_of

    return reference_of(plugins.get_style_model(name).path)


def create_task(task_id: str, **params: Any) -> Task:
    """A task ready to run; parameters are checked now, before any work."""
    return plugins.get_task_class(task_id)(**params)


def task_class(task_id: str) -> type:
    """A registered task's class, for hosts that check a workflow before creating any task:
    its ports, its `Param` schema and what it declares (`planned_outputs`) without an instance."""
    return plugins.get_task_class(task_id)
