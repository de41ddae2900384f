"""The Gatys losses against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from nst_plugin.engine.losses import content_loss, gram_matrix, resize_mask, style_loss, tv_loss


def _feat() -> torch.Tensor:
    # Two channels on a 1x2 grid: channel 0 = [1, 2], channel 1 = [3, 4].
    return torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])


def test_gram_matrix_by_hand() -> None:
    # F Fᵀ = [[1+4, 3+8], [3+8, 9+16]] = [[5, 11], [11, 25]]; C·H·W = 2·1·2 = 4.
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    assert torch.allclose(gram_matrix(_feat()), expected)


def test_gram_matrix_does_not_depend_on_image_size() -> None:
    feat = torch.randn(1, 8, 5, 7)
    tiled = feat.repeat(1, 1, 3, 2)  # the same statistics over six times the area
    assert torch.allclose(gram_matrix(feat), gram_matrix(tiled), atol=1e-5)


def test_gram_matrix_channels_last_matches_contiguous() -> None:
    feat = torch.randn(2, 16, 9, 6)
    cl = feat.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(gram_matrix(cl), gram_matrix(feat), atol=1e-5)


def test_guided_gram_uses_only_the_masked_region() -> None:
    # Mask keeps the second position only: F_m = [[0, 2], [0, 4]], area 1, C = 2.
    mask = torch.tensor([[[[0.0, 1.0]]]])
    expected = torch.tensor([[[4.0, 8.0], [8.0, 16.0]]]) / 2
    assert torch.allclose(gram_matrix(_feat(), mask), expected)


def test_guided_gram_of_a_full_mask_is_the_plain_gram() -> None:
    feat = torch.randn(1, 4, 6, 6)
    assert torch.allclose(gram_matrix(feat, torch.ones(1, 1, 6, 6)), gram_matrix(feat))


def test_guided_gram_is_independent_of_region_size() -> None:
    # A constant feature map has the same statistics in a small region as in a large one.
    feat = torch.full((1, 3, 8, 8), 2.0)
    small = torch.zeros(1, 1, 8, 8)
    small[..., :2, :2] = 1
    large = torch.zeros(1, 1, 8, 8)
    large[..., :, :6] = 1
    assert torch.allclose(gram_matrix(feat, small), gram_matrix(feat, large))
    assert torch.allclose(gram_matrix(feat, small), torch.full((1, 3, 3), 4.0 / 3))


def test_content_loss_by_hand() -> None:
    a = {"x": torch.tensor([[[[1.0, 2.0]]]]), "y": torch.tensor([[[[0.0]]]])}
    b = {"x": torch.tensor([[[[3.0, 2.0]]]]), "y": torch.tensor([[[[1.0]]]])}
    # x: mean((1-3)², 0) = 2; y: 1. Layers only present in the features are ignored.
    assert content_loss({**a, "z": torch.ones(1)}, b).item() == pytest.approx(3.0)


def test_style_loss_by_hand() -> None:
    feat = _feat()
    target = torch.zeros(1, 2, 2)
    # mean(G²) = (1.25² + 2·2.75² + 6.25²) / 4
    per_layer = (1.25**2 + 2 * 2.75**2 + 6.25**2) / 4
    assert style_loss({"a": feat}, {"a": target}).item() == pytest.approx(per_layer)
    weighted = style_loss({"a": feat, "b": feat}, {"a": target, "b": target}, {"a": 0.5, "b": 2})
    assert weighted.item() == pytest.approx(2.5 * per_layer)


def test_style_loss_is_zero_at_its_own_target_and_positive_elsewhere() -> None:
    feat = torch.randn(1, 4, 6, 6)
    target = {"l": gram_matrix(feat)}
    assert style_loss({"l": feat}, target).item() == pytest.approx(0.0, abs=1e-10)
    assert style_loss({"l": feat * 2}, target).item() > 0


def test_style_loss_mask_forms_agree() -> None:
    feat = torch.randn(1, 4, 6, 6)
    mask = torch.rand(12, 12)
    target = {"l": torch.zeros(1, 4, 4)}
    by_tensor = style_loss({"l": feat}, target, mask=mask)
    by_layer = style_loss({"l": feat}, target, mask={"l": resize_mask(mask, (6, 6))})
    assert torch.allclose(by_tensor, by_layer)


def test_resize_mask_keeps_coverage() -> None:
    mask = torch.zeros(8, 8)
    mask[0, 0] = 1.0  # one pixel of a 4x4 cell: 1/16 of it, not dropped as nearest would
    small = resize_mask(mask, (2, 2))
    assert small.shape == (1, 1, 2, 2)
    assert small.sum().item() == pytest.approx(1 / 16)


def test_tv_loss_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])
    # dx: (1, 2) -> mean 2.5; dy: (1, 2) -> mean 2.5.
    assert tv_loss(image).item() == pytest.approx(5.0)
    assert tv_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0
