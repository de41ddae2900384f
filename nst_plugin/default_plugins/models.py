"""Models placed on a device once per process, whatever task or parameter change asks again."""

from __future__ import annotations

import copy
import functools
import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..engine.checkpoints import load_decoder
from ..engine.encoders import VGGEncoder
from ..engine.errors import WeightsError
from ..shipped import SHIPPED_DECODER


@functools.cache
def encoder_on(name: str, pooling: str, device: str) -> VGGEncoder:
    from .. import plugins

    enc = plugins.get_encoder(name, pooling=pooling)
    # channels_last is oneDNN's (and cuDNN's) fast layout: 2-6x faster VGG passes on CPU.
    return copy.deepcopy(enc).to(device, memory_format=torch.channels_last)


@functools.lru_cache(maxsize=4)
def _decoder_on(path: str, mtime: float, device: str) -> tuple[torch.nn.Module, dict]:
    decoder, meta = load_decoder(path)
    return decoder.to(device, memory_format=torch.channels_last), meta


def decoder_on(path: str | None, device: str) -> tuple[torch.nn.Module, dict]:
    """The shipped decoder unless `path` names another; reloaded only if the file changed."""
    file = Path(path) if path else SHIPPED_DECODER
    if not file.is_file():
        raise WeightsError(
            f"AdaIN decoder file not found: {file}"
            + ("" if path else " (the package ships it; reinstall nst-plugin)")
        )
    return _decoder_on(str(file.resolve()), file.stat().st_mtime, device)


class StyleCache:
    """A small LRU keyed by image content: style statistics computed once for many contents."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()

    @staticmethod
    def key(tensor: torch.Tensor, *extra: Any) -> tuple:
        t = tensor.detach().float().cpu().contiguous()
        return (hashlib.sha1(t.numpy().tobytes()).hexdigest(), tuple(t.shape), *extra)

    def get(self, key: tuple, compute: Any) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = compute()
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value
