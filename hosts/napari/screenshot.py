"""Open napari with the plugin's dock widget, stylize the example photo, save a window screenshot.

    xvfb-run -a -s "-screen 0 1400x900x24" \
        python -m nst_plugin_hosts.napari.screenshot docs/images/napari.png

The widget is opened the way a user opens it (Plugins menu -> npe2 manifest -> widget), so this
also shows that the manifest and entry point work. Used for docs/images/ and by the display test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

PLUGIN, WIDGET = "nst-plugin", "Neural style transfer"


def run_in_viewer(
    viewer: Any, content: np.ndarray, style: np.ndarray, params: dict[str, Any], timeout: float
) -> Any:
    """Add the layers, open the dock widget from the manifest, set params, run, wait; the widget."""
    from qtpy.QtWidgets import QApplication

    content_layer = viewer.add_image(content, name="photo", rgb=content.ndim == 3)
    style_layer = viewer.add_image(style, name="painting", rgb=style.ndim == 3)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.content.value, widget.style.value = content_layer, style_layer
    for name, value in params.items():
        widget.controls[name].value = value
    if widget.run() is None:
        raise RuntimeError(widget.last_message)
    deadline = time.monotonic() + timeout
    while widget.worker is not None and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.worker is not None:
        raise TimeoutError(f"style transfer did not finish in {timeout:g} s")
    QApplication.processEvents()
    return widget


def save_small_png(array: np.ndarray, path: Path, width: int = 1100) -> None:
    """A PNG of the screenshot, scaled and palette-quantized to stay small for the docs."""
    img = PILImage.fromarray(array[..., :3])
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), PILImage.LANCZOS)
    img.quantize(colors=256, method=PILImage.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=80)
    args = parser.parse_args()
    import napari

    from nst_plugin import example_painting, example_photo, to_numpy

    photo = to_numpy(example_photo("astronaut"))
    painting = to_numpy(example_painting("swirls", size=256))
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    params = {"method": "optimization", "size": args.size, "iterations": args.iterations}
    run_in_viewer(viewer, photo, painting, params, timeout=1800)
    viewer.layers["photo"].visible = False
    viewer.layers["painting"].visible = False
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_small_png(shot, args.out)
    viewer.close()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
