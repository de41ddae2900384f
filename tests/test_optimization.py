"""The Gatys method end to end on tiny generated images with the real VGG-19 weights.

Runs are a handful of steps at 64 px so the file stays fast on a busy two-core CPU; they check
direction (losses fall, statistics move toward the style), bookkeeping (sizes, steps, previews,
cancellation) and validation, not picture quality. Users' mistakes are checked through the task,
the one place that validates them; the engine only asserts what the task guarantees.
"""

from __future__ import annotations

import time

import pytest
import torch

import nst_plugin as nst
from nst_plugin import plugins
from nst_plugin.engine import optimization
from nst_plugin.engine.color import rgb_to_yiq
from nst_plugin.engine.encoders import load_encoder
from nst_plugin.engine.errors import Cancelled, InputError
from nst_plugin.engine.losses import gram_matrix
from nst_plugin.engine.optimization import (
    DEFAULT_STYLE_LAYERS,
    OptimizationOptions,
    auto_scales,
    plan_scales,
    stylize,
)
from nst_plugin.engine.progress import Progress
from nst_plugin.images import Picture


@pytest.fixture(scope="module")
def vgg():
    return load_encoder()


def _content(h: int = 64, w: int = 64) -> torch.Tensor:
    """Smooth colour gradients with a bright disc: something with layout to preserve."""
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    disc = (((x - 0.6) ** 2 + (y - 0.4) ** 2) < 0.05).float()
    rgb = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.7 - 0.4 * x * y])
    return (rgb * (1 - 0.5 * disc) + 0.5 * disc).clamp(0, 1)[None]


