"""Workflow tasks: typed input ports, typed output ports, a typed parameter schema, one `run`.

A host needs only this module and `params.py`: it lists a task's ports and parameters, builds its
controls from them, constructs the task with parameter values (checked at once, before any work)
and calls `run` with images in the documented form (`images.Picture`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .engine.errors import InputError
from .engine.progress import ProgressCallback, StopCheck
from .images import Picture
from .params import Param, validate_params
from .video import FrameStream

PORT_TYPES = {
    "image": "images.Picture: RGB float32 (3, H, W) in 0..1, optional alpha (H, W)",
    "mask": "torch.Tensor float32 (H, W) or (S, H, W) in 0..1; a Picture's grey levels also do",
    "history": "list of dicts: step, total, size, losses, elapsed",
    "path": "str or os.PathLike: a file on disk",
    "frames": "video.FrameStream: a video's frames, decoded one at a time as they are read",
    "text": "str: a message for the user",
}


@dataclass(frozen=True)
class Port:
    name: str
    type: str
    description: str
    required: bool = True
    multiple: bool = False
    # a path port's files, by suffix, that a folder or glob gives it (empty: images)
    suffixes: tuple[str, ...] = ()

    def to_manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "multiple": self.multiple,
            "description": self.description,
        }


class Task:
    """Base of every workflow task. Subclasses set the class attributes and implement `_run`."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(self.schema(), params, method=self._method_of(params))
        self._given = dict(params)

    @classmethod
    def schema(cls) -> list[Param]:
        return []

    @classmethod
    def _method_of(cls, params: Mapping[str, Any]) -> str | None:
        return None

    @classmethod
    def manifest(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "title": cls.title,
            "description": cls.description,
            "inputs": [p.to_manifest() for p in cls.inputs],
            "outputs": [p.to_manifest() for p in cls.outputs],
            "params": [p.to_manifest() for p in cls.schema()],
        }

    def with_params(self, **params: Any) -> Task:
        """A new task with these parameters changed, checked like a new one; this one is left
        as it was, so a task shared by many items (a pipeline step) is a value, never mutated.
        Models stay loaded: they are cached per process, not per task."""
        return type(self)(**{**self._given, **params})

    def check_inputs(self, inputs: Mapping[str, Any]) -> None:
        known = {p.name: p for p in self.inputs}
        unknown = sorted(set(inputs) - set(known))
        if unknown:
            raise InputError(
                f"task {self.id}: unknown input port(s) {', '.join(unknown)}; "
                f"ports: {', '.join(known)}"
            )
        for port in self.inputs:
            value = inputs.get(port.name)
            if value is None or (port.multiple and isinstance(value, list | tuple) and not value):
                if port.required:
                    raise InputError(f"task {self.id}: input {port.name!r} is required")
                continue
            items = list(value) if port.multiple and isinstance(value, list | tuple) else [value]
            for item in items:
                if not _fits(port.type, item):
                    raise InputError(
                        f"task {self.id}: input {port.name!r} expects {port.type} "
                        f"({PORT_TYPES.get(port.type, port.type)}), got {type(item).__name__}"
                    )

    def run(
        self,
        inputs: Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> dict[str, Any]:
        self.check_inputs(inputs)
        return self._run(dict(inputs), on_progress, should_stop)

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        raise NotImplementedError


def _fits(port_type: str, value: Any) -> bool:
    if port_type == "image":
        return isinstance(value, Picture)
    if port_type == "mask":
        return isinstance(value, Picture) or (
            isinstance(value, torch.Tensor) and value.ndim in (2, 3)
        )
    if port_type == "frames":
        return isinstance(value, FrameStream)
    return True
