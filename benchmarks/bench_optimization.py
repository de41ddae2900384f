"""Seconds per iteration of our Gatys style transfer against pastiche's, same inputs, same run.

    .venv/bin/python benchmarks/bench_optimization.py                 # 256 and 512 px, 50 steps
    .venv/bin/python benchmarks/bench_optimization.py --quick         # 128 px, 10 steps
    .venv/bin/python benchmarks/bench_optimization.py --sizes 512 --iterations 100 --optimizer adam

For each device (the CPU, and CUDA when present) and size, it runs:

1. ours, single scale, N steps: seconds per step (mean of steps 2..N, so loading and the one-off
   target computation are excluded) and the total loss L_N it reaches;
2. pastiche's CLI (`python -m pastiche`) with the same content, style, size, steps, optimizer,
   layers and pooling: seconds per step from its per-step log (steps 2..N; its log has 0.1 s
   resolution, so use N >= 20 for small sizes);
3. ours coarse to fine (halving down to min(256, size/2)): the time until the full-size pass first
   reaches L_N, which is what multi-scale buys.

Both programs count one step as one forward and backward pass through VGG-19 up to relu5_1, so the
ratio ours/pastiche compares implementations, not algorithms. Other jobs on the machine make
absolute times noisy; runs alternate ours/pastiche so both see the same conditions.

Speed tricks in nst_plugin/engine/optimization.py that this measures:

* style Gram targets computed once per scale under no_grad (pastiche recomputes the style image's
  Gram matrices on every step), and several styles blended into a single target per layer;
* the encoder run only up to the deepest loss layer, from a private truncated copy prepared once
  and cached per encoder and device;
* channels-last memory format on the CPU, where oneDNN convolves it faster, with Gram matrices
  read in place from the channels-last (H·W, C) layout instead of copied to (C, H·W);
* one function evaluation per L-BFGS `step` call, its history kept across calls, so no evaluation
  is repeated and cancelling or reporting costs nothing;
* loss values read back from the device only when a progress callback listens;
* coarse-to-fine scales, so most of the layout is settled on a quarter of the pixels.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nst_plugin.engine.encoders import load_encoder  # noqa: E402
from nst_plugin.engine.errors import Cancelled  # noqa: E402
from nst_plugin.engine.optimization import (  # noqa: E402
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    OptimizationOptions,
    auto_scales,
    stylize,
)
from nst_plugin.images import load_image, resize_longer  # noqa: E402

DEFAULT_CONTENT = ROOT.parent / "shared" / "data" / "content" / "tubingen.jpg"
DEFAULT_STYLE = ROOT.parent / "shared" / "data" / "styles" / "van_gogh_starry_night.jpg"


def _pastiche_layer(tap: str) -> str:
    """relu4_2 -> block4_relu2: the same VGG-19 layer under pastiche's name."""
    kind, rest = re.fullmatch(r"([a-z]+)(\d+_\d+)", tap).groups()
    block, index = rest.split("_")
    return f"block{block}_{kind}{index}"


@dataclass
class Row:
    device: str
    size: int
    iterations: int
    ours_s_per_it: float
    pastiche_s_per_it: float | None
    loss_n: float
    single_time: float
    multi_time: float | None
    multi_final_steps: int | None
    multi_scales: list[int]


def _image(path: Path, size: int, device: str) -> torch.Tensor:
    return resize_longer(load_image(path), size).rgb[None].to(device)


def _per_step(elapsed: list[float]) -> float:
    """Mean seconds per step over steps 2..N (the first carries one-off setup)."""
    if len(elapsed) < 2:
        return float("nan")
    return (elapsed[-1] - elapsed[0]) / (len(elapsed) - 1)


