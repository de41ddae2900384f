"""Items per second for a folder pipeline: the local runner against Dask `local:1` and `local:2`.

A 48-image folder (the 25 photos of ../shared/data/eval-content, each also mirrored, the first
48 of those) through `image.load` (512 px) -> `nst.style_transfer` (`fast`, one preset) ->
`image.save` (JPEG), with `force` so every item runs; `--method adain` stylizes with the
painting inside that preset's model file instead (a step ten times longer). Each mode runs the
folder once to load its models, then --rounds times, interleaved with the other modes; the median
is reported, and the first run's extra time (cluster start, one model load per worker). The
engine's overhead per item is `local:1` (one worker holding every core, as the local runner
does) against the local runner.

    python benchmarks/bench_distributed.py [--method fast|adain] [--items 48] [--size 512]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps

import nst_plugin as nst
from nst_plugin.engine.precision import bf16_enabled
from nst_plugin.images import Picture, save_image
from nst_plugin_hosts.pipeline import load_pipeline, run_pipeline
from nst_plugin_hosts.pipeline.cluster import local_cluster

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "eval-content"

PIPELINE = """
    steps:
      - id: photo
        task: image.load
        params: {{size: {size}}}
        inputs: {{path: photos}}
      - id: stylize
        task: nst.style_transfer
        params: {params}
        inputs: {inputs}
      - id: save
        task: image.save
        params: {{name: "{{stem}}.{{ext}}", format: jpg, quality: 92}}
        inputs: {{image: stylize.image}}
"""


def make_folder(root: Path, count: int) -> None:
    """The eval photos and their mirror images, as PNG: a folder of `count` distinct inputs."""
    photos = root / "photos"
    photos.mkdir()
    sources = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    n = 0
    for mirror in (False, True):
        for src in sources:
            if n == count:
                return
            with Image.open(src) as im:
                im = im.convert("RGB")
                (ImageOps.mirror(im) if mirror else im).save(photos / f"{n:03}.png")
            n += 1


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    """Seconds for one run of the folder, and the mean seconds its runner spent inside an item
    (the rest is scheduling and waiting)."""
    t0 = time.perf_counter()
    summary = run()
    seconds = time.perf_counter() - t0
    assert summary.exit_code == 0, summary.text()
    return seconds, sum(r.seconds for r in summary.results) / len(summary.results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument(
        "--model", default="starry_night", help="the fast preset (its painting for adain)"
    )
    ap.add_argument("--method", choices=("fast", "adain"), default="fast")
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of each mode")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folder(root, args.items)
        if args.method == "fast":
            params = f"{{method: fast, model: {args.model}, size: 0}}"
            inputs = "{content: photo.image}"
        else:
            fast = nst.create_task("nst.style_transfer", method="fast", model=args.model)
            tiny = Picture(torch.zeros(3, 16, 16))
            save_image(fast.run({"content": tiny})["reference"], root / "painting.png")
            params, inputs = (
                "{method: adain, size: 0}",
                "{content: photo.image, styles: painting.png}",
            )
        text = PIPELINE.format(size=args.size, params=params, inputs=inputs)
        (root / "p.yaml").write_text(textwrap.dedent(text))
        pipeline = load_pipeline(root / "p.yaml", out=root / "out")
        modes: dict[str, Callable[[], Any]] = {
            "local runner (this process)": lambda: run_pipeline(pipeline, force=True)
        }
        extra: dict[str, float] = {}
        with ExitStack() as stack:
            for workers in (1, 2):
                t0 = time.perf_counter()
                address = stack.enter_context(local_cluster(workers)).scheduler_address
                name = f"--cluster local:{workers}"
                extra[name] = time.perf_counter() - t0
                modes[name] = lambda a=address: run_pipeline(pipeline, force=True, cluster=a)
            for name, run in modes.items():  # the first run loads the models
                extra[name] = extra.get(name, 0.0) + timed(run)[0]
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
            for _ in range(args.rounds):  # interleaved: a slow spell of the machine hits all
                for name, run in modes.items():
                    samples[name].append(timed(run))
    cpu = platform.processor() or platform.machine()
    bf16 = "on" if bf16_enabled(torch.device("cpu")) else "off"
    print(
        f"{args.items} images at {args.size} px, method {args.method} ({args.model}); CPU: {cpu}, "
        f"{torch.get_num_threads()} torch threads here, bf16 {bf16}"
    )
    print()
    print(f"median of {args.rounds} interleaved rounds after a warm-up run")
    print(
        "| runner | items / s | s / item | vs local | s inside one item "
        "| first run: extra s (start, loads) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    median = {n: statistics.median(t for t, _ in s) for n, s in samples.items()}
    base = median["local runner (this process)"]
    for name, seconds in median.items():
        busy = statistics.median(b for _, b in samples[name])
        print(
            f"| {name} | {args.items / seconds:.2f} | {seconds / args.items:.3f} "
            f"| {base / seconds:.2f}x | {busy:.3f} | {extra[name] - seconds:.1f} |"
        )
    overhead = median["--cluster local:1"] / base - 1
    print()
    print(f"engine overhead per item (local:1 vs the local runner): {overhead:+.1%}")


if __name__ == "__main__":
    main()
