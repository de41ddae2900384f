"""Image filters the methods share."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(image: torch.Tensor, sigma: float, *, padding: str = "replicate") -> torch.Tensor:
    """(B, C, H, W) blurred channel by channel, separably, to 3 sigma; `padding` is F.pad's mode."""
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = image.shape[1]
    out = F.pad(image, (radius, radius, radius, radius), mode=padding)
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
