"""Fast per-style networks (Johnson, Alahi & Fei-Fei, "Perceptual losses for real-time style
transfer", ECCV 2016), with instance normalisation (Ulyanov et al. 2016).

One small image-to-image network per painting, trained once against VGG-19 with the perceptual
losses below; at inference it is the only thing that runs, so no VGG and no style image.

Departures from the paper, each for this CPU (measured in `benchmarks/bench_fast.py`):
- three stride-2 stages instead of two, residual blocks at 1/8 resolution (96 channels at the
  default width 12) instead of 1/4 (128 channels): the blocks cost a quarter of the multiply-adds
  and the receptive field doubles, so strokes come out larger on big photos;
- 5x5 first and last convolutions instead of 9x9, and no instance norm at full resolution: at
  full size the normalisation's memory passes, not the convolutions, are the cost;
- upsampling is nearest-neighbour + convolution, never a transposed convolution (no
  checkerboard, Odena et al. 2016), and all padding is reflection padding (no dark borders);
- the style loss uses Gram matrices at relu1_1..relu4_1 and the content loss relu2_2, with each
  layer's features divided by their mean activation on the painting, because our Caffe VGG-19's
  activations are 20-400x those of the normalised network the literature's weights assume;
- optionally (`histogram_weight` in training) a histogram term beside the Gram term, after
  Risser, Wilmot & Barnes 2017 ("Stable and controllable neural texture synthesis and style
  transfer using histogram losses"): see `perceptual_losses`;
- optionally (`teacher_weight` in training) a colour-layout term against a teacher's rendering
  of the same photo (our AdaIN with the same painting): see `layout_loss`;
- optionally (`fine_content_weight` in training) a second content term at relu1_1: see
  `perceptual_losses`;
- optionally (`deep_content_weight` in training) a content term at relu4_2 beside relu2_2's:
  see `perceptual_losses`;
- optionally (`teacher_content_weight` in training) a second relu2_2 content term against a
  teacher's rendering of the same photo: see `perceptual_losses`;
- optionally (`teacher_style_mix` in training) a share of the style term comparing each crop with
  the teacher's rendering of that crop instead of the whole painting: see `teacher_grams`.
- optionally (`style_tap_weights` in training) the Gram layers weighted, relu5_1 included
  (the paper stops at relu4_1; ours is off there by default): see `style_tap_weights`;
- optionally (`regularity_weight` in training) a charge on fine texture that repeats more than
  the photo's: see `regularity`;
- optionally (`stability_weight` in training) a charge on the output's change under faint input
  noise: see `stability_loss`;
- optionally (`spectrum_weight`, `spectrum_peak_weight` in training) the output's power spectrum
  against a teacher's rendering of the same crop: see `spectrum_loss`, `spectrum_peak_loss`;
- optionally (`detail_threshold` in training) the painting's share of the style term asked
  only of the spots where the photo has structure: see `detail_mask`, `perceptual_losses`;
- optionally (`flat_tv_weight` in training) a total-variation term on the photo's flat spots
  alone: see `flat_variation`;
- optionally (`noise_channels` in the network's config) Gaussian noise channels beside the
  photo's, after Ulyanov et al. 2016 ("Texture networks"): see `NoiseInput`;
- optionally (`relative_style_weight`, `relative_content_weight` in training) Gatys et al.'s
  layers and distances as our quality benchmark measures them: see `relative_style`.

A second network (`lite_widths` in the config): our lite AdaIN network with one painting's
moments fixed, the route of Ghiasi et al. 2017 from an arbitrary network to a per-style one:
see `AdaINPreset`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from . import adain
from .adain import calc_mean_std
from .color import rgb_to_yiq
from .filters import gaussian_blur
from .losses import gram_matrix, resize_mask
from .padding import ReflectionPad, pad_keeping_dtype, pad_to_multiple

ARCHITECTURE_VERSION = 1  # `make_net`'s network
PRESET_VERSION = 2  # `AdaINPreset`, which a v1 reader cannot build
CONTENT_TAP = "relu2_2"
FINE_CONTENT_TAP = "relu1_1"
# Gatys et al.'s content layer (after its ReLU, as their Caffe model gave it, and as our
# optimization method takes it), where the quality benchmark measures content distance
DEEP_CONTENT_TAP = "relu4_2"
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
FEATURE_TAPS = tuple(sorted({CONTENT_TAP, *STYLE_TAPS}))
# A departure from the paper, optional (`style_tap_weights` in training): each Gram tap's term
# weighted, relu5_1 among them. Scored against our AdaIN on eval photos, udnie's and
# composition_vii's networks overshoot the painting's statistics at conv1_1/conv2_1 and trail
# at conv4_1/conv5_1, the shapes larger than relu4_1's field, which the paper's four equally
# weighted layers never ask for (fast-training.md, item 14).
WEIGHTABLE_STYLE_TAPS = (*STYLE_TAPS, "relu5_1")
# Gatys et al.'s layers before their ReLUs, where `relative_style` and `relative_content` compare
RELATIVE_STYLE_TAPS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
RELATIVE_CONTENT_TAP = "conv4_2"


def style_tap_weights(weights: Sequence[float]) -> dict[str, float]:
    """The style taps compared and their weights, one weight per `WEIGHTABLE_STYLE_TAPS` (a tap
    weighted 0 is not encoded at all)."""
    return {t: float(w) for t, w in zip(WEIGHTABLE_STYLE_TAPS, weights, strict=True) if w > 0}


LAYOUT_CELL = 16  # px squares the colour-layout term compares (`layout_loss`)


@dataclass(frozen=True)
class NetConfig:
    """The network's shape; recorded in every model file so a file rebuilds its own network."""

    width: int = 12
    blocks: int = 5
    downsamplings: int = 3
    edge_kernel: int = 5
    noise_channels: int = 0  # `NoiseInput`; 0: none, as in the paper
    noise_cell: int = 1  # px between the noise field's independent values (`NoiseInput`)
    # an `AdaINPreset` of these lite widths (the fields above then unused); empty: `make_net`'s
    lite_widths: tuple[int, ...] = ()
    slope: float = 0.0  # the `AdaINPreset`'s leaky activations (`adain.LiteNet.slope`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lite_widths", tuple(self.lite_widths))  # a list from JSON

    @property
    def multiple(self) -> int:
        """Inputs are padded to this multiple so every stride-2 stage halves exactly."""
        return adain.MULTIPLE if self.lite_widths else 2**self.downsamplings

    @property
    def version(self) -> int:
        return PRESET_VERSION if self.lite_widths else ARCHITECTURE_VERSION

    def to_dict(self) -> dict[str, int | float | list[int]]:
        return {**asdict(self), "lite_widths": list(self.lite_widths)}


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [ReflectionPad(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]


class InstanceNorm(nn.InstanceNorm2d):
    """Instance norm computed in fp32 whatever the autocast: in bf16 its variance of a nearly
    flat channel rounds to garbage and training diverged to NaN (seen at step 500). Written
    out (fp32 moments, one multiply-add) rather than `F.instance_norm`, whose CPU kernel hands
    back a channels-first tensor and so makes the next convolution reorder it: the same values
    to float rounding, the network 1.4x faster here (`benchmarks/bench_fast.py --layers`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            mean, std = calc_mean_std(x, self.eps)
            scale = self.weight.view(1, -1, 1, 1) / std
            shift = self.bias.view(1, -1, 1, 1) - mean * scale
            return torch.addcmul(shift, x, scale).to(x.dtype)


def _norm(channels: int) -> nn.Module:
    return InstanceNorm(channels, affine=True)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm; the identity path keeps the photo's layout."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(channels, channels, 3),
            _norm(channels),
            nn.ReLU(),
            *_conv(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


NOISE_SEED = 2016  # the field every inference draws: the same photo in, the same picture out


class NoiseInput(nn.Module):
    """Appends `channels` of unit Gaussian noise, one field for the whole batch, to the photo.

    A departure from Johnson et al., after Ulyanov et al. 2016 ("Texture networks"), who feed
    noise for the same reason: where the photo is flat, a convolutional network's input is the
    same at every position, so any texture it paints there repeats on its own grid. That is
    composition_vii's lattice over skies and walls (fast-training.md, items 29-31); with noise to
    draw from, a texture there need not repeat (item 32: the lattice became an irregular crackle,
    which the Gram term still asks for). At inference the field comes from NOISE_SEED
    (deterministic, and the same field for each frame of a video of one size); in training the
    trainer sets `draw` each step, so the network cannot learn one field's details.

    With `cell` above 1 the field is smooth: independent values `cell` px apart, interpolated
    (bicubic) and rescaled to unit spread. Per-pixel noise gives a network seeds for fine grain
    only; shapes the size of a painting's flat patches would have to be summed from it over a
    wide receptive field, and udnie's network learnt to ignore it and paint a lattice instead
    (fast-training.md, items 37-40). A smooth field hands it irregular seeds at that size.
    """

    def __init__(self, channels: int, cell: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.cell = cell
        self.draw = 0
        # inference draws the same field for every input of one size (each frame of a video):
        # the last one is kept, keyed by what it depends on
        self._kept: tuple[tuple[int, int, int], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.training:
            noise = self._field(h, w, NOISE_SEED + self.draw)
        else:
            if self._kept is None or self._kept[0] != (h, w, self.cell):
                self._kept = ((h, w, self.cell), self._field(h, w, NOISE_SEED))
            noise = self._kept[1]
        return torch.cat([x, noise.to(x.device, x.dtype).expand(b, -1, -1, -1)], 1)

    def _field(self, h: int, w: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        if self.cell == 1:
            return torch.randn(1, self.channels, h, w, generator=gen)
        rows, cols = -(-h // self.cell) + 3, -(-w // self.cell) + 3  # a cell beyond each edge
        coarse = torch.randn(1, self.channels, rows, cols, generator=gen)
        fine = F.interpolate(coarse, scale_factor=self.cell, mode="bicubic")
        at = self.cell + self.cell // 2  # drop the edge cells, where bicubic's taps run out
        noise = fine[..., at : at + h, at : at + w]
        return noise / noise.std(dim=(-2, -1), keepdim=True)


def make_net(config: NetConfig = NetConfig()) -> nn.Module:
    """Photo (B, 3, H, W) in 0..1 -> stylized image, same size; H and W multiples of
    `config.multiple`. An `AdaINPreset` where the config names lite widths."""
    if config.lite_widths:
        return AdaINPreset(config.lite_widths, config.slope)
    k, c, noise = config.edge_kernel, config.width, config.noise_channels
    layers: list[nn.Module] = [NoiseInput(noise, config.noise_cell)] if noise else []
    layers += [*_conv(3 + noise, c, k), nn.ReLU()]
    for _ in range(config.downsamplings):
        layers += [*_conv(c, 2 * c, 3, stride=2), _norm(2 * c), nn.ReLU()]
        c *= 2
    layers += [ResidualBlock(c) for _ in range(config.blocks)]
    for i in range(config.downsamplings):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), *_conv(c, c // 2, 3)]
        if i < config.downsamplings - 1:  # no norm at full resolution (see the module notes)
            layers.append(_norm(c // 2))
        layers.append(nn.ReLU())
        c //= 2
    layers += _conv(c, 3, k)
    return nn.Sequential(*layers)


def with_noise_cell(
    net: nn.Sequential, config: NetConfig, cell: int
) -> tuple[nn.Sequential, NetConfig]:
    """A network with noise input fed a field of another `cell`: no weights change (the input
    keeps its spread), so a run can turn per-pixel noise smooth where it resumes."""
    if not isinstance(net[0], NoiseInput):
        raise ValueError("the network has no noise input")
    net[0].cell = cell
    return net, replace(config, noise_cell=cell)


def with_noise_input(
    net: nn.Sequential,
    config: NetConfig,
    channels: int,
    adam: dict[str, torch.Tensor] | None = None,
) -> tuple[nn.Sequential, NetConfig, dict[str, torch.Tensor] | None]:
    """A trained network without noise input, given `channels` of it: the first convolution's
    new input weights (and their Adam moments) start at zero, so the output is unchanged until
    training finds a use for the noise. Adam's tensors are keyed by parameter index, which the
    parameter-free `NoiseInput` leaves as it was."""
    grown = NetConfig(**{**config.to_dict(), "noise_channels": channels})
    new = make_net(grown)
    state = net.state_dict()
    first = next(k for k in state if k.endswith("weight"))  # the first convolution's
    pad = (0, 0, 0, 0, 0, channels)  # zeros after the 3 photo channels (dim 1)
    state[first] = F.pad(state[first], pad)
    # the same tensors in the same order: NoiseInput, in front, holds none
    new.load_state_dict(dict(zip(new.state_dict(), state.values(), strict=True)))
    if adam is not None:
        adam = dict(adam)
        for moment in ("exp_avg", "exp_avg_sq"):
            key = f"adam.0.{moment}"
            if key in adam:
                adam[key] = F.pad(adam[key], pad)
    return new, grown, adam


class UpsampleConv(nn.Module):
    """A trained network's nearest 2x upsampling, reflection padding and 3x3 convolution, run
    as one convolution at the input's resolution and a pixel shuffle: the same function (to
    float rounding), without building the upsampled tensor or padding it. Each output pixel's
    3x3 taps fall on 2x2 input pixels whose place depends only on the pixel's parity, so the
    four parities' kernels are the trained kernel's taps summed where they share an input
    pixel; reflecting one row of the upsampled image repeats its edge pixel, which is the
    input's edge row replicated. Inference only (training keeps the paper's layers); the
    network 1.1x faster at 1024 px, no change at 512 (`benchmarks/bench_fast.py --layers`)."""

    # for even output rows (columns), then odd: rows are the input offset (-1, 0, +1),
    # columns the trained kernel's tap (-1, 0, +1) that lands there
    _FOLD = torch.tensor(
        [
            [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
            [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        ]
    )

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        w = conv.weight.detach()
        m = self._FOLD.to(w)
        # (cout, parity rows a, parity columns b, cin, 3, 3), flattened as pixel_shuffle reads
        k = torch.einsum("aps,oist,bqt->oabipq", m, w, m)
        self.register_buffer("weight", k.reshape(-1, *w.shape[1:]).contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0])
        self.register_buffer("bias", bias.repeat_interleave(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_keeping_dtype(x, (1, 1, 1, 1), "replicate")
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias), 2)


def for_inference(net: nn.Module) -> nn.Module:
    """The network with each upsampling stage as an `UpsampleConv`; the same outputs. An
    `AdaINPreset` is returned as it is: its restyles fold into its convolutions per image."""
    if not isinstance(net, nn.Sequential):
        return net.eval()
    layers, out = list(net), []
    i = 0
    while i < len(layers):
        if isinstance(layers[i], nn.Upsample):  # `make_net`: then _conv(c, c // 2, 3)
            out.append(UpsampleConv(layers[i + 2]))
            i += 3
        else:
            out.append(layers[i])
            i += 1
    return nn.Sequential(*out).eval()


class AdaINPreset(nn.Module):
    """Our lite AdaIN network (`adain.LiteNet`) with one painting's moments fixed: a per-style
    network, as Ghiasi et al. 2017 ("Exploring the structure of a real-time, arbitrary neural
    artistic stylization network") obtain one from an arbitrary network. AdaIN with constant
    style moments is instance normalisation with a learnt affine map (scale: the painting's
    spread, shift: its mean), one at each of the four levels. `from_lite` makes one that draws
    exactly what our AdaIN draws with the painting (its modulator still reads the restyled
    maps' moments, per image, as there); training then tunes it with this module's perceptual
    losses, all of it or (`moments_only` in training) the moments alone, which is where
    Dumoulin et al. 2017 find a style lives.

    Why: the Johnson-style network above paints a lattice over the flat areas of udnie and
    composition_vii whatever its losses (fast-training.md, items 10-42), where our AdaIN leaves
    them clean. Departures from Johnson et al.: this is the lite AdaIN's layout (four stages,
    skips between encoder and decoder, no residual blocks, instance norm at full resolution
    too, its filter modulation); it takes our AdaIN's time with the style's moments cached,
    about 2x `make_net`'s network (`benchmarks/bench_fast.py`). No edge margin
    (`EDGE_MARGIN`): it is our AdaIN's network, which never drew that line.
    """

    edge_margin = 0

    def __init__(self, widths: Sequence[int], slope: float = 0.0) -> None:
        super().__init__()
        self.lite = adain.LiteNet(widths, slope=slope, modulated=True)
        self.means = nn.ParameterList(nn.Parameter(torch.zeros(1, w, 1, 1)) for w in widths)
        self.stds = nn.ParameterList(nn.Parameter(torch.ones(1, w, 1, 1)) for w in widths)

    @classmethod
    @torch.no_grad()
    def from_lite(cls, net: adain.LiteNet, moments: adain.Moments) -> AdaINPreset:
        """`net` specialised to one painting's `moments` (`adain.style_moments`)."""
        preset = cls(net.widths, net.slope)
        modulated = net if net.modulated else net.with_modulator()  # an unmodulated: scale 1
        preset.lite.load_state_dict(modulated.state_dict())
        for mean, std, (m, s) in zip(preset.means, preset.stds, moments, strict=True):
            mean.copy_(m.float())
            std.copy_(s.float())
        return preset

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        maps, _ = self.lite.levels(None, image)
        moments = list(zip(self.means, self.stds, strict=True))
        if image.shape[0] == 1 and not torch.is_grad_enabled():
            # each restyle folded into the convolution that reads its map, as `adain.stylize`
            restyles = [adain.restyle_affine(f, [m], [1.0], 1.0) for f, m in zip(maps, moments)]
            return self.lite.draw(maps, None, restyles)
        return self.lite.draw([adain.adain_from_stats(f, m, s) for f, (m, s) in zip(maps, moments)])


# px of photo reflected below the image before the network, cropped off after. A departure
# from the paper: our networks train with an unscored margin around each crop, so their own
# image edge is never trained, and the shipped presets drew a line along an image's bottom row
# (the_wave on one eval photo: 5.5x the change between rows inside; with the margin 0.7x).
# Only the bottom row did; the other edges come out smoother than the inside, so only the
# bottom gets the margin (2% more pixels at 512 x 384; benchmarks/fast-training.md, after
# item 36).
EDGE_MARGIN = 8


@torch.no_grad()
def stylize(net: nn.Module, content: torch.Tensor, multiple: int) -> torch.Tensor:
    """Run a trained network on a batch of any size; output is cropped back and clamped."""
    margin = getattr(net, "edge_margin", EDGE_MARGIN)
    padded, h, w = pad_to_multiple(content, multiple, bottom=margin)
    out = net(padded.contiguous(memory_format=torch.channels_last))
    return out[..., :h, :w].float().clamp(0.0, 1.0)


# -- the perceptual losses training minimises -------------------------------------------------
def feature_scales(style_feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One number per layer: the painting's mean activation there (floored away from zero)."""
    return {t: f.float().mean().clamp_min(1e-3) for t, f in style_feats.items()}


def style_grams(
    style_feats: Mapping[str, torch.Tensor],
    scales: Mapping[str, torch.Tensor],
    taps: tuple[str, ...] = STYLE_TAPS,
) -> dict[str, torch.Tensor]:
    return {t: gram_matrix(style_feats[t].float() / scales[t]) for t in taps}


def teacher_grams(
    teacher_feats: Mapping[str, torch.Tensor],
    scales: Mapping[str, torch.Tensor],
    taps: tuple[str, ...] = STYLE_TAPS,
) -> dict[str, torch.Tensor]:
    """Per-crop Gram targets, (B, C, C) a tap: the teacher's Gram on the same crop, which
    `perceptual_losses` weighs against the painting's by `mix`.

    A departure from the paper, for paintings with large flat shapes: the painting's Gram asks
    every crop for its share of each colour (udnie's green), and every tie to the photo or to a
    teacher's pixels or features (benchmarks/fast-training.md, items 1-9) left the network
    paying it with blobs or stripes where the photo is flat. The teacher (our AdaIN with the
    same painting) has already laid the painting's colours and texture out by the photo's
    structure, so its statistics on a crop of plain sky ask for no green there.
    """
    return {t: gram_matrix(teacher_feats[t].float() / scales[t]) for t in taps}


DETAIL_SIGMA = 4.0  # px: the spread over which the photo's edges count as one spot's detail


def detail_mask(photo: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, 1, H, W) in 0..1: where the photo has structure. 0 where its luminance gradient
    (|dY/dx| + |dY/dy| after a 1 px blur against grain, averaged over `DETAIL_SIGMA`) is under
    half `threshold`, 1 from `threshold` up, a linear ramp between so the mask has no edge of
    its own. On the training photos at 288 px, a clear sky reads under 0.007 and a median spot
    0.012.
    """
    y = rgb_to_yiq(photo.float())[:, :1]
    y = gaussian_blur(y, 1.0)
    gy = F.pad((y[..., 1:, :] - y[..., :-1, :]).abs(), (0, 0, 0, 1))
    gx = F.pad((y[..., :, 1:] - y[..., :, :-1]).abs(), (0, 1, 0, 0))
    spread = gaussian_blur(gx + gy, DETAIL_SIGMA)
    return ((spread - threshold / 2) / (threshold / 2)).clamp(0, 1)


def flat_variation(output: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
    """The output's total variation on the photo's flat spots only (`1 - detail`), averaged
    over the whole crop: a smoothness prior where the photo has nothing to paint by.

    A departure from the paper, optional (`flat_tv_weight` in training). At item 27's and item
    32's weights every term but the spectrum's, summed, already asks for less fine texture on
    flat spots than the network paints there (`benchmarks/texture_demand.py`), yet no run has
    trained the hatch away: the demand against it is weak (a few percent of the style term's
    pull on detailed spots), so this term makes it strong where only the hatch can pay it.
    On composition_vii at weight 100 it cleared wide skies in a third of an hour, but moved the
    texture onto detailed spots and cost 17% of style distance (fast-training.md, item 35).
    """
    return variation(output, 1.0 - detail.float())


def variation(image: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, summed over the two directions,
    each difference weighted by `where` (B, 1, H, W) at its second pixel when given."""
    o = image.float()
    dy = (o[..., 1:, :] - o[..., :-1, :]).abs()
    dx = (o[..., :, 1:] - o[..., :, :-1]).abs()
    if where is not None:
        dy, dx = dy * where[..., 1:, :], dx * where[..., :, 1:]
    return dy.mean() + dx.mean()


HISTOGRAM_QUANTILES = 4096


def style_histograms(
    style_feats: Mapping[str, torch.Tensor], scales: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Each style layer's activations on the painting, channel by channel, as sorted quantiles
    (C, HISTOGRAM_QUANTILES): a fixed size whatever the painting's, resampled to a crop's size
    in `histogram_loss`."""
    out = {}
    for t in STYLE_TAPS:
        f = (style_feats[t].float() / scales[t]).flatten(2).transpose(0, 1).flatten(1)
        ranked = f.sort(dim=1).values[None]
        out[t] = F.interpolate(ranked, HISTOGRAM_QUANTILES, mode="linear", align_corners=True)[0]
    return out


def histogram_loss(feats: torch.Tensor, target: torch.Tensor, *, pooled: bool) -> torch.Tensor:
    """Mean squared distance between each channel's sorted activations and the painting's
    quantiles at the same ranks: the 1-D optimal transport cost per channel, which is what
    Risser et al.'s histogram remapping + L2 computes (their remapped target is exactly the
    painting's value at each activation's rank). Per crop, or over the batch when `pooled`."""
    f = feats.flatten(2)
    if pooled:
        f = f.transpose(0, 1).flatten(1)[None]
    ranked = f.sort(dim=-1).values
    want = F.interpolate(target[None], ranked.shape[-1], mode="linear", align_corners=True)
    return F.mse_loss(ranked, want.expand_as(ranked))


def layout_loss(
    output: torch.Tensor, teacher: torch.Tensor, cell: int = LAYOUT_CELL
) -> torch.Tensor:
    """Mean squared distance between the output's and the teacher's colours averaged over
    `cell` x `cell` squares: where the picture puts which colour, not its strokes.

    A departure from the paper, for paintings with large flat shapes (udnie, composition_vii):
    the Gram term asks each crop for the painting's share of a colour but not where it goes, and
    the content term at relu2_2 charges least for it where the photo is flat, so the network
    learned to put saturated blobs there. An arbitrary-style model paints the same colours as a
    function of the photo's features, so its low-frequency layout is a prior against the blobs,
    while the texture inside each square stays the Gram term's to choose. On udnie, weight 50 left
    the blobs, 500 removed them but drew rainbow streaks (benchmarks/fast-training.md, item 7).
    """
    return F.mse_loss(F.avg_pool2d(output.float(), cell), F.avg_pool2d(teacher.float(), cell))


TEXTURE_SIGMA = 4.0  # px: the blur whose residue is the texture measured (here and below)
REGULARITY_LAGS = (6, 24)  # px: shifts at which a repeat counts (past one stroke's own width)


def regularity(image: torch.Tensor) -> torch.Tensor:
    """(B,) the amplitude of each image's repeating fine texture: the square root of the highest
    autocovariance of its luminance minus a Gaussian blur, at shifts of 6 to 24 px. A stroke
    repeated in rows scores near its own amplitude; a texture of the same strength that does
    not repeat, or a photo's faint grain (JPEG's 8 px blocks included), scores little.

    A departure from the paper, optional (`regularity_weight` in training, charged for the
    output's excess over the photo's): at this width the network fills flat areas with one
    stroke repeated in diagonal rows, wallpaper where our AdaIN paints an irregular texture of
    the same strength (normalised, the peak is 0.51 on composition_vii's flat areas against
    AdaIN's 0.27: fast-training.md, item 15), and the Gram terms cannot tell the two apart.
    """
    luma = rgb_to_yiq(image.float())[:, :1]
    smooth = gaussian_blur(luma, TEXTURE_SIGMA, padding="reflect")
    residue = luma - smooth
    residue = residue - residue.mean((-2, -1), keepdim=True)
    h, w = residue.shape[-2:]
    spectrum = torch.fft.rfft2(residue[:, 0], s=(2 * h, 2 * w))
    auto = torch.fft.irfft2(spectrum.abs().square(), s=(2 * h, 2 * w)) / (h * w)
    dy = torch.fft.fftfreq(2 * h, 1 / (2 * h), device=auto.device).abs()
    dx = torch.fft.fftfreq(2 * w, 1 / (2 * w), device=auto.device).abs()
    lag = (dy[:, None] ** 2 + dx[None, :] ** 2).sqrt()
    ring = (lag >= REGULARITY_LAGS[0]) & (lag <= REGULARITY_LAGS[1])
    return auto[:, ring].amax(-1).clamp_min(1e-8).sqrt()


STABILITY_SIGMA = 0.02  # the added noise's spread, in 0..1 pixels: about a JPEG photo's grain


def stability_loss(
    net: nn.Module,
    seen: torch.Tensor,
    out: torch.Tensor,
    window: tuple[slice, slice],
    noise: torch.Tensor,
) -> torch.Tensor:
    """Mean squared change of the output (in `window`) when `noise` (unit spread, the shape of
    `seen`) scaled by STABILITY_SIGMA is added to the input; `out` is the net's output on `seen`.

    A departure from the paper, optional (`stability_weight` in training), after Gupta et al.
    2017 ("Characterizing and improving stability in neural style transfer"), who charge it for
    video. Here it is charged for stills: a trained network fed a flat colour plus 1% noise paints
    a full texture of hooks in diagonal rows, and fed the flat colour alone, one flat colour; the
    hatch over a photo's flat areas is its grain amplified (fast-training.md, item 19).
    """
    noisy = net(seen + STABILITY_SIGMA * noise.to(seen.dtype))[..., window[0], window[1]]
    return F.mse_loss(noisy.float(), out.float())


SPECTRUM_BIN = 4  # frequency bins pooled per side: a texture's spread of frequencies, not its phase
SPECTRUM_PEAK_SHARE = 0.02  # of the bins, those where the output's excess is largest


def _log_power(image: torch.Tensor) -> torch.Tensor:
    """Per-channel log power spectrum of each image (Hann-windowed, mean removed, pooled over
    SPECTRUM_BIN x SPECTRUM_BIN bins); power under the 8-bit quantisation floor counts as that
    floor, so grain nobody can see is not matched."""
    h, w = image.shape[-2:]
    window = torch.outer(
        torch.hann_window(h, periodic=False, device=image.device),
        torch.hann_window(w, periodic=False, device=image.device),
    )
    floor = window.square().sum() / 255**2
    x = image.float()
    x = (x - x.mean((-2, -1), keepdim=True)) * window
    power = torch.fft.rfft2(x).abs().square()
    return F.avg_pool2d(power, SPECTRUM_BIN).clamp_min(floor).log()


def spectrum_loss(output: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the log power spectra (`_log_power`) of the output and the
    teacher: which frequencies and orientations the texture has, whatever its strokes' positions.

    A departure from the paper, optional (`spectrum_weight` in training), after Liu, Gousseau
    & Xia 2016 ("Texture synthesis through convolutional neural networks and spectrum
    constraints"), who add a spectrum term to Gram matching for the opposite reason, to keep a
    texture's regular structure. Here the teacher (our AdaIN with the same painting) paints an
    irregular texture and the network paints bands: composition_vii's hatch is a narrow spectral
    peak, up to e^7 times the teacher's power in its bins over a flat sky, that no Gram term
    charges (fast-training.md, item 29). Mostly a match of the spectrum's level: a narrow peak
    is a few bins of many (item 30); `spectrum_peak_loss` charges the peaks.
    """
    return F.mse_loss(_log_power(output), _log_power(teacher))


def spectrum_peak_loss(output: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The output's largest spectral excesses over the teacher's: the excess of the output's log
    power (`_log_power`) over the teacher's, squared, and the mean of the largest
    SPECTRUM_PEAK_SHARE of bins per crop and channel. An output with more power in all than the
    teacher is first scaled down to the teacher's total, so what is charged is where its power
    sits (its shape), not how much it has; an output with less is left as it is, so a flatter
    rendering than the teacher's costs nothing. A band pattern puts its power in a few bins, so
    it is charged in full where `spectrum_loss`, averaging over every bin, hardly sees it.

    A departure from the paper, optional (`spectrum_peak_weight` in training): on 192 px crops
    of the city's sky it reads item 27's bands and item 30's lattice alike, where
    `spectrum_loss` read the lattice twice the bands (fast-training.md, item 31).
    """
    out, taught = _log_power(output).flatten(-2), _log_power(teacher).flatten(-2)
    louder = (out.logsumexp(-1, keepdim=True) - taught.logsumexp(-1, keepdim=True)).clamp_min(0)
    excess = (out - louder - taught).clamp_min(0).square()
    k = max(1, round(SPECTRUM_PEAK_SHARE * excess.shape[-1]))
    return excess.topk(k, -1).values.mean()


TEXTURE_CELL = 32  # px squares: wider than udnie's lattice's 32 px period, so it reads its energy


def texture_energy(image: torch.Tensor) -> torch.Tensor:
    """(B, 1, H/cell, W/cell) the RMS of the image's fine texture (each channel minus its blur,
    summed over channels) in TEXTURE_CELL px squares: how much texture each square holds."""
    x = image.float()
    residue = x - gaussian_blur(x, TEXTURE_SIGMA, padding="reflect")
    return F.avg_pool2d(residue.square().sum(1, keepdim=True), TEXTURE_CELL).add(1e-8).sqrt()


def texture_layout_loss(output: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the output's and the teacher's `texture_energy`: texture where
    the teacher paints texture, little where it paints little.

    A departure from the paper, optional (`texture_layout_weight` in training). udnie's network
    covers a smooth sky with a diamond lattice of its own, at a 32 px period, where our AdaIN
    paints a few sparse strokes (fast-training.md, item 41); the Gram and spectrum terms are
    statistics of a whole crop, so texture painted in the wrong place costs them nothing, and
    the photo-based flat terms (item 36) miss the faintly shaded spots where the lattice also
    sits. The teacher's rendering says where the strokes go, square by square. On udnie at
    weight 1e4 it weakened the lattice and cost style distance in proportion (item 42).
    """
    return F.mse_loss(texture_energy(output), texture_energy(teacher))


def relative_grams(feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The painting's Gram matrix (C, C) at each of `RELATIVE_STYLE_TAPS`, in fp32."""
    return {t: gram_matrix(feats[t].float())[0] for t in RELATIVE_STYLE_TAPS}


def relative_style(
    feats: Mapping[str, torch.Tensor], grams: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Gatys et al.'s style layers (conv1_1..conv5_1, before the ReLU), each Gram matrix's
    distance from the painting's relative to the painting's norm, averaged over the layers: the
    style distance `benchmarks/bench_quality.py` reports, as a loss.

    A departure from the paper's weighted squared distance, and from this module's Gram term
    (ReLU taps to relu4_1, each scaled by the painting's mean activation): tuning a network
    from our AdaIN with that term lowered it while the measured distance rose, most at conv4_1
    and conv5_1 (fast-training.md, item 44). The batch's crops are pooled, as one image: a
    128 px crop holds too few positions at conv5_1 for its own Gram matrix to mean much."""
    terms = []
    for tap, target in grams.items():
        pooled = gram_matrix(feats[tap].float()).mean(0)
        terms.append((pooled - target).norm() / target.norm())
    return torch.stack(terms).mean()


def relative_content(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The distance of conv4_2's maps from the photo's, relative to the photo's: the content
    distance `benchmarks/bench_quality.py` reports, as a loss."""
    return (out.float() - target.float()).norm() / target.float().norm()


def perceptual_losses(
    out_feats: Mapping[str, torch.Tensor],
    content_target: torch.Tensor,
    grams: Mapping[str, torch.Tensor],
    scales: Mapping[str, torch.Tensor],
    output: torch.Tensor,
    *,
    batch_gram: bool = False,
    taught: Mapping[str, torch.Tensor] | None = None,
    mix: float = 0.0,
    tap_weights: Mapping[str, float] | None = None,
    histograms: Mapping[str, torch.Tensor] | None = None,
    fine_target: torch.Tensor | None = None,
    deep_target: torch.Tensor | None = None,
    teacher_target: torch.Tensor | None = None,
    detail: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The paper's feature reconstruction, style reconstruction and total-variation losses.
    `grams` are the painting's (1, C, C) a tap, each tap's term weighted by `tap_weights`
    (`style_tap_weights`; 1 where it has none).

    With `batch_gram` the style term compares the painting's Gram matrix with the batch's pooled
    one (the mean of the crops' Grams) instead of each crop's: a departure from the paper, where
    every crop must hold all of the painting's statistics, so a crop of plain sky has to grow the
    painting's colours somewhere, and the network learns to paint blobs where the photo is flat.

    With `taught` (the teacher's Gram on each crop, `teacher_grams`) the style term is `mix` of
    each crop's distance from the teacher's Gram and `1 - mix` of the painting's term above
    (the same gradient as one target `mix * taught + (1 - mix) * painting`, when not pooled).
    The teacher's share is always crop by crop, as it says where each colour goes; with
    `batch_gram` only the painting's share is pooled, so it asks the batch, not each crop, for
    the painting's colours, and no longer fights the teacher's layout crop by crop (on udnie
    the freedom went to dark grey blobs in corners and on a forehead: fast-training.md, item 13).

    With `detail` (`detail_mask` of the photo crops, at the output's size) the painting's share
    is asked only of the spots where the photo has structure, a departure too: each crop's Gram
    there (Gatys et al. 2017's guided Gram matrix) against the painting's, weighted by the
    crop's share of detail, so a crop of plain sky owes the painting nothing and only the
    teacher's share and the content terms say what goes there. Meant against the hatch, lattice
    or crackle every composition_vii run painted over flat areas (fast-training.md, items
    29-32); alone it did not remove it and cost style distance (item 34): the terms together
    already ask flat spots for less texture than the network paints (`flat_variation`).

    With `histograms` (from `style_histograms`) a "histogram" term is added, also a departure:
    a Gram matrix is matched as well by a few saturated activations as by many moderate ones
    (Risser et al. 2017 show the unstable mixtures this gives), the saturated blobs seen in
    flat skies; matching each channel's whole distribution rules out the saturation, though not
    where the colour goes (on udnie it spread the green thinner: benchmarks/fast-training.md).

    With `fine_target` (the photo's relu1_1) a "fine_content" term is added, a departure too:
    relu2_2 charges little for a blob of colour where the photo is flat, relu1_1 (colour and
    luminance edges at full resolution) charges for it as much there as anywhere.

    With `deep_target` (the photo's relu4_2) a "deep_content" term is added, a departure too:
    relu2_2 holds the network to the photo's edges and fine shading, which the painting's
    texture must then fight; relu4_2 (Gatys et al.'s content layer) holds it to the photo's
    objects and layout and leaves the strokes free. Meant for paintings whose style and
    content terms trade against each other at relu2_2 (udnie: fast-training.md, item 37).

    With `teacher_target` (relu2_2 of our AdaIN's rendering of the same photo with the painting)
    a "teacher_content" term is added, a departure too: the photo's features charge a blob in a
    flat sky only for leaving the photo, which the Gram term repays; the teacher's features
    already carry the painting's colours, laid out by the photo's structure, so a blob there
    buys less style and still costs. Unlike `layout_loss`'s cell averages, features cannot be met
    by fine streaks of mixed colour.
    """

    def feature_distance(tap: str, target: torch.Tensor) -> torch.Tensor:
        s = scales[tap]
        return F.mse_loss(out_feats[tap].float() / s, target.float() / s)

    content = feature_distance(CONTENT_TAP, content_target)
    style = output.new_zeros((), dtype=torch.float32)
    for tap in grams:
        f = out_feats[tap].float() / scales[tap]
        g = gram_matrix(f)
        if detail is None:
            own = g.mean(0, keepdim=True) if batch_gram else g
            term = F.mse_loss(own, grams[tap].expand_as(own))
        else:
            guided = gram_matrix(f, resize_mask(detail, f.shape[-2:]))
            per_crop = (guided - grams[tap]).square().mean((1, 2))
            term = (per_crop * detail.float().mean((1, 2, 3))).mean()
        if taught is not None:
            term = mix * F.mse_loss(g, taught[tap]) + (1.0 - mix) * term
        style = style + (tap_weights or {}).get(tap, 1.0) * term
    parts = {"content": content, "style": style, "tv": variation(output)}
    if histograms is not None:
        parts["histogram"] = sum(
            histogram_loss(out_feats[t].float() / scales[t], histograms[t], pooled=batch_gram)
            for t in STYLE_TAPS
        )
    if fine_target is not None:
        parts["fine_content"] = feature_distance(FINE_CONTENT_TAP, fine_target)
    if deep_target is not None:
        parts["deep_content"] = feature_distance(DEEP_CONTENT_TAP, deep_target)
    if teacher_target is not None:
        parts["teacher_content"] = feature_distance(CONTENT_TAP, teacher_target)
    return parts
