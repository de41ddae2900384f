"""Fast style networks: any input size, model files checked, training falls and resumes."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nst_plugin.cli import main
from nst_plugin.engine import adain, fast
from nst_plugin.engine.checkpoints import load_decoder
from nst_plugin.engine.encoders import random_vgg
from nst_plugin.engine.errors import InputError, WeightsError
from nst_plugin.engine.padding import ReflectionPad
from nst_plugin.engine.style_models import (
    StyleModelInfo,
    load_style_model,
    read_style_model,
    save_style_model,
)
from nst_plugin.engine.training import FastSettings, FastTrainer
from nst_plugin.shipped import PRESETS_DIR, SHIPPED_DECODER
from nst_plugin.train_fast import train_fast
from tests.conftest import make_image


def _save_png(t: torch.Tensor, path: Path) -> None:
    Image.fromarray((t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        _save_png(make_image(72, 80, "photo", seed=i), folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


@pytest.fixture
def painting(tmp_path: Path) -> Path:
    path = tmp_path / "painting.png"
    _save_png(make_image(64, 64, "art", seed=3), path)
    return path


def _train(photos: Path, painting: Path, out: Path, steps: int, **kw):
    settings = {
        "crop": 64,
        "batch_size": 2,
        "recon_steps": 2,
        "width": 4,
        "blocks": 1,
        **kw.pop("settings", {}),
    }
    return train_fast(
        style=str(painting),
        content_dir=str(photos),
        out=str(out),
        steps=steps,
        style_size=kw.pop("style_size", 64),
        sample_every=kw.pop("sample_every", 0),
        quiet=True,
        settings=settings,
        **kw,
    )


@pytest.mark.parametrize("size", [(33, 47), (8, 8), (65, 31)])
def test_output_size_equals_input_size(size):
    net = fast.make_net(fast.NetConfig(width=4, blocks=1)).eval()
    x = torch.rand(1, 3, *size)
    out = fast.stylize(net, x, fast.NetConfig().multiple)
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1


@pytest.mark.parametrize("level", [0.25, 0.5])
def test_the_wave_draws_no_line_along_the_images_bottom_row(level: float):
    """The real weights, whose own image edge was never trained: on a grey photo with faint
    grain, the change across the bottom row is no more than 1.5x that between rows inside
    (without `fast.EDGE_MARGIN` 2.8x: a red line)."""
    gen = torch.Generator().manual_seed(0)
    photo = level + 0.02 * torch.randn(1, 3, 96, 128, generator=gen)
    net, config, _, _ = load_style_model(PRESETS_DIR / "the_wave.safetensors")
    with torch.no_grad():
        out = fast.stylize(net.eval(), photo.clamp(0, 1), config.multiple)[0]
    rows = (out[:, 1:] - out[:, :-1]).abs().mean((0, 2))
    assert float(rows[-1]) <= 1.5 * float(rows[4:-4].mean())


def test_network_has_no_transposed_convolution_and_reflects_its_padding():
    net = fast.make_net()
    kinds = {type(m) for m in net.modules()}
    assert torch.nn.ConvTranspose2d not in kinds and torch.nn.ZeroPad2d not in kinds
    assert all(c.padding == (0, 0) for c in net.modules() if isinstance(c, torch.nn.Conv2d))


def _trained_looking(config: fast.NetConfig) -> torch.nn.Sequential:
    """A random network whose norms scale and shift, as trained ones do (fresh ones do not)."""
    torch.manual_seed(0)
    net = fast.make_net(config).eval()
    for m in net.modules():
        if isinstance(m, fast.InstanceNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("noise", [0, 2])
@pytest.mark.parametrize("size", [(40, 48), (24, 72)])
def test_inference_network_folds_each_upsampling_and_computes_the_same(noise, size):
    config = fast.NetConfig(width=4, blocks=1, noise_channels=noise)
    net = _trained_looking(config)
    folded = fast.for_inference(net)
    assert not any(isinstance(m, torch.nn.Upsample) for m in folded.modules())
    assert sum(isinstance(m, fast.UpsampleConv) for m in folded) == config.downsamplings
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        want, got = net(x), folded(x)
    assert want.abs().mean() > 0.05  # not a trivially flat output
    assert torch.allclose(got, want, atol=1e-5)


def test_instance_norm_keeps_channels_last_and_matches_torchs():
    norm = fast.InstanceNorm(6, affine=True)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-0.5, 0.5)
    x = (5.0 + torch.randn(2, 6, 9, 11)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want = F.instance_norm(x.contiguous(), weight=norm.weight, bias=norm.bias, eps=norm.eps)
        got = norm(x)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, want, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        low = norm(x.bfloat16())
    assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), want, atol=0.05)


def test_padding_keeps_bf16_under_autocast():
    """CPU autocast would pad in fp32 (two extra copies a layer); the pad is exact either way."""
    x = torch.rand(1, 4, 8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ReflectionPad(2)(x).dtype == torch.bfloat16
        assert torch.nn.ReflectionPad2d(2)(x).dtype == torch.float32  # what it works around


def test_batch_gram_asks_the_batch_not_each_crop_for_the_paintings_statistics():
    """A flat crop beside a busy one: their pooled Gram can equal the painting's while neither
    crop's own does, so only the per-crop loss pushes the flat crop to grow texture."""
    gen = torch.Generator().manual_seed(0)
    busy = torch.rand(1, 4, 8, 8, generator=gen)
    feats = {t: torch.cat([busy, torch.full_like(busy, 0.5)]) for t in fast.FEATURE_TAPS}
    scales = {t: torch.tensor(1.0) for t in fast.FEATURE_TAPS}
    pooled = {t: fast.gram_matrix(feats[t]).mean(0, keepdim=True) for t in fast.STYLE_TAPS}
    args = (feats, feats[fast.CONTENT_TAP], pooled, scales, torch.rand(2, 3, 8, 8))
    per_crop = fast.perceptual_losses(*args)["style"]
    over_batch = fast.perceptual_losses(*args, batch_gram=True)["style"]
    assert float(over_batch) < 1e-12 < float(per_crop)


