"""The public entry points for host applications: list tasks and methods, create a task."""

from __future__ import annotations

from typing import Any

from . import plugins
from .task import Task


def list_tasks() -> dict[str, dict[str, Any]]:
    """Every registered task's manifest entry (ports and parameters), by task id."""
    return {task_id: cls.manifest() for task_id, cls in plugins.tasks().items()}


def list_methods() -> dict[str, str]:
    return {name: spec.description for name, spec in plugins.methods().items()}


def create_task(task_id: str, **params: Any) -> Task:
    """A task ready to run; parameters are checked now, before any work."""
    return plugins.get_task_class(task_id)(**params)
