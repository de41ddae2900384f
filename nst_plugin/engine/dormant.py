"""Dormant ReLU units of a `LiteNet`, found and recycled without changing its output.

Why: at step 20,900 the lite network (trained at lr 5e-4) had lost most of its coarse units to
dead ReLUs: 17 of the deepest stage's 256 channels were ever positive, 19 of the third's 64, and
the decoder's first block was zero everywhere, so the deepest level, the 1/8 map AdaIN restyles
first, had no effect on the output at all. A unit whose ReLU is never positive gets no gradient
and never comes back by itself.

The recycling is ReDo's (Sokar, Agarwal, Castro & Evci, "The dormant neuron phenomenon in deep
reinforcement learning", ICML 2023): fresh incoming weights, zero outgoing weights, the Adam
moments of both reset (the second one to its neighbours' median, see `_reset_moments`); the
outgoing weights then learn from a live signal. Our departure: a decoder block's output is
summed with a skip before the next convolution reads it, so that convolution's weights serve the
skip too and cannot be zeroed. Such a unit instead gets zero incoming weights and a positive
bias: its output is a constant (alive, so its weights get gradients), and the next convolution's
bias absorbs the constant exactly (reflection padding and nearest upsampling keep a constant
constant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .adain import LiteNet, style_moments

# Output of a recycled decoder unit: about a live unit's typical activation here.
CONSTANT = 0.5


@dataclass(frozen=True)
class Unit:
    """One convolution followed by a ReLU, and the convolutions that read its output."""

    name: str
    conv: nn.Conv2d
    readers: tuple[nn.Conv2d, ...]
    shared: bool  # the readers also read a skip on the same channels: recycle as a constant


def units(net: LiteNet) -> list[Unit]:
    """Every ReLU-ended convolution of the network, with its readers (see `LiteNet`'s layout)."""
    enc, dec, skips = net.encoder, net.decoder, net.skips
    found = []
    for k, stage in enumerate(enc):
        convs = [m for m in stage if isinstance(m, nn.Conv2d)]
        if len(convs) == 2:
            found.append(Unit(f"encoder.{k}.a", convs[0], (convs[1],), shared=False))
        # a stage's map is read by the next stage and, restyled, by a skip (the deepest: by the
        # decoder's start)
        if k + 1 < len(enc):
            readers = (_first_conv(enc[k + 1]), skips[len(enc) - 2 - k])
        else:
            readers = (_first_conv(dec[0]),)
        found.append(Unit(f"encoder.{k}.b", convs[-1], readers, shared=False))
    for k, block in enumerate(dec):
        convs = [m for m in block if isinstance(m, nn.Conv2d)]
        found.append(Unit(f"decoder.{k}.a", convs[0], (convs[1],), shared=False))
        if k + 1 < len(dec):
            found.append(Unit(f"decoder.{k}.b", convs[1], (_first_conv(dec[k + 1]),), shared=True))
    return found


def _first_conv(block: nn.Module) -> nn.Conv2d:
    return next(m for m in block.modules() if isinstance(m, nn.Conv2d))


def dormant(net: LiteNet, photos: torch.Tensor, styles: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per unit, a bool per channel: never positive while `net` encodes `styles` and stylizes
    `photos` with them (batches of pixels in 0..1)."""
    return _survey(net, photos, styles, keep_inputs=False)[0]


@torch.no_grad()
def recycle(
    net: LiteNet,
    photos: torch.Tensor,
    styles: torch.Tensor,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    encoder: bool = True,
) -> int:
    """Recycle the units dormant on this batch (see `dormant`); returns how many.

    `encoder=False` leaves the encoder's dead units dead. Why: a fresh encoder channel goes
    through AdaIN, which divides it by its own spread on the photo (small for a fresh unit) and
    multiplies it by its spread on the painting, so it reaches its readers at full strength as
    soon as their zeroed weights move; on the lite network that sent the loss from 38 to 332 in
    28 steps. (The decoder's alone still sent it to 166 in 100 steps: a unit whose readers also
    read a skip restarts as a constant behind reader weights that are not zero.)

    Fresh weights are drawn as `nn.Conv2d` draws its own, from `generator` (so a resumed run
    repeats them); a fresh unit's bias then puts the median of its pre-activation on this batch
    at zero, so that it starts alive on about half of it (deep in a ReLU network on smooth
    images, a unit with zero bias is positive everywhere or nowhere, and half the fresh ones
    would be born dead).
    """
    dead, inputs = _survey(net, photos, styles, keep_inputs=True)
    chosen = [u for u in units(net) if encoder or not u.name.startswith("encoder")]
    todo = [(u, idx) for u in chosen if len(idx := dead[u.name].nonzero().flatten())]
    fresh = [(u, idx) for u, idx in todo if not u.shared]
    # In this order each fresh bias is computed from exactly what its unit will read: fresh
    # rows first, then every recycled channel's outgoing weights zeroed (fresh rows included),
    # then the biases, then the constants, which their readers' biases absorb.
    for unit, idx in fresh:
        w = torch.empty(len(idx), *unit.conv.weight.shape[1:])
        nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
        unit.conv.weight[idx] = w.to(unit.conv.weight)
    for unit, idx in fresh:
        for reader in unit.readers:
            reader.weight[:, idx] = 0.0
            _reset_moments(optimizer, reader.weight, (slice(None), idx))
    for unit, idx in fresh:
        conv, b = unit.conv, unit.conv.bias
        assert b is not None
        w = conv.weight[idx].float()
        z = [
            F.conv2d(x, w, stride=conv.stride).transpose(0, 1).flatten(1) for x in inputs[unit.name]
        ]
        b[idx] = -torch.cat(z, dim=1).median(dim=1).values.to(b)
    for unit, idx in todo:
        w, b = unit.conv.weight, unit.conv.bias
        assert b is not None
        if unit.shared:
            w[idx], b[idx] = 0.0, CONSTANT
            for reader in unit.readers:
                assert reader.bias is not None
                reader.bias -= CONSTANT * reader.weight[:, idx].sum(dim=(1, 2, 3))
        _reset_moments(optimizer, w, idx)
        _reset_moments(optimizer, b, idx)
    return sum(len(idx) for _, idx in todo)


@torch.no_grad()
def _survey(
    net: LiteNet, photos: torch.Tensor, styles: torch.Tensor, *, keep_inputs: bool
) -> tuple[dict[str, torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Which channels are never positive, and (with `keep_inputs`) what each unit's convolution
    read, in each pass (the styles' encoding, then the photos')."""
    table = units(net)
    ever: dict[str, torch.Tensor] = {}
    inputs: dict[str, list[torch.Tensor]] = {u.name: [] for u in table}
    hooks = []
    for unit in table:

        def record(_m: nn.Module, args: tuple, out: torch.Tensor, name: str = unit.name) -> None:
            seen = (out > 0).flatten(2).any(2).any(0)  # bias included: pre-ReLU > 0
            ever[name] = ever[name] | seen if name in ever else seen
            if keep_inputs:
                inputs[name].append(args[0].float())

        hooks.append(unit.conv.register_forward_hook(record))
    try:
        net(photos, style_moments(None, styles, net))
    finally:
        for h in hooks:
            h.remove()
    return {u.name: ~ever[u.name] for u in table}, inputs


def _reset_moments(
    optimizer: torch.optim.Optimizer | None, param: torch.Tensor, index: object
) -> None:
    """Zero the first moment; start the second at the median of the tensor's other live entries.

    Why not zero both, as ReDo does: thousands of steps in, Adam's bias correction is spent, so
    a zero second moment makes the first updates about lr * (1 - beta1) / sqrt(1 - beta2), three
    times the learning rate, for hundreds of steps. On the lite network that shook the output
    (its loss 38 -> 144) and killed most recycled units again within 250 steps. Their
    neighbours' typical second moment gives them their neighbours' step size instead."""
    state = optimizer.state.get(param) if optimizer is not None else None
    if state:
        state["exp_avg"][index] = 0.0
        square = state["exp_avg_sq"]
        live = square > 0  # an entry that never had a gradient has no step size to lend
        live[index] = False
        square[index] = square[live].median() if live.any() else 0.0
