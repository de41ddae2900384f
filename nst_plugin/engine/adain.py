"""Arbitrary style transfer with adaptive instance normalization (Huang & Belongie, ICCV 2017).

The maths is a few pure functions named after the paper. Two networks draw the result:
- `Decoder`: the paper's declarative stack mirroring VGG-19 up to relu4_1, plus skip connections
  (our departure from the paper, stated there); VGG-19 encodes content and style.
- `LiteNet`: its own small encoder and decoder, AdaIN at four levels (our departure, for speed:
  stated there); no VGG at inference, VGG only in its training losses.
Both answer `levels` (the maps AdaIN restyles, and what else the drawing needs) and `draw`, so
`stylize` is one function for both. Without masks AdaIN is a per-channel affine map (`Restyle`),
which `draw` folds into the convolution that reads each map instead of applying it.
Everything here works on RGB tensors in 0..1, (B, 3, H, W).

Inputs arrive checked by the style-transfer task (weights normalised, masks at the content's size,
alpha within the range `AdaINOptions` declares); this module only asserts shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import VGGEncoder
from .padding import ReflectionPad, pad_to_multiple

CONTENT_TAP = "relu4_1"
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
# The content's finer taps the decoder's skip connections read, coarse to fine (one per upsampling).
SKIP_TAPS = ("relu3_1", "relu2_1", "relu1_1")
SKIP_CHANNELS = {"relu3_1": 256, "relu2_1": 128, "relu1_1": 64}
# relu4_1 halves the resolution three times: inputs are padded to this multiple and cropped back.
MULTIPLE = 8
MOMENT_EPS = 1e-5  # `calc_mean_std`'s floor under every variance
# 1: the paper's decoder; 2: with skip connections (`Decoder`); v1 weights are its body.
DECODER_VERSION = 2
# 3: `LiteNet`, its own encoder and decoder (file width "lite"); 4: the same with leaky
# activations (`LiteNet.slope` > 0, recorded in the file), which a v3 reader would run wrongly
LITE_VERSION = 3
LEAKY_LITE_VERSION = 4
# 5: `LiteNet` of other widths than LITE_WIDTHS, recorded in the file (leaky or not), which a
# v3 or v4 reader would build at the wrong size
WIDE_LITE_VERSION = 5
# 6: `LiteNet` with a `StyleModulator` (any widths, recorded in the file; leaky or not), whose
# weights an older reader would not know
MODULATED_LITE_VERSION = 6
LITE_WIDTHS = (16, 32, 64, 256)
WIDTHS = {"full": 1.0, "half": 0.5}
LITE = "lite"
# Per-level moments of one style: ((mean, std), ...), one pair per map its network restyles.
Moments = tuple[tuple[torch.Tensor, torch.Tensor], ...]


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


def calc_mean_std(feat: torch.Tensor, eps: float = MOMENT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation over space, shaped (B, C, 1, 1) for a map.

    In fp32 whatever the autocast: a nearly flat channel's variance rounds to garbage in bf16.
    Two passes (the mean, then the centred squares' mean) over the map as it is laid out:
    `torch.var` on a flattened copy took about twice as long here (and flattening a
    channels-last map copies it)."""
    x = feat.float()
    space = tuple(range(2, x.dim()))
    mean = x.mean(dim=space, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=space, keepdim=True)
    return mean, (var + eps).sqrt()


def normalized(feat: torch.Tensor) -> torch.Tensor:
    """Each channel of each image to zero mean and unit spread: what is left is its pattern."""
    mean, std = calc_mean_std(feat)
    return torch.addcmul(-mean / std, feat, 1.0 / std)  # in fp32, one pass


