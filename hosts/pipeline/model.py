"""What a checked pipeline is made of: what the graph and plan hand on and the runner reads.

Frozen, as tasks are values: the runner only reads a pipeline, so one validated pipeline can be
described, run, and run again, and each time means the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nst_plugin import Task

__all__ = ["Item", "Pipeline", "Source", "Step"]


@dataclass(frozen=True)
class Source:
    """One value feeding an input port: another step's output (`step`, `port`) or files."""

    where: str
    text: str
    step: str | None = None
    port: str | None = None
    files: tuple[Path, ...] = ()
    batch: bool = False  # a glob or folder on a one-image port: one item per file


@dataclass(frozen=True)
class Step:
    """A step of the graph: its task, created once from the step's parameters, and its inputs."""

    id: str
    task_id: str
    where: str
    task_cls: type | None = None
    task: Task | None = None  # reused for every item; per-item values go to copies
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, list[Source]] = field(default_factory=dict)
    writes_files: bool = False
    param_where: dict[str, str] = field(default_factory=dict)

    @property
    def deps(self) -> set[str]:
        return {s.step for sources in self.inputs.values() for s in sources if s.step}


@dataclass(frozen=True)
class Item:
    """One pass through the graph: a file of the batch input (or the only pass, without one)."""

    index: int
    stem: str
    file: Path | None


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline: steps in topological order, items, and where outputs go."""

    file: Path
    display: str
    base: Path
    out_dir: Path
    steps: dict[str, Step]
    items: list[Item]
    per_item: set[str]
    batch_text: str | None = None

    @property
    def input_files(self) -> list[Path]:
        """Files every item reads (not the batch file): what item outputs must be newer than."""
        return sorted(
            {
                f
                for step in self.steps.values()
                for sources in step.inputs.values()
                for s in sources
                if not s.batch
                for f in s.files
            }
        )
