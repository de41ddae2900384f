"""napari host: an npe2 plugin whose dock widget runs the style-transfer task.

`napari.yaml` (declared through the `napari.manifest` entry point) names one widget,
`StyleTransferWidget` in `_widget.py`. Pixel and layer conversions live in `_convert.py`, which
needs napari's layer classes but no Qt, so they are testable without a display. `screenshot.py`
opens a real viewer with the widget and saves the window (the docs' screenshot).
"""
