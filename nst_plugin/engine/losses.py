"""The losses of optimization-based style transfer (Gatys, Ecker & Bethge, CVPR 2016).

Small pure functions on feature tensors, so each can be checked by hand and composed freely by a
method. Every loss is a mean, not a sum: its size does not grow with the image, so one set of
default weights serves a 256 px preview and a 2048 px print alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def gram_matrix(feat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Feature correlations G = F Fᵀ / (C·H·W), shaped (B, C, C).

    Dividing by C·H·W rather than leaving a raw sum makes the entries averages, so a style target
    taken from an image of one size is comparable with an output of another size, and the default
    weights need no retuning when the resolution changes.

    With `mask` (broadcastable to (B, 1, H, W), values 0..1) this is the guided Gram matrix of
    Gatys et al., 'Controlling Perceptual Factors in Neural Style Transfer' (CVPR 2017): features
    are weighted by the mask and the sum is divided by the mask's area (Σm², the pixel count for a
    binary mask) instead of H·W, so a region's statistics do not shrink with the region.
    """
    b, c, h, w = feat.shape
    if mask is not None:
        feat = feat * mask
        area = (mask * mask).expand(b, 1, h, w).sum(dim=(1, 2, 3)).clamp_min(1e-8)
        norm = (area * c).view(b, 1, 1)
    else:
        norm = torch.tensor(float(c * h * w), dtype=feat.dtype, device=feat.device)
    if feat.is_contiguous(memory_format=torch.channels_last) and not feat.is_contiguous():
        # (B, H·W, C) is a free view of channels-last memory; Fᵀ F then needs no copy.
        flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
        gram = flat.mT @ flat
    else:
        flat = feat.reshape(b, c, h * w)
        gram = flat @ flat.mT
    return gram / norm


def content_loss(
    feats: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Σ over the target layers of the mean squared feature difference.

    The mean (not the paper's ½·sum) keeps the value independent of image size.
    """
    return sum(F.mse_loss(feats[name], target) for name, target in targets.items())


def style_loss(
    feats: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | None = None,
    mask: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Σ_l w_l · mean((G_l(x) − A_l)²) over the layers that have a target Gram matrix A_l.

    Layer weights default to 1 each. `mask` restricts the statistics to a region: one tensor
    (resized here to each layer by area averaging, which keeps thin regions alive on coarse
    layers) or, to avoid redoing that every iteration, a mapping of already resized masks.
    """
    total = 0.0
    for name, target in target_grams.items():
        feat = feats[name]
        layer_mask = None
        if isinstance(mask, Mapping):
            layer_mask = mask[name]
        elif mask is not None:
            layer_mask = resize_mask(mask, feat.shape[-2:])
        weight = 1.0 if layer_weights is None else layer_weights[name]
        total = total + weight * F.mse_loss(gram_matrix(feat, layer_mask), target)
    return total


def resize_mask(mask: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """A (H, W), (1, H, W) or (B, 1, H, W) mask as (B, 1, h, w) at a layer's resolution.

    Area averaging is the mask's coverage of each feature's receptive cell, so a region smaller than
    a cell still counts in proportion instead of vanishing as with nearest sampling.
    """
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    mask = mask.to(torch.float32)
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.adaptive_avg_pool2d(mask, tuple(size))


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels, summed over the two directions.

    Squared rather than absolute differences keep the loss smooth at zero, which L-BFGS needs;
    it suppresses the high-frequency speckle that the style loss alone leaves behind.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()