def adain_from_stats(
    content_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor
) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y), with the style's moments given;
    in fp32, as one multiply-add per value (x * scale + shift)."""
    mean, std = calc_mean_std(content_feat)
    scale = style_std / std
    return torch.addcmul(style_mean - mean * scale, content_feat, scale)


def adaptive_instance_normalization(
    content_feat: torch.Tensor, style_feat: torch.Tensor
) -> torch.Tensor:
    s_mean, s_std = calc_mean_std(style_feat)
    return adain_from_stats(content_feat, s_mean, s_std)


class Restyle(NamedTuple):
    """A map's restyle without masks, kept as the per-channel affine map it is: restyled =
    feat * scale + shift, each (B, C, 1, 1); `moments` are the restyled map's own mean and
    spread. Left unapplied, it can be folded into the convolution that reads the map
    (`fold_input_affine`), which saves passes over every map (see `stylize`)."""

    scale: torch.Tensor
    shift: torch.Tensor
    moments: tuple[torch.Tensor, torch.Tensor]

    def apply(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, feat, self.scale)


def fold_input_affine(
    conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one convolution that gives `conv(x * scale + shift)` from x, for one
    image (scale and shift per input channel). Exact where the input is reflection padded, as
    in these networks, or not padded: both commute with a per-channel affine map (zero padding
    would not, its zeros would become `shift`)."""
    assert conv.bias is not None and scale.shape[0] == 1
    weight = conv.weight * scale.view(1, -1, 1, 1).to(conv.weight.dtype)
    bias = conv.bias + conv.weight.sum((2, 3)) @ shift.flatten().to(conv.weight.dtype)
    return weight, bias


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [ReflectionPad(1), nn.Conv2d(cin, cout, 3, stride)]


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

    def levels(
        self, encoder: VGGEncoder | None, image: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """relu4_1, the one map AdaIN restyles, and the skips' inputs, in one encoder pass."""
        assert encoder is not None, "a VGG decoder needs the VGG encoder"
        feats = encoder(image, [*SKIP_TAPS, CONTENT_TAP])
        return [feats[CONTENT_TAP]], skip_features(feats)

    def draw(
        self,
        targets: Sequence[torch.Tensor],
        context: Sequence[torch.Tensor],
        restyles: Sequence[Restyle] | None = None,
    ) -> torch.Tensor:
        """`restyles`: the restyle still to apply to relu4_1 (see `LiteNet.draw`); here it is
        applied first, one pass over a map at 1/8 of the image's size."""
        (target,) = targets
        if restyles is not None:
            (restyle,) = restyles
            target = restyle.apply(target)
        return self(target, context)

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


def _activation(slope: float) -> nn.Module:
    return nn.LeakyReLU(slope) if slope else nn.ReLU()


class StyleModulator(nn.Module):
    """Per-channel scale and shift after each of a lite decoder's convolutions, from the
    restyled maps' moments: MicroAST's filter modulation (Wang et al., AAAI 2023), which makes
    the decoder's own filters depend on the style, where AdaIN alone sets only its inputs.

    Departures from MicroAST: its modulation comes from a second, style-only encoder's maps
    (depthwise convolutions and pooling); here a small MLP reads the moments the two coarsest
    restyled maps already carry (at alpha 1 and without masks, the style's own; the finer two
    would cost passes over large maps: 1.07-1.09x the network's time), so `draw` needs nothing
    beyond the maps, style blends and alpha carry over as they do for AdaIN, and under masks
    the modulation is the mixture's, one for the whole image. MicroAST adds `bias * input`;
    this adds a shift (the input and output widths differ here). The last layer starts at zero:
    a network given a modulator draws exactly what it drew before (`LiteNet.with_modulator`).
    """

    def __init__(self, widths: Sequence[int], hidden: int = 128) -> None:
        super().__init__()
        a, b, c, d = widths
        # every decoder convolution's output but the last (the RGB one), in `draw`'s order
        self.sizes = [d, c, c, b, b, a, a]
        stats = 2 * (c + d)
        self.net = nn.Sequential(
            nn.LayerNorm(stats),
            nn.Linear(stats, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 2 * sum(self.sizes)),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    @torch.no_grad()
    def widened_from(self, narrow: StyleModulator) -> None:
        """Take `narrow`'s weights, for a network whose decoder has at least its widths (and
        the same two coarsest stages, which the input reads): each old output row where its
        convolution's channel now sits, the new channels' rows at zero (scale 1, shift 0)."""
        self.net[:2].load_state_dict(narrow.net[:2].state_dict())
        old, new = narrow.net[-1], self.net[-1]
        new.weight.zero_()
        new.bias.zero_()
        half_old, half_new = sum(narrow.sizes), sum(self.sizes)
        for part in range(2):  # the scales, then the shifts
            at_old, at_new = part * half_old, part * half_new
            for n_old, n_new in zip(narrow.sizes, self.sizes, strict=True):
                new.weight[at_new : at_new + n_old] = old.weight[at_old : at_old + n_old]
                new.bias[at_new : at_new + n_old] = old.bias[at_old : at_old + n_old]
                at_old, at_new = at_old + n_old, at_new + n_new

    def forward(
        self, moments: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) per modulated convolution, each (B, C, 1, 1); scale is 1 + output.
        `moments`: the two coarsest restyled maps' mean and spread, finer first."""
        stats = torch.cat([torch.cat(m, 1).flatten(1) for m in moments], 1)
        out = self.net(stats)[..., None, None]
        scale, shift = out.split(sum(self.sizes), 1)
        return [
            (1.0 + g, h)
            for g, h in zip(scale.split(self.sizes, 1), shift.split(self.sizes, 1), strict=True)
        ]


class LiteNet(nn.Module):
    """A small encoder and decoder trained together, so that no VGG runs at inference.

    Departure from the paper, for this CPU: VGG-19 to relu4_1 is about 63 G multiply-adds at
    512 px, more than the whole budget MicroAST's speed leaves; this encoder is four stages of
    two 3x3 convolutions (16, 32, 64, 256 channels; about 3 G multiply-adds at 512 px) and the
    decoder mirrors it. AdaIN restyles all four stages' maps, not only the deepest (MicroAST
    also modulates more than one level): the decoder reads each finer level through a skip, as
    `Decoder` does, but restyled, so the style sets the colours at every scale and the photo's
    own colours cannot come through the skips. The losses stay the paper's, measured in VGG-19
    (`training.AdaINTrainer`): the content target is AdaIN of VGG's relu4_1, the style terms
    VGG's moments; this network's own feature space is whatever serves them.

    `slope` > 0 makes every ReLU a leaky one (v4 files). Departure, measured: trained with ReLUs,
    most of the coarse stages' units had died by step 20,900 (the deepest restyled level reached
    the output through none), and a unit that is never positive gets no gradient to come back;
    recycling them jolted the output (benchmarks/adain-training.md). A leaky unit always passes
    some gradient. Activations hold no weights, so `set_slope` turns a ReLU network into a
    leaky one with its weights as they are, to train on.
    """

    def __init__(
        self, widths: Sequence[int] = LITE_WIDTHS, slope: float = 0.0, modulated: bool = False
    ) -> None:
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"a lite network has four stages of 1 or more channels, got {widths}")
        a, b, c, d = self.widths = tuple(widths)
        self.slope = slope
        up = nn.Upsample(scale_factor=2, mode="nearest")

        def relu() -> nn.Module:
            return _activation(slope)

        self.encoder = nn.ModuleList(
            [
                nn.Sequential(*_conv(3, a), relu()),
                nn.Sequential(*_conv(a, b, 2), relu(), *_conv(b, b), relu()),
                nn.Sequential(*_conv(b, c, 2), relu(), *_conv(c, c), relu()),
                nn.Sequential(*_conv(c, d, 2), relu(), *_conv(d, d), relu()),
            ]
        )
        self.decoder = nn.ModuleList(
            [
                nn.Sequential(*_conv(d, d), relu(), *_conv(d, c), relu(), up),
                nn.Sequential(*_conv(c, c), relu(), *_conv(c, b), relu(), up),
                nn.Sequential(*_conv(b, b), relu(), *_conv(b, a), relu(), up),
                nn.Sequential(*_conv(a, a), relu(), *_conv(a, 3)),
            ]
        )
        self.skips = nn.ModuleList(nn.Conv2d(w, w, 1) for w in (c, b, a))
        # registered last, so the other parameters keep their order (and their Adam state)
        self.modulator = StyleModulator(self.widths) if modulated else None

    @property
    def width(self) -> str:
        return LITE

    def set_slope(self, slope: float) -> None:
        """Swap every activation for one of this negative slope (0: ReLU), weights untouched."""
        for parent in self.modules():
            for name, child in parent.named_children():
                if isinstance(child, nn.ReLU | nn.LeakyReLU):
                    setattr(parent, name, _activation(slope))
        self.slope = slope

    @property
    def modulated(self) -> bool:
        return self.modulator is not None

    def with_modulator(self) -> LiteNet:
        """This network with a `StyleModulator` added, drawing exactly what it drew, to train on."""
        net = LiteNet(self.widths, slope=self.slope, modulated=True)
        missing, unexpected = net.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("modulator.") for k in missing), missing
        return net

    @torch.no_grad()
    def widened(self, widths: Sequence[int]) -> LiteNet:
        """The same function with more channels at some stages, to train on.

        Function-preserving widening as in Net2Net (Chen et al., ICLR 2016), with one
        departure: a new channel's incoming weights keep their random initialisation and its
        outgoing weights start at zero (Net2Net copies units and halves their outgoing weights,
        which leaves copies symmetric until noise separates them). The new channels therefore
        change nothing until training moves their outgoing weights, and the first step that
        does gives their incoming weights a gradient. AdaIN restyles the new channels like the
        old ones: they feed only zero weights, so the output is unchanged.

        A modulated network can widen its two finer stages only: its modulator reads the
        coarser two's moments through a layer norm, which more channels would change. The new
        channels' scale and shift start at 1 and 0 (the modulator's new output rows at zero).
        """
        if self.modulated and tuple(widths[2:]) != self.widths[2:]:
            raise ValueError(
                "a modulated lite network widens its two finer stages only (its modulator reads "
                f"the coarser two): {self.widths} to {tuple(widths)}"
            )
        if any(new < old for new, old in zip(widths, self.widths, strict=True)):
            raise ValueError(f"a lite network can only grow: {self.widths} to {tuple(widths)}")
        wide = LiteNet(widths, slope=self.slope, modulated=self.modulated)
        old_convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        new_convs = [m for m in wide.modules() if isinstance(m, nn.Conv2d)]
        for old, new in zip(old_convs, new_convs, strict=True):
            out_c, in_c = old.weight.shape[:2]
            new.weight[:out_c].zero_()
            new.weight[:out_c, :in_c] = old.weight
            assert old.bias is not None and new.bias is not None
            new.bias[:out_c] = old.bias
        if self.modulator is not None and wide.modulator is not None:
            wide.modulator.widened_from(self.modulator)
        return wide

    def levels(
        self, encoder: VGGEncoder | None, image: torch.Tensor
    ) -> tuple[list[torch.Tensor], None]:
        """The four stages' maps, finest first; `encoder` is not used (no VGG here)."""
        maps, x = [], image
        for stage in self.encoder:
            x = stage(x)
            maps.append(x)
        return maps, None

    def draw(
        self,
        targets: Sequence[torch.Tensor],
        context: None = None,
        restyles: Sequence[Restyle] | None = None,
    ) -> torch.Tensor:
        """From the restyled maps (finest first) to an image; with `restyles` (one image, no
        gradients), `targets` are the maps before their restyles, each folded into the
        convolution that reads its map (the skip's, or the first decoder block's first)."""
        *fine, deepest = targets
        if restyles is None:
            coarse = [calc_mean_std(t) for t in targets[2:]]
            *fine_restyles, deep_restyle = [None] * len(targets)
        else:
            coarse = [r.moments for r in restyles[2:]]
            *fine_restyles, deep_restyle = restyles
        mods = iter(self.modulator(coarse)) if self.modulator is not None else None
        x = self._run(self.decoder[0], deepest, mods, deep_restyle)
        for block, skip, feat, restyle in zip(
            self.decoder[1:], self.skips, reversed(fine), reversed(fine_restyles), strict=True
        ):
            feat = feat.to(x.dtype)
            if restyle is not None:
                feat = F.conv2d(feat, *fold_input_affine(skip, restyle.scale, restyle.shift))
            else:
                feat = skip(feat)
            x = self._run(block, x + feat, mods)
        return x

    @staticmethod
    def _run(
        block: nn.Sequential,
        x: torch.Tensor,
        mods: Iterator[tuple[torch.Tensor, torch.Tensor]] | None,
        restyle: Restyle | None = None,
    ) -> torch.Tensor:
        """A decoder block, each convolution's output scaled and shifted by the modulator's next
        pair (the last block's RGB convolution has none: the iterator is spent by then), and
        `restyle`, if any, folded into its first convolution's input.

        For one image without gradients (inference) the pair is folded into the convolution's
        weights and bias, which costs nothing; applied to the output instead, it was two more
        passes over every map (1.3x the network's time at 1024 px here)."""
        if mods is None and restyle is None:
            return block(x)
        fold = x.shape[0] == 1 and not torch.is_grad_enabled()
        assert restyle is None or fold, "a restyle is folded for one image without gradients"
        for layer in block:
            if not isinstance(layer, nn.Conv2d):
                x = layer(x)
                continue
            pair = next(mods, None) if mods is not None else None
            if pair is None and restyle is None:
                x = layer(x)
            elif fold:
                assert layer.bias is not None
                weight, bias = layer.weight, layer.bias
                if restyle is not None:
                    weight, bias = fold_input_affine(layer, restyle.scale, restyle.shift)
                    restyle = None
                if pair is not None:
                    scale, shift = (t.flatten() for t in pair)
                    weight = weight * scale.view(-1, 1, 1, 1).to(weight.dtype)
                    bias = torch.addcmul(shift, bias, scale).to(bias.dtype)
                x = F.conv2d(x, weight, bias, layer.stride, layer.padding)
            else:
                assert pair is not None
                x = torch.addcmul(pair[1].to(x.dtype), layer(x), pair[0].to(x.dtype))
        return x

    def forward(self, image: torch.Tensor, moments: Moments | None = None) -> torch.Tensor:
        """Stylize with given per-level moments; without them, reconstruct the image (each map
        keeps its own statistics, which is what the training's warm-up teaches)."""
        maps, _ = self.levels(None, image)
        if moments is None:
            return self.draw(maps)
        return self.draw(
            [adain_from_stats(f, m, s) for f, (m, s) in zip(maps, moments, strict=True)]
        )


