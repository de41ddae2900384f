"""Built-in feature encoders: the offline Caffe VGG-19, and torchvision's for online users."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..engine import encoders
from ..hookspecs import hookimpl


@hookimpl
def register_encoders(register: Callable) -> None:
    for name, description in encoders.ENCODERS.items():
        register(name, functools.partial(encoders.load_encoder, name), description)
