"""Training the AdaIN decoder on cached features, so each step pays only for what changes.

A step of the paper encodes the content, the style and the output. Here the content's relu4_1
features (of whole images, cropped at random in feature space) and the styles' per-layer moments
are computed once, before training (see `nst_plugin.training_data`); a step encodes the photo
crops to relu3_1 without gradients (the decoder's skips, too large to cache), runs the decoder
and one encoder pass with its backward on the output.

Our Caffe VGG-19 is not the paper's normalised VGG (its activations are 20-400x larger), so each
tapped layer is divided per channel by its mean activation over the style set: that is exactly
the normalised network's activation at that tap, and the paper's style weight (10) carries over.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import dormant, fast
from .adain import (
    CONTENT_TAP,
    LITE,
    LITE_WIDTHS,
    SKIP_TAPS,
    STYLE_TAPS,
    LiteNet,
    adain_from_stats,
    calc_mean_std,
    make_decoder,
    normalized,
    skip_features,
    style_moments,
)
from .encoders import VGGEncoder
from .errors import Cancelled, InputError
from .precision import autocast


@dataclass
class TrainData:
    """Everything a step reads, already in memory.

    features: relu4_1 of each whole content image, (512, h, w) float16.
    pixels: the same images as uint8 (3, 8h, 8w), for the reconstruction warm-up and samples.
    style_mean / style_std: per tap, (N, C) moments of N style crops.
    style_pixels: the N crops themselves, (N, 3, S, S) uint8: a lite network encodes them.
    style_rows: the style file behind each row, for sample grids.
    """

    features: list[torch.Tensor]
    pixels: list[torch.Tensor]
    style_mean: dict[str, torch.Tensor]
    style_std: dict[str, torch.Tensor]
    style_pixels: torch.Tensor | None = None
    style_rows: list[str] = field(default_factory=list)  # the style file behind each row

    def __post_init__(self) -> None:
        if not self.features:
            raise InputError("no usable content images to train on")
        if not len(self.style_mean[CONTENT_TAP]):
            raise InputError("no usable style images to train on")


# `TrainSettings.recycle_parts`: every dormant unit, or the decoder's alone
RECYCLE_PARTS = ("all", "decoder")


@dataclass
class TrainSettings:
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    recon_steps: int = 0
    width: str = "half"
    seed: int = 0
    # relu4_1 cells left out of the content loss on each side: the target there was computed
    # with the whole image around it, the output's features with zero padding, so matching them
    # would teach the decoder to distort its borders
    content_margin: int = 1
    # weight of a relu3_1 term between the output and the content photo, each channel normalised
    # to zero mean and unit spread: the relu4_1 content loss sees only 8 px cells, so fine
    # structure is otherwise free to smear; normalising leaves colour and contrast to the style
    structure_weight: float = 0.0
    # weight of a Gram term at GRAM_TAPS (output against its style crop, relative squared
    # error): the paper's moments match each channel alone, and on unseen pairs the fine
    # layers' channel correlations (colour and local contrast) were where the gap to MicroAST
    # lay (benchmarks/adain-training.md)
    gram_weight: float = 0.0
    # weight of a term on the output's broad colour areas (`colour_loss`): each RGB channel's
    # mean and spread over COLOUR_CELL px squares against the style crop's
    colour_weight: float = 0.0
    # a lite network's ReLU units never positive on the batch are recycled every this many
    # steps (`dormant`: most of its coarse units had died by step 20,900); 0: never
    recycle_every: int = 0
    # which of them, one of RECYCLE_PARTS: "all", or "decoder" (the encoder's fresh units jolt
    # the output through AdaIN, see `dormant.recycle`)
    recycle_parts: str = "all"
    # a lite network's activations' negative slope (0: ReLU; `LiteNet`): leaky units cannot die;
    # set on a resumed ReLU file, it turns that network leaky with its weights as they are
    lite_slope: float = 0.0
    # a lite network's four stage widths (`LiteNet`); wider than a resumed file's, that network
    # is widened with its function kept (`LiteNet.widened`) and its optimizer state starts anew
    lite_widths: tuple[int, ...] = LITE_WIDTHS
    # a lite network's decoder filters modulated by the style (`StyleModulator`); set on a
    # resumed file without one, the modulator is added with the network's output unchanged
    lite_modulated: bool = False

    def __post_init__(self) -> None:
        self.lite_widths = tuple(self.lite_widths)  # a list when read back from a file's JSON


@dataclass
class TrainState:
    step: int = 0
    images_seen: int = 0
    seconds: float = 0.0
    recycled: int = 0  # dormant units recycled so far (`TrainSettings.recycle_every`)
    history: list[dict] = field(default_factory=list)


def loss_scales(data: TrainData) -> dict[str, torch.Tensor]:
    """Per-channel mean activation of each tap over the style set (floored for dead channels)."""
    scales = {}
    for tap in STYLE_TAPS:
        s = data.style_mean[tap].float().mean(0)
        scales[tap] = s.clamp_min(0.1 * float(s.mean())).view(1, -1, 1, 1)
    return scales


def _check_lite_network(settings: TrainSettings, decoder: nn.Module | None) -> None:
    """The lite widths and modulator asked for fit the network resumed (`decoder`), if any."""
    widths = settings.lite_widths
    if len(widths) != 4 or min(widths) < 1:
        raise InputError(f"lite widths must be four channel counts of 1 or more, got {widths}")
    if widths != LITE_WIDTHS and settings.width != LITE:
        raise InputError("lite widths are for a lite network only")
    if isinstance(decoder, LiteNet) and any(
        new < old for new, old in zip(widths, decoder.widths, strict=True)
    ):
        raise InputError(
            f"lite widths can only grow a resumed network: it has {decoder.widths}, got {widths}"
        )
    if settings.lite_modulated and settings.width != LITE:
        raise InputError("a style modulator is for a lite network only")
    if isinstance(decoder, LiteNet) and decoder.modulated:
        if not settings.lite_modulated:
            raise InputError("the resumed lite network has a style modulator, which stays")
        if widths[2:] != decoder.widths[2:]:
            raise InputError(
                "a lite network with a style modulator widens its two finer stages only "
                f"(its modulator reads the coarser two): it has {decoder.widths}, got {widths}"
            )


STRUCTURE_TAP = "relu3_1"
# Departure from the paper (moments only): Gram matrices, before the ReLU, where the moments
# left the largest gap; deeper ones cost 4-16x the memory a style row for a smaller gap.
GRAM_TAPS = ("conv1_1", "conv2_1", "conv3_1")


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Channel correlations normalised by C*H*W, so crops of any size compare."""
    b, c, h, w = feat.shape
    f = feat.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def gram_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |G(out) - G_target|^2 / |G_target|^2: scale-free per tap."""
    g = gram(out.float())
    return ((g - target).square().sum((1, 2)) / target.square().sum((1, 2))).mean()


def content_loss(out: torch.Tensor, target: torch.Tensor, margin: int) -> torch.Tensor:
    """MSE over the cells at least `margin` from every edge (all cells if none would be left)."""
    h, w = out.shape[-2:]
    if margin > 0 and min(h, w) > 2 * margin:
        out = out[..., margin : h - margin, margin : w - margin]
        target = target[..., margin : h - margin, margin : w - margin]
    return F.mse_loss(out, target)


def structure_loss(out: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """MSE of the channel-normalised maps: the photo's patterns, not its colour or contrast."""
    return F.mse_loss(normalized(out), normalized(photo))


