"""The Ikomia wrapper's translation layer (strings and numpy images), without Ikomia.

Runs in the main venv; `test_host_ikomia.py` runs the wrapper in real Ikomia workflows, in the
Ikomia venv (`make ikomia-test`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nst_plugin import api
from nst_plugin.engine.errors import InputError
from nst_plugin.images import Picture, save_image
from nst_plugin_hosts.ikomia import translate
from tests.conftest import make_image


def test_every_schema_parameter_is_a_string_with_its_default() -> None:
    values = translate.default_strings()
    schema = api.list_tasks()["nst.style_transfer"]["params"]
    assert set(values) == {p["name"] for p in schema} | {"style"}
    assert all(isinstance(v, str) for v in values.values())
    assert values["method"] == "optimization" and values["alpha"] == "1.0"
    assert values["style_weights"] == "" and values["size"] == "512"
    assert translate.to_string(True) == "1" and translate.to_string([3.0, 1.0]) == "3,1"


def test_strings_go_to_the_task_for_the_chosen_method_only() -> None:
    values = {
        **translate.default_strings(),
        "method": "adain",
        "alpha": "0.25",
        "style": "a.png; b.png",
        "style_weights": "3,1",
    }
    params, paths = translate.split_params(values)
    assert "iterations" not in params and params["alpha"] == "0.25"
    assert paths == ["a.png", "b.png"]
    task = api.create_task("nst.style_transfer", **params)  # the task parses the strings
    assert task.params["alpha"] == 0.25 and task.params["style_weights"] == [3.0, 1.0]


def test_bad_strings_are_named_by_the_task() -> None:
    params, _ = translate.split_params({"method": "adain", "alpha": "strong"})
    with pytest.raises(InputError, match="parameter 'alpha' must be of type float, got 'strong'"):
        api.create_task("nst.style_transfer", **params)
    params, _ = translate.split_params({"method": "adain", "typo": "1"})
    with pytest.raises(InputError, match="unknown parameter"):
        api.create_task("nst.style_transfer", **params)


def test_third_party_parameters_appear_in_the_string_map(third_party_plugin: Path) -> None:
    values = translate.default_strings()
    assert values["invert_strength"] == "1.0"
    params, _ = translate.split_params({**values, "method": "invert"})
    assert params["invert_strength"] == "1.0" and "alpha" not in params


def test_images_both_ways() -> None:
    rgb = (np.random.default_rng(0).random((12, 16, 3)) * 255).astype(np.uint8)
    pic = translate.array_to_picture(rgb, "content")
    assert np.array_equal(translate.picture_to_array(pic), rgb)
    grey = translate.array_to_picture(rgb[..., 0], "content")
    assert grey.rgb.shape == (3, 12, 16)
    rgba = np.dstack([rgb, np.full((12, 16), 9, np.uint8)])
    assert translate.picture_to_array(translate.array_to_picture(rgba, "c")).shape == (12, 16, 3)
    mask = translate.array_to_mask(
        np.where(np.arange(16) < 8, 0, 255).astype(np.uint8)[None].repeat(12, 0)
    )
    assert mask is not None and mask.shape == (12, 16) and float(mask.sum()) == 12 * 8
    assert translate.array_to_mask(None) is None


def test_bad_images_are_named() -> None:
    with pytest.raises(InputError, match="input 'content' has no image"):
        translate.array_to_picture(np.zeros((0, 0, 3), np.uint8), "content")
    with pytest.raises(InputError, match="input 'content': unsupported image dtype int64"):
        translate.array_to_picture(np.zeros((4, 4, 3), np.int64), "content")
    with pytest.raises(InputError, match="no style image: connect one to input 1"):
        translate.style_pictures([None], [])


def test_styles_from_inputs_win_over_paths(tmp_path: Path) -> None:
    save_image(Picture(make_image(10, 10, "art")), tmp_path / "a.png")
    from_path = translate.style_pictures([None], [str(tmp_path / "a.png")])
    assert from_path[0].rgb.shape == (3, 10, 10)
    arr = np.zeros((6, 6, 3), np.uint8)
    from_input = translate.style_pictures([arr], [str(tmp_path / "a.png")])
    assert len(from_input) == 1 and torch.all(from_input[0].rgb == 0)


def test_model_name_is_ikomias_name_for_a_fast_model() -> None:
    assert translate.from_ikomia_names({"model_name": "the_wave"}) == {
        "model": "the_wave",
        "method": "fast",
    }
    given = translate.from_ikomia_names({"model_name": "udnie", "method": "fast", "size": "64"})
    assert given == {"model": "udnie", "method": "fast", "size": "64"}
    assert translate.needs_styles("adain") and not translate.needs_styles("fast")
