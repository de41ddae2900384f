"""What a style-transfer method is, to the task: a name, its parameters and a run function.

Built-in methods (optimization, AdaIN) and third-party ones are registered the same way, through
the `register_methods` hook; the task hands each a `StyleRequest` of tensors already on the
chosen device, and gets back the stylized tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .params import Param

if TYPE_CHECKING:
    import torch

    from .engine.progress import ProgressCallback, StopCheck


@dataclass
class StyleRequest:
    """content: (1, 3, H, W) RGB 0..1 at the output size; styles: (1, 3, h, w) each;
    style_weights: normalised to sum to 1; masks: (S, H, W) in 0..1, one per style, or None;
    params: this method's validated parameters (and the common ones)."""

    content: torch.Tensor
    styles: list[torch.Tensor]
    style_weights: list[float]
    masks: torch.Tensor | None
    params: dict[str, Any]
    device: torch.device
    preview_every: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    # further outputs a method hands back beside the image, by output port name
    outputs: dict[str, Any] = field(default_factory=dict)


RunFunction = Callable[
    [StyleRequest, "ProgressCallback | None", "StopCheck | None"], "torch.Tensor"
]
# (the method's validated params, pixels of the largest image it works on) -> peak bytes
MemoryEstimate = Callable[[dict[str, Any], int], float]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    title: str
    description: str
    params: tuple[Param, ...]
    run: RunFunction
    # False for methods that carry their style (a trained per-style network)
    needs_styles: bool = True
    # working memory of one run, checked before it starts; None: not known, not checked
    memory: MemoryEstimate | None = None
    # Video: True for a method that holds a frame to the previous frame's carried-forward result
    # itself (extras["carried"]: a loss term); for the others the task blends their output with it.
    takes_carried: bool = False
    # ... and for those, the blend weight per unit of that weight: a method whose frames differ
    # more from one to the next fades its strokes more for the same blend, so it blends less.
    carry: float = 1.0