def _style(h: int = 64, w: int = 64, period: int = 8) -> torch.Tensor:
    """Saturated diagonal stripes over a checkerboard: strong, easily measured texture."""
    yy = torch.arange(h).view(h, 1).expand(h, w)
    xx = torch.arange(w).view(1, w).expand(h, w)
    stripes = (((xx + yy) // (period // 2)) % 2).float()
    checks = (((xx // period) + (yy // period)) % 2).float()
    return torch.stack([stripes, 0.2 + 0.6 * checks, 1 - stripes])[None]


def _style_distance(vgg, image: torch.Tensor, style: torch.Tensor) -> float:
    taps = list(DEFAULT_STYLE_LAYERS)
    with torch.no_grad():
        fi, fs = vgg(image, taps), vgg(style, taps)
        return sum(float(((gram_matrix(fi[t]) - gram_matrix(fs[t])) ** 2).mean()) for t in taps)


def _run(vgg, **kw):
    records: list[Progress] = []
    options = kw.pop("options", OptimizationOptions(iterations=10, scales=()))
    out = stylize(
        vgg,
        kw.pop("content", _content()),
        kw.pop("styles", [_style()]),
        options=options,
        on_progress=records.append,
        **kw,
    )
    return out, records


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls_and_texture_moves_toward_the_style(vgg, optimizer: str) -> None:
    content, style = _content(48, 48), _style(48, 48)
    options = OptimizationOptions(optimizer=optimizer, iterations=10, scales=(), learning_rate=0.05)
    out, records = _run(vgg, content=content, styles=[style], options=options)
    assert out.shape == content.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    totals = [r.losses["total"] for r in records]
    assert len(totals) == 10
    # L-BFGS's line search may end on a trial point; the image returned is its best one.
    assert min(totals) < 0.5 * totals[0]
    assert _style_distance(vgg, out, style) < 0.6 * _style_distance(vgg, content, style)


def test_lbfgs_recovers_from_an_overflowing_trial_step(vgg, monkeypatch) -> None:
    # A first trial step moving every pixel by a full unit overflows the Gram loss; the line
    # search must be steered back rather than lost in NaN.
    monkeypatch.setattr(optimization, "FIRST_STEP", 1.0)
    content, style = _content(48, 48), _style(48, 48)
    out, records = _run(vgg, content=content, styles=[style])
    assert torch.isfinite(out).all()
    assert records[-1].losses["total"] < 0.9 * records[0].losses["total"]


def test_multi_scale_reports_each_size_and_returns_the_output_size(vgg) -> None:
    content = _content(48, 64)
    options = OptimizationOptions(iterations=2, coarse_iterations=2, scales=(32,))
    out, records = _run(vgg, content=content, options=options, preview_every=2)
    assert out.shape == (1, 3, 48, 64)
    assert [r.step for r in records] == [1, 2, 3, 4]
    assert {r.total for r in records} == {4}
    assert [r.size for r in records] == [(32, 24)] * 2 + [(64, 48)] * 2
    assert [r.scale for r in records] == [0, 0, 1, 1] and records[0].scales == 2
    previews = {r.step: r.preview for r in records if r.preview is not None}
    assert sorted(previews) == [2, 4]
    assert previews[2].shape == (3, 24, 32) and previews[4].shape == (3, 48, 64)
    assert records[-1].elapsed >= records[0].elapsed > 0


def test_cancel_raises_with_a_partial_image_at_the_output_size(vgg) -> None:
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2  # two evaluations run, then stop during the coarse pass

    options = OptimizationOptions(iterations=3, scales=(32,))
    with pytest.raises(Cancelled) as info:
        stylize(vgg, _content(48, 64), [_style()], options=options, should_stop=stop)
    partial = info.value.partial
    assert isinstance(partial, torch.Tensor) and partial.shape == (1, 3, 48, 64)
    assert 0 <= partial.min() and partial.max() <= 1


def test_same_seed_same_image_on_cpu(vgg) -> None:
    options = OptimizationOptions(init="noise", iterations=2, scales=(), seed=7)
    a = stylize(vgg, _content(32, 32), [_style(32, 32)], options=options)
    b = stylize(vgg, _content(32, 32), [_style(32, 32)], options=options)
    c = stylize(vgg, _content(32, 32), [_style(32, 32)], options=options.replace(seed=8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_luminance_mode_keeps_the_content_chroma(vgg) -> None:
    content = _content(32, 32)
    options = OptimizationOptions(
        optimizer="adam", learning_rate=0.05, iterations=2, scales=(), preserve_color="luminance"
    )
    out, _ = _run(vgg, content=content, styles=[_style(32, 32)], options=options)
    iq_out, iq_content = rgb_to_yiq(out)[:, 1:], rgb_to_yiq(content)[:, 1:]
    # Equal except where clipping into the RGB cube trims chroma.
    assert (iq_out - iq_content).abs().mean() < 0.01
    plain, _ = _run(
        vgg,
        content=content,
        styles=[_style(32, 32)],
        options=options.replace(preserve_color="none"),
    )
    assert (rgb_to_yiq(plain)[:, 1:] - iq_content).abs().mean() > (iq_out - iq_content).abs().mean()


def test_match_mode_and_masks_and_image_init_run(vgg) -> None:
    styles = [_style(), _style(40, 56, period=4).flip(1)]
    masks = torch.zeros(2, 64, 64)
    masks[0, :, :32] = 1
    masks[1, :, 32:] = 1
    options = OptimizationOptions(iterations=2, scales=(), preserve_color="match", init="image")
    out, records = _run(
        vgg,
        styles=styles,
        masks=masks,
        style_weights=[2 / 3, 1 / 3],  # normalised, as the task hands them over
        options=options,
        init_image=torch.rand(1, 3, 30, 30),
    )
    assert out.shape == (1, 3, 64, 64) and len(records) == 2
    assert all(torch.isfinite(torch.tensor(r.losses["total"])) for r in records)


def test_the_callers_encoder_is_left_as_it_was(vgg) -> None:
    enc = vgg
    weight = enc.layers[0].weight
    stylize(enc, _content(32, 32), [_style(32, 32)], options=OptimizationOptions(iterations=1))
    assert enc.layers[0].weight is weight and weight.is_contiguous()
    assert enc.pooling == "max" and len(enc.layers) == len(enc.names)


# --- sizes ------------------------------------------------------------------------------------


def test_auto_scales_halve_down_to_256() -> None:
    assert auto_scales(400) == [400]
    assert auto_scales(512) == [256, 512]
    assert auto_scales(2000) == [500, 1000, 2000]
    assert plan_scales(300, 600, None) == [(150, 300), (300, 600)]
    assert plan_scales(300, 600, ()) == [(300, 600)]
    assert plan_scales(300, 600, (200, 100)) == [(50, 100), (100, 200), (300, 600)]


# --- validation: the task checks what users give, the engine asserts its contract ---------------


def _task_run(photo: Picture, art: Picture, inputs: dict | None = None, **params) -> None:
    params = {"size": 32, "iterations": 1, "scales": 1, **params}
    task = nst.create_task("nst.style_transfer", method="optimization", **params)
    task.run({"content": photo, "styles": [art, art], **(inputs or {})})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"optimizer": "sgd"}, "'optimizer' must be one of 'lbfgs', 'adam'"),
        ({"init": "zeros"}, "'init' must be one of"),
        ({"preserve_color": "yes"}, "'preserve_color' must be one of"),
        ({"pooling": "min"}, "'pooling' must be one of 'max', 'avg'"),
        ({"iterations": -1}, "'iterations' must be within 0..100000"),
        ({"tolerance": 2}, "'tolerance' must be within 0..1"),
        ({"time_budget": -1}, "'time_budget' must be within 0..inf"),
        ({"style_weight": -1.0}, "'style_weight' must be within 0..inf"),
        ({"learning_rate": 0}, "'learning_rate' must be within 1e-06..10"),
        ({"style_scale": 0}, "'style_scale' must be within 0.1..4"),
        ({"scales": 7}, "'scales' must be within 0..6"),
        ({"preview_every": -1}, "'preview_every' must be within 0..inf"),
        ({"style_weights": "1, -1"}, "'style_weights' must be within 0..inf"),
    ],
)
def test_bad_parameters_are_refused_when_the_task_is_made(params: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        nst.create_task("nst.style_transfer", method="optimization", **params)


@pytest.mark.parametrize(
    ("params", "inputs", "match"),
    [
        ({"style_weights": [1.0]}, {}, "got 1 style weights for 2 style images"),
        ({"style_weights": [0, 0]}, {}, "style weights must not all be zero"),
        ({}, {"mask": torch.ones(3, 48, 64)}, "got 3 masks for 2 style images"),
        ({}, {"mask": torch.ones(2, 16, 32)}, "mask is 32x16 but the content image is 64x48"),
        ({}, {"mask": torch.full((2, 48, 64), 2.0)}, "mask values must be within 0..1"),
        ({}, {"mask": torch.zeros(48, 64)}, r"mask\(s\) \[1\] are empty"),
        ({}, {"init": Picture(torch.rand(3, 8, 8))}, "set init='image' to start from it"),
        ({"init": "image"}, {}, "needs an image on the task's 'init' input"),
        ({"size": 8}, {}, "the first pass would be 8x6 px, below the 16 px that relu5_1 needs"),
        ({"style_scale": 0.1}, {}, "a style image would be only 3 px on its shorter side"),
        ({}, {"content": Picture(torch.rand(1, 48, 64))}, "input 'content' must hold RGB floats"),
        ({}, {"styles": [Picture(torch.rand(1, 40, 40))]}, r"input 'styles\[0\]' must hold RGB"),
        ({}, {"styles": []}, "method 'optimization' needs at least one style image"),
    ],
)
def test_bad_inputs_are_refused_by_the_task_in_one_line(
    photo: Picture, art: Picture, params: dict, inputs: dict, match: str
) -> None:
    with pytest.raises(InputError, match=match) as info:
        _task_run(photo, art, inputs, **params)
    assert "\n" not in str(info.value)


def test_plan_refuses_scales_beyond_the_output() -> None:
    with pytest.raises(InputError, match="exceed the output's longer side of 600 px"):
        plan_scales(300, 600, (800,))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"options": OptimizationOptions(style_layers=("relu1_1", "relu9_9"))},
        {"options": OptimizationOptions(style_layer_weights=(1, 2))},
        {"options": OptimizationOptions(init="image")},
        {"init_image": torch.rand(1, 3, 8, 8)},
        {"masks": torch.ones(2, 16, 32)},
        {"style_weights": [1.0]},
        {"style_weights": [1.0, 1.0]},
        {"content": torch.rand(3, 32, 32)},
        {"styles": [torch.rand(1, 1, 32, 32)]},
        {"styles": []},
    ],
)
def test_the_engine_asserts_what_the_task_guarantees(vgg, kwargs: dict) -> None:
    # Programming errors, not user errors: users meet the task's messages above instead.
    content = kwargs.pop("content", _content(32, 32))
    styles = kwargs.pop("styles", [_style(32, 32), _style(32, 32)])
    with pytest.raises(AssertionError):
        stylize(vgg, content, styles, **kwargs)


def test_passes_by_device_most_at_the_coarse_scales(vgg) -> None:
    sizes = [(24, 32), (48, 64)]
    auto = OptimizationOptions()
    cpu, gpu = optimization.AUTO_PASSES["cpu"], optimization.AUTO_PASSES["other"]
    assert optimization.pass_budgets(auto, sizes, torch.device("cpu")) == list(cpu)
    assert optimization.pass_budgets(auto, sizes, torch.device("cuda")) == list(gpu)
    assert cpu[0] > cpu[1]  # on a CPU most passes are the cheap coarse ones
    given = OptimizationOptions(iterations=7, coarse_iterations=9)
    assert optimization.pass_budgets(given, [(8, 8), *sizes], torch.device("cpu")) == [9, 9, 7]


def test_a_converged_scale_stops_early(vgg) -> None:
    content = _content(24, 32)
    loose = OptimizationOptions(iterations=200, scales=(), tolerance=0.5)
    _, records = _run(vgg, content=content, options=loose)
    window = optimization.TOLERANCE_WINDOW
    assert window < len(records) < 200  # ended by the rule, not by the 200 passes
    strict = OptimizationOptions(iterations=30, scales=(), tolerance=0.0)
    assert len(_run(vgg, content=content, options=strict)[1]) == 30


def test_time_budget_returns_the_best_image_at_full_size_in_time(vgg) -> None:
    content = _content(48, 64)
    # A cold first pass takes longer than this whole budget: warm the encoder so the test
    # measures how the budget is shared, not how long the first convolutions take to set up.
    _run(vgg, content=content, options=OptimizationOptions(iterations=1, scales=(32,)))
    options = OptimizationOptions(
        iterations=100_000, coarse_iterations=100_000, scales=(32,), tolerance=0, time_budget=1.0
    )
    started = time.perf_counter()
    out, records = _run(vgg, content=content, options=options)
    assert time.perf_counter() - started < 3.0
    assert out.shape == (1, 3, 48, 64)
    left = [r.time_left for r in records]
    assert left[0] <= 1.0 and left == sorted(left, reverse=True) and left[-1] < 0.2
    assert {r.scale for r in records} == {0, 1}  # both scales got their share


def test_a_budget_smaller_than_one_pass_still_takes_one_coarse_pass(vgg) -> None:
    """A budget smaller than one pass: the coarse scale still takes one pass (it is not skipped
    for a deadline that passed while its targets were computed), the finer one is skipped, and
    the result is full size."""
    content = _content(48, 64)
    options = OptimizationOptions(
        iterations=50, coarse_iterations=50, scales=(32,), time_budget=1e-6
    )
    out, records = _run(vgg, content=content, options=options)
    assert [r.scale for r in records] == [0]
    assert out.shape == (1, 3, 48, 64)


def test_the_encoder_is_a_parameter_fed_by_the_registry(tmp_path, monkeypatch) -> None:
    """A test plugin registers a small VGG-16 (random weights: nothing is downloaded); the
    optimization method lists it as a choice and runs on it with the paper's layer names."""
    (tmp_path / "nst_tiny_vgg.py").write_text(
        "import nst_plugin as nst\n"
        "from nst_plugin.engine.encoders import random_vgg\n"
        "CALLS = []\n"
        "def load(pooling='max'):\n"
        "    CALLS.append(pooling)\n"
        "    return random_vgg('vgg16', pooling=pooling)\n"
        "@nst.hookimpl\n"
        "def register_encoders(register):\n"
        "    register('tiny-vgg16', load, 'a random VGG-16 for tests')\n"
    )
    dist = tmp_path / "nst_tiny_vgg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nst-tiny-vgg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nst_plugin]\ntiny = nst_tiny_vgg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, "tiny")
    plugins.reset()
    schema = {p.name: p for p in nst.create_task("nst.style_transfer").schema()}
    assert {"vgg19", "tiny-vgg16"} <= set(schema["encoder"].choices)
    task = nst.create_task("nst.style_transfer", method="optimization", encoder="tiny-vgg16",
                           size=32, iterations=2, scales=1)  # fmt: skip
    art = Picture(torch.rand(3, 32, 32))
    out = task.run({"content": Picture(torch.rand(3, 24, 32)), "styles": [art]})["image"]
    import nst_tiny_vgg

    assert out.size == (32, 24) and nst_tiny_vgg.CALLS == ["max"]
    with pytest.raises(InputError, match="'encoder' must be one of"):
        nst.create_task("nst.style_transfer", method="optimization", encoder="vgg99")


def test_a_finer_scale_starts_with_the_photos_fine_detail() -> None:
    """The upsampled coarse result alone is blurred; the photo's band above the coarse size is
    added back, so a coarse result that kept the photo gives the photo itself, edges and all."""
    photo = _content(64, 64)
    photo[..., ::4, :] = 1.0  # fine stripes a 16 px scale cannot hold
    coarse = optimization._resize(photo, (16, 16))
    upsampled = optimization._resize(coarse, (64, 64))
    start = optimization._with_detail(upsampled, photo, (16, 16), (64, 64))
    assert (upsampled - photo).abs().mean() > 0.05
    assert torch.allclose(start, photo, atol=1e-5)
