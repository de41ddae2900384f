"""The content hash every weights file records and every load checks: one definition, so a
decoder and a style model are checked alike."""

from __future__ import annotations

import hashlib

import torch


def weights_hash(tensors: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes of the tensors whose names start with one
    of `prefixes`, in name order (optimizer state and the like are left out)."""
    digest = hashlib.sha256()
    for name in sorted(k for k in tensors if k.startswith(prefixes)):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        # reshape: a 1x1 convolution in channels_last is "contiguous" with a last stride > 1
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