def test_detail_mask_leaves_the_paintings_statistics_unasked_of_flat_photo_crops():
    """A flat photo is all flat, a busy one all detail; under an all-detail mask the painting's
    term is the unmasked one, under an all-flat one it is nothing and only the teacher's share
    is left; a trainer on a flat photo with mix 0 then owes no style, on a busy one it does."""
    flat_photo = torch.full((2, 3, 40, 40), 0.4)
    busy_photo = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    assert float(fast.detail_mask(flat_photo, 0.01).max()) == 0.0
    assert float(fast.detail_mask(busy_photo, 0.01).min()) == 1.0

    gen = torch.Generator().manual_seed(1)
    feats = {t: torch.rand(2, 4, 8, 8, generator=gen) for t in fast.FEATURE_TAPS}
    scales = {t: torch.tensor(1.0) for t in fast.FEATURE_TAPS}
    painting = fast.style_grams({t: torch.rand(1, 4, 8, 8, generator=gen) for t in feats}, scales)
    teacher = fast.teacher_grams({t: torch.rand(2, 4, 8, 8, generator=gen) for t in feats}, scales)
    args = (feats, feats[fast.CONTENT_TAP], painting, scales, torch.rand(2, 3, 32, 32))
    plain = float(fast.perceptual_losses(*args)["style"])
    everywhere = torch.ones(2, 1, 32, 32)
    assert float(fast.perceptual_losses(*args, detail=everywhere)["style"]) == pytest.approx(plain)
    nowhere = torch.zeros(2, 1, 32, 32)
    assert float(fast.perceptual_losses(*args, detail=nowhere)["style"]) == 0.0
    taught_only = fast.perceptual_losses(*args, taught=teacher, mix=0.5, detail=nowhere)["style"]
    full_teacher = fast.perceptual_losses(*args, taught=teacher, mix=1.0)["style"]
    assert float(taught_only) == pytest.approx(0.5 * float(full_teacher))

    settings = FastSettings(
        crop=32, batch_size=2, width=4, blocks=1, recon_steps=0, detail_threshold=0.01
    )
    flat = torch.full((3, 48, 48), 100, dtype=torch.uint8)
    busy = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    style = make_image(32, 32)[None]
    assert FastTrainer(random_vgg(), [flat], style, settings).step()["style"] == 0.0
    assert FastTrainer(random_vgg(), [busy], style, settings).step()["style"] > 0
    with pytest.raises(InputError, match="detail threshold must be 0 or more, got -1"):
        FastTrainer(random_vgg(), [busy], style, replace(settings, detail_threshold=-1))
    with pytest.raises(InputError, match="detail threshold asks each crop, batch Gram the batch"):
        FastTrainer(random_vgg(), [busy], style, replace(settings, batch_gram=True))


def test_flat_variation_charges_texture_only_where_the_photo_is_flat():
    """On an all-flat mask it is the whole crop's total variation, on an all-detail one zero;
    a trainer logs it (on a flat photo, painting from its noise input: all of its variation),
    and refuses it without a threshold to say what is flat."""
    out = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    tv = (out[..., 1:, :] - out[..., :-1, :]).abs().mean() + (
        out[..., :, 1:] - out[..., :, :-1]
    ).abs().mean()
    assert float(fast.flat_variation(out, torch.zeros(2, 1, 32, 32))) == pytest.approx(float(tv))
    assert float(fast.flat_variation(out, torch.ones(2, 1, 32, 32))) == 0.0
    half = torch.ones(2, 1, 32, 32)
    half[..., :16, :] = 0
    assert 0.4 < float(fast.flat_variation(out, half)) / float(tv) < 0.6

    settings = FastSettings(
        crop=32, batch_size=2, width=4, blocks=1, recon_steps=0, flat_tv_weight=2.0,
        noise_channels=1,
    )  # fmt: skip
    flat = torch.full((3, 48, 48), 100, dtype=torch.uint8)
    style = make_image(32, 32)[None]
    with pytest.raises(InputError, match="flat tv weight needs a detail threshold"):
        FastTrainer(random_vgg(), [flat], style, settings)
    with pytest.raises(InputError, match="flat tv weight must be 0 or more"):
        FastTrainer(random_vgg(), [flat], style, replace(settings, flat_tv_weight=-1))
    losses = FastTrainer(
        random_vgg(), [flat], style, replace(settings, detail_threshold=0.01)
    ).step()
    assert losses["flat_tv"] == pytest.approx(losses["tv"], rel=1e-4) and losses["flat_tv"] > 0


def test_histogram_term_charges_a_gram_match_made_of_saturated_spots():
    """Half the pixels at sqrt(2) and half at 0 have the Gram matrix of a painting that is 1
    everywhere, so the Gram term is blind to the blob; the histogram term is not, and is zero
    for a crop whose values are the painting's, at another size, in another order."""
    painting = {t: torch.ones(1, 1, 16, 16) for t in fast.FEATURE_TAPS}
    scales = {t: torch.tensor(1.0) for t in fast.FEATURE_TAPS}
    grams = fast.style_grams(painting, scales)
    hists = fast.style_histograms(painting, scales)
    assert hists["relu1_1"].shape == (1, fast.HISTOGRAM_QUANTILES)
    spots = torch.zeros(1, 1, 8, 8)
    spots[..., :4] = 2**0.5
    feats = {t: spots for t in fast.FEATURE_TAPS}
    args = (feats, spots, grams, scales, torch.rand(1, 3, 8, 8))
    parts = fast.perceptual_losses(*args, histograms=hists)
    assert float(parts["style"]) < 1e-10
    assert float(parts["histogram"]) > 0.1
    assert "histogram" not in fast.perceptual_losses(*args)

    ramp = torch.linspace(0, 3, 64 * 64).reshape(1, 1, 64, 64)
    ramp_hists = fast.style_histograms({t: ramp for t in fast.STYLE_TAPS}, scales)
    crop = ramp.flatten()[::16][torch.randperm(256)].reshape(1, 1, 16, 16)
    same = fast.histogram_loss(crop, ramp_hists["relu1_1"], pooled=False)
    assert float(same) < 1e-4


def test_histogram_weight_adds_its_term_to_training():
    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    plain = FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], settings)
    assert plain.histograms is None and "histogram" not in plain.step()
    hist = FastTrainer(
        random_vgg(), [photo], make_image(32, 32)[None], replace(settings, histogram_weight=2.0)
    )
    losses = hist.step()
    assert np.isfinite(losses["histogram"]) and losses["histogram"] > 0


def test_fine_content_term_charges_a_blob_on_a_flat_photo():
    """A blob where the photo is flat changes relu1_1 there; the term is zero for the photo
    itself, absent unless asked for, and a training step reports it when weighted."""
    scales = {t: torch.tensor(1.0) for t in fast.FEATURE_TAPS}
    flat = torch.full((1, 4, 8, 8), 0.5)
    blob = flat.clone()
    blob[..., 2:5, 2:5] = 3.0
    grams = fast.style_grams({t: flat for t in fast.FEATURE_TAPS}, scales)
    args = (grams, scales, torch.rand(1, 3, 8, 8))
    same = fast.perceptual_losses(
        {t: flat for t in fast.FEATURE_TAPS}, flat, *args, fine_target=flat
    )
    blotched = fast.perceptual_losses(
        {t: blob for t in fast.FEATURE_TAPS}, flat, *args, fine_target=flat
    )
    assert float(same["fine_content"]) == 0.0
    assert float(blotched["fine_content"]) > 0.5
    assert "fine_content" not in fast.perceptual_losses(
        {t: blob for t in fast.FEATURE_TAPS}, flat, *args
    )

    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    assert (
        "fine_content"
        not in FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], settings).step()
    )
    fine = FastTrainer(
        random_vgg(), [photo], make_image(32, 32)[None], replace(settings, fine_content_weight=0.3)
    )
    losses = fine.step()
    assert np.isfinite(losses["fine_content"]) and losses["fine_content"] > 0


