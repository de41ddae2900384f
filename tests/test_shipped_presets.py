"""The fast presets that ship in the package: found, checked, described, and working on a photo."""

from __future__ import annotations

import torch

import nst_plugin as nst
from nst_plugin import plugins
from nst_plugin.cli import main
from nst_plugin.engine.style_models import load_style_model
from nst_plugin.examples import example_photo
from nst_plugin.images import resize_longer
from nst_plugin.shipped import PRESETS_DIR

NEVER_SHIPPED = ("candy", "mosaic")  # paintings of unknown origin: train them yourself


def _shipped() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.safetensors"))


def test_presets_ship_and_are_listed_with_their_painting(capsys):
    names = _shipped()
    assert names, "no preset in nst_plugin/weights/styles"
    assert not set(names) & set(NEVER_SHIPPED)
    assert set(names) <= set(plugins.style_models())
    for name in names:
        net, config, info, reference = load_style_model(PRESETS_DIR / f"{name}.safetensors")
        assert info.name == name and info.artist and info.painting and info.year
        assert info.licence.startswith("public domain")
        assert info.settings["crop"] >= 64
        # trained, or our AdaIN with its painting as it is (a preset from our AdaIN, untuned)
        assert info.state["images_seen"] > 0 or info.settings["lite_widths"]
        assert reference[:2] == b"\xff\xd8" and len(reference) > 10_000  # the painting, a JPEG
        assert not any(p.requires_grad for p in net.parameters())
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert all(f"{name}: " in listed for name in names) and "public domain" in listed
    assert "our AdaIN network with the painting; trained on" in listed  # udnie, composition_vii


def test_each_preset_repaints_a_photo_and_keeps_its_layout():
    photo = resize_longer(example_photo("astronaut"), 128)
    grey = photo.rgb.mean(0).flatten()
    for name in _shipped():
        task = nst.create_task("nst.style_transfer", method="fast", model=name, size=0)
        result = task.run({"content": photo})
        out = result["image"].rgb
        assert out.shape == photo.rgb.shape and torch.isfinite(out).all()
        assert (out - photo.rgb).abs().mean() > 0.05, name  # it stylizes
        corr = torch.corrcoef(torch.stack([out.mean(0).flatten(), grey]))[0, 1]
        assert corr > 0.3, name  # a random network gives about 0: the layout survives
        assert result["reference"].size[0] > 100


def test_cli_stylizes_with_a_preset_and_no_style_file(tmp_path):
    from nst_plugin.images import save_image

    photo = save_image(resize_longer(example_photo("coffee"), 64), tmp_path / "coffee.png")
    out = tmp_path / "out.png"
    name = _shipped()[0]
    args = ["stylize", str(photo), "--method", "fast", "--model", name, "-o", str(out)]
    assert main([*args, "--size", "0", "--quiet"]) == 0
    assert nst.load_image(out).size == nst.load_image(photo).size