def run_ours(content, style, options: OptimizationOptions) -> tuple[float, float, float]:
    """(seconds per step, best total loss, seconds to the end) for one single-scale run.

    The best, not the last: L-BFGS's last evaluation may be a line-search trial, and the image
    stylize returns is its best point.
    """
    elapsed: list[float] = []
    losses: list[float] = []

    def record(p) -> None:
        elapsed.append(p.elapsed)
        losses.append(p.losses["total"])

    stylize(load_encoder(), content, [style], options=options, on_progress=record)
    return _per_step(elapsed), min(losses), elapsed[-1]


def run_ours_to_loss(content, style, options: OptimizationOptions, target: float):
    """Coarse to fine until the full-size pass reaches `target`: (seconds, full-size steps)."""
    reached: list[tuple[float, int]] = []
    final_steps = 0
    n_scales = len(options.scales) + 1

    def record(p) -> None:
        nonlocal final_steps
        if p.scale == n_scales - 1:
            final_steps += 1
            if not reached and p.losses["total"] <= target:
                reached.append((p.elapsed, final_steps))

    try:
        stylize(
            load_encoder(),
            content,
            [style],
            options=options,
            on_progress=record,
            should_stop=lambda: bool(reached),
        )
    except Cancelled:
        pass
    return reached[0] if reached else (None, None)


def run_pastiche(
    content: Path, style: Path, size: int, options: OptimizationOptions, device: str
) -> float | None:
    """Seconds per step of pastiche's CLI, from its own per-step elapsed-time log."""
    with tempfile.TemporaryDirectory() as tmp:
        elapsed = pastiche_steps(
            [
                "--content",
                str(content),
                "--styles",
                str(style),
                "--output",
                os.path.join(tmp, "out.png"),
                "--size",
                str(size),
                "--style-size",
                str(size),
                "--optimizer",
                options.optimizer,
                "--num-steps",
                str(options.iterations),
                "--pooling",
                options.pooling,
                "--device",
                device,
                "--seed",
                str(options.seed),
                "--content-layers",
                *map(_pastiche_layer, options.content_layers),
                "--style-layers",
                *map(_pastiche_layer, options.style_layers),
            ],
            cwd=tmp,
        )
    if elapsed is None:
        return None
    # Step 0 only evaluates the start; steps 1..N each take one optimizer step.
    steps = [elapsed[k] for k in sorted(elapsed) if k >= 1]
    return _per_step(steps)