def test_deep_content_term_compares_the_photos_relu4_2_when_asked():
    """Zero for the photo itself; the trainer encodes to relu4_2 only when the term is weighted,
    and a weighted step reports it and moves the network."""
    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    plain = FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], settings)
    assert fast.DEEP_CONTENT_TAP not in plain.encoder.names
    assert "deep_content" not in plain.step()

    deep = FastTrainer(
        random_vgg(), [photo], make_image(32, 32)[None], replace(settings, deep_content_weight=2)
    )
    x = torch.rand(2, 3, 32, 32)
    feats = deep.encoder(x, deep.feature_taps)
    same = fast.perceptual_losses(
        feats, feats[fast.CONTENT_TAP], deep.grams, deep.scales, x,
        deep_target=feats[fast.DEEP_CONTENT_TAP],
    )  # fmt: skip
    assert float(same["deep_content"]) == 0.0
    before = [p.detach().clone() for p in deep.net.parameters()]
    losses = deep.step()
    assert np.isfinite(losses["deep_content"]) and losses["deep_content"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, deep.net.parameters()))


@pytest.mark.parametrize(
    "weight",
    [
        "histogram_weight",
        "fine_content_weight",
        "deep_content_weight",
        "teacher_content_weight",
        "stability_weight",
    ],
)
def test_a_negative_loss_weight_is_refused(weight: str) -> None:
    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    name = weight.replace("_", " ")
    with pytest.raises(InputError, match=f"{name} must be 0 or more"):
        FastTrainer(
            random_vgg(), [photo], make_image(32, 32)[None], replace(settings, **{weight: -1})
        )


def test_margin_shows_the_network_more_photo_than_the_losses_score(tmp_path):
    """The scored window moves inside the margin from step to step, so a colour placed by its
    distance from the network's input border lands at a different place in it each time."""
    photo = (torch.rand(3, 72, 80) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, margin=16, batch_size=2, width=4, blocks=1, recon_steps=0)
    trainer = FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], settings)
    offsets = set()
    for step in range(12):
        seen, (rows, cols), teachers = trainer.batch(step)
        assert teachers is None
        assert seen.shape == (2, 3, 48, 48)
        assert rows.stop - rows.start == cols.stop - cols.start == 32
        assert 0 <= rows.start <= 16 and 0 <= cols.start <= 16
        offsets.add((rows.start, cols.start))
    assert len(offsets) > 6
    losses = trainer.step()
    assert all(np.isfinite(v) for v in losses.values())
    with pytest.raises(InputError, match="margin must be 0 or a multiple of 8, got 5"):
        FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], replace(settings, margin=5))
    with pytest.raises(InputError, match=r"smaller than crop \+ margin \(88 px\)"):
        FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], replace(settings, margin=56))


def test_layout_term_sees_where_colour_goes_not_the_texture_inside_its_squares():
    teacher = torch.full((1, 3, 32, 32), 0.5)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2  # a texture, mean 0.5
    textured = checker.float().expand(1, 3, 32, 32)
    blob = teacher.clone()
    blob[..., :16, :16] = torch.tensor([0.1, 0.8, 0.2])[:, None, None]  # a green square
    assert float(fast.layout_loss(textured, teacher)) == 0.0
    assert float(fast.layout_loss(blob, teacher)) > 0.02


def test_teacher_crops_follow_their_photos_crops_and_flips():
    photo = (torch.rand(3, 72, 80) * 255).to(torch.uint8)
    settings = FastSettings(
        crop=32, margin=16, batch_size=3, width=4, blocks=1, recon_steps=0, teacher_weight=1.0
    )
    trainer = FastTrainer(
        random_vgg(), [photo], make_image(32, 32)[None], settings, teachers=[photo]
    )
    for step in range(6):
        seen, (rows, cols), teachers = trainer.batch(step)
        assert torch.equal(teachers, seen[..., rows, cols])
    losses = trainer.step()
    assert np.isfinite(losses["layout"])
    with pytest.raises(InputError, match="a teacher term needs one teacher image per photo"):
        FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], settings)
    with pytest.raises(InputError, match="a teacher term needs one teacher image per photo"):
        FastTrainer(
            random_vgg(), [photo], make_image(32, 32)[None], settings, teachers=[photo[:, :64]]
        )


def test_teacher_content_term_compares_relu2_2_with_the_teachers_not_the_photos():
    """Zero when the output's features are the teacher's, whatever the photo; absent unless
    asked for; a training step with teachers reports it when weighted, and needs them."""
    scales = {t: torch.tensor(1.0) for t in fast.FEATURE_TAPS}
    photo_feats = torch.full((1, 4, 8, 8), 0.5)
    teacher_feats = torch.rand(1, 4, 8, 8) + 1.0
    grams = fast.style_grams({t: photo_feats for t in fast.FEATURE_TAPS}, scales)
    args = (grams, scales, torch.rand(1, 3, 8, 8))
    as_taught = fast.perceptual_losses(
        {t: teacher_feats for t in fast.FEATURE_TAPS},
        photo_feats,
        *args,
        teacher_target=teacher_feats,
    )
    assert float(as_taught["teacher_content"]) == 0.0
    assert float(as_taught["content"]) > 0.2
    as_photo = fast.perceptual_losses(
        {t: photo_feats for t in fast.FEATURE_TAPS},
        photo_feats,
        *args,
        teacher_target=teacher_feats,
    )
    assert float(as_photo["teacher_content"]) > 0.2
    assert "teacher_content" not in fast.perceptual_losses(
        {t: photo_feats for t in fast.FEATURE_TAPS}, photo_feats, *args
    )

    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    teacher = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(
        crop=32, batch_size=2, width=4, blocks=1, recon_steps=0, teacher_content_weight=0.5
    )
    with pytest.raises(InputError, match="a teacher term needs one teacher image per photo"):
        FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], settings)
    trainer = FastTrainer(
        random_vgg(), [photo], make_image(32, 32)[None], settings, teachers=[teacher]
    )
    losses = trainer.step()
    assert np.isfinite(losses["teacher_content"]) and losses["teacher_content"] > 0
    assert "layout" not in losses


def test_teacher_grams_ask_each_crop_for_its_teachers_statistics_not_the_paintings():
    """With mix 1 an output whose features are the teacher's crop pays no style loss even where
    the painting's statistics differ; mix 0 is the painting's term; each crop has its own; any
    mix has the gradient of one target `mix * teacher + (1 - mix) * painting`."""
    scales = {t: torch.tensor(1.0) for t in fast.FEATURE_TAPS}
    painting = {t: torch.rand(1, 4, 8, 8) for t in fast.FEATURE_TAPS}
    teacher = {t: torch.rand(2, 4, 8, 8) + 1.0 for t in fast.FEATURE_TAPS}
    grams = fast.style_grams(painting, scales)
    taught = fast.teacher_grams(teacher, scales)
    assert all(taught[t].shape == (2, 4, 4) for t in fast.STYLE_TAPS)
    assert not torch.allclose(taught["relu1_1"][0], taught["relu1_1"][1])

    def style(feats: dict, mix: float, targets: dict = grams, **kw: Any) -> torch.Tensor:
        args = (feats[fast.CONTENT_TAP], targets, scales, torch.rand(2, 3, 8, 8))
        return fast.perceptual_losses(feats, *args, taught=taught, mix=mix, **kw)["style"]

    assert float(style(teacher, 1.0)) < 1e-10
    assert float(style(teacher, 0.0)) > 0.1
    out = {t: f.clone().requires_grad_(True) for t, f in teacher.items()}
    out = {t: f * 0.9 for t, f in out.items()}
    leaf = next(iter(out.values()))
    (grad_split,) = torch.autograd.grad(style(out, 0.3), leaf)
    one = {t: 0.3 * taught[t] + 0.7 * grams[t] for t in fast.STYLE_TAPS}
    args = (out[fast.CONTENT_TAP], one, scales, torch.rand(2, 3, 8, 8))
    (grad_one,) = torch.autograd.grad(fast.perceptual_losses(out, *args)["style"], leaf)
    assert torch.allclose(grad_split, grad_one, rtol=1e-4, atol=1e-8)


