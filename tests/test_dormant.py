"""Dormant units of the lite network: found, recycled, and the output left as it was."""

from __future__ import annotations

import torch

from nst_plugin.engine import dormant
from nst_plugin.engine.adain import LiteNet, style_moments
from tests.conftest import make_image


def _net_with_dead_units() -> tuple[LiteNet, dict[str, list[int]]]:
    """A small random lite network with units killed in each kind of place recycling handles."""
    torch.manual_seed(0)
    net = LiteNet(widths=(4, 8, 8, 16)).eval()
    killed = {"encoder.2.b": [0, 3], "decoder.0.b": list(range(8)), "decoder.1.a": [1]}
    by_name = {u.name: u for u in dormant.units(net)}
    with torch.no_grad():
        for name, channels in killed.items():
            conv = by_name[name].conv
            assert conv.bias is not None
            conv.bias[channels] = -1e3
    return net, killed


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    photos = torch.stack([make_image(40, 48, "photo", seed=i) for i in range(2)])
    styles = torch.stack([make_image(40, 48, "art", seed=i) for i in range(2)])
    return photos, styles


def test_dormant_units_are_found_and_recycled_without_changing_the_output():
    net, killed = _net_with_dead_units()
    photos, styles = _images()
    dead = dormant.dormant(net, photos, styles)
    for name, channels in killed.items():
        assert dead[name][channels].all(), name  # (a random network has a few dead of its own)
    with torch.no_grad():
        before = net(photos, style_moments(None, styles, net))
    gen = torch.Generator().manual_seed(1)
    recycled = dormant.recycle(net, photos, styles, generator=gen)
    assert recycled == sum(int(d.sum()) for d in dead.values())
    with torch.no_grad():
        after = net(photos, style_moments(None, styles, net))
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    again = dormant.dormant(net, photos, styles)
    assert not any(again[name][channels].any() for name, channels in killed.items())


def test_recycled_units_learn_and_their_adam_moments_restart():
    net, killed = _net_with_dead_units()
    photos, styles = _images()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        net(photos, style_moments(None, styles, net)).square().mean().backward()
        optimizer.step()

    step()
    by_name = {u.name: u for u in dormant.units(net)}
    unit = by_name["decoder.0.b"]
    moments = optimizer.state[unit.conv.weight]["exp_avg_sq"]
    assert moments.abs().sum() == 0  # all its channels dead: no gradient reached them
    reader = by_name["decoder.1.a"].readers[0].weight
    live = [c for c in range(reader.shape[1]) if c not in killed["decoder.1.a"]]
    square = optimizer.state[reader]["exp_avg_sq"][:, live]
    typical = square[square > 0].median()
    assert typical > 0
    dormant.recycle(net, photos, styles, optimizer)
    assert optimizer.state[unit.conv.weight]["exp_avg_sq"][killed["decoder.0.b"]].sum() == 0
    # Outgoing weights restart at their live neighbours' second moment, not at zero (which,
    # late in training, would make their first Adam steps several times the learning rate).
    restarted = optimizer.state[reader]["exp_avg_sq"][:, killed["decoder.1.a"]]
    torch.testing.assert_close(restarted, torch.full_like(restarted, typical.item()))
    assert optimizer.state[reader]["exp_avg"][:, killed["decoder.1.a"]].abs().sum() == 0
    before = unit.conv.weight.detach().clone()
    step()
    assert (unit.conv.weight - before).abs().sum() > 0  # alive again: its weights moved


def test_recycling_the_decoder_only_leaves_the_encoders_dead_units_alone():
    net, killed = _net_with_dead_units()
    photos, styles = _images()
    dead = dormant.dormant(net, photos, styles)
    recycled = dormant.recycle(net, photos, styles, encoder=False)
    assert recycled == sum(int(d.sum()) for name, d in dead.items() if name.startswith("decoder"))
    again = dormant.dormant(net, photos, styles)
    assert again["encoder.2.b"][killed["encoder.2.b"]].all()
    assert not again["decoder.0.b"][killed["decoder.0.b"]].any()
