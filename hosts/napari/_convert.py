"""napari layers <-> the task's images, with no Qt: what the dock widget hands the task and back.

napari image layers hold any dtype and any range; what a user sees is the data mapped through the
layer's contrast limits. So uint8 data is read as 0..255 (exactly what a photo is) and every other
dtype is read through its contrast limits, which makes a float image in 0..1, a float image in
0..4000 and a 12-bit microscope frame all come out as the picture on screen. Errors are the
task's own `InputError`, worded for a napari user (layers, not tensors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from napari.layers import Image, Labels, Layer

from nst_plugin import InputError, Picture, from_numpy, load_image, to_numpy


def _plane(layer: Image, what: str) -> np.ndarray:
    """The layer's pixels as one 2-D plane (H, W) or (H, W, C); stacks are refused by name."""
    data = layer.data[0] if layer.multiscale else layer.data
    arr = np.asarray(data)  # dask and zarr arrays load here
    planar = 3 if layer.rgb else 2
    if arr.ndim != planar:
        kind = "RGB image" if layer.rgb else "greyscale image"
        raise InputError(
            f"the {what} layer {layer.name!r} is a {arr.ndim - planar + 2}-D {kind} of shape "
            f"{arr.shape}; choose a 2-D image (greyscale or RGB)"
        )
    if arr.size == 0:
        raise InputError(f"the {what} layer {layer.name!r} is empty")
    return arr


def layer_to_picture(layer: Layer | None, what: str) -> Picture:
    """An Image layer as a Picture: uint8 as is, any other dtype through its contrast limits."""
    if layer is None:
        raise InputError(f"choose an Image layer as the {what}")
    if not isinstance(layer, Image):
        raise InputError(
            f"the {what} must be an Image layer; {layer.name!r} is a {type(layer).__name__} layer"
        )
    arr = _plane(layer, what)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise InputError(f"the {what} layer {layer.name!r} has unsupported dtype {arr.dtype}")
        lo, hi = (float(v) for v in layer.contrast_limits)
        arr = (arr.astype(np.float32) - lo) / max(hi - lo, 1e-12)
        arr = np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)
    return from_numpy(arr)


def style_picture(layer: Layer | None, path: str | None, what: str = "style") -> Picture:
    """A style from a file when one is given (styles often live on disk), else from a layer."""
    if path:
        return load_image(path)
    return layer_to_picture(layer, what)


def layer_to_mask(layer: Layer | None) -> torch.Tensor | None:
    """A Labels layer (label > 0 is 1) or an Image layer (its grey level) as an (H, W) mask."""
    if layer is None:
        return None
    if isinstance(layer, Labels):
        arr = np.asarray(layer.data)
        if arr.ndim != 2:
            raise InputError(f"the mask layer {layer.name!r} must be 2-D, got shape {arr.shape}")
        return torch.from_numpy((arr > 0).astype(np.float32))
    if isinstance(layer, Image):
        return layer_to_picture(layer, "mask").rgb.mean(0)
    raise InputError(
        f"the mask must be a Labels or Image layer; {layer.name!r} is a {type(layer).__name__} "
        "layer"
    )


def result_layer_data(
    picture: Picture, content: Image, name: str
) -> tuple[np.ndarray, dict[str, Any], str]:
    """(data, kwargs, 'image') for `viewer.add_layer`/`Layer.create`: a new RGB layer.

    uint8 content gives a uint8 result, anything else float32 in 0..1. The result sits on top of
    the content: same translate, and a scale that undoes a different output size, so the two
    overlay pixel for pixel in world coordinates.
    """
    if np.asarray(content.data[0] if content.multiscale else content.data).dtype == np.uint8:
        data = to_numpy(picture)
    else:
        planes = (
            picture.rgb if picture.alpha is None else torch.cat([picture.rgb, picture.alpha[None]])
        )
        data = planes.permute(1, 2, 0).float().cpu().numpy()
    in_h = content.data.shape[0] if not content.multiscale else content.data[0].shape[0]
    factor = in_h / data.shape[0]
    scale = [float(s) * factor for s in content.scale[-2:]]
    kwargs: dict[str, Any] = {
        "name": name,
        "rgb": True,
        "scale": scale,
        "translate": list(content.translate[-2:]),
    }
    if data.dtype != np.uint8:
        kwargs["contrast_limits"] = [0.0, 1.0]
    return data, kwargs, "image"
