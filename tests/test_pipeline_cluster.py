"""Pipelines on a real Dask LocalCluster (2 workers x 1 thread): same outputs as a local run, a
worker killed mid-run, an interrupted client resumed, and the CLI's errors."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster
from PIL import Image

from nst_plugin.cli import main
from nst_plugin.images import Picture, save_image
from nst_plugin_hosts.pipeline import Reporter, load_pipeline, run_pipeline
from nst_plugin_hosts.pipeline.cluster import usable_cores
from tests.conftest import make_image

GATYS = """
        params: {method: optimization, size: 40, iterations: 12, scales: 1, tolerance: 0}
        inputs: {content: photos, styles: style.png}"""
FAST = """
        params: {method: fast, model: starry_night, size: 0}
        inputs: {content: photos}"""
PIPELINE = """
    steps:
      - id: stylize
        task: nst.style_transfer{stylize}
      - id: save
        task: image.save
        params: {name: "{stem}.png"}
        inputs: {image: stylize.image}
"""


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        yield c


def workspace(root: Path, count: int, stylize: str = GATYS) -> Path:
    photos = root / "photos"
    photos.mkdir(parents=True)
    for i in range(count):
        save_image(Picture(make_image(40, 40 + 4 * (i % 3), "photo", i)), photos / f"p{i:02}.png")
    save_image(Picture(make_image(32, 32, "art", 99)), root / "style.png")
    (root / "p.yaml").write_text(textwrap.dedent(PIPELINE.replace("{stylize}", stylize)))
    return root / "p.yaml"


def assert_same_images(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
    assert list(expected) == list(got)
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name


def run_here_like_a_worker(pipeline):
    """A local run with a worker's torch threads (the cores split over 2 workers): Gatys sums
    gradients in an order that depends on the thread count, and L-BFGS amplifies the last bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() // 2))
    try:
        return run_pipeline(pipeline)
    finally:
        torch.set_num_threads(threads)


def pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))}


def test_a_folder_on_two_workers_gives_the_local_run_outputs(tmp_path, cluster):
    pipeline = load_pipeline(workspace(tmp_path, 6, FAST), out=tmp_path / "local")
    assert run_pipeline(pipeline).exit_code == 0
    on_cluster = load_pipeline(tmp_path / "p.yaml", out=tmp_path / "dask")
    summary = run_pipeline(on_cluster, cluster=cluster.scheduler_address)
    assert summary.exit_code == 0 and summary.count("done") == 6
    assert {r.worker for r in summary.results} <= {"0", "1"}
    local, dask = pixels(tmp_path / "local"), pixels(tmp_path / "dask")
    assert list(local) == [f"p{i:02}.png" for i in range(6)]
    assert_same_images(local, dask)
    again = run_pipeline(on_cluster, cluster=cluster.scheduler_address)
    assert again.count("skipped") == 6  # the skip-if-newer rule holds on workers too


class KillABusyWorker(Reporter):
    """After the first item comes back, SIGKILL a worker process that is running another."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.killed: list[int] = []

    def item_end(self, result) -> None:
        if self.killed:
            return
        with Client(self.address) as client:
            pids = client.run(os.getpid)
            busy = [w for w, keys in client.processing().items() if keys]
            victim = pids[busy[0]]
        os.kill(victim, signal.SIGKILL)
        self.killed.append(victim)


def test_a_worker_killed_mid_run_loses_nothing_and_writes_each_output_once(tmp_path):
    pipeline = load_pipeline(workspace(tmp_path, 10), out=tmp_path / "out")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        reporter = KillABusyWorker(c.scheduler_address)
        summary = run_pipeline(pipeline, cluster=c.scheduler_address, reporter=reporter)
        assert reporter.killed
    assert summary.exit_code == 0, summary.text()
    assert sorted(r.item.index for r in summary.results) == list(range(1, 11))  # each once
    assert {r.status for r in summary.results} <= {"done", "skipped"}
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i:02}.png" for i in range(10)]
    assert not list(out.glob(".*.part"))
    local = load_pipeline(tmp_path / "p.yaml", out=tmp_path / "local")
    assert run_here_like_a_worker(local).exit_code == 0
    assert_same_images(pixels(tmp_path / "local"), pixels(out))


def test_an_interrupted_client_resumes_where_it_stopped(tmp_path, cluster):
    pipeline = load_pipeline(workspace(tmp_path, 8), out=tmp_path / "out")

    class Stop(Reporter):
        seen = 0

        def item_end(self, result) -> None:
            Stop.seen += 1

    first = run_pipeline(
        pipeline,
        cluster=cluster.scheduler_address,
        reporter=Stop(),
        should_stop=lambda: Stop.seen >= 2,
    )
    assert first.interrupted and first.exit_code == 130
    assert "run again to resume" in first.text()
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.png")}
    assert 2 <= len(written) < 8
    # No waiting here: items the first run left running go on (Dask cannot stop them), and the
    # second run must wait for them rather than render the same item beside them.
    second = run_pipeline(pipeline, cluster=cluster.scheduler_address)
    assert second.exit_code == 0, second.text()
    assert second.count("skipped") >= len(written) and second.count("done") >= 1
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names == [f"p{i:02}.png" for i in range(8)]
    for name, mtime in written.items():  # what the first run finished was not redone
        assert (tmp_path / "out" / name).stat().st_mtime_ns == mtime


def test_cli_cluster_argument_errors_are_one_line_with_status_2(tmp_path, capsys):
    path = workspace(tmp_path, 1)
    for bad in ("local:0", "local", "8786", "http://x:1"):
        with pytest.raises(SystemExit) as exc:
            main(["pipeline", "run", str(path), "--cluster", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("nst pipeline run: error: argument --cluster: expected local:N")


def test_cli_validates_on_the_client_before_starting_a_cluster(tmp_path, capsys):
    path = workspace(tmp_path, 1)
    path.write_text(path.read_text().replace("iterations: 12", "iterations: -3"))
    started = time.monotonic()
    assert main(["pipeline", "run", str(path), "--cluster", "local:2"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "iterations" in err and "Traceback" not in err
    assert time.monotonic() - started < 5  # no cluster was started for an invalid file


def test_cli_runs_a_folder_on_a_local_cluster(tmp_path, capsys):
    path = workspace(tmp_path, 3)
    code = main(["pipeline", "run", str(path), "--cluster", "local:2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "3 items: 3 done" in capsys.readouterr().out
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_cli_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    from nst_plugin_hosts.pipeline import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    path = workspace(tmp_path, 1)
    assert main(["pipeline", "run", str(path), "--cluster", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nst: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within")
    assert len(err.splitlines()) == 1