AnyDecoder = Decoder | LiteNet


def make_decoder(
    width: str = "full",
    slope: float = 0.0,
    widths: Sequence[int] = LITE_WIDTHS,
    modulated: bool = False,
) -> AnyDecoder:
    """`slope`, `widths` and `modulated`: the lite network's (`LiteNet`); VGG decoders have none."""
    if width == LITE:
        return LiteNet(widths, slope=slope, modulated=modulated)
    return Decoder(width)


def architecture_version(decoder: AnyDecoder) -> int:
    if isinstance(decoder, LiteNet):
        if decoder.modulated:
            return MODULATED_LITE_VERSION
        if decoder.widths != LITE_WIDTHS:
            return WIDE_LITE_VERSION
        return LEAKY_LITE_VERSION if decoder.slope else LITE_VERSION
    return DECODER_VERSION


def skip_features(feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The content's taps the decoder's skips read, coarse to fine, each channel normalised."""
    return [normalized(feats[tap]) for tap in SKIP_TAPS]


def style_moments(
    encoder: VGGEncoder | None, style: torch.Tensor, decoder: AnyDecoder | None = None
) -> Moments:
    """The moments of every map the decoder restyles: all AdaIN needs of a style, computed
    once per style (for `Decoder`: relu4_1 of VGG-19 alone)."""
    if isinstance(decoder, LiteNet):
        maps, _ = decoder.levels(None, style)
        return tuple(calc_mean_std(f) for f in maps)
    assert encoder is not None, "a VGG decoder needs the VGG encoder"
    return (calc_mean_std(encoder(style, [CONTENT_TAP])[CONTENT_TAP]),)


def blend_moments(
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate several styles' moments with weights that sum to one (the paper's Eq. 9)."""
    assert len(weights) == len(moments) and math.isclose(sum(weights), 1.0, rel_tol=1e-6)
    mean = sum(wi * m for wi, (m, _) in zip(weights, moments))
    std = sum(wi * s for wi, (_, s) in zip(weights, moments))
    return mean, std


def restyle_affine(
    feat: torch.Tensor,
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]],
    weights: Sequence[float],
    alpha: float,
) -> Restyle:
    """AdaIN of one map with several styles' moments interpolated by `weights`, blended with the
    map by `alpha`: a per-channel affine map of it, returned unapplied (`Restyle`)."""
    mean, std = calc_mean_std(feat)
    s_mean, s_std = blend_moments(moments, weights)
    scale = s_std / std
    shift = s_mean - mean * scale
    if alpha != 1.0:
        scale, shift = alpha * scale + (1.0 - alpha), alpha * shift
    # the restyled map's moments, as `calc_mean_std` of it would give them
    spread = (scale.square() * (std.square() - MOMENT_EPS) + MOMENT_EPS).sqrt()
    return Restyle(scale, shift, (scale * mean + shift, spread))


