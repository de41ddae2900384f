"""The Gradio demo under load: concurrent sessions on loopback, bounded in count and time.

Starts `nst demo` (its default limits) as a separate process on a free loopback port, then runs
--sessions `gradio_client` sessions at once for --minutes, each cycling through an AdaIN job,
a short optimization job, an over-size upload (which must get its message), and an optimization
job it stops with /stop after a moment. A monitor fetches the page every second throughout.

Every session asks for its own output size and sends a photo of its own aspect ratio, so a result
that went to the wrong session shows in its dimensions. Reported: requests served by kind,
unexpected failures (the bar is 0), results in the wrong session (0), over-size uploads answered
with their message, p50/p95 latency (queueing included), the monitor's worst answer time, and
the server's peak RSS (VmHWM) and RSS in the last minute against the first.

    python benchmarks/load_demo.py [--sessions 12] [--minutes 3]
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from nst_plugin.examples import example_painting
from nst_plugin.images import save_image

ROOT = Path(__file__).resolve().parents[1]
ANSWER_S = 400  # longer than the demo's 300 s job limit: no answer by then is a failure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo(path: Path, w: int, h: int, seed: int) -> Path:
    """A smooth synthetic photo (gradients and a disc) of the given size."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    disc = ((x - cx) ** 2 + (y - cy) ** 2 < 0.05).astype(float)
    rgb = np.stack([0.3 + 0.5 * x, 0.5 + 0.3 * y - 0.2 * disc, 0.7 - 0.4 * y + 0.2 * disc], -1)
    Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8)).save(path)
    return path


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            self.counts[kind] += 1

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)
            self.counts["failed"] += 1


def session(i: int, url: str, files: dict[str, Path], deadline: float, stats: Stats) -> None:
    client = Client(url, verbose=False)
    size = 160 + 16 * i  # this session's own output size...
    content = handle_file(str(files[f"photo{i}"]))  # ...and its own aspect ratio
    w, h = Image.open(files[f"photo{i}"]).size
    expect = (size, round(size * h / w)) if w >= h else (round(size * w / h), size)
    style = handle_file(str(files["style"]))
    common = {"content": content, "style_1": style, "style_2": None, "style_3": None, "size": size}
    step = 0
    while time.monotonic() < deadline:
        kind = ("adain", "optimization", "oversize", "cancel")[step % 4]
        step += 1
        started = time.monotonic()
        try:
            if kind == "oversize":
                try:
                    client.submit(
                        **(common | {"content": handle_file(str(files["huge"]))}),
                        method="adain",
                        api_name="/stylize",
                    ).result(timeout=ANSWER_S)
                    stats.fail(f"session {i}: an over-size upload was accepted")
                except Exception as exc:
                    if "megapixels" in str(exc):
                        stats.ok("oversize refused", time.monotonic() - started)
                    else:
                        stats.fail(f"session {i}: over-size upload: {type(exc).__name__}: {exc}")
                continue
            method = "adain" if kind == "adain" else "optimization"
            extra = (
                {} if kind == "adain" else {"iterations": 20 if kind == "optimization" else 5000}
            )
            job = client.submit(**common, method=method, **extra, api_name="/stylize")
            if kind == "cancel":  # once it runs (a job still queued has nothing to stop)
                while not job.done() and not any(o and o[0] for o in job.outputs()):
                    time.sleep(0.2)
                client.predict(api_name="/stop")
                waited = time.monotonic()
                while not job.done():  # a Stop that found nothing to stop would show here
                    if time.monotonic() - waited > 20:
                        stats.fail(f"session {i}: Stop did not end its job within 20 s")
                        client.predict(api_name="/stop")
                        waited = time.monotonic()
                    time.sleep(0.2)
            result, status, _, _ = job.result(timeout=ANSWER_S)
            got = None
            if result is not None:
                with Image.open(result) as img:
                    got = img.size
            if kind == "cancel":  # its last preview, or "stopped" before the first step
                ok = "stopped" in status.lower()
            else:
                ok = "Done." in status and got is not None
            if not ok:
                stats.fail(f"session {i}: {kind}: status {status[:120]!r}")
            elif got != expect and kind != "cancel":
                stats.fail(f"session {i}: got a {got} result, expected {expect}: another's?")
                stats.counts["wrong session"] += 1
            else:
                stats.ok(kind, time.monotonic() - started)
        except Exception as exc:
            if kind == "cancel" and "Stopped" in str(exc):
                stats.ok(kind, time.monotonic() - started)
            else:
                stats.fail(f"session {i}: {kind}: {type(exc).__name__}: {str(exc)[:200]}")