COLOUR_CELL = 16  # px: squares the colour term averages over, past a stroke's width


def colour_loss(out: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """MSE between the per-channel RGB mean and spread of `out` and of `style`, each averaged
    over COLOUR_CELL px squares first: the colours of broad areas, not of strokes.

    A departure from the paper (moments of VGG layers only), for the lite network: it met the
    fine layers' statistics with fine texture and light halos while its broad areas kept close
    to the photo's colours; on unseen pairs each channel's low-band spread was off the
    painting's by a factor of about 1.3 either way, and matching it after the fact took the
    conv1_1 distance below MicroAST's, though at a cost in content a trained network may avoid
    (benchmarks/adain-training.md)."""
    om, osd = calc_mean_std(F.avg_pool2d(out.float(), COLOUR_CELL))
    sm, ssd = calc_mean_std(F.avg_pool2d(style.float(), COLOUR_CELL))
    return F.mse_loss(om, sm) + F.mse_loss(osd, ssd)


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """The random source of one step's draws: a function of (seed, step), so a resumed run
    draws what the uninterrupted one would have; `stream` keeps one step's draws apart."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step + stream)


class Trainer:
    """What every trainer here shares: Adam over `self.net`, its state for exact resumes, the
    step counter, the learning-rate schedule, the time shares and the stop check."""

    net: nn.Module
    settings: Any
    state: TrainState
    device: torch.device

    def _setup_optimizer(self, lr: float, adam_tensors: dict[str, torch.Tensor] | None) -> None:
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        if adam_tensors:
            self._load_adam(adam_tensors)

    # -- optimizer state, so a resumed run continues exactly where it stopped ------------------
    def adam_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, p in enumerate(self.net.parameters()):
            st = self.optimizer.state.get(p)
            if st:
                out[f"adam.{i}.exp_avg"] = st["exp_avg"]
                out[f"adam.{i}.exp_avg_sq"] = st["exp_avg_sq"]
                out[f"adam.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float64).view(1)
        return out

    def _load_adam(self, tensors: dict[str, torch.Tensor]) -> None:
        for i, p in enumerate(self.net.parameters()):
            if f"adam.{i}.exp_avg" in tensors:
                moments = (tensors[f"adam.{i}.exp_avg"], tensors[f"adam.{i}.exp_avg_sq"])
                avg, avg_sq = (t.to(p.device, memory_format=_fmt(p), copy=True) for t in moments)
                step = tensors[f"adam.{i}.step"].reshape(()).to(torch.float32)
                self.optimizer.state[p] = {"step": step, "exp_avg": avg, "exp_avg_sq": avg_sq}

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lr(self) -> float:
        return self.settings.lr / (1.0 + self.settings.lr_decay * self.state.step)

    def step(self) -> dict[str, float]:
        raise NotImplementedError

    def _update(self, loss: torch.Tensor) -> bool:
        """One optimizer step; False (and no step) when the gradients are not finite."""
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.state.step}")
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), float("inf"))
        if not torch.isfinite(norm):
            # one bad batch must not poison the weights (and with them every later checkpoint)
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped = getattr(self, "skipped", 0) + 1
            if self.skipped > 20:
                raise FloatingPointError(
                    f"gradients not finite 20 times, last at {self.state.step}"
                )
            return False
        self.optimizer.step()
        return True

    def _account(
        self, times: tuple[float, ...], loss: torch.Tensor, losses: dict[str, float]
    ) -> dict[str, float]:
        """Count the step just taken: where its time went (one entry per `timings` key, from
        consecutive clock readings), the state's counters, the total loss."""
        for key, start, end in zip(self.timings, times, times[1:]):
            self.timings[key] += end - start
        self.state.step += 1
        self.state.images_seen += self.settings.batch_size
        self.state.seconds += times[-1] - times[0]
        return {**losses, "loss": loss.item()}

    def run(
        self,
        steps: int,
        *,
        on_step: Callable[[dict[str, float]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Train until `steps` in total; `should_stop` ends early (e.g. at a time limit)."""
        while self.state.step < steps:
            if should_stop is not None and should_stop():
                raise Cancelled("training stopped")
            losses = self.step()
            if on_step is not None:
                on_step(losses)

    def settings_dict(self) -> dict:
        return asdict(self.settings)


class AdaINTrainer(Trainer):
    """Owns the decoder, its optimizer and the step counter; one call to `step` is one update."""

    def __init__(
        self,
        encoder: VGGEncoder,
        data: TrainData,
        settings: TrainSettings,
        *,
        decoder: nn.Module | None = None,
        state: TrainState | None = None,
        adam_tensors: dict[str, torch.Tensor] | None = None,
        scales: dict[str, torch.Tensor] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.settings = settings
        self.data = data
        self.state = state or TrainState()
        self.device = dev = torch.device(device)
        # channels_last is the fast layout of oneDNN (CPU) and cuDNN
        fmt = torch.channels_last
        self.encoder = copy.deepcopy(encoder.truncated(CONTENT_TAP)).to(dev, memory_format=fmt)
        _check_lite_network(settings, decoder)
        net = decoder or make_decoder(
            settings.width, widths=settings.lite_widths, modulated=settings.lite_modulated
        )
        if isinstance(net, LiteNet) and net.slope != settings.lite_slope:
            net.set_slope(settings.lite_slope)
        if isinstance(net, LiteNet) and net.widths != settings.lite_widths:
            # Adam's moments have the old shapes: the optimizer starts anew
            net, adam_tensors = net.widened(settings.lite_widths), None
        if isinstance(net, LiteNet) and settings.lite_modulated and not net.modulated:
            # registered last: the other parameters keep their Adam state
            net = net.with_modulator()
        self.net = net.to(dev, memory_format=fmt)
        self.net.train().requires_grad_(True)
        self.scales = {t: v.to(dev) for t, v in (scales or loss_scales(data)).items()}
        self.style_mean = {t: v.float().to(dev) for t, v in data.style_mean.items()}
        self.style_std = {t: v.float().to(dev) for t, v in data.style_std.items()}
        self._setup_optimizer(settings.lr, adam_tensors)
        self.timings = {"data": 0.0, "decoder": 0.0, "encoder": 0.0, "backward": 0.0}
        self.lite = isinstance(self.net, LiteNet)
        self._check_settings()
        self.style_gram = self._style_grams() if settings.gram_weight > 0 else {}

    @property
    def decoder(self) -> nn.Module:
        return self.net

    def _check_settings(self) -> None:
        c, margin = self.settings.crop, self.settings.content_margin
        if margin < 0:
            raise InputError(f"content margin must be 0 or more, got {margin}")
        for name in ("structure_weight", "gram_weight", "colour_weight", "recycle_every"):
            if getattr(self.settings, name) < 0:
                label = name.replace("_", " ")
                raise InputError(f"{label} must be 0 or more, got {getattr(self.settings, name)}")
        for name, term in (("gram_weight", "Gram"), ("colour_weight", "colour")):
            if getattr(self.settings, name) > 0 and self.data.style_pixels is None:
                raise InputError(f"the {term} term needs the style crops' pixels; none were given")
        if c % 8 or c < 32:
            raise InputError(f"crop must be a multiple of 8 and at least 32, got {c}")
        cells = c // 8
        if all(f.shape[-1] < cells or f.shape[-2] < cells for f in self.data.features):
            raise InputError(f"every content image is smaller than the crop of {c} px")
        if self.lite and self.data.style_pixels is None:
            raise InputError("a lite network trains on the style crops' pixels; none were given")
        if self.settings.recycle_every and not self.lite:
            raise InputError("recycling dormant units is for a lite network only")
        slope = self.settings.lite_slope
        if not 0.0 <= slope < 1.0:
            raise InputError(f"lite slope must be at least 0 and below 1, got {slope}")
        if slope and not self.lite:
            raise InputError("a lite slope is for a lite network only")
        if slope and self.settings.recycle_every:
            raise InputError("recycling dormant units is for ReLU units; leaky ones do not die")
        if self.settings.recycle_parts not in RECYCLE_PARTS:
            parts = ", ".join(RECYCLE_PARTS)
            raise InputError(
                f"recycle parts must be one of {parts}, got {self.settings.recycle_parts}"
            )

    @torch.no_grad()
    def _style_grams(self) -> dict[str, torch.Tensor]:
        """Each style row's Gram targets, once per run (about a minute for 2,000 crops here)."""
        assert self.data.style_pixels is not None
        out: dict[str, list[torch.Tensor]] = {t: [] for t in GRAM_TAPS}
        for chunk in self.data.style_pixels.split(16):
            x = self._to_device(chunk).float().div(255.0)
            with autocast(self.device):
                taps = self.encoder(x.contiguous(memory_format=torch.channels_last), GRAM_TAPS)
            for t in GRAM_TAPS:
                out[t].append(gram(taps[t].float()))
        return {t: torch.cat(v) for t, v in out.items()}

    # -- data ---------------------------------------------------------------------------------
    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feature crops, matching pixel crops and style indices: a function of (seed, step)."""
        s = self.settings
        gen = step_generator(s.seed, step)
        cells = s.crop // 8
        usable = [i for i, f in enumerate(self.data.features) if min(f.shape[-2:]) >= cells]
        picks = torch.randint(len(usable), (s.batch_size,), generator=gen).tolist()
        feats, pixels = [], []
        for k in picks:
            f = self.data.features[usable[k]]
            y = int(torch.randint(f.shape[-2] - cells + 1, (1,), generator=gen))
            x = int(torch.randint(f.shape[-1] - cells + 1, (1,), generator=gen))
            feats.append(f[:, y : y + cells, x : x + cells])
            px = self.data.pixels[usable[k]]
            pixels.append(px[:, 8 * y : 8 * (y + cells), 8 * x : 8 * (x + cells)])
        styles = torch.randint(
            len(self.data.style_mean[CONTENT_TAP]), (s.batch_size,), generator=gen
        )
        feat = torch.stack(feats).float().contiguous(memory_format=torch.channels_last)
        return feat, torch.stack(pixels).float() / 255.0, styles

    # -- one update ---------------------------------------------------------------------------
    def _draw(
        self, feat: torch.Tensor, pixels: torch.Tensor, skips: list, styles: torch.Tensor | None
    ) -> torch.Tensor:
        """The network's output for a batch: with `styles` (rows of the style set) stylized,
        without them the warm-up's reconstruction. `feat`: relu4_1 of the photos, or its AdaIN
        target; a lite network reads the photos' and the style crops' pixels instead."""
        if not self.lite:
            return self.net(feat, skips)
        if styles is None:
            return self.net(pixels)
        return self.net(pixels, style_moments(None, self._style_crops(styles), self.net))

    def _style_crops(self, styles: torch.Tensor) -> torch.Tensor:
        """The style set's pixel crops for these rows, on the device, in 0..1."""
        assert self.data.style_pixels is not None
        crops = self._to_device(self.data.style_pixels[styles.cpu()]).float() / 255.0
        return crops.contiguous(memory_format=torch.channels_last)

    def step(self) -> dict[str, float]:
        s, t0 = self.settings, time.perf_counter()
        feat, pixels, styles = (self._to_device(t) for t in self.batch(self.state.step))
        every = s.recycle_every
        if every and self.state.step >= s.recon_steps and self.state.step % every == 0:
            self._recycle(pixels, styles)
        t1 = time.perf_counter()
        # a lite network reads no VGG skips; the photo's relu3_1 is then for the structure term
        needs_photo = not self.lite or s.structure_weight > 0
        with torch.no_grad(), autocast(self.device):
            photo = self.encoder(pixels, SKIP_TAPS) if needs_photo else {}
        skips = [] if self.lite else skip_features(photo)
        if self.state.step < s.recon_steps:
            with autocast(self.device):
                out = self._draw(feat, pixels, skips, None)
            t2 = t3 = self._clock()
            loss = F.l1_loss(out.float(), pixels)
            losses = {"recon": loss.item()}
        else:
            mean4 = self.style_mean[CONTENT_TAP][styles].view(len(styles), -1, 1, 1)
            std4 = self.style_std[CONTENT_TAP][styles].view(len(styles), -1, 1, 1)
            target = adain_from_stats(feat, mean4, std4)
            with autocast(self.device):
                out = self._draw(target, pixels, skips, styles)
                t2 = self._clock()
                taps = self.encoder(out, STYLE_TAPS + (GRAM_TAPS if self.style_gram else ()))
            t3 = self._clock()
            sc4 = self.scales[CONTENT_TAP]
            content = content_loss(taps[CONTENT_TAP].float() / sc4, target / sc4, s.content_margin)
            style = target.new_zeros(())
            for tap in STYLE_TAPS:
                sc = self.scales[tap]
                m, sd = calc_mean_std(taps[tap].float())
                tm = self.style_mean[tap][styles].view_as(m)
                ts = self.style_std[tap][styles].view_as(sd)
                style = style + F.mse_loss(m / sc, tm / sc) + F.mse_loss(sd / sc, ts / sc)
            loss = s.content_weight * content + s.style_weight * style
            losses = {"content": content.item(), "style": style.item()}
            if s.structure_weight > 0:
                # the photo's crop gets the same zero padding as the output, so no margin here
                photo_map = photo[STRUCTURE_TAP].float()
                structure = structure_loss(taps[STRUCTURE_TAP].float(), photo_map)
                loss = loss + s.structure_weight * structure
                losses["structure"] = structure.item()
            if s.colour_weight > 0:
                colour = colour_loss(out, self._style_crops(styles))
                loss = loss + s.colour_weight * colour
                losses["colour"] = colour.item()
            if self.style_gram:
                grams = sum(gram_loss(taps[t], self.style_gram[t][styles]) for t in GRAM_TAPS)
                loss = loss + s.gram_weight * grams
                losses["gram"] = grams.item()
        self._update(loss)
        return self._account((t0, t1, t2, t3, self._clock()), loss, losses)

    def _recycle(self, pixels: torch.Tensor, styles: torch.Tensor) -> None:
        """Recycle the units dormant on this batch (`dormant`), fresh weights a function of
        (seed, step), so a resumed run repeats them."""
        assert isinstance(self.net, LiteNet)
        crops = self._style_crops(styles)
        gen = step_generator(self.settings.seed, self.state.step)
        self.state.recycled += dormant.recycle(
            self.net,
            pixels,
            crops,
            self.optimizer,
            gen,
            encoder=self.settings.recycle_parts == "all",
        )

    @torch.no_grad()
    def preview(self, feats: torch.Tensor, pixels: torch.Tensor, row: int) -> torch.Tensor:
        """Photos (their relu4_1 and pixels) stylized with one row of the style set."""
        self.net.eval()
        try:
            feats, pixels = feats.to(self.device), pixels.to(self.device)
            rows = torch.full((len(pixels),), row, dtype=torch.long, device=self.device)
            mean = self.style_mean[CONTENT_TAP][rows].view(len(rows), -1, 1, 1)
            std = self.style_std[CONTENT_TAP][rows].view(len(rows), -1, 1, 1)
            skips = [] if self.lite else skip_features(self.encoder(pixels, SKIP_TAPS))
            out = self._draw(adain_from_stats(feats, mean, std), pixels, skips, rows)
            return out.clamp(0, 1).float().cpu()
        finally:
            self.net.train()


def _fmt(p: torch.Tensor) -> torch.memory_format:
    if p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


# -- fast per-style networks (Johnson et al. 2016) ---------------------------------------------
@dataclass
class FastSettings:
    batch_size: int = 4
    crop: int = 128
    lr: float = 1e-3
    lr_decay: float = 1e-4
    content_weight: float = 1.0
    style_weight: float = 2e4
    tv_weight: float = 0.0
    # weight of the channel histogram term beside the Gram term (fast.perceptual_losses); 0: off
    histogram_weight: float = 0.0
    batch_gram: bool = False  # style statistics pooled over the batch (fast.perceptual_losses)
    # weight of the colour-layout term against a teacher's rendering of each photo
    # (fast.layout_loss); 0: off, and no teacher is needed
    teacher_weight: float = 0.0
    # weight of a second content term at relu1_1 (fast.perceptual_losses); 0: off
    fine_content_weight: float = 0.0
    # weight of a content term at relu4_2 beside relu2_2's (fast.perceptual_losses); 0: off
    deep_content_weight: float = 0.0
    # weight of a relu2_2 content term against the teacher's rendering (fast.perceptual_losses);
    # 0: off, and no teacher is needed unless teacher_weight asks for one
    teacher_content_weight: float = 0.0
    # weight of a term charging the output's texture regularity above the photo's
    # (fast.regularity); 0: off
    regularity_weight: float = 0.0
    # weight of a term charging the output's change under faint input noise
    # (fast.stability_loss); 0: off
    stability_weight: float = 0.0
    # weight of a term comparing the output's power spectrum with the teacher's rendering's
    # (fast.spectrum_loss); 0: off, and no teacher is needed unless another term asks for one
    spectrum_weight: float = 0.0
    # weight of a term charging the output's largest spectral excesses over the teacher's
    # rendering's (fast.spectrum_peak_loss: bands and lattices); 0: off
    spectrum_peak_weight: float = 0.0
    # weight of a term comparing where the output's fine texture sits, square by square, with
    # the teacher's rendering (fast.texture_layout_loss); 0: off
    texture_layout_weight: float = 0.0
    # the style term's weight at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1
    # (fast.style_tap_weights); the default is the paper's four layers alike
    style_tap_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.0)
    # share of the style term comparing each crop with the teacher's rendering of that crop, the
    # rest the painting's (fast.perceptual_losses); 0: the painting's alone, as in the paper
    teacher_style_mix: float = 0.0
    # photo luminance gradient under which a spot counts as flat: the painting's share of the
    # style term is asked only of the rest (fast.detail_mask); 0: of every spot, as in the paper
    detail_threshold: float = 0.0
    # weight of a total-variation term on the spots detail_threshold calls flat
    # (fast.flat_variation); 0: off
    flat_tv_weight: float = 0.0
    # px of photo the network sees around each crop and the losses do not, the crop at a random
    # offset in it: with the crop's edge never scored, the network cannot learn to place the
    # painting's colours by their distance from the image's border (corner blobs, seen in udnie)
    margin: int = 0
    # first steps learn the identity (pixel L1): a warm start that keeps the photo's layout
    recon_steps: int = 200
    seed: int = 0
    width: int = 12
    blocks: int = 5
    downsamplings: int = 3
    edge_kernel: int = 5
    # Gaussian noise channels fed beside the photo (fast.NoiseInput); 0: none, as in the paper
    noise_channels: int = 0
    # px between the noise field's independent values (fast.NoiseInput); 1: per-pixel noise
    noise_cell: int = 1
    # a fast.AdaINPreset of these lite widths and slope (the five fields above then unused);
    # set by `nst train fast --from-adain`, recorded so a resume rebuilds it
    lite_widths: tuple[int, ...] = ()
    slope: float = 0.0
    # train only a fast.AdaINPreset's moments (its instance norms' affine maps), the rest as our
    # AdaIN has it: Dumoulin et al. 2017 show a style lives in those parameters, and a network
    # that cannot change its filters cannot learn a painting's texture it does not already draw
    moments_only: bool = False
    # weights of the style and content distances as the quality benchmark measures them
    # (fast.relative_style, fast.relative_content); 0: off
    relative_style_weight: float = 0.0
    relative_content_weight: float = 0.0

    def __post_init__(self) -> None:
        self.lite_widths = tuple(self.lite_widths)  # a list when read back from a file

    def net_config(self) -> fast.NetConfig:
        return fast.NetConfig(
            self.width,
            self.blocks,
            self.downsamplings,
            self.edge_kernel,
            self.noise_channels,
            self.noise_cell,
            self.lite_widths,
            self.slope,
        )

    def needs_teachers(self) -> bool:
        return (
            self.teacher_weight > 0
            or self.teacher_content_weight > 0
            or self.teacher_style_mix > 0
            or self.spectrum_weight > 0
            or self.spectrum_peak_weight > 0
            or self.texture_layout_weight > 0
        )


class FastTrainer(Trainer):
    """One painting's network. The painting's Gram targets are computed once; each step encodes
    the photo crops (no grad, the content target) and the output (with its backward).
    `teachers`, one per photo and the same size, are what the teacher terms compare with."""

    def __init__(
        self,
        encoder: VGGEncoder,
        photos: list[torch.Tensor],
        style: torch.Tensor,
        settings: FastSettings,
        *,
        net: nn.Module | None = None,
        state: TrainState | None = None,
        adam_tensors: dict[str, torch.Tensor] | None = None,
        device: torch.device | str = "cpu",
        teachers: list[torch.Tensor] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state or TrainState()
        self.device = dev = torch.device(device)
        self._check(photos, settings, teachers)
        side = settings.crop + settings.margin
        keep = [k for k, p in enumerate(photos) if min(p.shape[-2:]) >= side]
        self.with_teachers = settings.needs_teachers()
        # with teachers, each photo is kept with its teacher as 6 channels (joined once here), so
        # one crop and one flip cut both at the same place
        self.photos = [
            torch.cat([photos[k], teachers[k]]) if self.with_teachers else photos[k] for k in keep
        ]
        fmt = torch.channels_last
        self.tap_weights = fast.style_tap_weights(settings.style_tap_weights)
        self.style_taps = tuple(self.tap_weights)
        deep = (fast.DEEP_CONTENT_TAP,) if settings.deep_content_weight > 0 else ()
        relative = fast.RELATIVE_STYLE_TAPS if settings.relative_style_weight > 0 else ()
        if settings.relative_content_weight > 0:
            relative = (*relative, fast.RELATIVE_CONTENT_TAP)
        self.feature_taps = tuple(sorted({*fast.FEATURE_TAPS, *self.style_taps, *deep, *relative}))
        deepest = max(self.feature_taps, key=encoder.index)
        self.encoder = copy.deepcopy(encoder.truncated(deepest)).to(dev, memory_format=fmt)
        self.net = (net or fast.make_net(settings.net_config())).to(dev, memory_format=fmt)
        self.net.train().requires_grad_(True)
        if settings.moments_only:
            assert isinstance(self.net, fast.AdaINPreset)
            self.net.lite.requires_grad_(False)
        with torch.no_grad(), autocast(dev):
            feats = self.encoder(style.to(dev).contiguous(memory_format=fmt), self.feature_taps)
        self.scales = fast.feature_scales(feats)
        self.grams = fast.style_grams(feats, self.scales, self.style_taps)
        self.relative_grams = (
            fast.relative_grams(feats) if settings.relative_style_weight > 0 else None
        )
        self.histograms = (
            fast.style_histograms(feats, self.scales) if settings.histogram_weight > 0 else None
        )
        self._setup_optimizer(settings.lr, adam_tensors)
        self.timings = {"data": 0.0, "net": 0.0, "encoder": 0.0, "backward": 0.0}

    @staticmethod
    def _check(
        photos: list[torch.Tensor], s: FastSettings, teachers: list[torch.Tensor] | None
    ) -> None:
        if s.noise_channels < 0:
            raise InputError(f"noise channels must be 0 or more, got {s.noise_channels}")
        if s.noise_cell < 1:
            raise InputError(f"noise cell must be 1 px or more, got {s.noise_cell}")
        if s.noise_cell > 1 and not s.noise_channels:
            raise InputError("a noise cell needs noise channels (--noise-channels)")
        if s.lite_widths and (len(s.lite_widths) != 4 or min(s.lite_widths) < 1):
            raise InputError(f"lite widths are four channel counts of 1 or more: {s.lite_widths}")
        if s.noise_channels and s.lite_widths:
            raise InputError("a network from our AdaIN (--from-adain) takes no noise channels")
        if s.moments_only and not s.lite_widths:
            raise InputError("--moments-only trains a network from our AdaIN (--from-adain)")
        multiple = s.net_config().multiple
        if s.crop % multiple or s.crop < 4 * multiple:
            raise InputError(
                f"crop must be a multiple of {multiple} and at least {4 * multiple}, got {s.crop}"
            )
        if s.margin % multiple or s.margin < 0:
            raise InputError(f"margin must be 0 or a multiple of {multiple}, got {s.margin}")
        side = s.crop + s.margin
        if not any(min(p.shape[-2:]) >= side for p in photos):
            raise InputError(f"every content image is smaller than crop + margin ({side} px)")
        for name in (
            "content_weight",
            "style_weight",
            "tv_weight",
            "histogram_weight",
            "teacher_weight",
            "fine_content_weight",
            "deep_content_weight",
            "regularity_weight",
            "teacher_content_weight",
            "stability_weight",
            "spectrum_weight",
            "spectrum_peak_weight",
            "texture_layout_weight",
            "flat_tv_weight",
            "relative_style_weight",
            "relative_content_weight",
        ):
            if getattr(s, name) < 0:
                raise InputError(f"{name.replace('_', ' ')} must be 0 or more")
        taps = fast.WEIGHTABLE_STYLE_TAPS
        w = s.style_tap_weights
        if len(w) != len(taps) or min(w) < 0 or max(w) <= 0:
            raise InputError(
                f"style tap weights must be {len(taps)} numbers of 0 or more "
                f"({', '.join(taps)}), not all 0; got {' '.join(f'{x:g}' for x in w)}"
            )
        if not 0 <= s.teacher_style_mix <= 1:
            raise InputError(f"teacher style mix must be within 0..1, got {s.teacher_style_mix}")
        if s.detail_threshold < 0:
            raise InputError(f"detail threshold must be 0 or more, got {s.detail_threshold}")
        if s.flat_tv_weight > 0 and s.detail_threshold <= 0:
            raise InputError("flat tv weight needs a detail threshold to say what is flat")
        if s.detail_threshold > 0 and s.batch_gram:
            raise InputError("detail threshold asks each crop, batch Gram the batch: pick one")
        if s.needs_teachers() and (
            teachers is None
            or len(teachers) != len(photos)
            or any(t.shape != p.shape for t, p in zip(teachers, photos))
        ):
            raise InputError("a teacher term needs one teacher image per photo, of its size")

    def batch(self, step: int) -> tuple[torch.Tensor, tuple[slice, slice], torch.Tensor | None]:
        """Random photo crops (a function of seed and step), flipped at random, RGB 0..1, each
        with the margin around it; the scored window (the same for the whole batch); and the
        teachers' crops at the same places (None without teachers)."""
        s = self.settings
        side = s.crop + s.margin
        gen = step_generator(s.seed, step)
        picks = torch.randint(len(self.photos), (s.batch_size,), generator=gen).tolist()
        crops = []
        for k in picks:
            p = self.photos[k]
            y = int(torch.randint(p.shape[-2] - side + 1, (1,), generator=gen))
            x = int(torch.randint(p.shape[-1] - side + 1, (1,), generator=gen))
            crop = p[:, y : y + side, x : x + side]
            if bool(torch.randint(2, (1,), generator=gen)):
                crop = crop.flip(-1)
            crops.append(crop)
        oy, ox = torch.randint(s.margin + 1, (2,), generator=gen).tolist() if s.margin else (0, 0)
        window = (slice(oy, oy + s.crop), slice(ox, ox + s.crop))
        both = torch.stack(crops).float().div_(255.0).contiguous(memory_format=torch.channels_last)
        teachers = both[:, 3:, window[0], window[1]] if self.with_teachers else None
        return both[:, :3], window, teachers

    def step(self) -> dict[str, float]:
        s, t0 = self.settings, time.perf_counter()
        seen, (rows, cols), teachers = self.batch(self.state.step)
        seen = self._to_device(seen)
        teachers = None if teachers is None else self._to_device(teachers)
        first = self.net[0] if isinstance(self.net, nn.Sequential) else None
        if isinstance(first, fast.NoiseInput):  # a new field each step, a function of it
            first.draw = self.state.step + 1
        t1 = time.perf_counter()
        with autocast(self.device):
            out = self.net(seen)[..., rows, cols]
        photo = seen[..., rows, cols]
        t2 = self._clock()
        if self.state.step < s.recon_steps:
            t3 = t2
            loss = F.l1_loss(out.float(), photo)
            losses = {"recon": loss.item()}
        else:
            with autocast(self.device):
                with torch.no_grad():
                    taps = [fast.CONTENT_TAP]
                    if s.fine_content_weight > 0:
                        taps.append(fast.FINE_CONTENT_TAP)
                    if s.deep_content_weight > 0:
                        taps.append(fast.DEEP_CONTENT_TAP)
                    if s.relative_content_weight > 0:
                        taps.append(fast.RELATIVE_CONTENT_TAP)
                    targets = self.encoder(photo, taps)
                    taught = self._teacher_features(teachers)
                feats = self.encoder(out, self.feature_taps)
            t3 = self._clock()
            detail = fast.detail_mask(photo, s.detail_threshold) if s.detail_threshold > 0 else None
            parts = fast.perceptual_losses(
                feats,
                targets[fast.CONTENT_TAP],
                self.grams,
                self.scales,
                out.float(),
                batch_gram=s.batch_gram,
                taught=fast.teacher_grams(taught, self.scales, self.style_taps)
                if s.teacher_style_mix > 0
                else None,
                mix=s.teacher_style_mix,
                tap_weights=self.tap_weights,
                histograms=self.histograms,
                fine_target=targets.get(fast.FINE_CONTENT_TAP),
                deep_target=targets.get(fast.DEEP_CONTENT_TAP),
                teacher_target=taught.get(fast.CONTENT_TAP),
                detail=detail,
            )
            if s.flat_tv_weight > 0:
                parts["flat_tv"] = fast.flat_variation(out, detail)
            if self.relative_grams is not None:
                parts["relative_style"] = fast.relative_style(feats, self.relative_grams)
            if s.relative_content_weight > 0:
                parts["relative_content"] = fast.relative_content(
                    feats[fast.RELATIVE_CONTENT_TAP], targets[fast.RELATIVE_CONTENT_TAP]
                )
            if s.teacher_weight > 0 and teachers is not None:
                parts["layout"] = fast.layout_loss(out, teachers)
            if s.spectrum_weight > 0 and teachers is not None:
                parts["spectrum"] = fast.spectrum_loss(out, teachers)
            if s.spectrum_peak_weight > 0 and teachers is not None:
                parts["spectrum_peak"] = fast.spectrum_peak_loss(out, teachers)
            if s.texture_layout_weight > 0 and teachers is not None:
                parts["texture_layout"] = fast.texture_layout_loss(out, teachers)
            if s.regularity_weight > 0:
                excess = fast.regularity(out) - fast.regularity(photo)
                parts["regularity"] = excess.clamp_min(0).mean()
            if s.stability_weight > 0:
                gen = step_generator(s.seed, self.state.step, stream=7)
                noise = self._to_device(torch.randn(seen.shape, generator=gen))
                with autocast(self.device):
                    parts["stability"] = fast.stability_loss(
                        self.net, seen, out, (rows, cols), noise
                    )
            loss = (
                s.content_weight * parts["content"]
                + s.style_weight * parts["style"]
                + s.tv_weight * parts["tv"]
                + s.histogram_weight * parts.get("histogram", 0.0)
                + s.teacher_weight * parts.get("layout", 0.0)
                + s.fine_content_weight * parts.get("fine_content", 0.0)
                + s.deep_content_weight * parts.get("deep_content", 0.0)
                + s.regularity_weight * parts.get("regularity", 0.0)
                + s.teacher_content_weight * parts.get("teacher_content", 0.0)
                + s.stability_weight * parts.get("stability", 0.0)
                + s.spectrum_weight * parts.get("spectrum", 0.0)
                + s.spectrum_peak_weight * parts.get("spectrum_peak", 0.0)
                + s.texture_layout_weight * parts.get("texture_layout", 0.0)
                + s.flat_tv_weight * parts.get("flat_tv", 0.0)
                + s.relative_style_weight * parts.get("relative_style", 0.0)
                + s.relative_content_weight * parts.get("relative_content", 0.0)
            )
            losses = {k: v.item() for k, v in parts.items()}
        self._update(loss)
        return self._account((t0, t1, t2, t3, self._clock()), loss, losses)

    def _teacher_features(self, teachers: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The teacher crops' taps that the teacher terms compare with (empty: none asked)."""
        s, taps = self.settings, []
        if s.teacher_content_weight > 0:
            taps.append(fast.CONTENT_TAP)
        if s.teacher_style_mix > 0:
            taps.extend(self.style_taps)
        return self.encoder(teachers, taps) if taps and teachers is not None else {}

    @torch.no_grad()
    def preview(self, photos: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        try:
            with autocast(self.device):
                out = fast.stylize(
                    self.net, photos.to(self.device), self.settings.net_config().multiple
                )
            return out.cpu()
        finally:
            self.net.train()
