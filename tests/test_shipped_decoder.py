"""The decoder the package ships: present, intact, and stylizing offline."""

from __future__ import annotations

import torch

import nst_plugin as nst
from nst_plugin.engine.checkpoints import content_hash, read_checkpoint
from nst_plugin.examples import example_photo
from nst_plugin.images import resize_longer
from nst_plugin.shipped import SHIPPED_DECODER


def test_shipped_decoder_loads_matches_its_hash_and_records_training():
    tensors, meta = read_checkpoint(SHIPPED_DECODER)
    assert meta["sha256"] == content_hash(tensors)
    # the lite network with the style modulator: its own encoder, no VGG-19 at inference
    assert meta["width"] == "lite" and meta["modulated"]
    assert meta["state"]["step"] > 0 and meta["state"]["images_seen"] > 0


def test_shipped_decoder_stylizes_a_small_image(art):
    # a real photo (scikit-image ships it): a trained decoder's job is natural images
    photo = resize_longer(example_photo("astronaut"), 128)
    task = nst.create_task("nst.style_transfer", method="adain", size=0)
    out = task.run({"content": photo, "styles": [art]})["image"]
    assert out.rgb.shape == photo.rgb.shape
    assert torch.isfinite(out.rgb).all()
    # a trained decoder keeps the content's layout: alpha 0 follows the photo's light and dark
    recon = task.with_params(alpha=0.0).run({"content": photo, "styles": [art]})["image"]
    assert _grey_correlation(recon.rgb, photo.rgb) > 0.3  # a random decoder gives about 0
    assert (out.rgb - recon.rgb).abs().mean() > 0.01  # and alpha 1 changes it


def _grey_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    ga, gb = a.mean(0).flatten(), b.mean(0).flatten()
    return float(torch.corrcoef(torch.stack([ga, gb]))[0, 1])
