"""The style-transfer task: validation before work, ports, masks, progress, cancellation."""

from __future__ import annotations

import pytest
import torch

import nst_plugin as nst
from nst_plugin.engine.errors import Cancelled, InputError
from nst_plugin.images import Picture


def test_bad_parameters_rejected_before_any_work():
    with pytest.raises(InputError, match="'alpha' must be within 0..1"):
        nst.create_task("nst.style_transfer", method="adain", alpha=3)
    with pytest.raises(InputError, match="'method' must be one of"):
        nst.create_task("nst.style_transfer", method="nope")
    with pytest.raises(InputError, match="'iterations' applies to method optimization"):
        nst.create_task("nst.style_transfer", method="adain", iterations=3)
    with pytest.raises(InputError, match="unknown task 'nst.nope'"):
        nst.create_task("nst.nope")


def test_wrong_port_types_and_missing_ports(photo, art):
    task = nst.create_task("nst.style_transfer", method="adain")
    with pytest.raises(InputError, match="method 'adain' needs at least one style image"):
        task.run({"content": photo, "styles": []})
    with pytest.raises(InputError, match="input 'content' expects image"):
        task.run({"content": photo.rgb, "styles": [art]})
    with pytest.raises(InputError, match="unknown input port"):
        task.run({"content": photo, "styles": [art], "contnet": photo})


def test_adain_through_task_keeps_size_alpha_and_reports_progress(photo, art, random_decoder_file):
    rgba = Picture(photo.rgb, torch.linspace(0, 1, 64).expand(48, 64).clone())
    records = []
    task = nst.create_task(
        "nst.style_transfer", method="adain", size=0, decoder=str(random_decoder_file)
    )
    out = task.run({"content": rgba, "styles": [art, art]}, on_progress=records.append)
    assert out["image"].rgb.shape == (3, 48, 64)
    assert torch.equal(out["image"].alpha, rgba.alpha)
    assert records and records[-1].size == (64, 48)


def test_size_param_resizes_longer_side(photo, art, random_decoder_file):
    task = nst.create_task(
        "nst.style_transfer", method="adain", size=32, decoder=str(random_decoder_file)
    )
    assert task.run({"content": photo, "styles": [art]})["image"].size == (32, 24)


def test_mask_checks(photo, art, random_decoder_file):
    task = nst.create_task(
        "nst.style_transfer", method="adain", size=0, decoder=str(random_decoder_file)
    )
    with pytest.raises(InputError, match="mask is 10x10 but the content image is 64x48"):
        task.run({"content": photo, "styles": [art], "mask": torch.ones(10, 10)})
    with pytest.raises(InputError, match="got 2 masks for 3 style images"):
        task.run({"content": photo, "styles": [art] * 3, "mask": torch.ones(2, 48, 64)})
    half = torch.zeros(48, 64)
    half[:, 32:] = 1
    out = task.run({"content": photo, "styles": [art], "mask": half})["image"]
    assert out.rgb.shape == photo.rgb.shape


def test_style_weights_count_must_match(photo, art):
    task = nst.create_task("nst.style_transfer", method="adain", style_weights=[1, 2, 3])
    with pytest.raises(InputError, match="3 style weights for 1 style images"):
        task.run({"content": photo, "styles": [art]})


@pytest.mark.parametrize(
    ("count", "params", "mask", "match"),
    [
        (1, {"style_weights": [1, 1]}, None, "got 2 style weights for 1 style images"),
        (2, {"style_weights": [0, 0]}, None, "style weights must not all be zero"),
        (1, {}, torch.ones(2, 48, 64), "got 2 masks for 1 style images"),
        (1, {}, torch.ones(1, 16, 16), "mask is 16x16 but the content image is 64x48"),
        (1, {}, torch.full((48, 64), -0.5), "mask values must be within 0..1"),
        (3, {}, torch.ones(48, 64), "a single-channel mask assigns one or two styles"),
    ],
)
def test_the_task_checks_what_the_adain_engine_no_longer_does(
    photo, art, random_decoder_file, count, params, mask, match
):
    decoder = str(random_decoder_file)
    task = nst.create_task("nst.style_transfer", method="adain", size=0, decoder=decoder, **params)
    inputs = {"content": photo, "styles": [art] * count}
    if mask is not None:
        inputs["mask"] = mask
    with pytest.raises(InputError, match=match) as info:
        task.run(inputs)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="'style_weights' must be within 0..inf"):
        nst.create_task("nst.style_transfer", method="adain", style_weights=[1, -1])


def test_methods_without_an_init_parameter_ignore_an_init_image(photo, art, random_decoder_file):
    decoder = str(random_decoder_file)
    task = nst.create_task("nst.style_transfer", method="adain", size=0, decoder=decoder)
    start = Picture(torch.zeros(3, 48, 64))
    out = task.run({"content": photo, "styles": [art], "init": start})["image"]
    assert out.size == (64, 48)


def test_missing_device_is_an_error_not_a_fallback(photo, art):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    task = nst.create_task("nst.style_transfer", method="adain", device="cuda")
    with pytest.raises(InputError, match="no CUDA GPU is available"):
        task.run({"content": photo, "styles": [art]})


def test_optimization_through_task_cancels_with_partial(photo, art):
    task = nst.create_task(
        "nst.style_transfer",
        method="optimization",
        size=32,
        iterations=50,
        scales=1,
        preview_every=1,
    )
    steps = []
    with pytest.raises(Cancelled) as info:
        task.run(
            {"content": photo, "styles": [art]},
            on_progress=steps.append,
            should_stop=lambda: len(steps) >= 2,
        )
    # hosts get Pictures, never engine tensors: the partial at the output size, like a result
    assert isinstance(info.value.partial, Picture) and info.value.partial.size == (32, 24)
    assert isinstance(steps[-1].preview, Picture)


def test_with_params_is_a_new_task_and_keeps_models_loaded(photo, art, random_decoder_file):
    from nst_plugin.default_plugins import models

    task = nst.create_task(
        "nst.style_transfer", method="adain", size=0, decoder=str(random_decoder_file)
    )
    task.run({"content": photo, "styles": [art]})
    misses = models._decoder_on.cache_info().misses
    changed = task.with_params(alpha=0.3)
    changed.run({"content": photo, "styles": [art]})
    assert changed.params["alpha"] == 0.3 and task.params["alpha"] == 1.0  # the original stays
    assert changed.params["decoder"] == str(random_decoder_file)  # the rest carried over
    assert models._decoder_on.cache_info().misses == misses
    with pytest.raises(InputError, match="'alpha' must be within"):
        task.with_params(alpha=2)


def test_optimization_starts_from_a_given_image(photo, art):
    task = nst.create_task(
        "nst.style_transfer", method="optimization", size=32, iterations=1, scales=1, init="image"
    )
    with pytest.raises(InputError, match="needs an image on the task's 'init' input"):
        task.run({"content": photo, "styles": [art]})
    start = Picture(torch.zeros(3, 24, 32))
    out = task.run({"content": photo, "styles": [art], "init": start})["image"]
    assert out.size == (32, 24)
    assert out.rgb.mean() < 0.5 * photo.rgb.mean()  # one pass from black stays dark
