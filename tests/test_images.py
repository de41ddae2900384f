"""The one image boundary: every common file mode in, atomic and safe out, host formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_plugin.engine.errors import InputError
from nst_plugin.images import (
    Picture,
    from_bhwc,
    from_numpy,
    load_image,
    resize_longer,
    save_image,
    to_bhwc,
    to_numpy,
)


def _gradient(w: int = 24, h: int = 16) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    return np.stack([x, x[::-1] * 0 + 80, 255 - x], -1).astype(np.uint8)


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.fromarray(_gradient(24, 16))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert load_image(path).size == (16, 24)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16", "RGB"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.fromarray(_gradient())
    if mode == "I;16":
        arr = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        img = Image.fromarray(arr)
        assert img.mode.startswith("I;16")
    else:
        img = base.convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png" if mode != "P" else ".gif"
    path = tmp_path / f"img{suffix}"
    img.save(path)
    pic = load_image(path)
    assert pic.rgb.shape == (3, 16, 24) and pic.alpha is None
    assert 0.0 <= float(pic.rgb.min()) and float(pic.rgb.max()) <= 1.0
    if mode in ("L", "I;16"):  # grey stays grey, and 16 bits scale by their own range
        grey = torch.from_numpy(np.asarray(base.convert("L"), dtype=np.float32) / 255)
        assert torch.allclose(pic.rgb[0], pic.rgb[1])
        assert torch.allclose(pic.rgb[0], grey, atol=1 / 255)


def test_alpha_kept_aside_and_restored(tmp_path):
    rgba = np.dstack([_gradient(), np.full((16, 24), 128, np.uint8)])
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    pic = load_image(path)
    assert pic.alpha is not None and abs(float(pic.alpha.mean()) - 128 / 255) < 1e-6
    out = save_image(pic, tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(out)), rgba)


def test_pixel_limit_and_unreadable_files(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    with pytest.raises(InputError, match="above the limit"):
        load_image(path, max_pixels=10_000)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    with pytest.raises(InputError, match="cannot read image"):
        load_image(bad)
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="got a folder"):
        load_image(tmp_path)


def test_save_is_atomic_and_never_overwrites_unless_asked(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    pic = Picture(torch.rand(3, 8, 8))
    with pytest.raises(InputError, match="exists"):
        save_image(pic, target)
    assert target.read_bytes() == b"precious"
    save_image(pic, target, overwrite=True)
    assert Image.open(target).size == (8, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left behind
    with pytest.raises(InputError, match="unknown image format"):
        save_image(pic, tmp_path / "out.xyz")


def test_host_formats_round_trip():
    arr = _gradient()
    pic = from_numpy(arr)
    assert np.array_equal(to_numpy(pic), arr)
    assert from_numpy(arr.astype(np.float32) / 255).rgb.allclose(pic.rgb)
    assert from_numpy(arr[..., 0].astype(np.uint16) * 257).rgb.shape == (3, 16, 24)
    batch = to_bhwc([pic, pic])
    assert batch.shape == (2, 16, 24, 3) and batch.dtype == torch.float32
    assert torch.equal(from_bhwc(batch)[1].rgb, pic.rgb)
    with pytest.raises(InputError, match="batch is empty"):
        from_bhwc(torch.zeros(0, 4, 4, 3))
    with pytest.raises(InputError, match="expected a \\(B, H, W, C\\)"):
        from_bhwc(torch.zeros(4, 4, 3))
    with pytest.raises(InputError, match="unsupported image dtype"):
        from_numpy(arr.astype(np.int32))


def test_resize_longer_keeps_aspect_and_alpha():
    pic = Picture(torch.rand(3, 40, 80), torch.ones(40, 80))
    small = resize_longer(pic, 20)
    assert small.size == (20, 10) and small.alpha.shape == (10, 20)
    assert resize_longer(pic, None) is pic


def test_a_killed_writers_leftover_is_cleared_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from nst_plugin.engine.atomic import atomic_path

    target = tmp_path / "out.png"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    leftover = tmp_path / f".out.png.{dead}.abc123.part"
    leftover.write_bytes(b"half a file")
    mine = tmp_path / f".out.png.{os.getpid()}.xyz789.part"  # a live writer's: kept
    mine.write_bytes(b"in progress")
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not leftover.exists() and mine.exists()