def test_batch_gram_pools_the_paintings_share_but_not_the_teachers():
    """A busy crop and a flat one whose pooled Gram is the painting's: the output that matches
    each crop's teacher pays nothing; the same two crops swapped still match the pooled
    statistics but not the teacher's crop by crop, and pay."""
    gen = torch.Generator().manual_seed(0)
    busy = torch.rand(1, 4, 8, 8, generator=gen)
    feats = {t: torch.cat([busy, torch.full_like(busy, 0.5)]) for t in fast.FEATURE_TAPS}
    swapped = {t: f.flip(0) for t, f in feats.items()}
    scales = {t: torch.tensor(1.0) for t in fast.FEATURE_TAPS}
    pooled = {t: fast.gram_matrix(feats[t]).mean(0, keepdim=True) for t in fast.STYLE_TAPS}
    taught = fast.teacher_grams(feats, scales)
    args = (feats[fast.CONTENT_TAP], pooled, scales, torch.rand(2, 3, 8, 8))
    kw: dict[str, Any] = {"taught": taught, "mix": 0.5, "batch_gram": True}
    assert float(fast.perceptual_losses(feats, *args, **kw)["style"]) < 1e-12
    assert float(fast.perceptual_losses(swapped, *args, **kw)["style"]) > 1e-6
    assert float(fast.perceptual_losses(feats, *args, taught=taught, mix=0.5)["style"]) > 1e-6


@pytest.mark.parametrize(
    ("field", "bad", "message", "good", "term"),
    [
        ("teacher_style_mix", 1.5, "teacher style mix must be within 0..1, got 1.5", 0.8, "style"),
        (
            "texture_layout_weight",
            -1.0,
            "texture layout weight must be 0 or more",
            1e3,
            "texture_layout",
        ),
    ],
)
def test_a_teacher_setting_is_checked_and_trains(field, bad, message, good, term):
    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    with pytest.raises(InputError, match=message):
        FastTrainer(
            random_vgg(),
            [photo],
            make_image(32, 32)[None],
            replace(settings, **{field: bad}),
            teachers=[photo],
        )
    taught = replace(settings, **{field: good})
    assert taught.needs_teachers()
    with pytest.raises(InputError, match="a teacher term needs one teacher image per photo"):
        FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], taught)
    trainer = FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], taught, teachers=[photo])
    losses = trainer.step()
    assert np.isfinite(losses[term]) and losses[term] > 0


def test_training_with_a_teacher_renders_each_photo_with_our_adain(photos, painting, tmp_path):
    out = tmp_path / "m.safetensors"
    _train(photos, painting, out, 3, settings={"teacher_weight": 2.0})
    _, meta = read_style_model(out)
    assert json.loads(meta["settings"])["teacher_weight"] == 2.0
    log = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert any("layout" in row and np.isfinite(row["layout"]) for row in log)


def test_training_loss_falls_writes_samples_and_records_the_painting(photos, painting, tmp_path):
    out = tmp_path / "m.safetensors"
    info = {"artist": "Someone", "painting": "Stripes", "year": "2026", "licence": "CC0"}
    state = _train(
        photos,
        painting,
        out,
        40,
        checkpoint_every=5,
        sample_every=20,
        info=info,
        settings={"lr": 3e-3},
    )
    assert state.step == 40 and state.images_seen == 80
    log = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    perceptual = [h["loss"] for h in log if "recon" not in h]
    assert perceptual[-1] < 0.7 * perceptual[0]
    assert (tmp_path / "m-samples" / "step0000020.png").exists()
    net, config, meta, reference = load_style_model(out)
    assert (meta.name, meta.artist, meta.year) == ("m", "Someone", "2026")
    assert meta.state["step"] == 40 and meta.settings["crop"] == 64 and config.width == 4
    assert reference[:2] == b"\xff\xd8"  # the painting rides along as a JPEG


def test_resume_continues_identically(photos, painting, tmp_path):
    """Also with the painting's size not given again: the resumed run keeps the recorded one."""
    straight, split = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _train(photos, painting, straight, 5, style_size=48)
    _train(photos, painting, split, 3, style_size=48)
    _train(photos, painting, split, 5, resume=True, style_size=None)
    a, _ = read_style_model(straight)
    b, meta = read_style_model(split)
    assert json.loads(meta["state"])["step"] == 5
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_hours_stops_at_the_models_training_time_in_all(photos, painting, tmp_path):
    """What a 2-hour budget counts: time in steps, kept across resumes, not a call's wall time."""
    out = tmp_path / "m.safetensors"
    assert _train(photos, painting, out, 1000, hours=1e-9).step == 1
    spent = _train(photos, painting, out, 3, resume=True).seconds
    state = _train(photos, painting, out, 1000, resume=True, hours=spent / 3600)
    assert state.step == 3 and state.seconds == spent


def test_init_starts_from_another_model(photos, painting, tmp_path):
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    _train(photos, painting, first, 3)
    _train(photos, painting, second, 1, init=str(first), settings={"lr": 1e-9})
    a, _ = read_style_model(first)
    b, _ = read_style_model(second)
    nets = [k for k in a if k.startswith("net.")]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in nets)  # lr ~0: weights carried over


def _tiny_model(path: Path) -> Path:
    config = fast.NetConfig(width=4, blocks=1)
    save_style_model(path, fast.make_net(config), config, StyleModelInfo("tiny"), b"\xff\xd8x")
    return path


def test_corrupt_pickled_and_foreign_files_are_refused(tmp_path):
    good = _tiny_model(tmp_path / "good.safetensors")
    data = bytearray(good.read_bytes())
    data[-10] ^= 0xFF  # flip a byte inside the last tensor
    (tmp_path / "corrupt.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt"):
        load_style_model(tmp_path / "corrupt.safetensors")
    torch.save({"net": torch.zeros(1)}, tmp_path / "pickled.safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_style_model(tmp_path / "pickled.safetensors")
    with pytest.raises(WeightsError, match="not found"):
        load_style_model(tmp_path / "missing.safetensors")


def test_cli_refuses_to_overwrite_and_bad_settings(photos, painting, tmp_path, capsys):
    out = tmp_path / "keep.safetensors"
    out.write_bytes(b"precious")
    args = ["train", "fast", "--style", str(painting), "--content-dir", str(photos), "--quiet"]
    assert main([*args, "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main([*args, "--out", str(tmp_path / "n.safetensors"), "--crop", "60"]) == 2
    assert "crop must be a multiple of 8" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "n.safetensors"), "--style-size", "0"]) == 2
    assert "style size must be at least 32 px, got 0" in capsys.readouterr().err
    with pytest.raises(InputError, match="no usable photos .at least 256 px"):
        _train(photos, painting, tmp_path / "big.safetensors", 1, settings={"crop": 256})
    assert main([*args, "--out", str(tmp_path / "n.safetensors"), "--teacher", "nope"]) == 2
    assert "unknown style model 'nope'; installed: " in capsys.readouterr().err


