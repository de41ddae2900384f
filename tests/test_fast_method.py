"""The fast method through the task, with models found the way users install them."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

import nst_plugin as nst
from nst_plugin import plugins
from nst_plugin.cli import main
from nst_plugin.engine.errors import InputError
from nst_plugin.images import Picture, from_pil, to_pil


def test_models_from_an_entry_point_are_listed_and_offered_as_choices(style_model_package, capsys):
    assert {"dots", "waves"} <= set(plugins.style_models())
    param = next(p for p in nst.create_task("nst.style_transfer").schema() if p.name == "model")
    assert {"dots", "waves"} <= set(param.choices)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dots: A. Painter, 1900" in out and "licence: CC0" in out and "1,234" in out


def test_fast_keeps_odd_sizes_and_returns_the_reference(style_model_package, photo):
    task = nst.create_task("nst.style_transfer", method="fast", model="dots", size=0)
    odd = Picture(photo.rgb[:, :37, :51])
    result = task.run({"content": odd})
    assert result["image"].size == (51, 37)
    assert result["reference"].size == (16, 16)


def test_strength_zero_returns_the_photo_and_a_path_works(style_model_package, photo):
    path = str(style_model_package / "waves.safetensors")
    task = nst.create_task("nst.style_transfer", method="fast", model=path, strength=0.0, size=0)
    out = task.run({"content": photo})["image"]
    assert torch.allclose(out.rgb, photo.rgb, atol=1e-6)


def test_a_mask_splits_the_photo_between_two_models(style_model_package, photo):
    h, w = photo.rgb.shape[-2:]
    mask = torch.zeros(h, w)
    mask[:, w // 2 :] = 1.0
    run = {"method": "fast", "size": 0}
    both = nst.create_task("nst.style_transfer", model="dots", second_model="waves", **run)
    out = both.run({"content": photo, "mask": mask})["image"].rgb
    dots = nst.create_task("nst.style_transfer", model="dots", **run).run({"content": photo})
    waves = nst.create_task("nst.style_transfer", model="waves", **run).run({"content": photo})
    assert torch.allclose(out[..., : w // 2], dots["image"].rgb[..., : w // 2], atol=1e-5)
    assert torch.allclose(out[..., w // 2 :], waves["image"].rgb[..., w // 2 :], atol=1e-5)


def test_bad_models_and_style_images_get_one_line_errors(style_model_package, photo, art, tmp_path):
    with pytest.raises(InputError, match="'model' must be one of .*'dots', 'waves'"):
        nst.create_task("nst.style_transfer", method="fast", model="nope")
    with pytest.raises(InputError, match="file not found"):
        nst.create_task("nst.style_transfer", method="fast", model=str(tmp_path / "x.safetensors"))
    task = nst.create_task("nst.style_transfer", method="fast", model="dots")
    with pytest.raises(InputError, match="takes no style images"):
        task.run({"content": photo, "styles": [art]})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(nst.WeightsError, match="not a readable safetensors"):
        nst.create_task("nst.style_transfer", method="fast", model=str(bad)).run({"content": photo})


def test_cli_stylizes_with_a_model_and_no_style_file(style_model_package, tmp_path, photo):
    src = tmp_path / "photo.png"
    to_pil(photo).save(src)
    out = tmp_path / "out.png"
    code = main(
        [
            "stylize",
            str(src),
            "--method",
            "fast",
            "--model",
            "waves",
            "-o",
            str(out),
            "--size",
            "0",
            "--quiet",
        ]
    )
    assert code == 0
    from PIL import Image

    assert from_pil(Image.open(out)).size == photo.size


def test_a_broken_third_party_model_is_reported_not_fatal(style_model_package):
    (style_model_package / "broken.safetensors").write_bytes(b"garbage")
    plugins.reset()
    with pytest.warns(UserWarning, match="broken.safetensors"):
        names = set(plugins.style_models())
    assert {"dots", "waves"} <= names


def test_a_model_from_our_adain_runs_through_the_task_and_is_sized_as_adain(tmp_path, photo):
    """A v2 model file (`fast.AdaINPreset`) given by path: the task runs it at any size, and
    the memory check sizes it as the lite AdaIN network, not as the smaller preset network."""
    from nst_plugin.default_plugins import fast_method
    from nst_plugin.engine import adain, fast
    from nst_plugin.engine.style_models import StyleModelInfo, save_style_model

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buf, format="JPEG")
    jpeg = buf.getvalue()
    torch.manual_seed(0)
    lite = adain.LiteNet((4, 4, 8, 8))
    moments = adain.style_moments(None, torch.rand(1, 3, 32, 32), lite)
    config = fast.NetConfig(lite_widths=lite.widths)
    path = tmp_path / "ours.safetensors"
    save_style_model(
        path,
        fast.AdaINPreset.from_lite(lite, moments),
        config,
        StyleModelInfo("ours"),
        jpeg,
    )
    task = nst.create_task("nst.style_transfer", method="fast", model=str(path), size=0)
    odd = Picture(photo.rgb[:, :37, :51])
    assert task.run({"content": odd})["image"].size == (51, 37)
    assert fast_method._bytes_per_pixel({"model": str(path)}) == 470
    johnson = tmp_path / "johnson.safetensors"
    small = fast.NetConfig(width=4, blocks=1)
    save_style_model(johnson, fast.make_net(small), small, StyleModelInfo("j"), jpeg)
    assert fast_method._bytes_per_pixel({"model": str(johnson)}) == 280
    assert fast_method._bytes_per_pixel({"model": str(johnson), "second_model": str(path)}) == 470
