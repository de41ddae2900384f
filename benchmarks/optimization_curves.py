"""Time to quality of our Gatys method against pastiche (`bench_optimization.py --curves`).

For each photo x painting pair at one size, in one run: our method through the task API at
several pass schedules (coarse:full passes, e.g. 100:50; 300:50@30 also sets style_weight 30),
snapshotting the image every few
steps with its elapsed time, and pastiche's CLI at --pastiche-steps (its own workspace images
every 25 steps, their times from its per-step log). Each snapshot is scored with
bench_quality's measures (style distance, content distance, SSIM against the photo); coarse
snapshots are upsampled to the output size first, as the run would return them if stopped then.

Writes a markdown table (each schedule's end point and pastiche at 100 and 200 steps, means over
the pairs), a plot of the three measures against seconds (matplotlib, the `bench` extra) and a
contact sheet of every run's final image, a row per pair, to look at.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from bench_optimization import pastiche_steps
from bench_quality import contact_sheet, distances, ssim_grey

import nst_plugin as nst
from nst_plugin.images import Picture, resize_longer, resize_to


@dataclass
class Curve:
    """One system on one pair: (seconds, style distance, content distance, SSIM) points."""

    label: str
    points: list[tuple[float, float, float, float]] = field(default_factory=list)
    final: Picture | None = None


def _score(image: Picture, content: Picture, style: Picture) -> tuple[float, float, float]:
    if image.rgb.shape[-2:] != content.rgb.shape[-2:]:
        image = resize_to(image, tuple(content.rgb.shape[-2:]))
    sd, cd = distances(image, content, style)
    return sd, cd, ssim_grey(image, content)


@dataclass(frozen=True)
class Schedule:
    """Passes per coarse scale and at full size, and the style weight (None: the default)."""

    coarse: int
    full: int
    style_weight: float | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        passes, _, weight = text.partition("@")
        coarse, full = (int(n) for n in passes.split(":"))
        return cls(coarse, full, float(weight) if weight else None)

    @property
    def label(self) -> str:
        weight = "" if self.style_weight is None else f" @{self.style_weight:g}"
        return f"ours {self.coarse}:{self.full}{weight}"


def ours(content: Picture, style: Picture, schedule: Schedule, every: int) -> Curve:
    """One run at a schedule; a snapshot every `every` steps and the final image."""
    weight = {} if schedule.style_weight is None else {"style_weight": schedule.style_weight}
    task = nst.create_task(
        "nst.style_transfer",
        method="optimization",
        size=0,
        coarse_iterations=schedule.coarse,
        iterations=schedule.full,
        preview_every=every,
        **weight,
    )
    shots: list[tuple[float, Picture]] = []

    def keep(record: nst.Progress) -> None:
        if record.preview is not None:
            shots.append((record.elapsed, record.preview))

    started = time.perf_counter()
    result = task.run({"content": content, "styles": [style]}, on_progress=keep)
    end = time.perf_counter() - started  # what a user waits, targets and all
    curve = Curve(schedule.label, final=result["image"])
    for seconds, image in [*shots, (end, result["image"])]:
        curve.points.append((seconds, *_score(image, content, style)))
    return curve


def pastiche(content_path: Path, style_path: Path, size: int, steps: int) -> Curve | None:
    """pastiche's CLI with its defaults but our size; images every 25 steps from its workspace."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--content", str(content_path), "--styles", str(style_path), "--output",
                str(Path(tmp) / "out.png"), "--size", str(size), "--style-size", str(size),
                "--num-steps", str(steps), "--seed", "0", "--workspace", tmp,
                "--workspace-step", "25"]  # fmt: skip
        elapsed = pastiche_steps(args, cwd=tmp)
        if elapsed is None:
            return None
        content = resize_longer(nst.load_image(content_path), size)
        style = resize_longer(nst.load_image(style_path), size)
        curve = Curve("pastiche", final=nst.load_image(Path(tmp) / "out.png"))
        for path in sorted(Path(tmp).glob("*.png")):
            m = re.search(r"(\d+)\.png$", path.name)
            if not m or int(m.group(1)) not in elapsed or int(m.group(1)) == 0:
                continue
            step = int(m.group(1))
            curve.points.append((elapsed[step], *_score(nst.load_image(path), content, style)))
        curve.points.sort()
        return curve