def test_cli_teacher_is_an_installed_model_by_name(photos, painting, tmp_path):
    out = tmp_path / "student.safetensors"
    args = ["train", "fast", "--style", str(painting), "--content-dir", str(photos), "--quiet"]
    tiny = ["--crop", "64", "--batch-size", "2", "--width", "2", "--blocks", "1", "--steps", "1"]
    assert main([*args, *tiny, "--out", str(out), "--teacher", "the_scream",
                 "--teacher-content-weight", "1"]) == 0  # fmt: skip
    settings = json.loads(read_style_model(out)[1]["settings"])
    assert settings["teacher"] == str(PRESETS_DIR / "the_scream.safetensors")


def test_sigterm_saves_a_checkpoint_that_resumes(photos, painting, tmp_path):
    out = tmp_path / "t.safetensors"
    args = [
        sys.executable,
        "-m",
        "nst_plugin.cli",
        "train",
        "fast",
        "--style",
        str(painting),
        "--content-dir",
        str(photos),
        "--out",
        str(out),
        "--steps",
        "100000",
        "--crop",
        "64",
        "--batch-size",
        "1",
        "--width",
        "4",
        "--style-size",
        "64",
        "--checkpoint-every",
        "5",
        "--sample-every",
        "0",
        "--quiet",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    _, _, meta, _ = load_style_model(out)  # complete and hash-checked
    stopped = meta.state["step"]
    assert stopped >= 5
    _train(
        photos,
        painting,
        out,
        stopped + 2,
        resume=True,
        settings={"width": 4, "blocks": 5, "batch_size": 1},
    )
    assert load_style_model(out)[2].state["step"] == stopped + 2


def test_a_model_file_gets_a_normal_files_mode(tmp_path):
    path = _tiny_model(tmp_path / "m.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_style_tap_weights_weigh_each_gram_term_relu5_1_included():
    """A tap weighted 0 is left out; weighted w its term counts w times; a trainer with relu5_1
    weighted encodes to relu5_1 and still learns; bad weights get a clear error."""
    gen = torch.Generator().manual_seed(0)
    assert tuple(fast.style_tap_weights((1, 1, 1, 1, 0))) == fast.STYLE_TAPS
    weights = fast.style_tap_weights((0.5, 1, 1, 1, 3))
    taps = tuple(weights)
    assert taps == fast.WEIGHTABLE_STYLE_TAPS and weights["relu5_1"] == 3.0
    feats = {t: torch.rand(2, 4, 8, 8, generator=gen) for t in (*taps, fast.CONTENT_TAP)}
    painting = {t: torch.rand(1, 4, 8, 8, generator=gen) for t in taps}
    scales = {t: torch.tensor(1.0) for t in feats}
    grams = fast.style_grams(painting, scales, taps)
    args = (feats[fast.CONTENT_TAP], grams, scales, torch.rand(2, 3, 8, 8))

    def term(tap: str) -> float:
        g = fast.gram_matrix(feats[tap])
        return float(F.mse_loss(g, grams[tap].expand_as(g)))

    style = float(fast.perceptual_losses(feats, *args, tap_weights=weights)["style"])
    expected = sum(w * term(t) for t, w in weights.items())
    assert style == pytest.approx(expected, rel=1e-5)
    assert float(fast.perceptual_losses(feats, *args)["style"]) == pytest.approx(
        sum(term(t) for t in taps), rel=1e-5
    )

    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    for bad in ((1, 1, 1, 1), (1, 1, -1, 1, 0), (0, 0, 0, 0, 0)):
        with pytest.raises(InputError, match="style tap weights must be 5 numbers of 0 or more"):
            FastTrainer(
                random_vgg(),
                [photo],
                make_image(32, 32)[None],
                replace(settings, style_tap_weights=bad),
            )
    runs = {}
    for deep in (0.0, 1.0):
        torch.manual_seed(0)
        trainer = FastTrainer(
            random_vgg(),
            [photo],
            make_image(32, 32)[None],
            replace(settings, style_tap_weights=(1, 1, 1, 1, deep)),
        )
        runs[deep] = trainer.step()["style"]
    assert "relu5_1" in trainer.grams and np.isfinite(runs[1.0])
    assert runs[1.0] > runs[0.0]


def test_regularity_scores_a_repeated_stroke_not_grain_and_trains():
    """Diagonal stripes score near their amplitude; noise of the same spread and a flat image
    score little; a trainer with the term logs it, finite."""
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    stripes = (0.5 + 0.2 * torch.sin(2 * torch.pi * (x + y) / 10)).expand(1, 3, 64, 64)
    gen = torch.Generator().manual_seed(0)
    noise = 0.5 + (torch.rand(1, 3, 64, 64, generator=gen) - 0.5) * 0.2 * 12**0.5 / 2**0.5
    flat = torch.full((1, 3, 64, 64), 0.5)
    scores = fast.regularity(torch.cat([stripes, noise, flat])).tolist()
    assert scores[0] > 0.1 and scores[1] < scores[0] / 3 and scores[2] < 1e-3

    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    with pytest.raises(InputError, match="regularity weight must be 0 or more"):
        FastTrainer(
            random_vgg(), [photo], make_image(32, 32)[None], replace(settings, regularity_weight=-1)
        )
    trainer = FastTrainer(
        random_vgg(), [photo], make_image(32, 32)[None], replace(settings, regularity_weight=50)
    )
    losses = trainer.step()
    assert np.isfinite(losses["regularity"]) and losses["regularity"] >= 0


def test_stability_charges_a_network_that_paints_up_noise_and_trains_deterministically():
    """The term is the output's mean squared change under noise of spread STABILITY_SIGMA: an
    identity passes the noise as it is, a x10 amplifier 100 times as strongly, a network that
    ignores fine variation not at all."""
    seen = torch.rand(2, 3, 40, 40)
    noise = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    window = (slice(4, 36), slice(4, 36))

    def charge(net: torch.nn.Module) -> float:
        out = net(seen)[..., window[0], window[1]]
        return float(fast.stability_loss(net, seen, out, window, noise))

    sigma2 = fast.STABILITY_SIGMA**2
    assert charge(torch.nn.Identity()) == pytest.approx(sigma2, rel=0.05)
    amplifier = torch.nn.Conv2d(3, 3, 1, bias=False).requires_grad_(False)
    amplifier.weight.copy_(10 * torch.eye(3).view(3, 3, 1, 1))
    assert charge(amplifier) == pytest.approx(100 * sigma2, rel=0.05)
    assert charge(torch.nn.AvgPool2d(40, stride=1, padding=20)) < 0.01 * sigma2

    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    plain = FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], settings)
    assert "stability" not in plain.step()
    runs = []
    for _ in range(2):  # the same initial weights: the same noise, the same charge
        torch.manual_seed(3)
        noisy = replace(settings, stability_weight=5)
        runs.append(
            FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], noisy).step()["stability"]
        )
    assert np.isfinite(runs[0]) and runs[0] > 0 and runs[0] == runs[1]


