"""Which device to compute on: one rule for every host and command."""

from __future__ import annotations

import torch

from .engine.errors import InputError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; a named device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' was asked for but Apple MPS is not available")
    return torch.device(name)
