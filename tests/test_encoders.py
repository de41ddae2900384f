"""The offline VGG-19: layer names and shapes, real weights, clear errors for bad files."""

from __future__ import annotations

import pytest
import torch

from nst_plugin.engine import encoders
from nst_plugin.engine.errors import WeightsError
from tests.conftest import make_image


def test_layer_names_follow_the_papers():
    names = encoders.layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert "conv5_4" in names and "conv3_4" in names
    assert "conv3_4" not in encoders.layer_names("vgg16")


def test_shapes_and_truncation():
    enc = encoders.load_encoder()
    x = make_image(40, 56)[None]
    with torch.no_grad():
        out = enc(x, ["relu1_1", "conv4_2", "relu5_1"])
    assert out["relu1_1"].shape == (1, 64, 40, 56)
    assert out["conv4_2"].shape == (1, 512, 5, 7)
    assert out["relu5_1"].shape == (1, 512, 2, 3)
    short = enc.truncated("relu4_1")
    assert short.names[-1] == "relu4_1" and len(short.layers) == enc.index("relu4_1") + 1
    with pytest.raises(ValueError, match="unknown layer 'relu9_1'"):
        enc(x, ["relu9_1"])


def test_loaded_once_and_frozen():
    assert encoders.load_encoder() is encoders.load_encoder()
    assert not any(p.requires_grad for p in encoders.load_encoder().parameters())


def test_building_the_encoder_leaves_the_callers_random_stream_alone():
    """A seeded training must not differ between a process's first run and its later ones."""
    encoders._vgg19_caffe.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    encoders.load_encoder()  # built afresh: its layers are initialised, then overwritten
    assert torch.equal(torch.rand(3), expected)


def test_real_weights_give_imagenet_like_activations():
    """The Caffe VGG-19's known magnitudes on a photo-like image; random weights differ wildly."""
    enc = encoders.load_encoder()
    x = make_image(64, 64)[None]
    with torch.no_grad():
        real = enc(x, ["relu1_1", "relu4_1"])
        rand = encoders.random_vgg()(x, ["relu1_1", "relu4_1"])
    assert 5 < real["relu1_1"].mean() < 60
    assert 50 < real["relu4_1"].mean() < 1500
    # first-layer filters of the real net are edge/colour detectors: a flat image excites few
    flat = torch.full((1, 3, 32, 32), 0.5)
    with torch.no_grad():
        inner = enc(flat, ["conv1_1"])["conv1_1"][..., 8:-8, 8:-8]
        assert inner.std(dim=(-2, -1)).max() < 1e-3
    assert not torch.allclose(real["relu1_1"], rand["relu1_1"])


def test_caffe_preprocessing_is_bgr_minus_mean():
    enc = encoders.load_encoder()
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0  # pure red
    pre = enc.preprocess(x)
    assert torch.allclose(pre[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_corrupt_and_missing_weights_named(tmp_path):
    bad = tmp_path / "vgg.bin"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="does not match its recorded SHA-256"):
        encoders.load_quantized_vgg19(bad)
    with pytest.raises(WeightsError, match="cannot read VGG-19 weights"):
        encoders.load_quantized_vgg19(bad, check_hash=False)
    with pytest.raises(ValueError, match="unknown encoder 'vgg99'"):
        encoders.load_encoder("vgg99")


def test_a_failed_torchvision_download_is_one_line_naming_the_offline_choice(monkeypatch):
    import torchvision.models as tvm

    from nst_plugin.engine import encoders as enc

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvm, "vgg16", offline)
    enc._torchvision_vgg.cache_clear()
    with pytest.raises(WeightsError, match="downloaded on first use and that failed.*'vgg19'"):
        enc.load_encoder("vgg16-torchvision")
    enc._torchvision_vgg.cache_clear()