def test_spectrum_term_charges_bands_not_an_irregular_texture_of_the_same_power():
    """Against a noise teacher: noise of the same spread (other strokes, same spectrum) costs
    little, diagonal bands of the same power a lot, grain under 8-bit quantisation nothing;
    a trainer with the term needs teachers and logs it, finite."""
    gen = torch.Generator().manual_seed(0)
    spread = 0.1

    def noise() -> torch.Tensor:
        return 0.5 + spread * torch.randn(1, 3, 64, 64, generator=gen)

    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    bands = (0.5 + spread * 2**0.5 * torch.sin(2 * torch.pi * (x + y) / 16)).expand(1, 3, 64, 64)
    teacher = noise()
    assert (
        float(fast.spectrum_loss(noise(), teacher)) < float(fast.spectrum_loss(bands, teacher)) / 10
    )
    flat = torch.full((1, 3, 64, 64), 0.5)
    faint = flat + 1e-4 * torch.randn(1, 3, 64, 64, generator=gen)
    assert float(fast.spectrum_loss(faint, flat)) == 0.0

    assert _teacher_term_step("spectrum_weight")["spectrum"] > 0


def _teacher_term_step(weight: str) -> dict[str, float]:
    """One step of a tiny trainer with a teacher term's `weight` at 0.5 (its losses, checked
    finite), after a negative weight and a missing teacher were refused. The teacher is flat,
    so whatever texture the untrained network paints is in excess of it."""
    photo = (torch.rand(3, 48, 48) * 255).to(torch.uint8)
    flat = torch.full_like(photo, 128)
    settings = FastSettings(crop=32, batch_size=2, width=4, blocks=1, recon_steps=0)
    with pytest.raises(InputError, match=f"{weight.replace('_', ' ')} must be 0 or more"):
        FastTrainer(random_vgg(), [photo], make_image(32, 32)[None],
                    replace(settings, **{weight: -1}), teachers=[flat])  # fmt: skip
    with_term = replace(settings, **{weight: 0.5})
    with pytest.raises(InputError, match="a teacher term needs one teacher image per photo"):
        FastTrainer(random_vgg(), [photo], make_image(32, 32)[None], with_term)
    trainer = FastTrainer(
        random_vgg(), [photo], make_image(32, 32)[None], with_term, teachers=[flat]
    )
    losses = trainer.step()
    assert all(np.isfinite(v) for v in losses.values())
    return losses


def test_spectrum_peak_term_charges_bands_but_not_less_texture_than_the_teacher():
    """Against a noise teacher: bands of the same power cost far more than other noise; a flat
    output (less texture, none of it in excess) and a fainter copy of the teacher (the same
    shape at a lower level) cost nothing; a trainer with the term logs it, finite."""
    gen = torch.Generator().manual_seed(1)
    teacher = 0.5 + 0.1 * torch.randn(1, 3, 64, 64, generator=gen)
    other = 0.5 + 0.1 * torch.randn(1, 3, 64, 64, generator=gen)
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    bands = (0.5 + 0.1 * 2**0.5 * torch.sin(2 * torch.pi * (x + y) / 16)).expand(1, 3, 64, 64)
    peak = fast.spectrum_peak_loss
    assert float(peak(other, teacher)) < float(peak(bands, teacher)) / 5
    assert float(peak(torch.full((1, 3, 64, 64), 0.5), teacher)) == 0.0
    fainter = 0.5 + (teacher - 0.5) / 2
    assert float(peak(fainter, teacher)) < 1e-6

    assert _teacher_term_step("spectrum_peak_weight")["spectrum_peak"] > 0