def restyle(
    feat: torch.Tensor,
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]],
    weights: Sequence[float],
    masks: torch.Tensor | None,
    alpha: float,
) -> torch.Tensor:
    """AdaIN of one map with several styles: interpolated by `weights`, or region by region
    under `masks` (padded to the content's multiple), then blended with the map by `alpha`."""
    if masks is None:
        return restyle_affine(feat, moments, weights, alpha).apply(feat)
    m = F.interpolate(masks[None], size=feat.shape[-2:], mode="bilinear", align_corners=False)[0]
    # Where masks overlap they share the pixel; where they sum below one the content shows.
    m = m / m.sum(0, keepdim=True).clamp_min(1.0)
    target = (1.0 - m.sum(0))[None, None] * feat + sum(
        m[i][None, None] * adain_from_stats(feat, *moments[i]) for i in range(len(moments))
    )
    if alpha == 1.0:  # two passes over every map saved, the common case
        return target
    return alpha * target + (1.0 - alpha) * feat


@torch.no_grad()
def stylize(
    encoder: VGGEncoder | None,
    decoder: AnyDecoder,
    content: torch.Tensor,
    moments: Sequence[Moments],
    *,
    weights: Sequence[float] | None = None,
    options: AdaINOptions | None = None,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stylize a batch of content images with precomputed style moments (`style_moments`).

    options.alpha blends in feature space: t = alpha * AdaIN(f(c), s) + (1 - alpha) * f(c), so
    alpha=0 reconstructs the content through the decoder. With `masks` (one (H, W) map per
    style, in 0..1, at content resolution) each region takes its own style, blended softly where
    masks overlap; otherwise the styles are interpolated by `weights` (summing to one; None:
    equal). A `LiteNet` does this at each of its levels, a `Decoder` at relu4_1.
    """
    alpha = (options or AdaINOptions()).alpha
    padded, h, w = pad_to_multiple(content, MULTIPLE)
    weights = weights if weights is not None else [1.0 / len(moments)] * len(moments)
    if masks is not None:
        assert tuple(masks.shape) == (len(moments), h, w), tuple(masks.shape)
        masks = pad_to_multiple(masks[None].float(), MULTIPLE)[0][0]
    maps, context = decoder.levels(encoder, padded)
    per_level = [[m[k] for m in moments] for k in range(len(maps))]
    if masks is None and len(padded) == 1:
        # each restyle folded into the convolution that reads its map: no pass over the maps
        # (the lite network 1.3-1.5x faster at 512 and 1024 px, `benchmarks/bench_adain.py`)
        restyles = [restyle_affine(f, ms, weights, alpha) for f, ms in zip(maps, per_level)]
        out = decoder.draw(maps, context, restyles)
    else:
        targets = [restyle(f, ms, weights, masks, alpha) for f, ms in zip(maps, per_level)]
        out = decoder.draw(targets, context)
    return out[..., :h, :w].clamp(0.0, 1.0)