def pastiche_steps(args: list[str], cwd: str) -> dict[int, float] | None:
    """Run pastiche's CLI (logging every step); its elapsed seconds by step, None if it failed."""
    cmd = [sys.executable, "-m", "pastiche", *args, "--info-step", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        print(f"pastiche failed ({proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    elapsed = {}
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"(\d+)\s+([\d.]+)\s+\S+", line.strip())
        if m:
            elapsed[int(m.group(1))] = float(m.group(2))
    return elapsed


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", type=Path, default=DEFAULT_CONTENT)
    parser.add_argument("--style", type=Path, default=DEFAULT_STYLE)
    parser.add_argument("--sizes", type=int, nargs="+", help="longer sides (default 256 512)")
    parser.add_argument("--iterations", type=int, help="steps per run (default 50)")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--devices", nargs="+", help="default: cpu, and cuda when available")
    parser.add_argument("--quick", action="store_true", help="128 px and 10 steps")
    parser.add_argument("--skip-pastiche", action="store_true")
    parser.add_argument("--skip-multiscale", action="store_true")
    curves = parser.add_argument_group("time to quality (--curves; see optimization_curves.py)")
    curves.add_argument("--curves", action="store_true", help="curves instead of s/step")
    curves.add_argument("--pairs", type=int, default=6, help="eval photo x painting pairs")
    curves.add_argument("--size", type=int, default=512, help="output's longer side")
    curves.add_argument(
        "--schedules",
        default="50:25,100:50,300:300",
        help="coarse:full passes, comma-separated; COARSE:FULL@W also sets style_weight W",
    )
    curves.add_argument("--pastiche-steps", type=int, default=200, help="0: leave pastiche out")
    curves.add_argument("--every", type=int, default=10, help="snapshot every N steps")
    curves.add_argument("--plot", type=Path, default=ROOT / "docs/images/time-to-quality.png")
    curves.add_argument("--sheet", type=Path, help="contact sheet of the final images (JPEG/PNG)")
    args = parser.parse_args(argv)
    if args.curves:
        return _curves(args)

    sizes = args.sizes or ([128] if args.quick else [256, 512])
    iterations = args.iterations or (10 if args.quick else 50)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    for path in (args.content, args.style):
        if not path.is_file():
            parser.error(f"image not found: {path}")
    base = OptimizationOptions(
        optimizer=args.optimizer,
        iterations=iterations,
        content_layers=DEFAULT_CONTENT_LAYERS,
        style_layers=DEFAULT_STYLE_LAYERS,
        scales=(),
        tolerance=0.0,  # every step timed: no early stop
    )

    rows: list[Row] = []
    for device in devices:
        for size in sizes:
            content = _image(args.content, size, device)
            style = _image(args.style, size, device)
            print(f"[{device} {size}px] ours ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            per_it, loss_n, single_time = run_ours(content, style, base)
            print(f"  {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            pastiche = None
            if not args.skip_pastiche:
                print(f"[{device} {size}px] pastiche ...", file=sys.stderr, flush=True)
                pastiche = run_pastiche(args.content, args.style, size, base, device)
            multi_time = multi_steps = None
            coarse = auto_scales(size, min_side=min(256, size // 2))[:-1]
            if not args.skip_multiscale and coarse:
                print(f"[{device} {size}px] ours coarse to fine ...", file=sys.stderr, flush=True)
                multi = base.replace(scales=tuple(coarse))
                multi_time, multi_steps = run_ours_to_loss(content, style, multi, loss_n)
            rows.append(
                Row(
                    device,
                    size,
                    iterations,
                    per_it,
                    pastiche,
                    loss_n,
                    single_time,
                    multi_time,
                    multi_steps,
                    [*coarse, size],
                )
            )

    cpu = platform.processor() or platform.machine()
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} CPU threads ({cpu}), "
        f"optimizer {args.optimizer}, content {args.content.name}, style {args.style.name}\n"
    )
    print(
        "| device | size | steps | ours s/step | pastiche s/step | ours/pastiche "
        "| ours loss after N | single-scale time to it | coarse-to-fine time to it (scales) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ratio = None if r.pastiche_s_per_it is None else r.ours_s_per_it / r.pastiche_s_per_it
        if r.multi_time is not None:
            multi = f"{r.multi_time:.1f} s, {r.multi_final_steps} full-size steps"
        elif len(r.multi_scales) > 1 and not args.skip_multiscale:
            multi = f"not reached in {r.iterations} full-size steps"
        else:
            multi = "—"
        print(
            f"| {r.device} | {r.size} | {r.iterations} | {_fmt(r.ours_s_per_it)} "
            f"| {_fmt(r.pastiche_s_per_it)} | {_fmt(ratio, 2)} | {r.loss_n:.4g} "
            f"| {r.single_time:.1f} s | {multi} ({' → '.join(map(str, r.multi_scales))}) |"
        )
    return 0


def _curves(args: argparse.Namespace) -> int:
    import optimization_curves

    data = ROOT.parent / "shared" / "data"
    photos = sorted((data / "eval-content").glob("*.jpg"))
    paintings = sorted((data / "styles").glob("*.jpg"))
    # spread over the photos and cycle through the paintings: every pair is a new combination
    step = max(1, len(photos) // args.pairs)
    pairs = [(photos[i * step], paintings[i % len(paintings)]) for i in range(args.pairs)]
    schedules = [optimization_curves.Schedule.parse(s) for s in args.schedules.split(",")]
    optimization_curves.run(pairs, args.size, schedules, args.pastiche_steps, args.every,
                            args.plot, args.sheet)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
