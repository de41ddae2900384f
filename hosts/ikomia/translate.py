"""What the Ikomia wrapper translates, without Ikomia: parameters as strings, images as arrays.

Ikomia keeps every task parameter as a string (`task.set_parameters({"alpha": "0.8"})`) and
hands images as numpy arrays (H, W, 3) RGB uint8, or (H, W) grey. This module maps the task's
parameter schema to and from that string map and numpy images to and from `Picture`s, so it can
be tested in any environment and the Ikomia task class (`task.py`) stays a thin shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from nst_plugin import InputError, Picture, api, from_numpy, load_image, to_numpy

TASK_ID = "nst.style_transfer"
# Ikomia-only parameter: style images by path, for workflows whose only input is the photo
# (as Ikomia's own style-transfer task takes a model name). Style image inputs take precedence.
STYLE_PARAM = "style"
STYLE_SEPARATOR = ";"
# Ikomia's own style-transfer task names its model `model_name`; ours takes that name too: it is
# the task's `model`, and given without a method it means method "fast".
MODEL_PARAM = "model_name"


def schema() -> list[dict[str, Any]]:
    return api.list_tasks()[TASK_ID]["params"]


def to_string(value: Any) -> str:
    """One typed value as Ikomia stores it: bools as 0/1 (as Ikomia's C++ tasks do)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(f"{v:g}" for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def default_strings() -> dict[str, str]:
    """Every parameter of every method, with its default, plus the style path: the task's map."""
    values = {p["name"]: to_string(p["default"]) for p in schema()}
    return {**values, STYLE_PARAM: ""}


def from_ikomia_names(params: Mapping[str, Any]) -> dict[str, Any]:
    """`model_name=X` as Ikomia users write it: the task's `model`, method fast unless given."""
    out = dict(params)
    if MODEL_PARAM in out:
        out["model"] = out.pop(MODEL_PARAM)
        out.setdefault("method", "fast")
    return out


def needs_styles(method: str) -> bool:
    return api.list_methods()[method]["needs_styles"] if method in api.list_methods() else True


def split_params(values: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(parameters for `create_task`, style paths) from Ikomia's string map.

    The map holds every method's parameters (Ikomia shows one flat list); only those that apply
    to the chosen method go to the task, which parses and checks them (strings included).
    Unknown names are passed on so the task rejects them by name.
    """
    by_name = {p["name"]: p for p in schema()}
    method = values.get("method", next(p["default"] for p in schema() if p["name"] == "method"))
    params: dict[str, str] = {}
    for name, value in values.items():
        if name == STYLE_PARAM:
            continue
        methods = by_name[name].get("methods") if name in by_name else None
        if methods and method not in methods:
            continue
        params[name] = value
    paths = [s.strip() for s in values.get(STYLE_PARAM, "").split(STYLE_SEPARATOR) if s.strip()]
    return params, paths


def array_to_picture(array: Any, what: str) -> Picture:
    """An Ikomia image (numpy HWC RGB or HW grey; uint8, uint16 or float 0..1) as a Picture."""
    if not isinstance(array, np.ndarray) or array.size == 0:
        raise InputError(f"input {what!r} has no image; connect an image or set it")
    try:
        return from_numpy(array)
    except InputError as exc:
        raise InputError(f"input {what!r}: {exc}") from None


def array_to_mask(array: Any) -> torch.Tensor | None:
    """An Ikomia mask image (binary 0/255 or grey) as an (H, W) mask in 0..1; None if empty."""
    if not isinstance(array, np.ndarray) or array.size == 0:
        return None
    return array_to_picture(array, "mask").rgb.mean(0)


def style_pictures(arrays: list[Any], paths: list[str]) -> list[Picture]:
    """Styles from image inputs when any is set, else from the `style` parameter's paths."""
    pictures = [
        array_to_picture(a, "style") for a in arrays if isinstance(a, np.ndarray) and a.size
    ]
    if not pictures:
        pictures = [load_image(p) for p in paths]
    if not pictures:
        raise InputError(
            f"no style image: connect one to input 1 or set parameter {STYLE_PARAM!r} to an "
            f"image path (several separated by '{STYLE_SEPARATOR}')"
        )
    return pictures


def picture_to_array(picture: Picture) -> np.ndarray:
    """The result as Ikomia's image: RGB uint8 (H, W, 3); alpha dropped (Ikomia is RGB)."""
    return np.ascontiguousarray(to_numpy(Picture(picture.rgb)))
