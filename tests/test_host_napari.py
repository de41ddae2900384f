"""napari host: the npe2 manifest, the layer conversions, the dock widget, a real viewer.

Most tests drive the dock widget on napari's `ViewerModel` with Qt's offscreen platform: that is
the whole widget (controls, worker thread, progress, cancel, notifications, layers) without an
OpenGL canvas, so it runs anywhere napari is installed. The last test opens a real
`napari.Viewer` from the manifest and takes a screenshot; it needs a display (CI runs the suite
under xvfb-run). napari is the `napari` extra: locally its absence skips this module, in CI
(CI=true) it fails, as does a missing display.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nst_plugin import plugins
from nst_plugin.engine.errors import InputError
from tests.conftest import make_image

IN_CI = os.environ.get("CI") == "true"
HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
if not HAS_DISPLAY:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
with warnings.catch_warnings():  # npe2's pydantic-v1-style fields warn on import; not ours
    warnings.simplefilter("ignore", DeprecationWarning)
    if IN_CI:
        import napari  # the extra must be installed in CI: fail loudly, never skip
    else:
        napari = pytest.importorskip("napari")
    import npe2
    from napari.components import ViewerModel
    from napari.layers import Image, Labels
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QApplication

    from nst_plugin_hosts.napari._convert import layer_to_mask, layer_to_picture, result_layer_data
    from nst_plugin_hosts.napari._widget import StyleTransferWidget

MANIFEST = Path(__file__).resolve().parents[1] / "hosts" / "napari" / "napari.yaml"
TINY_OPT = {"method": "optimization", "size": 32, "iterations": 3, "scales": 1}


@pytest.fixture(scope="module")
def qapp() -> QApplication:
    return QApplication.instance() or QApplication([])


@pytest.fixture
def notes() -> Any:
    """Notifications napari would show, as (severity, message)."""
    seen: list[tuple[str, str]] = []

    def take(event: Any) -> None:
        seen.append((str(event.severity), event.message))

    notification_manager.notification_ready.connect(take)
    yield seen
    notification_manager.notification_ready.disconnect(take)


def rgb8(h: int, w: int, kind: str = "photo", seed: int = 0) -> np.ndarray:
    return (make_image(h, w, kind, seed).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def wait(widget: StyleTransferWidget, qapp: QApplication, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while widget.worker is not None and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    qapp.processEvents()
    assert widget.worker is None, "the worker did not finish"


def make_widget(qapp: QApplication, **params: Any) -> tuple[ViewerModel, StyleTransferWidget]:
    viewer = ViewerModel()
    widget = StyleTransferWidget(viewer)
    for name, value in params.items():
        widget.controls[name].value = value
    return viewer, widget


# ---------------------------------------------------------------------------------------------
# Manifest


def test_manifest_validates_and_is_found_by_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(MANIFEST), "--imports"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("nst-plugin")  # through the `napari.manifest` entry point
    widgets = manifest.contributions.widgets or []
    assert [w.display_name for w in widgets] == ["Neural style transfer"]


# ---------------------------------------------------------------------------------------------
# Layers <-> pictures


def test_layers_read_as_seen_uint8_float_grey_rgba() -> None:
    data = rgb8(12, 16)
    pic = layer_to_picture(Image(data, rgb=True), "content")
    assert pic.rgb.shape == (3, 12, 16)
    assert np.array_equal((pic.rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8), data)
    grey = np.linspace(0, 4000, 12 * 16, dtype=np.float32).reshape(12, 16)  # e.g. a microscope
    pic = layer_to_picture(Image(grey, contrast_limits=(0, 4000)), "content")
    assert float(pic.rgb.min()) == 0.0 and float(pic.rgb.max()) == pytest.approx(1.0)
    assert pic.rgb[0].equal(pic.rgb[2])  # grey goes to all three channels
    rgba = np.concatenate([data, np.full((12, 16, 1), 128, np.uint8)], axis=-1)
    pic = layer_to_picture(Image(rgba, rgb=True), "content")
    assert pic.alpha is not None and float(pic.alpha.mean()) == pytest.approx(128 / 255)


def test_result_layer_matches_content_dtype_and_overlays_it() -> None:
    content = Image(
        np.random.default_rng(0).random((24, 32)).astype(np.float32),
        scale=(0.5, 0.5),
        translate=(3, 4),
    )
    pic = layer_to_picture(content, "content")
    from nst_plugin.images import resize_longer

    small = resize_longer(pic, 16)
    data, kwargs, kind = result_layer_data(small, content, "out")
    assert kind == "image" and data.dtype == np.float32 and data.shape == (12, 16, 3)
    assert kwargs["rgb"] is True and kwargs["scale"] == [1.0, 1.0]  # 2x smaller, 2x the scale
    assert kwargs["translate"] == [3.0, 4.0]
    data8, _, _ = result_layer_data(pic, Image(rgb8(24, 32), rgb=True), "out")
    assert data8.dtype == np.uint8


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            Labels(np.zeros((8, 8), np.int32), name="cells"),
            "the content must be an Image layer; 'cells' is a Labels layer",
        ),
        (
            Image(np.zeros((5, 8, 8), np.float32), name="stack"),
            "the content layer 'stack' is a 3-D greyscale image of shape (5, 8, 8)",
        ),
        (None, "choose an Image layer as the content"),
    ],
)
def test_wrong_layers_are_named(layer: Any, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        layer_to_picture(layer, "content")


def test_masks_from_labels_and_images() -> None:
    labels = np.zeros((8, 8), np.int32)
    labels[:, 4:] = 3
    assert layer_to_mask(Labels(labels)).sum() == 32
    assert layer_to_mask(None) is None


# ---------------------------------------------------------------------------------------------
# The dock widget, on a ViewerModel


def test_widget_controls_are_the_schema_and_follow_the_method(qapp: QApplication) -> None:
    from nst_plugin import api

    viewer, widget = make_widget(qapp)
    names = [p["name"] for p in api.list_tasks()["nst.style_transfer"]["params"]]
    assert list(widget.controls) == names
    assert widget.controls["method"].choices == ("optimization", "adain", "fast")
    widget.controls["method"].value = "adain"
    assert widget.controls["alpha"].native.isHidden() is False
    assert widget.controls["iterations"].native.isHidden() is True
    params = api.list_tasks()["nst.style_transfer"]["params"]
    adain = {p["name"] for p in params if not p.get("methods") or "adain" in p["methods"]}
    assert set(widget.params()) == adain and "iterations" not in adain and "alpha" in adain


def test_widget_runs_grey_float_content_and_leaves_inputs_alone(
    qapp: QApplication, notes: list[tuple[str, str]]
) -> None:
    viewer, widget = make_widget(qapp, **TINY_OPT)
    grey = make_image(24, 32, "photo")[0].numpy() * 1000.0  # float, not in 0..1
    content = viewer.add_image(grey, name="cells", contrast_limits=(0, 1000))
    style = viewer.add_image(rgb8(20, 20, "art"), name="art", rgb=True)
    before = (content.data.copy(), style.data.copy())
    widget.content.value, widget.style.value = content, style
    assert widget.run() is not None
    wait(widget, qapp)
    assert [layer.name for layer in viewer.layers] == ["cells", "art", "cells (optimization)"]
    result = viewer.layers["cells (optimization)"]
    assert result.rgb and result.data.dtype == np.float32 and result.data.shape == (24, 32, 3)
    assert np.array_equal(content.data, before[0]) and np.array_equal(style.data, before[1])
    assert widget.status.value == "Added layer 'cells (optimization)'."
    assert ("info", "Added layer 'cells (optimization)'.") in notes


def test_widget_adain_uint8_rgb_with_style_file(
    qapp: QApplication, random_decoder_file: Path, tmp_path: Path
) -> None:
    from PIL import Image as PILImage

    PILImage.fromarray(rgb8(30, 30, "art", seed=4)).save(tmp_path / "art.png")
    viewer, widget = make_widget(qapp, method="adain", size=16, decoder=str(random_decoder_file))
    widget.content.value = viewer.add_image(rgb8(24, 32), name="photo", rgb=True)
    widget.style_file.value = tmp_path / "art.png"
    widget.run()
    wait(widget, qapp)
    result = viewer.layers["photo (adain)"]
    assert result.data.dtype == np.uint8 and result.data.shape == (12, 16, 3)
    assert list(result.scale) == [2.0, 2.0]  # drawn over the 24x32 photo


def test_fast_picks_a_model_with_painting_thumbnails_and_needs_no_style(
    style_model_package: Path, qapp: QApplication
) -> None:
    viewer, widget = make_widget(qapp, method="fast", size=0)
    picker = widget.controls["model"]
    assert {"dots", "waves"} <= set(picker.choices)
    box = picker.native
    index = box.findText("waves")
    assert not box.itemIcon(index).isNull() and "A. Painter" in box.itemData(index, 3)
    assert widget.style.native.isHidden() and widget.style_file.native.isHidden()
    picker.value = "starry_night"  # the shipped preset
    widget.content.value = viewer.add_image(rgb8(24, 33), name="photo", rgb=True)
    assert widget.run() is not None
    wait(widget, qapp)
    assert viewer.layers["photo (fast)"].data.shape == (24, 33, 3)


def test_third_party_method_appears_in_the_widget(
    third_party_plugin: Path, qapp: QApplication
) -> None:
    viewer, widget = make_widget(qapp)
    assert "invert" in widget.controls["method"].choices
    assert widget.controls["invert_strength"].native.isHidden() is True
    widget.controls["method"].value = "invert"
    assert widget.controls["invert_strength"].native.isHidden() is False
    widget.controls["size"].value = 0
    photo = rgb8(12, 16)
    widget.content.value = viewer.add_image(photo, name="photo", rgb=True)
    widget.style.value = viewer.add_image(rgb8(8, 8, "art"), name="art", rgb=True)
    widget.run()
    wait(widget, qapp)
    assert np.abs(viewer.layers["photo (invert)"].data.astype(int) - (255 - photo)).max() <= 1


def test_bad_inputs_are_notifications_not_tracebacks(
    qapp: QApplication, notes: list[tuple[str, str]]
) -> None:
    viewer, widget = make_widget(qapp, **TINY_OPT)
    widget.content.value = viewer.add_image(rgb8(24, 32), name="photo", rgb=True)
    assert widget.run() is None
    assert notes[-1] == ("error", "Choose a style layer or a style file")
    widget.style.value = viewer.add_image(rgb8(20, 20, "art"), name="art", rgb=True)
    widget.mask.value = viewer.add_labels(np.ones((10, 10), np.int32), name="sky")
    assert widget.run() is not None  # shapes are checked by the task, on the worker
    wait(widget, qapp)
    severity, message = notes[-1]
    assert severity == "error"
    assert message == ("Mask is 10x10 but the content image is 32x24; they must match")
    widget.mask.value = None
    widget.content.value = viewer.add_image(np.zeros((3, 8, 8), np.float32), name="stack")
    assert widget.run() is None
    assert "'stack' is a 3-D greyscale image" in notes[-1][1]
    widget.controls["content_weight"].value = "lots"
    widget.content.value = viewer.layers["photo"]
    assert widget.run() is None
    assert notes[-1] == ("error", "Parameter 'content_weight' must be of type float, got 'lots'")
    assert all("Traceback" not in m for _, m in notes)
    assert len(viewer.layers) == 4  # nothing added by a failed run


def test_cancel_keeps_the_last_image(qapp: QApplication) -> None:
    viewer, widget = make_widget(qapp, **{**TINY_OPT, "iterations": 200, "optimizer": "adam"})
    widget.content.value = viewer.add_image(rgb8(24, 32), name="photo", rgb=True)
    widget.style.value = viewer.add_image(rgb8(20, 20, "art"), name="art", rgb=True)
    widget.run()
    deadline = time.monotonic() + 120
    while not widget.status.value.startswith("step 2/") and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    widget.cancel()
    wait(widget, qapp)
    assert widget.status.value == "Stopped; the last image was added as a layer."
    assert viewer.layers[-1].name == "photo (optimization, stopped)"
    assert widget.run_button.enabled and not widget.cancel_button.enabled


# ---------------------------------------------------------------------------------------------
# A real napari window (needs a display: CI provides one with xvfb-run)


@pytest.mark.skipif(not HAS_DISPLAY and not IN_CI, reason="no display (CI runs under xvfb-run)")
def test_real_viewer_from_the_plugin_menu_and_screenshot(tmp_path: Path, qapp: Any) -> None:
    assert HAS_DISPLAY, "CI must provide a display: run the suite under xvfb-run"
    from nst_plugin_hosts.napari.screenshot import run_in_viewer, save_small_png

    plugins.reset()
    viewer = napari.Viewer(show=True)
    try:
        widget = run_in_viewer(viewer, rgb8(48, 64), rgb8(40, 40, "art"), TINY_OPT, timeout=300)
        assert widget.last_message == "Added layer 'photo (optimization)'."
        assert viewer.layers[-1].data.shape == (24, 32, 3)
        shot = viewer.screenshot(canvas_only=False, flash=False)
        assert shot.ndim == 3 and shot.shape[0] > 200 and shot[..., :3].std() > 5
        save_small_png(shot, tmp_path / "napari.png")
        assert (tmp_path / "napari.png").stat().st_size < 300_000
    finally:
        viewer.close()