def test_teacher_images_are_computed_once_and_kept_for_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run restarts several times (each change of crop or weights): the second start reads
    the teacher images back instead of repainting every photo, and another painting (or
    another photo set) gets its own."""
    from nst_plugin import train_fast as tf
    from nst_plugin.engine import adain
    from nst_plugin.images import Picture

    photos = [(make_image(32, 40, seed=k) * 255).to(torch.uint8) for k in range(2)]
    painting = Picture(make_image(32, 32, kind="art"))
    first = tf._teachers(photos, painting, tmp_path, quiet=True)
    assert [t.shape for t in first] == [p.shape for p in photos]
    assert len(list(tmp_path.glob("teachers-*.pt"))) == 1

    def no_painting(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("teacher images computed again")

    with monkeypatch.context() as m:
        m.setattr(adain, "stylize", no_painting)
        again = tf._teachers(photos, painting, tmp_path, quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = Picture(make_image(32, 32, kind="art", seed=1))
    tf._teachers(photos, other, tmp_path, quiet=True)
    tf._teachers(photos[:1], painting, tmp_path, quiet=True)
    assert len(list(tmp_path.glob("teachers-*.pt"))) == 3
    # a damaged entry is computed again, not fatal
    for f in tmp_path.glob("teachers-*.pt"):
        f.write_bytes(b"not a tensor file")
    repaired = tf._teachers(photos, painting, tmp_path, quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(first, repaired, strict=True))


def test_noise_input_gives_a_flat_photo_texture_that_does_not_repeat_and_trains(
    photos, painting, tmp_path
):
    """A flat photo through a network without noise comes out the same at every position away
    from the border; with a noise channel (weights made non-zero) it varies, and the same photo
    gives the same picture twice. A file without noise grows it on --resume unchanged in
    output, then trains, resumes identically, and loads with its noise."""
    torch.manual_seed(0)
    plain = fast.make_net(fast.NetConfig(width=4, blocks=1)).eval()
    flat = torch.full((1, 3, 64, 64), 0.5)
    with torch.no_grad():
        inner = plain(flat)[..., 16:48, 16:48]
        assert float((inner - inner.mean((-2, -1), keepdim=True)).abs().max()) < 1e-5
        noisy, config, _ = fast.with_noise_input(plain, fast.NetConfig(width=4, blocks=1), 1)
        noisy.eval()
        assert config.noise_channels == 1 and torch.equal(noisy(flat), plain(flat))
        noisy[2].weight[:, 3:] = 0.5  # the first convolution's noise weights
        inner = noisy(flat)[..., 16:48, 16:48]
        assert float(inner.std((-2, -1)).min()) > 1e-3
        assert torch.equal(noisy(flat), noisy(flat))

    grown, again = tmp_path / "grown.safetensors", tmp_path / "again.safetensors"
    _train(photos, painting, grown, 2)
    before, _, _, _ = load_style_model(grown)
    _train(photos, painting, grown, 2, resume=True, settings={"noise_channels": 1})
    after, config, _, _ = load_style_model(grown)
    assert config.noise_channels == 1 and isinstance(after[0], fast.NoiseInput)
    image = make_image(40, 48)[None]
    # the same output to float rounding (the first convolution's summation order changes)
    assert torch.allclose(fast.stylize(before, image, 8), fast.stylize(after, image, 8), atol=1e-5)
    shutil.copy(grown, again)
    _train(photos, painting, grown, 5, resume=True)
    _train(photos, painting, again, 4, resume=True)
    _train(photos, painting, again, 5, resume=True)
    a, _ = read_style_model(grown)
    b, _ = read_style_model(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match="noise channels must be 0 or more"):
        _train(photos, painting, tmp_path / "bad.safetensors", 1, settings={"noise_channels": -1})


@pytest.mark.parametrize("size", [(64, 96), (37, 53)])
def test_a_smooth_noise_field_has_unit_spread_and_patches_the_cells_size(size):
    """With a cell of 8 px, neighbouring pixels share their noise and pixels three cells apart
    do not; the field has unit spread, any size, and is the same at every inference."""
    smooth, grain = fast.NoiseInput(1, 8).eval(), fast.NoiseInput(1, 1).eval()
    x = torch.zeros(2, 3, *size)
    field, white = smooth(x)[:, 3], grain(x)[:, 3]
    assert field.shape == (2, *size) and torch.equal(field[0], field[1])
    assert torch.equal(smooth(x), smooth(x))
    assert abs(float(field[0].std()) - 1) < 1e-4

    def correlation(f: torch.Tensor, lag: int) -> float:
        pair = torch.stack([f[:, :-lag].flatten(), f[:, lag:].flatten()])
        return float(torch.corrcoef(pair)[0, 1])

    assert correlation(field[0], 1) > 0.9 and abs(correlation(field[0], 24)) < 0.35
    assert abs(correlation(white[0], 1)) < 0.2


def test_resuming_with_another_noise_cell_keeps_the_weights_and_records_the_cell(
    photos, painting, tmp_path
):
    """A file trained on per-pixel noise resumes on a smooth field: the network keeps its
    weights and draws the new field, the file records the new cell and a later resume keeps it;
    a cell under 1 px is refused in one line."""
    path = tmp_path / "noisy.safetensors"
    _train(photos, painting, path, 2, settings={"noise_channels": 1})
    net, config, _, _ = load_style_model(path)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    net, config = fast.with_noise_cell(net, config, 8)
    assert config.noise_cell == 8 and net[0].cell == 8
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    _train(photos, painting, path, 3, resume=True, settings={"noise_cell": 8})
    _train(photos, painting, path, 4, resume=True)
    net, config, info, _ = load_style_model(path)
    assert config.noise_cell == 8 and net[0].cell == 8 and info.settings["noise_cell"] == 8
    with pytest.raises(InputError, match="noise cell must be 1 px or more"):
        _train(photos, painting, tmp_path / "bad.safetensors", 1, settings={"noise_cell": 0})
    with pytest.raises(InputError, match="a noise cell needs noise channels"):
        _train(photos, painting, tmp_path / "bad.safetensors", 1, settings={"noise_cell": 8})


def test_texture_layout_charges_texture_where_the_teacher_paints_none_not_other_strokes():
    """A diagonal lattice over the left half of a picture whose teacher is textured only on the
    right costs far more than the same lattice on the right; another texture of the same
    strength in the teacher's place (noise, not the teacher's strokes) costs little."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(128.0), indexing="ij")
    lattice = 0.5 + 0.2 * torch.sin(2 * torch.pi * (xx + yy) / 8).expand(1, 3, 64, 128)
    flat = torch.full((1, 3, 64, 128), 0.5)
    right = torch.zeros(1, 1, 64, 128)
    right[..., 64:] = 1
    teacher = flat + (lattice - flat) * right
    wrong = flat + (lattice - flat) * (1 - right)
    noise = 0.5 + 0.2 / 2**0.5 * torch.randn(1, 1, 64, 128, generator=gen).expand(1, 3, -1, -1)
    other = flat + (noise - flat) * right
    misplaced = float(fast.texture_layout_loss(wrong, teacher))
    assert float(fast.texture_layout_loss(teacher, teacher)) == 0
    assert misplaced > 10 * float(fast.texture_layout_loss(other, teacher)) > 0
    assert tuple(fast.texture_energy(teacher).shape) == (1, 1, 2, 4)


def _modulated_lite(seed: int = 0) -> adain.LiteNet:
    """A tiny modulated lite network whose modulator does something (it starts at zero)."""
    torch.manual_seed(seed)
    net = adain.LiteNet((4, 4, 8, 8), slope=0.01, modulated=True).eval()
    assert net.modulator is not None
    with torch.no_grad():
        torch.nn.init.normal_(net.modulator.net[-1].weight, std=0.05)
    return net


def test_a_preset_from_our_adain_draws_what_adain_draws_with_its_painting():
    """Ghiasi et al.'s route: AdaIN with the painting's moments fixed, the same picture."""
    lite = _modulated_lite()
    with torch.no_grad():
        moments = adain.style_moments(None, make_image(48, 48, "art", seed=5)[None], lite)
    preset = fast.AdaINPreset.from_lite(lite, moments).eval()
    photo = make_image(40, 56, "photo", seed=6)[None]
    want = adain.stylize(None, lite, photo, [moments])
    with torch.no_grad():
        folded = preset(photo)  # one image, no gradients: each restyle folded into a convolution
        batched = preset(torch.cat([photo, photo]))[:1]  # the training path: restyles applied
    assert torch.allclose(folded.clamp(0, 1), want, atol=1e-5)
    assert torch.allclose(folded, batched, atol=1e-4)
    other = make_image(40, 56, "photo", seed=7)[None]
    with torch.no_grad():
        got = preset(other).clamp(0, 1)
    assert torch.allclose(got, adain.stylize(None, lite, other, [moments]), atol=1e-5)


@pytest.mark.parametrize("size", [(33, 47), (65, 31)])
def test_a_preset_from_our_adain_saves_as_a_v2_model_and_keeps_odd_sizes(tmp_path, size):
    lite = _modulated_lite(1)
    with torch.no_grad():
        moments = adain.style_moments(None, make_image(32, 32, "art")[None], lite)
    preset = fast.AdaINPreset.from_lite(lite, moments)
    config = fast.NetConfig(lite_widths=lite.widths, slope=lite.slope)
    path = tmp_path / "p.safetensors"
    save_style_model(path, preset, config, StyleModelInfo("p"), b"\xff\xd8x")
    net, loaded, _, _ = load_style_model(path)
    assert loaded == config and loaded.multiple == adain.MULTIPLE
    assert read_style_model(path)[1]["architecture_version"] == str(fast.PRESET_VERSION)
    photo = make_image(*size)[None]
    out = fast.stylize(fast.for_inference(net), photo, loaded.multiple)
    assert out.shape == photo.shape
    assert torch.equal(out, fast.stylize(preset.eval(), photo, config.multiple))