def monitor(url: str, stop: threading.Event, worst: list[float], stats: Stats) -> None:
    while not stop.is_set():
        t = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
            worst.append(time.monotonic() - t)
        except Exception as exc:
            stats.fail(f"monitor: the page did not answer: {exc}")
        stop.wait(1.0)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=12, choices=range(1, 17), metavar="8..16")
    ap.add_argument("--minutes", type=float, default=3.0)
    args = ap.parse_args()
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` shows where a session waits
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {f"photo{i}": photo(root / f"p{i}.png", 300 + 12 * i, 220, i) for i in range(16)}
        files["style"] = save_image(example_painting("swirls", 256), root / "style.png")
        files["huge"] = photo(root / "huge.png", 2600, 1700, 99)  # 4.4 MP > the demo's 4 MP
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log = (root / "server.log").open("w")  # a pipe nobody reads would fill and block it
        server = subprocess.Popen(
            [sys.executable, "-m", "nst_plugin.cli", "demo", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(240):
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                raise SystemExit(
                    "the demo did not start: " + (root / "server.log").read_text()[-500:]
                )
            stats, worst, stop = Stats(), [], threading.Event()
            rss: list[tuple[float, int]] = []
            deadline = time.monotonic() + 60 * args.minutes
            watcher = threading.Thread(target=monitor, args=(url, stop, worst, stats))
            watcher.start()
            threads = [
                threading.Thread(target=session, args=(i, url, files, deadline, stats))
                for i in range(args.sessions)
            ]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                rss.append((time.monotonic() - t0, rss_kb(server.pid, "VmRSS")))
                time.sleep(1.0)
            stop.set()
            watcher.join()
            wall = time.monotonic() - t0
            peak = rss_kb(server.pid, "VmHWM")
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        warnings = [line for line in (root / "server.log").read_text().splitlines() if line]
    first = max(v for t, v in rss if t < 60)
    last = max(v for t, v in rss if t > wall - 60)
    served = sum(len(v) for v in stats.latency.values())
    print(
        f"{args.sessions} sessions for {wall / 60:.1f} min against `nst demo` (default limits: "
        "concurrency 1, queue 16, 4 MP uploads), loopback"
    )
    print()
    print("| requests | served | p50 s | p95 s |")
    print("|---|---:|---:|---:|")
    for kind, values in sorted(stats.latency.items()):
        print(f"| {kind} | {len(values)} | {pct(values, 50):.1f} | {pct(values, 95):.1f} |")
    everything = [v for values in stats.latency.values() for v in values]
    print(f"| all | {served} | {pct(everything, 50):.1f} | {pct(everything, 95):.1f} |")
    print()
    print(f"unexpected failures: {len(stats.failures)}")
    for f in stats.failures[:20]:
        print(f"  {f}")
    print(f"results in the wrong session: {stats.counts['wrong session']}")
    print(
        f"server log: {len(warnings)} lines"
        + (f", the last: {warnings[-1][:160]}" if warnings else "")
    )
    print(
        f"server alive at the end: {alive}; the page answered {len(worst)} times, "
        f"worst {max(worst):.2f} s"
    )
    print(
        f"server RSS: peak {peak / 2**20:.2f} GiB; highest in the first minute "
        f"{first / 2**20:.2f} GiB, in the last {last / 2**20:.2f} GiB"
    )


if __name__ == "__main__":
    main()
