"""Kill -9 at random moments: nothing half-written is left, and a re-run finishes the work
without redoing what was done (a real subprocess each time, killed with SIGKILL)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from nst_plugin.engine.style_models import load_style_model, read_metadata
from nst_plugin.images import Picture, load_image, save_image
from tests.conftest import make_image

NST = [sys.executable, "-m", "nst_plugin.cli"]


def _wait_for(check, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _step(path: Path) -> int:
    try:
        return json.loads(read_metadata(path)["state"])["step"]
    except Exception:
        return -1


def test_training_killed_at_random_moments_resumes_from_its_last_checkpoint(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        save_image(Picture(make_image(72, 80, "photo", seed=i)), photos / f"p{i}.png")
    painting = save_image(Picture(make_image(64, 64, "art", seed=3)), tmp_path / "art.png")
    out = tmp_path / "m.safetensors"
    args = [*NST, "train", "fast", "--style", str(painting), "--content-dir", str(photos),
            "--out", str(out), "--crop", "64", "--batch-size", "1", "--width", "4",
            "--style-size", "64", "--checkpoint-every", "3", "--sample-every", "0",
            "--quiet"]  # fmt: skip
    rng = random.Random(0)
    last = 0
    for round_ in range(3):
        resume = ["--resume"] if round_ else []
        proc = subprocess.Popen([*args, *resume, "--steps", "100000"], stderr=subprocess.PIPE)
        _wait_for(lambda last=last: _step(out) > last)
        time.sleep(rng.uniform(0.0, 1.0))  # somewhere between checkpoints, or inside a write
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _, _, info, _ = load_style_model(out)  # complete and hash-checked, whatever the moment
        assert info.state["step"] >= last
        last = info.state["step"]
    final = last + 3
    done = subprocess.run([*args, "--resume", "--steps", str(final)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    assert load_style_model(out)[2].state["step"] == final
    assert not list(tmp_path.glob(".m.safetensors.*.part"))  # the killed writers' leftovers


def test_a_batch_killed_at_random_moments_finishes_on_rerun_without_redoing(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        save_image(Picture(make_image(40, 48, "photo", seed=i)), photos / f"p{i}.png")
    style = save_image(Picture(make_image(32, 32, "art", seed=9)), tmp_path / "style.png")
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(f"""
        steps:
          - id: stylize
            task: nst.style_transfer
            params: {{method: optimization, size: 32, iterations: 15, scales: 1, tolerance: 0}}
            inputs: {{content: photos, styles: {style.name}}}
          - id: save
            task: image.save
            params: {{name: "{{stem}}.png"}}
            inputs: {{image: stylize.image}}
        """)
    )
    out = tmp_path / "out"
    run = [*NST, "pipeline", "run", str(tmp_path / "p.yaml"), "--out", str(out), "--quiet"]
    rng = random.Random(1)
    finished: dict[str, int] = {}
    for _ in range(3):
        proc = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen = len(finished)
        _wait_for(
            lambda seen=seen, proc=proc: (
                len(list(out.glob("*.png"))) > seen or proc.poll() is not None
            )
        )
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for path in out.glob("*.png"):
            assert load_image(path).size == (32, 27)  # whole images only
            # an item done in an earlier round was not redone (the re-run skipped it)
            mtime = path.stat().st_mtime_ns
            assert finished.setdefault(path.name, mtime) == mtime
    done = subprocess.run(run, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"p{i}.png" for i in range(8)]
    for name, mtime in finished.items():
        assert (out / name).stat().st_mtime_ns == mtime
    assert not list(out.glob(".*.part"))
