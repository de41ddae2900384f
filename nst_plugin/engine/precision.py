"""When to compute in bfloat16: on CUDA, and on CPUs with native bf16 (AVX-512 BF16 or AMX).

Elsewhere bf16 is emulated and slower than fp32, so autocast stays off. `NST_BF16=0` turns it
off everywhere (for comparisons); `NST_BF16=1` forces it on.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch


@functools.cache
def cpu_has_native_bf16() -> bool:
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def bf16_enabled(device: torch.device) -> bool:
    forced = os.environ.get("NST_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_has_native_bf16()


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where it pays (see the module notes), else a no-op context."""
    if not bf16_enabled(device):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
