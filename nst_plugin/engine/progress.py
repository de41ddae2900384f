"""The one progress record every method hands its caller, whatever host shows it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Progress:
    """One step of a long job.

    step/total count across all scales; `size` is the (width, height) being worked on now, so a
    host can report the working resolution; `preview` is an RGB (3, H, W) 0..1 image when asked.
    """

    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    size: tuple[int, int] = (0, 0)
    scale: int = 0
    scales: int = 1
    preview: torch.Tensor | None = None


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]
