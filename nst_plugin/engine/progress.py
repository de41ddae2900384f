"""The one progress record every method hands its caller, whatever host shows it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """One step of a long job.

    step/total count across all scales; `size` is the (width, height) being worked on now, so a
    host can report the working resolution; `preview` is the current image when asked: an RGB
    (3, H, W) 0..1 tensor from the engine, which the task hands hosts as an `images.Picture`.
    """

    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    size: tuple[int, int] = (0, 0)
    scale: int = 0
    scales: int = 1
    preview: Any = None
    # seconds left of a time budget, None without one
    time_left: float | None = None


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]