def test_train_fast_from_adain_starts_at_adains_picture_and_resumes_identically(
    photos, painting, tmp_path
):
    start = tmp_path / "start.safetensors"
    _train(photos, painting, start, 0, from_adain=True)  # no step: our AdaIN as it is
    net, config, info, reference = load_style_model(start)
    assert isinstance(net, fast.AdaINPreset) and info.settings["lite_widths"] == list(
        config.lite_widths
    )
    assert info.state["step"] == 0
    # what `adain` draws with the painting the file ships, the package's AdaIN network
    decoder, _ = load_decoder(SHIPPED_DECODER)
    with Image.open(io.BytesIO(reference)) as img:
        art = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)[None] / 255
    moments = adain.style_moments(None, art, decoder)
    photo = make_image(48, 64, "photo", seed=9)[None]
    want = adain.stylize(None, decoder, photo, [moments])
    assert torch.allclose(fast.stylize(net, photo, config.multiple), want, atol=1e-5)
    # it trains, and a split run ends where a straight one does
    straight, split = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _train(photos, painting, straight, 3, from_adain=True)
    _train(photos, painting, split, 2, from_adain=True)
    _train(photos, painting, split, 3, resume=True)
    a, _ = read_style_model(straight)
    b, _ = read_style_model(split)
    assert not torch.equal(a["net.means.0"], read_style_model(start)[0]["net.means.0"])
    for name in a:
        assert torch.equal(a[name], b[name]), name
    with pytest.raises(InputError, match="pick one"):
        _train(photos, painting, tmp_path / "c.safetensors", 1, from_adain=True, init=str(start))


def test_a_lite_layout_network_of_given_widths_trains_from_scratch(photos, painting, tmp_path):
    out = tmp_path / "lite.safetensors"
    _train(photos, painting, out, 3, settings={"lite_widths": (2, 3, 4, 5), "crop": 64})
    net, config, info, _ = load_style_model(out)
    assert isinstance(net, fast.AdaINPreset) and net.lite.widths == (2, 3, 4, 5)
    assert config.lite_widths == (2, 3, 4, 5) and info.state["step"] == 3
    photo = make_image(37, 53, "photo", seed=3)[None]
    assert fast.stylize(net, photo, config.multiple).shape == photo.shape
    with pytest.raises(InputError, match="lite widths are four"):
        _train(photos, painting, tmp_path / "b.safetensors", 1, settings={"lite_widths": (2, 3)})
    with pytest.raises(InputError, match="not with --lite-widths"):
        _train(photos, painting, tmp_path / "c.safetensors", 1, from_adain=True,
               settings={"lite_widths": (2, 3, 4, 5)})  # fmt: skip


def test_moments_only_trains_the_paintings_moments_and_leaves_adains_filters(
    photos, painting, tmp_path
):
    start, tuned = tmp_path / "start.safetensors", tmp_path / "tuned.safetensors"
    _train(photos, painting, start, 1, from_adain=True, settings={"lr": 1e-12})
    _train(photos, painting, tuned, 3, from_adain=True, settings={"moments_only": True})
    a, _ = read_style_model(start)
    b, meta = read_style_model(tuned)
    assert json.loads(meta["settings"])["moments_only"] is True
    moments = [k for k in a if k.startswith(("net.means.", "net.stds."))]
    assert len(moments) == 8 and any(not torch.allclose(a[k], b[k]) for k in moments)
    filters = [k for k in a if k.startswith("net.lite.")]
    assert filters and all(torch.allclose(a[k], b[k], atol=1e-6) for k in filters)
    with pytest.raises(InputError, match="--moments-only trains a network from our AdaIN"):
        _train(photos, painting, tmp_path / "c.safetensors", 1, settings={"moments_only": True})


def test_relative_terms_are_the_distances_the_quality_benchmark_reports(photos, painting, tmp_path):
    vgg = random_vgg()
    taps = (*fast.RELATIVE_STYLE_TAPS, fast.RELATIVE_CONTENT_TAP)
    art = vgg(make_image(64, 64, "art", seed=1)[None], taps)
    crops = vgg(torch.stack([make_image(32, 32, "photo", seed=s) for s in (2, 3)]), taps)
    grams = fast.relative_grams(art)
    assert fast.relative_style(art, grams) == 0  # the painting is at no distance from itself

    def by_hand(t: str) -> float:  # the benchmark's formula, the two crops pooled
        def gram(f: torch.Tensor) -> torch.Tensor:
            b, c, h, w = f.shape
            g = f.reshape(b, c, h * w) @ f.reshape(b, c, h * w).transpose(1, 2) / (c * h * w)
            return g.mean(0)

        return float((gram(crops[t]) - gram(art[t])).norm() / gram(art[t]).norm())

    want = sum(by_hand(t) for t in fast.RELATIVE_STYLE_TAPS) / len(fast.RELATIVE_STYLE_TAPS)
    assert fast.relative_style(crops, grams).item() == pytest.approx(want, rel=1e-5)
    c = crops[fast.RELATIVE_CONTENT_TAP]
    assert fast.relative_content(2 * c, c).item() == pytest.approx(1.0, rel=1e-5)
    # and they train a preset from our AdaIN
    out = tmp_path / "m.safetensors"
    weights = {"relative_style_weight": 1.0, "relative_content_weight": 1.0}
    _train(photos, painting, out, 2, from_adain=True, settings={**weights, "moments_only": True})
    log = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(row["relative_style"]) and row["relative_content"] > 0 for row in log)


def test_a_teacher_model_paints_the_teacher_images_and_a_resumed_run_keeps_it(
    photos: Path, painting: Path, tmp_path: Path
) -> None:
    """`--teacher MODEL`: the teacher terms compare with that model's picture of each photo,
    not our AdaIN's; the file records the teacher and a resume without `--teacher` keeps it."""
    from nst_plugin import train_fast as tf
    from nst_plugin.images import Picture

    teacher = _trained_model(photos, painting, tmp_path / "teacher.safetensors")
    net, config, _, _ = load_style_model(teacher)
    shots = [(make_image(40, 48, seed=k) * 255).to(torch.uint8) for k in range(2)]
    art = Picture(make_image(32, 32, kind="art"))
    painted = tf._teachers(shots, art, tmp_path / "cache", quiet=True, model=teacher)
    for shot, image in zip(shots, painted, strict=True):
        want = fast.stylize(fast.for_inference(net), shot[None].float() / 255, config.multiple)
        assert torch.equal(image, (want[0] * 255 + 0.5).to(torch.uint8))
    by_adain = tf._teachers(shots, art, tmp_path / "cache", quiet=True)
    assert not all(torch.equal(a, b) for a, b in zip(painted, by_adain, strict=True))

    out = tmp_path / "student.safetensors"
    taught = {"teacher_content_weight": 1.0, "width": 2}
    _train(photos, painting, out, 2, teacher=str(teacher), settings=taught)
    _, meta = read_style_model(out)
    assert json.loads(meta["settings"])["teacher"] == str(teacher)
    _train(photos, painting, out, 3, resume=True, settings=taught)  # the recorded teacher
    other = _trained_model(photos, painting, tmp_path / "other.safetensors", lr=1e-2)
    with pytest.raises(InputError, match="is not the model this one was trained against"):
        _train(photos, painting, out, 4, resume=True, teacher=str(other), settings=taught)
    teacher.unlink()  # a resume without --teacher reads the recorded one, which must exist
    with pytest.raises(InputError, match="teacher model .* not found"):
        _train(photos, painting, out, 4, resume=True, settings=taught)
    with pytest.raises(InputError, match="--teacher needs a teacher term"):
        _train(photos, painting, tmp_path / "x.safetensors", 1, teacher=str(out))


def _trained_model(photos: Path, painting: Path, path: Path, lr: float = 1e-3) -> Path:
    _train(photos, painting, path, 2, settings={"lr": lr})
    return path
