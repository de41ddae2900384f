"""Arbitrary style transfer with adaptive instance normalization (Huang & Belongie, ICCV 2017).

The maths is a few pure functions named after the paper; the decoder is the paper's declarative
stack mirroring VGG-19 up to relu4_1, plus skip connections (see `Decoder`, our departure from the
paper). Everything here works on RGB tensors in 0..1, shape (B, 3, H, W).

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
# The content's finer taps the decoder's skip connections read, coarse to fine (one per upsampling).
SKIP_TAPS = ("relu3_1", "relu2_1", "relu1_1")
SKIP_CHANNELS = {"relu3_1": 256, "relu2_1": 128, "relu1_1": 64}
# relu4_1 halves the resolution three times: inputs are padded to this multiple and cropped back.
MULTIPLE = 8
# 1: the paper's decoder; 2: with skip connections (`Decoder`); v1 weights are its body.
DECODER_VERSION = 2
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


def make_body(width: str = "full") -> nn.Sequential:
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


class Decoder(nn.Module):
    """The paper's decoder (`body`) with a skip connection after each upsampling.

    Departure from the paper: redrawn from relu4_1 alone (8 px cells), edges come out soft and
    fine detail (masts, windows) smeared. So after each upsampling a 1x1 convolution adds the
    content's relu3_1, relu2_1, relu1_1 at that resolution, each channel normalised to zero mean
    and unit spread: the photo's patterns, without each map's level and contrast. (Which colours
    form a relu1_1 pattern survives normalising; early v2 training lets strong photo colours
    through, which the style loss has to work against.)
    The skips start at zero, so a v1 decoder's weights (the body alone) give its own output.
    """

    def __init__(self, width: str = "full") -> None:
        super().__init__()
        self.body = make_body(width)
        ups = [i for i, m in enumerate(self.body) if isinstance(m, nn.Upsample)]
        outs = [self._channels_before(i) for i in ups]
        self.skips = nn.ModuleList(
            nn.Conv2d(SKIP_CHANNELS[tap], c, 1) for tap, c in zip(SKIP_TAPS, outs, strict=True)
        )
        for conv in self.skips:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def _channels_before(self, index: int) -> int:
        conv = [m for m in self.body[:index] if isinstance(m, nn.Conv2d)][-1]
        return conv.out_channels

    @property
    def width(self) -> str:
        first = next(m for m in self.body if isinstance(m, nn.Conv2d))
        return {256: "full", 128: "half"}[first.out_channels]

    def forward(self, target: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """`target`: the relu4_1 map to draw; `skips`: `skip_features` of the content."""
        pending = iter(zip(self.skips, skips, strict=True))
        x = target
        for layer in self.body:
            x = layer(x)
            if isinstance(layer, nn.Upsample):
                conv, skip = next(pending)
                x = x + conv(skip.to(x.dtype))
        return x


def make_decoder(width: str = "full") -> Decoder:
    return Decoder(width)


def skip_features(feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The content's taps the decoder's skips read, coarse to fine, each channel normalised."""
    return [normalized(feats[tap].float()) for tap in SKIP_TAPS]


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
    decoder: Decoder,
    content: torch.Tensor,
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    weights: Sequence[float] | None = None,
    options: AdaINOptions | None = None,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stylize a batch of content images with precomputed style moments.

    options.alpha blends in feature space: t = alpha * AdaIN(f(c), s) + (1 - alpha) * f(c), so
    alpha=0 reconstructs the content through the decoder (whose skips carry it at any alpha).
    With `masks` (one (H, W) map per style, in 0..1, at content resolution) each region takes its
    own style, blended softly where masks overlap; otherwise the styles are interpolated by
    `weights` (summing to one; None: equal).
    """
    alpha = (options or AdaINOptions()).alpha
    padded, h, w = pad_to_multiple(content, MULTIPLE)
    feats = encoder(padded, [*SKIP_TAPS, CONTENT_TAP])  # one pass for every tap
    feat = feats[CONTENT_TAP]
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
    out = decoder(target, skip_features(feats))
    return out[..., :h, :w].clamp(0.0, 1.0)
