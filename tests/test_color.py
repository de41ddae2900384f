"""Colour preservation: luminance transfer and colour-statistics matching."""

from __future__ import annotations

import pytest
import torch

from nst_plugin.engine.color import luminance_transfer, match_color, rgb_to_yiq, yiq_to_rgb
from nst_plugin.engine.errors import InputError


def _smooth(h: int = 24, w: int = 32, *, seed: int = 0) -> torch.Tensor:
    """A colourful but in-gamut image: gradients kept away from 0 and 1."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h).view(h, 1)
    x = torch.linspace(0, 1, w).view(1, w)
    base = torch.stack([0.3 + 0.4 * x * y, 0.5 + 0.2 * (x - y), 0.6 - 0.3 * y + 0 * x])
    return (base + 0.05 * torch.rand(3, h, w, generator=gen))[None]


def _stripes(h: int = 24, w: int = 32) -> torch.Tensor:
    """A grey-ish striped image whose luminance differs from _smooth's."""
    x = torch.arange(w).view(1, w).expand(h, w)
    v = 0.35 + 0.3 * ((x // 4) % 2).float()
    return torch.stack([v, v * 0.9 + 0.05, v * 0.8 + 0.1])[None]


def test_yiq_round_trip() -> None:
    image = torch.rand(2, 3, 5, 7)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5)


def test_luminance_transfer_keeps_content_chroma_and_stylized_luminance() -> None:
    content, stylized = _smooth(), _stripes()
    out = luminance_transfer(content, stylized)
    assert out.shape == content.shape
    out_yiq, content_yiq, stylized_yiq = rgb_to_yiq(out), rgb_to_yiq(content), rgb_to_yiq(stylized)
    assert torch.allclose(out_yiq[:, 1:], content_yiq[:, 1:], atol=1e-4)
    assert torch.allclose(out_yiq[:, :1], stylized_yiq[:, :1], atol=1e-4)
    # and it is not just a copy of either input
    assert (out - content).abs().max() > 0.1 and (out - stylized).abs().max() > 0.01


def test_luminance_transfer_clips_to_rgb_range() -> None:
    out = luminance_transfer(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    assert out.min() >= 0 and out.max() <= 1


def test_luminance_transfer_rejects_size_mismatch() -> None:
    with pytest.raises(InputError, match="differ in size"):
        luminance_transfer(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(InputError, match="content"):
        luminance_transfer(torch.rand(3, 8, 8), torch.rand(1, 3, 8, 8))


def _stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.reshape(3, -1).double()
    return pixels.mean(1), torch.cov(pixels, correction=0)


def test_match_color_equalizes_mean_and_covariance() -> None:
    source = _smooth(seed=1)
    target = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.2
    out = match_color(source, target, clamp=False)
    mean_o, cov_o = _stats(out)
    mean_t, cov_t = _stats(target)
    assert torch.allclose(mean_o, mean_t, atol=1e-5)
    assert torch.allclose(cov_o, cov_t, atol=1e-5)
    # The source's layout survives: the map is affine, so correlations of pixels are kept.
    flat_s, flat_o = source.reshape(3, -1), out.reshape(3, -1)
    assert torch.corrcoef(torch.stack([flat_s.sum(0), flat_o.sum(0)]))[0, 1].abs() > 0.5


def test_match_color_of_an_image_with_itself_is_identity() -> None:
    image = _smooth()
    assert torch.allclose(match_color(image, image), image, atol=1e-4)


def test_match_color_survives_a_flat_source() -> None:
    flat = torch.full((1, 3, 6, 6), 0.4)
    out = match_color(flat, _smooth())
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_match_color_rejects_bad_shapes() -> None:
    with pytest.raises(InputError, match="source"):
        match_color(torch.rand(1, 4, 5, 5), torch.rand(1, 3, 5, 5))
    with pytest.raises(InputError, match="batch"):
        match_color(torch.rand(2, 3, 5, 5), torch.rand(3, 3, 5, 5))
