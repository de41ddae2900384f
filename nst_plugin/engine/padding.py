"""Padding images for networks that halve their input: shared by the AdaIN decoder and the fast
style networks, so every size comes back exactly and no border turns dark."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(
    image: torch.Tensor, multiple: int, *, bottom: int = 0
) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad H and W up to a multiple (at least two cells a side: the networks' own
    reflection padding needs a neighbour), with at least `bottom` rows below; returns the
    padded image and the old H and W."""
    h, w = image.shape[-2:]
    ph = max(bottom + (-(h + bottom)) % multiple, 2 * multiple - h)
    pw = max((-w) % multiple, 2 * multiple - w)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        image = F.pad(image, (0, pw, 0, ph), mode=mode)
    return image, h, w


def pad_keeping_dtype(x: torch.Tensor, padding: tuple[int, ...], mode: str) -> torch.Tensor:
    """`F.pad` in the input's dtype. CPU autocast lists reflection and replication padding as
    fp32 ops, so under bf16 autocast every such pad would widen its input to fp32 and the next
    convolution cast it back: two full copies a layer, at full resolution the largest cost of
    a fast style network (1.3-1.5x its time here, `benchmarks/bench_fast.py --layers`)."""
    with torch.autocast(x.device.type, enabled=False):
        return F.pad(x, padding, mode=mode)


class ReflectionPad(nn.ReflectionPad2d):
    """Reflection padding in the input's dtype (see `pad_keeping_dtype`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad_keeping_dtype(x, self.padding, "reflect")
