"""Arbitrary style transfer with adaptive instance normalization (Huang & Belongie, ICCV 2017).

The maths is a few pure functions named after the paper; the decoder is one declarative stack that
mirrors VGG-19 up to relu4_1. Everything here works on RGB tensors in 0..1, shape (B, 3, H, W).

Inputs arrive checked by the style-transfer task (weights normalised, masks at the content's size,
alpha within the range `AdaINOptions` declares); this module only asserts shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import VGGEncoder
from .padding import pad_to_multiple

CONTENT_TAP = "relu4_1"
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
# relu4_1 halves the resolution three times: inputs are padded to this multiple and cropped back.
MULTIPLE = 8
DECODER_VERSION = 1
WIDTHS = {"full": 1.0, "half": 0.5}


@dataclass(frozen=True, kw_only=True)
class AdaINOptions:
    """What a host sets for one AdaIN run. Each field's metadata (help, range) is the task
    schema's entry for it (`params.params_from_fields`), declared only here.

    alpha: the paper's content-style trade-off, blended in feature space (see `stylize`).
    """

    alpha: float = field(
        default=1.0,
        metadata={
            "help": "content-style trade-off in feature space: 0 reproduces the content, "
            "1 is full style",
            "min": 0.0,
            "max": 1.0,
        },
    )


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation over space, shaped (B, C, 1, 1)."""
    b, c = feat.shape[:2]
    flat = feat.reshape(b, c, -1)
    var = flat.var(dim=2, unbiased=False) + eps
    return flat.mean(dim=2).view(b, c, 1, 1), var.sqrt().view(b, c, 1, 1)


def normalized(feat: torch.Tensor) -> torch.Tensor:
    """Each channel of each image to zero mean and unit spread: what is left is its pattern."""
    mean, std = calc_mean_std(feat)
    return (feat - mean) / std


def adain_from_stats(
    content_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor
) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y), with the style's moments given."""
    return normalized(content_feat) * style_std + style_mean


def adaptive_instance_normalization(
    content_feat: torch.Tensor, style_feat: torch.Tensor
) -> torch.Tensor:
    s_mean, s_std = calc_mean_std(style_feat)
    return adain_from_stats(content_feat, s_mean, s_std)


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]


def make_decoder(width: str = "full") -> nn.Sequential:
    """The paper's decoder: VGG-19 relu4_1 -> image, reflection padding and nearest upsampling.

    `width="half"` halves every hidden channel count (a quarter of the multiply-adds), which is
    what makes training on a CPU feasible.
    """
    if width not in WIDTHS:
        raise ValueError(f"decoder width must be one of {', '.join(WIDTHS)}, not {width!r}")
    k = WIDTHS[width]
    c256, c128, c64 = int(256 * k), int(128 * k), int(64 * k)
    up = [nn.Upsample(scale_factor=2, mode="nearest")]
    relu = [nn.ReLU()]
    return nn.Sequential(
        *_conv(512, c256), *relu, *up,
        *_conv(c256, c256), *relu,
        *_conv(c256, c256), *relu,
        *_conv(c256, c256), *relu,
        *_conv(c256, c128), *relu, *up,
        *_conv(c128, c128), *relu,
        *_conv(c128, c64), *relu, *up,
        *_conv(c64, c64), *relu,
        *_conv(c64, 3),
    )  # fmt: skip


def decoder_width(decoder: nn.Sequential) -> str:
    first = next(m for m in decoder if isinstance(m, nn.Conv2d))
    return {256: "full", 128: "half"}[first.out_channels]


def style_moments(encoder: VGGEncoder, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """relu4_1 mean and std of a style image: all AdaIN needs of it, computed once per style."""
    feat = encoder(style, [CONTENT_TAP])[CONTENT_TAP]
    return calc_mean_std(feat)


def blend_moments(
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate several styles' moments with weights that sum to one (the paper's Eq. 9)."""
    assert len(weights) == len(moments) and math.isclose(sum(weights), 1.0, rel_tol=1e-6)
    mean = sum(wi * m for wi, (m, _) in zip(weights, moments))
    std = sum(wi * s for wi, (_, s) in zip(weights, moments))
    return mean, std


@torch.no_grad()
def stylize(
    encoder: VGGEncoder,
    decoder: nn.Module,
    content: torch.Tensor,
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    weights: Sequence[float] | None = None,
    options: AdaINOptions | None = None,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stylize a batch of content images with precomputed style moments.

    options.alpha blends in feature space: t = alpha * AdaIN(f(c), s) + (1 - alpha) * f(c), so
    alpha=0 reconstructs the content through the decoder. With `masks` (one (H, W) map per style,
    in 0..1, at content resolution) each region takes its own style, blended softly where masks
    overlap; otherwise the styles are interpolated by `weights` (summing to one; None: equal).
    """
    alpha = (options or AdaINOptions()).alpha
    padded, h, w = pad_to_multiple(content, MULTIPLE)
    feat = encoder(padded, [CONTENT_TAP])[CONTENT_TAP]
    if masks is None:
        weights = weights if weights is not None else [1.0 / len(moments)] * len(moments)
        mean, std = blend_moments(moments, weights)
        target = adain_from_stats(feat, mean, std)
    else:
        assert tuple(masks.shape) == (len(moments), h, w), tuple(masks.shape)
        m = pad_to_multiple(masks[None].float(), MULTIPLE)[0]
        m = F.interpolate(m, size=feat.shape[-2:], mode="bilinear", align_corners=False)[0]
        # Where masks overlap they share the pixel; where they sum below one the content shows.
        m = m / m.sum(0, keepdim=True).clamp_min(1.0)
        target = (1.0 - m.sum(0))[None, None] * feat + sum(
            m[i][None, None] * adain_from_stats(feat, *moments[i]) for i in range(len(moments))
        )
    target = alpha * target + (1.0 - alpha) * feat
    out = decoder(target)
    return out[..., :h, :w].clamp(0.0, 1.0)
