"""`nst` as users type it: stylize, example, plugin manifest; errors as one line, exit 2."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nst_plugin.cli import main
from nst_plugin.images import Picture, load_image, save_image
from tests.conftest import make_image


@pytest.fixture
def files(tmp_path):
    content = save_image(Picture(make_image(48, 64, "photo")), tmp_path / "photo.png")
    style = save_image(Picture(make_image(40, 40, "art")), tmp_path / "art.jpg")
    return content, style


def test_stylize_writes_and_refuses_to_overwrite(files, tmp_path, random_decoder_file, capsys):
    content, style = files
    out = tmp_path / "out.png"
    args = [
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--method",
        "adain",
        "--decoder",
        str(random_decoder_file),
        "--size",
        "32",
        "--quiet",
    ]
    assert main(args) == 0
    assert Image.open(out).size == (32, 24)
    before = out.read_bytes()
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_stylize_optimization_mask_gives_each_style_its_half(files, tmp_path):
    content, _ = files

    def solid(r: float, g: float, b: float) -> Picture:
        return Picture(torch.tensor([r, g, b]).view(3, 1, 1).expand(3, 40, 40).contiguous())

    red = save_image(solid(0.9, 0.1, 0.1), tmp_path / "red.png")
    blue = save_image(solid(0.1, 0.1, 0.9), tmp_path / "blue.png")
    halves = {}
    for name, left in (("red-left", 0), ("red-right", 255)):
        mask = tmp_path / f"{name}.png"
        image = Image.new("L", (64, 48), left)
        image.paste(255 - left, (32, 0, 64, 48))  # 0: first style (red), 255: second (blue)
        image.save(mask)
        out = tmp_path / f"{name}.png.out.png"
        # texture synthesis alone (no content, noise start): each half shows only its style
        options = ["--size", "64", "--iterations", "20", "--content-weight", "0", "--init", "noise"]
        args = ["stylize", str(content), str(red), str(blue), "-o", str(out), "--mask", str(mask)]
        code = main([*args, *options, "--scales", "1", "--quiet"])
        assert code == 0 and Image.open(out).size == (64, 48)
        rgb = load_image(out).rgb
        halves[name] = (rgb[:, :, :24].mean((1, 2)), rgb[:, :, 40:].mean((1, 2)))
    # red minus blue on the left half: higher where the mask gave the left to the red style
    redness = {k: float(left[0] - left[2]) for k, (left, _) in halves.items()}
    assert redness["red-left"] > redness["red-right"] + 0.05
    right = {k: float(r[0] - r[2]) for k, (_, r) in halves.items()}
    assert right["red-right"] > right["red-left"] + 0.05


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--alpha", "7", "--method", "adain"], "'alpha' must be within 0..1"),
        (["--iterations", "2", "--method", "adain"], "applies to method optimization"),
        (["--optimizer", "sgd"], "'optimizer' must be one of 'lbfgs', 'adam'"),
    ],
)
def test_bad_options_are_one_clear_line(files, tmp_path, capsys, extra, message):
    content, style = files
    code = main(["stylize", str(content), str(style), "-o", str(tmp_path / "x.png"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_missing_content_file(tmp_path, capsys):
    code = main(
        [
            "stylize",
            str(tmp_path / "nope.jpg"),
            str(tmp_path / "a.jpg"),
            "-o",
            str(tmp_path / "o.png"),
        ]
    )
    assert code == 2 and "image file not found" in capsys.readouterr().err


def test_example_images_only(tmp_path):
    assert main(["example", "--out", str(tmp_path), "--methods", "none"]) == 0
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names == ["astronaut.png", "coffee.png", "embers.png", "meadow.png", "swirls.png"]


def test_example_host_uses_only_the_public_api(files, tmp_path, random_decoder_file, capsys):
    import runpy

    host = runpy.run_path("examples/minimal_host.py")
    content, style = files
    out = tmp_path / "host.png"
    code = host["main"](
        [
            str(content),
            str(style),
            str(out),
            "method=adain",
            "alpha=0.5",
            "size=32",
            f"decoder={random_decoder_file}",
        ]
    )
    assert code == 0 and Image.open(out).size == (32, 24)
    assert host["main"]([str(content), str(style), str(out), "method=adain", "alpha=2"]) == 2
    assert "'alpha' must be within 0..1" in capsys.readouterr().err
    host["main"]([])
    assert "nst.style_transfer" in capsys.readouterr().out


def test_an_input_is_never_the_output_even_with_overwrite(files, tmp_path, capsys):
    content, style = files
    before = content.read_bytes()
    link = tmp_path / "link.png"
    link.symlink_to(content)
    sub = tmp_path / "sub"
    sub.mkdir()
    for target in (content, link, sub / ".." / content.name, style):
        code = main(
            [
                "stylize",
                str(content),
                str(style),
                "-o",
                str(target),
                "--overwrite",
                "--method",
                "adain",
                "--quiet",
            ]
        )
        assert code == 2 and "is one of the inputs" in capsys.readouterr().err
    assert content.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--port", "99999"], "argument --port: port must be 1..65535, got 99999"),
        (["demo", "--port", "http"], "argument --port: not a port number: 'http'"),
        (["pipeline", "run", "p.yaml", "--cluster", "local:0"], "argument --cluster: expected"),
        (["stylize", "a.png", "-o", "b.png", "--size", "big"], "'size' must be of type int"),
    ],
)
def test_argument_errors_are_one_line_with_status_2(capsys, args, message):
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's usage error: usage lines, then the one-line error
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("nst")
    assert not any("Traceback" in line for line in err)
