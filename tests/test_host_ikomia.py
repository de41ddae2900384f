"""The Ikomia wrapper in real Ikomia workflows (ikomia 0.16.1, its own venv: `make ikomia-test`).

Ikomia pins numpy 2.4 and brings mlflow, so it lives in `.venv-ikomia`; the main venv does not
collect this module (tests/conftest.py). `make test` runs it there with NST_REQUIRE_IKOMIA=1, so
a missing Ikomia is an import failure, never a skip. The translation layer is tested in both venvs
(`test_host_ikomia_translate.py`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ikomia import core, dataprocess  # noqa: E402  (collected only where Ikomia is: conftest)
from ikomia.dataprocess.workflow import Workflow  # noqa: E402

from nst_plugin.engine.errors import InputError
from nst_plugin.images import Picture, save_image
from nst_plugin_hosts.ikomia import NAME, nst_style_transfer, register  # noqa: E402
from tests.conftest import make_image

TINY_OPT = {"method": "optimization", "size": 32, "iterations": 2, "scales": 1}


@pytest.fixture
def photo() -> np.ndarray:
    return (make_image(48, 64, "photo").permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def art_file(tmp_path: Path) -> Path:
    return save_image(Picture(make_image(40, 40, "art", seed=1)), tmp_path / "art.png")


def output(task: Any) -> np.ndarray:
    io = task.get_output(0)
    assert io.is_data_available()
    return io.get_image()


def test_added_like_ikomias_own_style_transfer(photo: np.ndarray, art_file: Path) -> None:
    """`wf.add_task(ik.infer_neural_style_transfer(model_name=...), auto_connect=True)`, ours."""
    wf = Workflow()
    task = wf.add_task(nst_style_transfer(style=str(art_file), **TINY_OPT), auto_connect=True)
    before = photo.copy()
    wf.run_on(array=photo)
    out = output(task)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(photo, before)
    assert task.get_parameters()["iterations"] == "2"  # Ikomia's strings


def test_a_named_model_like_ikomias_model_name(
    photo: np.ndarray, style_model_package: Path
) -> None:
    """`model_name=` as with Ikomia's own task: no style input, output 1 the painting."""
    wf = Workflow()
    task = wf.add_task(nst_style_transfer(model_name="the_wave", size=0), auto_connect=True)
    wf.run_on(array=photo)
    assert output(task).shape == photo.shape
    reference = task.get_output(1)  # the shipped preset's painting, as Ikomia's task gives
    assert reference.is_data_available()
    h, w, c = reference.get_image().shape
    assert c == 3 and min(h, w) > 100


def test_registered_by_name_with_string_params(
    photo: np.ndarray, art_file: Path, random_decoder_file: Path, tmp_path: Path
) -> None:
    register()
    register()  # idempotent
    from ikomia.dataprocess.registry import ik_registry

    assert NAME in ik_registry.get_algorithms()
    wf = Workflow()
    task = wf.add_task(
        name=NAME,
        params={
            "method": "adain",
            "size": "16",
            "alpha": "0.5",
            "decoder": str(random_decoder_file),
            "style": str(art_file),
        },
        auto_connect=True,
    )
    path = save_image(Picture(make_image(24, 32, "photo")), tmp_path / "photo.png")
    wf.run_on(path=str(path))
    assert output(task).shape == (12, 16, 3)


def test_style_and_mask_as_workflow_inputs(photo: np.ndarray, random_decoder_file: Path) -> None:
    wf = Workflow()
    task = wf.add_task(
        nst_style_transfer(method="adain", size=0, decoder=str(random_decoder_file)),
        auto_connect=True,
    )
    style = (make_image(30, 30, "art").permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[:, 32:] = 255
    for index, array, kind in ((1, style, "IMAGE"), (2, mask, "IMAGE_BINARY")):
        wf.add_input(dataprocess.CImageIO(getattr(core.IODataType, kind)))
        wf.set_image_input(array=array, index=index)
        wf.connect_tasks(wf.root(), task, [(index, index)])
    wf.run_on(array=photo)
    assert output(task).shape == photo.shape


def test_third_party_method_in_the_parameters(
    third_party_plugin: Path, photo: np.ndarray, art_file: Path
) -> None:
    task = nst_style_transfer(method="invert", size=0, style=str(art_file))
    assert task.get_parameters()["invert_strength"] == "1.0"
    wf = Workflow()
    wf.add_task(task, auto_connect=True)
    wf.run_on(array=photo)
    assert np.abs(output(task).astype(int) - (255 - photo.astype(int))).max() <= 1


def test_stop_ends_the_run_without_output(photo: np.ndarray, art_file: Path) -> None:
    task = nst_style_transfer(
        style=str(art_file), **{**TINY_OPT, "iterations": 500, "optimizer": "adam"}
    )
    wf = Workflow()
    wf.add_task(task, auto_connect=True)
    timer = threading.Timer(2.0, task.stop)
    timer.start()
    wf.run_on(array=photo)  # returns once the task sees the stop, after the current step
    timer.join()
    assert not task.get_output(0).is_data_available()


def test_bad_parameters_fail_in_python_before_the_workflow() -> None:
    with pytest.raises(InputError, match="parameter 'alpha' must be within 0..1, got '2'"):
        nst_style_transfer(method="adain", alpha=2)
    with pytest.raises(InputError, match="parameter 'alpha' applies to method adain"):
        nst_style_transfer(method="optimization", alpha=0.5)
    with pytest.raises(InputError, match="unknown parameter"):
        nst_style_transfer(colour="blue")


@pytest.mark.parametrize(
    ("params", "mask", "message"),
    [
        ({"style": ""}, None, "no style image: connect one to input 1 or set parameter 'style'"),
        ({}, np.ones((10, 10), np.uint8), "mask is 10x10 but the content image is 64x48"),
        ({"alpha": "lots", "method": "adain"}, None, "parameter 'alpha' must be of type float"),
        ({"style": "/no/such/art.png"}, None, "image file not found: /no/such/art.png"),
    ],
)
def test_bad_inputs_are_ikomias_runtime_errors_with_our_message(
    photo: np.ndarray, art_file: Path, params: dict[str, str], mask: Any, message: str
) -> None:
    task = nst_style_transfer(style=str(art_file), **TINY_OPT)
    task.set_parameters(params)
    wf = Workflow()
    wf.add_task(task, auto_connect=True)
    if mask is not None:
        wf.add_input(dataprocess.CImageIO(core.IODataType.IMAGE))
        wf.set_image_input(array=mask, index=1)
        wf.connect_tasks(wf.root(), task, [(1, 2)])
    with pytest.raises(RuntimeError) as info:
        wf.run_on(array=photo)
    text = str(info.value)
    # Ikomia's form: "<class ...>: message: <the raising line> (Code N)". Ours names the problem
    # first; the one line Ikomia appends is the wrapper's raise, not a traceback of the engine.
    assert text.startswith(
        "<class 'nst_plugin_hosts.ikomia.task.StyleTransferError'>: nst_style_transfer: "
    )
    assert message in text
    assert "Traceback" not in text and "nst_plugin" not in text.split(message)[1]
