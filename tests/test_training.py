"""Decoder training: loss falls, resume continues identically, bad files are skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_plugin.cli import main
from nst_plugin.engine.adain import normalized
from nst_plugin.engine.checkpoints import load_decoder, read_checkpoint
from nst_plugin.engine.errors import InputError
from nst_plugin.engine.training import colour_loss, content_loss, gram, gram_loss
from nst_plugin.train_adain import train_adain
from tests.conftest import make_image, save_as_v1


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for i in range(3):
        arr = (make_image(56, 72, "photo", seed=i).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(arr).save(content / f"c{i}.png")
        arr = (make_image(48, 48, "art", seed=i).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(arr).save(style / f"s{i}.jpg")
    (content / "broken.jpg").write_bytes(b"not an image")
    Image.new("RGB", (10, 10)).save(content / "tiny.png")
    return content, style


def _train(folders, out, steps, **kw):
    content, style = folders
    return train_adain(
        content_dir=str(content),
        style_dir=str(style),
        out=str(out),
        steps=steps,
        cache_dir=str(out.parent / "cache"),
        sample_every=kw.pop("sample_every", 0),
        quiet=True,
        settings={"crop": 32, "batch_size": 2, "lr": 1e-3, **kw.pop("settings", {})},
        **kw,
    )


def test_loss_falls_and_files_are_written(folders, tmp_path):
    out = tmp_path / "dec.safetensors"
    with pytest.warns(UserWarning) as warned:
        state = _train(folders, out, 30, checkpoint_every=10, sample_every=15)
    text = " ".join(str(w.message) for w in warned)
    assert "broken.jpg" in text and "tiny.png" in text
    assert state.step == 30 and state.images_seen == 60
    history = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert (tmp_path / "dec-samples" / "step0000015.png").exists()
    decoder, meta = load_decoder(out)
    assert meta["state"]["step"] == 30 and meta["settings"]["crop"] == 32


def test_quiet_run_still_reports_throughput_and_time_shares(folders, tmp_path, capsys):
    out = tmp_path / "q.safetensors"
    with pytest.warns(UserWarning):
        _train(folders, out, 3)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "at step 3 (6 images)" in line and "images/s" in line
    assert all(part in line for part in ("data", "decoder", "encoder", "backward"))


def test_resume_continues_identically(folders, tmp_path):
    straight, split = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _train(folders, straight, 4)
    _train(folders, split, 2)
    _train(folders, split, 4, resume=True)
    a, _ = read_checkpoint(straight)
    b, meta = read_checkpoint(split)
    assert meta["state"]["step"] == 4
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_reconstruction_warm_up_then_adain(folders, tmp_path):
    out = tmp_path / "r.safetensors"
    _train(folders, out, 4, settings={"recon_steps": 2})
    history = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert "recon" in history[-1] and "style" in history[-1]


def test_refuses_to_overwrite_and_reports_bad_folders(folders, tmp_path, capsys):
    out = tmp_path / "d.safetensors"
    out.write_bytes(b"precious")
    content, style = folders
    code = main(
        [
            "train",
            "adain",
            "--content-dir",
            str(content),
            "--style-dir",
            str(style),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 2 and "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    code = main(
        [
            "train",
            "adain",
            "--content-dir",
            str(tmp_path / "nope"),
            "--style-dir",
            str(style),
            "--out",
            str(tmp_path / "new.safetensors"),
            "--quiet",
        ]
    )
    assert code == 2 and "not a folder" in capsys.readouterr().err


def test_content_loss_leaves_out_the_margin_cells():
    target = torch.zeros(2, 4, 8, 8)
    out = target.clone()
    out[..., 0, :] = 5.0  # a difference only in the outermost row of cells
    out[..., :, -1] = 5.0
    assert content_loss(out, target, 1) == 0
    assert content_loss(out, target, 0) > 0
    out[..., 3, 3] = 1.0  # an interior difference always counts
    assert content_loss(out, target, 1) == pytest.approx(1.0 / (6 * 6))  # one cell in 6x6
    assert content_loss(out, target, 4) > 0  # nothing would be left: the whole map counts


def test_negative_content_margin_is_refused(folders, tmp_path):
    with pytest.warns(UserWarning), pytest.raises(InputError, match="content margin"):
        _train(folders, tmp_path / "m.safetensors", 1, settings={"content_margin": -1})


def test_unknown_recycle_parts_are_refused(folders, tmp_path):
    with pytest.warns(UserWarning), pytest.raises(InputError, match="recycle parts"):
        _train(folders, tmp_path / "r.safetensors", 1, settings={"recycle_parts": "skips"})


@pytest.mark.parametrize(
    ("setting", "logged"),
    [("structure_weight", "structure"), ("gram_weight", "gram"), ("colour_weight", "colour")],
)
def test_optional_term_is_logged_recorded_and_refused_when_negative(
    folders, tmp_path, setting, logged
):
    out = tmp_path / "s.safetensors"
    with pytest.warns(UserWarning):
        _train(folders, out, 4, checkpoint_every=2, settings={setting: 2.0})
    history = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert all(h[logged] > 0 for h in history)
    assert load_decoder(out)[1]["settings"][setting] == 2.0
    label = setting.replace("_", " ")
    with pytest.warns(UserWarning), pytest.raises(InputError, match=label):
        _train(folders, tmp_path / "n.safetensors", 1, settings={setting: -1})


def test_colour_term_sees_broad_colour_areas_not_strokes():
    style = torch.rand(2, 3, 64, 64)
    assert float(colour_loss(style, style)) == 0.0
    # a 1 px checkerboard averages out in every 16 px square: texture is the Gram terms' business
    checks = (torch.arange(64).view(-1, 1) + torch.arange(64).view(1, -1)) % 2 * 0.2 - 0.1
    assert float(colour_loss(style + checks, style)) == pytest.approx(0.0, abs=1e-9)
    # broad areas of another colour, or of less spread, are charged
    halves = style.clone()
    halves[..., :32] += 0.3
    assert float(colour_loss(halves, style)) > 0.01
    assert float(colour_loss(0.5 + 0.5 * (style - 0.5), style)) > 0.0


def test_gram_loss_is_zero_at_the_target_and_blind_to_scale():
    feat = torch.rand(2, 4, 6, 6)
    target = gram(feat)
    assert float(gram_loss(feat, target)) == 0.0
    assert float(gram_loss(2 * feat, 4 * target)) == pytest.approx(0.0, abs=1e-6)
    assert float(gram_loss(feat * 1.1, target)) == pytest.approx(0.21**2, rel=1e-4)


def test_structure_term_is_zero_for_the_photo_itself():
    x = torch.rand(2, 8, 6, 6)
    assert float(torch.nn.functional.mse_loss(normalized(x), normalized(x.clone()))) == 0.0
    assert normalized(x * 3 + 5).allclose(normalized(x), atol=1e-3)


def test_init_moves_a_v1_decoder_to_a_new_file_and_keeps_counting(folders, tmp_path):
    """A v1 file (the paper's decoder, no skips) continues into a new v2 file, left untouched."""
    with pytest.warns(UserWarning):
        _train(folders, tmp_path / "v2.safetensors", 3)
    v1 = tmp_path / "v1.safetensors"
    save_as_v1(tmp_path / "v2.safetensors", v1)
    before = v1.read_bytes()
    with pytest.raises(InputError, match="cannot go with --resume"):
        _train(folders, tmp_path / "new.safetensors", 5, init=str(v1), resume=True)
    with pytest.warns(UserWarning):
        state = _train(folders, tmp_path / "new.safetensors", 5, init=str(v1))
    assert state.step == 5 and v1.read_bytes() == before
    decoder, meta = load_decoder(tmp_path / "new.safetensors")
    assert meta["architecture_version"] == "2"
    assert any(conv.weight.abs().sum() > 0 for conv in decoder.skips)  # the skips learned


def test_a_lite_network_trains_resumes_identically_and_stylizes(folders, tmp_path):
    """The lite network learns from pixels (photo and style crops), VGG only in its losses."""
    straight, split = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    lite = {"width": "lite", "recon_steps": 5, "recycle_every": 10}
    with pytest.warns(UserWarning):
        _train(folders, straight, 40, checkpoint_every=5, sample_every=15, settings=lite)
    lines = straight.with_suffix(".log.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines]
    styled = [h["loss"] for h in history if "style" in h]
    assert len(styled) == 7 and styled[-1] < 0.6 * styled[0]
    assert (tmp_path / "a-samples" / "step0000015.png").exists()
    with pytest.warns(UserWarning):
        _train(folders, split, 12, settings=lite)
        _train(folders, split, 40, resume=True)
    a, meta = read_checkpoint(straight)
    b, _ = read_checkpoint(split)
    assert meta["width"] == "lite" and meta["architecture_version"] == "3"
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_lite_slope_on_resume_makes_the_relu_network_leaky_with_its_weights(folders, tmp_path):
    """The way out of dead units: the same weights, leaky activations, training goes on."""
    out = tmp_path / "lite.safetensors"
    with pytest.warns(UserWarning):
        _train(folders, out, 6, settings={"width": "lite", "recon_steps": 2})
    relu_weights, relu_meta = read_checkpoint(out)
    assert relu_meta["architecture_version"] == "3" and relu_meta["slope"] == 0.0
    with pytest.warns(UserWarning):
        state = _train(folders, out, 8, resume=True, settings={"lite_slope": 0.05})
    assert state.step == 8
    decoder, meta = load_decoder(out)
    assert meta["architecture_version"] == "4" and meta["slope"] == 0.05
    assert meta["settings"]["lite_slope"] == 0.05
    assert decoder.slope == 0.05
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in decoder.modules()) == 14
    assert not any(isinstance(m, torch.nn.ReLU) for m in decoder.modules())
    weights, _ = read_checkpoint(out)
    moved = [k for k in relu_weights if k.startswith("decoder.")]
    assert any(not torch.equal(relu_weights[k], weights[k]) for k in moved)


def test_lite_widths_on_resume_widen_the_network_and_training_goes_on(folders, tmp_path):
    """More channels for a network that has stopped improving, its output kept at the swap."""
    out = tmp_path / "lite.safetensors"
    lite = {"width": "lite", "recon_steps": 2, "lite_slope": 0.01}
    with pytest.warns(UserWarning):
        _train(folders, out, 6, settings=lite)
    narrow, _ = read_checkpoint(out)
    with pytest.warns(UserWarning):
        state = _train(folders, out, 8, resume=True, settings={"lite_widths": [16, 40, 64, 256]})
    assert state.step == 8
    decoder, meta = load_decoder(out)
    assert meta["architecture_version"] == "5" and decoder.widths == (16, 40, 64, 256)
    assert meta["settings"]["lite_widths"] == [16, 40, 64, 256]
    wide, _ = read_checkpoint(out)
    grown = "decoder.encoder.1.1.weight"
    assert wide[grown].shape[0] == 40 and narrow[grown].shape[0] == 32
    assert not torch.equal(wide[grown][:32, :16], narrow[grown])  # the old units trained on
    assert wide["decoder.decoder.2.1.weight"][:, 32:].abs().sum() > 0  # the new ones are read
    assert wide["adam.0.step"].item() == 2  # the optimizer started anew at the swap
    with pytest.warns(UserWarning):
        state = _train(folders, out, 10, resume=True)  # the file's widths are kept
    assert state.step == 10 and load_decoder(out)[0].widths == (16, 40, 64, 256)
    with pytest.warns(UserWarning), pytest.raises(InputError, match="can only grow") as err:
        _train(folders, out, 12, resume=True, settings={"lite_widths": [16, 32, 64, 256]})
    assert "\n" not in str(err.value)


def test_lite_modulate_on_resume_adds_a_modulator_and_keeps_the_optimizer(folders, tmp_path):
    """MicroAST's filter modulation grown into a trained network, its output kept at the swap."""
    out = tmp_path / "lite.safetensors"
    lite = {"width": "lite", "recon_steps": 2, "lite_slope": 0.01}
    with pytest.warns(UserWarning):
        _train(folders, out, 6, settings=lite)
    with pytest.warns(UserWarning):
        state = _train(folders, out, 8, resume=True, settings={"lite_modulated": True})
    assert state.step == 8
    decoder, meta = load_decoder(out)
    assert meta["architecture_version"] == "6" and decoder.modulated
    assert meta["settings"]["lite_modulated"] is True
    weights, _ = read_checkpoint(out)
    assert weights["decoder.modulator.net.3.weight"].abs().sum() > 0  # it trained
    assert weights["adam.0.step"].item() == 8  # the old parameters kept their Adam state
    with pytest.warns(UserWarning):
        state = _train(folders, out, 10, resume=True)  # the file's modulator is kept
    assert state.step == 10 and load_decoder(out)[0].modulated
    for settings, message in [
        ({"lite_modulated": False}, "has a style modulator, which stays"),
        ({"lite_widths": [16, 32, 80, 256]}, "widens its two finer stages only"),
    ]:
        with pytest.warns(UserWarning), pytest.raises(InputError, match=message) as err:
            _train(folders, out, 12, resume=True, settings=settings)
        assert "\n" not in str(err.value)
    with pytest.warns(UserWarning):  # the finer two widen, the modulator kept
        state = _train(folders, out, 12, resume=True, settings={"lite_widths": [24, 40, 64, 256]})
    decoder, meta = load_decoder(out)
    assert state.step == 12 and decoder.modulated and meta["widths"] == (24, 40, 64, 256)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"width": "lite", "lite_slope": 1.0}, "lite slope must be at least 0 and below 1"),
        ({"width": "half", "lite_modulated": True}, "style modulator is for a lite network"),
        ({"width": "lite", "lite_slope": -0.1}, "lite slope must be at least 0 and below 1"),
        ({"width": "half", "lite_slope": 0.01}, "lite slope is for a lite network only"),
        ({"width": "lite", "lite_slope": 0.01, "recycle_every": 5}, "leaky ones do not die"),
        ({"width": "half", "lite_widths": [16, 40, 64, 256]}, "lite widths are for a lite"),
        ({"width": "lite", "lite_widths": [16, 40, 64]}, "four channel counts of 1 or more"),
        ({"width": "lite", "lite_widths": [16, 0, 64, 256]}, "four channel counts of 1 or more"),
    ],
)
def test_bad_lite_slopes_and_widths_are_refused_in_one_line(folders, tmp_path, settings, message):
    with pytest.warns(UserWarning), pytest.raises(InputError, match=message) as err:
        _train(folders, tmp_path / "s.safetensors", 1, settings=settings)
    assert "\n" not in str(err.value)