def run(pairs: list[tuple[Path, Path]], size: int, schedules: list[Schedule],
        pastiche_steps: int, every: int, plot: Path, sheet: Path | None) -> None:  # fmt: skip
    curves: dict[str, list[Curve]] = {}
    rows: list[list[Picture]] = []
    warm = resize_longer(nst.load_image(pairs[0][0]), 64)
    ours(warm, warm, Schedule(1, 1), 0)  # loads VGG-19 once, outside every timed run
    for i, (content_path, style_path) in enumerate(pairs):
        content = resize_longer(nst.load_image(content_path), size)
        style = resize_longer(nst.load_image(style_path), size)
        print(f"[{i + 1}/{len(pairs)}] {content_path.stem} x {style_path.stem}", flush=True)
        row = [content, style]
        for schedule in schedules:
            curve = ours(content, style, schedule, every)
            curves.setdefault(curve.label, []).append(curve)
            row.append(curve.final)
            print(f"  {curve.label}: {_fmt(curve.points[-1])}", flush=True)
        if pastiche_steps:
            curve = pastiche(content_path, style_path, size, pastiche_steps)
            if curve is not None:
                curves.setdefault("pastiche", []).append(curve)
                row.append(curve.final)
                print(f"  pastiche {pastiche_steps}: {_fmt(curve.points[-1])}", flush=True)
        rows.append(row)
    _table(curves, pastiche_steps)
    _plot(curves, plot, size, len(pairs))
    if sheet is not None:
        labels = ["content", "style", *(s.label for s in schedules)]
        contact_sheet(rows, labels + ["pastiche"] * bool(pastiche_steps), sheet, 256)
        print(f"sheet: {sheet}")


def _fmt(point: tuple[float, float, float, float]) -> str:
    s, sd, cd, ssim = point
    return f"{s:.1f} s, style {sd:.3f}, content {cd:.3f}, SSIM {ssim:.3f}"


def _mean_curve(runs: list[Curve]) -> list[tuple[float, ...]]:
    """Mean over pairs, point by point (runs of one schedule snapshot at the same steps)."""
    n = min(len(r.points) for r in runs)
    return [tuple(statistics.mean(r.points[k][j] for r in runs) for j in range(4))
            for k in range(n)]  # fmt: skip


def _table(curves: dict[str, list[Curve]], pastiche_steps: int) -> None:
    print("\n| run | seconds | style distance | content distance | SSIM |")
    print("|---|---:|---:|---:|---:|")
    for label, runs in curves.items():
        mean = _mean_curve(runs)
        rows = [(label, mean[-1])]
        if label == "pastiche" and len(mean) >= 4:  # 25-step snapshots: step 100 is the 4th
            rows = [("pastiche 100 steps", mean[3]), (f"pastiche {pastiche_steps} steps", mean[-1])]
        for name, (s, sd, cd, ssim) in rows:
            print(f"| {name} | {s:.1f} | {sd:.3f} | {cd:.3f} | {ssim:.3f} |")


def _plot(curves: dict[str, list[Curve]], path: Path, size: int, pairs: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib missing: pip install -e ".[bench]" for the plot')
        return
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    names = ("style distance (lower: more style)", "content distance (lower)", "SSIM (higher)")
    for label, runs in curves.items():
        mean = _mean_curve(runs)
        xs = [p[0] for p in mean]
        for j, ax in enumerate(axes):
            ax.plot(xs, [p[j + 1] for p in mean], marker=".", label=label)
    for ax, name in zip(axes, names):
        ax.set_xlabel("seconds")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Time to quality at {size} px, mean of {pairs} unseen photo x painting pairs, "
                 f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")
