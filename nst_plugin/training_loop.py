"""The loop every `nst train ...` command shares: progress, JSON-lines log, sample grids,
atomic checkpoints every few minutes, a time limit, and a clean stop on Ctrl-C or SIGTERM.

A checkpoint is written at each interval, at the time limit and on interruption, so a run can
be stopped at any moment without losing more than the current step; `--resume` continues it.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .engine.errors import Cancelled, InputError
from .engine.training import Trainer


def checked_output(out: str | Path, *, resume: bool, overwrite: bool) -> Path:
    """The file to write; an existing one only with --resume (continue it) or --overwrite."""
    path = Path(out)
    if path.exists() and not (resume or overwrite):
        raise InputError(
            f"{path} exists: pass --resume to continue it or --overwrite to replace it"
        )
    return path


def run_training(
    trainer: Trainer,
    *,
    out_path: Path,
    steps: int,
    save_file: Callable[[], None],
    write_samples: Callable[[Path], None] | None,
    desc: str,
    started: float,
    time_limit_min: float | None = None,
    hours: float | None = None,
    checkpoint_every: int = 100,
    checkpoint_minutes: float = 5.0,
    sample_every: int = 500,
    quiet: bool = False,
    log_extra: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Train to `steps` in all; `save_file` writes the checkpoint (atomically) to `out_path`.

    At the time limit, or once the model's training time in all (the log's `hours`: time spent
    in steps, which is what a training budget counts) reaches `hours`, it returns; on Ctrl-C or
    SIGTERM it saves, then raises KeyboardInterrupt.
    """
    log_path = out_path.with_suffix(".log.jsonl")
    samples_dir = out_path.parent / f"{out_path.stem}-samples"
    window: list[dict[str, float]] = []
    last_save = time.monotonic()
    images_before = trainer.state.images_seen

    def save() -> None:
        if window:
            trainer.state.history.append(_summary(trainer, window, log_extra))
            with log_path.open("a") as fh:
                fh.write(json.dumps(trainer.state.history[-1]) + "\n")
            window.clear()
        save_file()

    bar = None if quiet else tqdm(total=steps, initial=trainer.state.step, desc=desc)

    def on_step(losses: dict[str, float]) -> None:
        nonlocal last_save
        window.append(losses)
        step = trainer.state.step
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()})
        if write_samples is not None and sample_every and step % sample_every == 0:
            write_samples(samples_dir / f"step{step:07d}.png")
        minutes = (time.monotonic() - last_save) / 60
        if step % checkpoint_every == 0 or minutes >= checkpoint_minutes:
            save()
            last_save = time.monotonic()

    def out_of_time() -> bool:
        if hours is not None and trainer.state.seconds / 3600 >= hours:
            return True
        return time_limit_min is not None and time.monotonic() - started >= time_limit_min * 60

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        trainer.run(steps, on_step=on_step, should_stop=out_of_time)
    except KeyboardInterrupt:
        interrupted = True
    except Cancelled:  # the time limit
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        save()
        if bar is not None:
            bar.close()
    # one line even with --quiet: a background run's log keeps its throughput and where time went
    total = sum(trainer.timings.values()) or 1.0
    shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in trainer.timings.items())
    run_images = trainer.state.images_seen - images_before
    print(
        f"saved {out_path} at step {trainer.state.step} ({trainer.state.images_seen} images); "
        f"this run {run_images / total:.1f} images/s; time: {shares}"
    )
    if interrupted:  # saved; the caller (a command, a script training several) stops too
        raise KeyboardInterrupt


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _summary(
    trainer: Trainer,
    window: list[dict[str, float]],
    log_extra: Callable[[], dict[str, Any]] | None,
) -> dict[str, Any]:
    keys = sorted({k for w in window for k in w})
    mean = {k: sum(w.get(k, 0.0) for w in window) / len(window) for k in keys}
    return {
        "step": trainer.state.step,
        "images_seen": trainer.state.images_seen,
        "hours": round(trainer.state.seconds / 3600, 4),
        "crop": trainer.settings.crop,
        "lr": trainer.lr(),
        **(log_extra() if log_extra else {}),
        **{k: float(f"{v:.5g}") for k, v in mean.items()},  # 5 significant digits
    }
