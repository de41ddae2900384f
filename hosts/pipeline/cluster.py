"""Run a pipeline's items on a Dask cluster: `--cluster local:N` or `--cluster tcp://HOST:PORT`.

The client validates the pipeline once (the same file:line errors as a local run) and sends the
checked `Pipeline` to every worker in a worker plugin. Each worker process builds one `Runner`
from it, so tasks and models load once per worker, not per item; an item is then one Dask task
that runs `Runner.run_item` there, with the same skip-if-newer and `--overwrite` rules as a local
run, because it is the same code.

Why nothing is lost or done twice:

- Outputs are written atomically by the worker that made them (`image.save` writes a temporary
  file beside the output and renames it); a worker killed mid-write leaves only a `.part` file
  named after its PID, which the next write to that folder removes.
- Dask reschedules the tasks of a dead worker on another (up to `allowed-failures` times, then
  the item is reported failed). A retried item whose outputs were already renamed into place
  finds them up to date and is skipped.
- An interrupted client cancels what is queued; running items finish or die with their worker
  (Dask cannot stop a running task: it goes on as "cancelled"). A re-run first waits for such
  items, so it never renders one beside its interrupted twin (the later of the two would find
  the output taken and fail), then skips every item whose outputs exist and are newer than its
  inputs.

Threads: Dask's nanny starts workers with OMP_NUM_THREADS=1, so torch would use one core per
worker whatever the machine. Each worker runs one item at a time (a lock, as tasks and their
caches are not shared across threads) and sets torch's thread count to its share of the host's
cores: usable cores // worker processes on that host. `local:N` starts N processes of one Dask
thread each with OMP_NUM_THREADS (and MKL's, OpenBLAS's) at that share, so N workers x their
torch threads never exceed the cores; workers of a cluster started elsewhere should get the same
variable (see the README).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import dask
from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.client import FutureCancelledError
from distributed.diagnostics.plugin import WorkerPlugin

from nst_plugin import InputError

from .model import Item, Pipeline
from .runner import ItemResult, Reporter, Runner, RunSummary, local_workers

PLUGIN_NAME = "nst-pipeline"
CONNECT_TIMEOUT_S = 20
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

__all__ = ["run_on_cluster"]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its sliding threshold on 64-bit


def reuse_freed_memory() -> None:
    """Undo, for this worker, the nanny's MALLOC_TRIM_THRESHOLD_=65536.

    Dask sets it so that workers hand freed memory back to the OS at once; setting it also stops
    glibc from raising its mmap threshold, so every tensor over 128 KiB becomes a fresh mmap that
    is page-faulted in and unmapped again. Here that made a 512 px `fast` item 2.6x slower on a
    worker than in the local runner. We set what glibc's sliding rule reaches on its own (mmap
    above 32 MiB, trim above twice that): freed tensors are reused, and a worker holds at most
    about one item's working set more than it uses."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: its allocator has no such setting to undo
        pass


class PipelineWorker(WorkerPlugin):
    """A Dask worker plugin holding one runner per worker process (tasks built once, reused)."""

    name = PLUGIN_NAME

    def __init__(
        self, pipeline: Pipeline, *, overwrite: bool, force: bool, workers_per_host: dict[str, int]
    ) -> None:
        self.pipeline = pipeline
        self.overwrite = overwrite
        self.force = force
        self.workers_per_host = workers_per_host
        self.runner: Runner | None = None
        self.lock = threading.Lock()
        self.torch_threads = 0

    def setup(self, worker: Any) -> None:
        import torch

        sharing = self.workers_per_host.get(worker.ip, 1)  # a host that joined later: alone
        self.torch_threads = max(1, usable_cores() // sharing)
        torch.set_num_threads(self.torch_threads)
        reuse_freed_memory()
        self.runner = Runner(self.pipeline, overwrite=self.overwrite, force=self.force)

    def teardown(self, worker: Any) -> None:
        self.runner = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("lock")
        state["runner"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()


def run_item_on_worker(item: Item) -> ItemResult:
    """The Dask task for one item: this worker's runner runs it, one item at a time."""
    worker = get_worker()
    plugin: PipelineWorker = worker.plugins[PLUGIN_NAME]
    with plugin.lock:
        assert plugin.runner is not None, "the pipeline plugin was not set up on this worker"
        result = plugin.runner.run_item(item)
    result.worker = str(worker.name)
    return result


def _size(item: Item) -> int:
    try:
        return item.file.stat().st_size if item.file else 0
    except OSError:
        return 0


def local_cluster(workers: int) -> LocalCluster:
    """`local:N`: N worker processes of one Dask thread, each with its share of the cores."""
    threads = max(1, usable_cores() // workers)
    # The nanny reads these when it is made and uses them for every worker it (re)starts.
    # OpenMP started at one thread and raised later by torch ran convolutions ~10% slower
    # here than started at the count it keeps.
    env = {f"distributed.nanny.pre-spawn-environ.{v}": threads for v in THREAD_VARIABLES}
    with dask.config.set(env):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )


def _connect(spec: str, stack: ExitStack) -> Any:
    """A client for `spec`, starting (and later closing) a local cluster for `local:N`."""
    count = local_workers(spec)
    if count:
        cluster = stack.enter_context(local_cluster(count))
        return stack.enter_context(Client(cluster))
    try:
        return stack.enter_context(Client(spec, timeout=CONNECT_TIMEOUT_S))
    except (OSError, TimeoutError):
        raise InputError(
            f"cannot reach the Dask scheduler at {spec} within {CONNECT_TIMEOUT_S} s: "
            "is it running, and is the address right?"
        ) from None


def run_on_cluster(
    pipeline: Pipeline,
    cluster: str,
    *,
    overwrite: bool = False,
    force: bool = False,
    fail_fast: bool = False,
    reporter: Reporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunSummary:
    """Run every item on the cluster; the summary means what a local run's does."""
    reporter = reporter or Reporter()
    summary = RunSummary(pipeline)
    with ExitStack() as stack:
        client = _connect(cluster, stack)
        prefix = _key_prefix(pipeline)
        _wait_for_interrupted_items(client, prefix, should_stop)
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        per_host = Counter(w["host"] for w in workers)
        plugin = PipelineWorker(
            pipeline, overwrite=overwrite, force=force, workers_per_host=dict(per_host)
        )
        client.register_plugin(plugin, name=PLUGIN_NAME)
        stack.callback(client.unregister_worker_plugin, PLUGIN_NAME)  # a shared cluster forgets us
        reporter.start(pipeline)
        stack.callback(reporter.close)
        by_key: dict[str, Item] = {}
        futures = []
        for item in pipeline.items:
            future = client.submit(
                run_item_on_worker,
                item,
                key=f"{prefix}{item.index}-{time.monotonic_ns()}",
                priority=_size(item),  # largest first: the long ones do not come last
                pure=False,
            )
            by_key[future.key] = item
            futures.append(future)
        pending = as_completed(futures, with_results=False)
        try:
            while not pending.is_empty():
                if should_stop is not None and should_stop():
                    summary.interrupted = True
                    break
                batch = pending.next_batch(block=False)
                if not batch:
                    time.sleep(0.05)
                    continue
                for future in batch:
                    result = _result(future, by_key[future.key], FutureCancelledError)
                    summary.results.append(result)
                    reporter.item_end(result)
                    if result.status == "failed" and fail_fast:
                        summary.stopped_early = True
                if summary.stopped_early:
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            client.cancel([f for f in futures if not f.done()])
    summary.results.sort(key=lambda r: r.item.index)
    return summary


def _key_prefix(pipeline: Pipeline) -> str:
    """Names this pipeline's items on a shared cluster: its file and where its outputs go."""
    where = f"{pipeline.file.resolve()}\n{pipeline.out_dir.resolve()}"
    return f"nst-item-{hashlib.sha256(where.encode()).hexdigest()[:12]}-"


def _items_running(dask_worker: Any, prefix: str) -> int:
    """This pipeline's items running on a worker, an interrupted run's (cancelled) included."""
    running = ("executing", "long-running")
    return sum(
        str(ts.key).startswith(prefix)
        and (ts.state in running or (ts.state == "cancelled" and ts.previous in running))
        for ts in dask_worker.state.tasks.values()
    )


def _wait_for_interrupted_items(
    client: Any, prefix: str, should_stop: Callable[[], bool] | None
) -> None:
    while sum(client.run(_items_running, prefix=prefix).values()):
        if should_stop is not None and should_stop():
            return
        time.sleep(0.1)


def _result(future: Any, item: Item, cancelled: type[BaseException]) -> ItemResult:
    """The item's result; a task that never returned (its workers kept dying) is a failure."""
    try:
        return future.result()
    except cancelled:
        return ItemResult(item, "failed", error="cancelled on the cluster")
    except Exception as exc:
        name = type(exc).__name__
        if name == "KilledWorker":
            why = "the worker running it died each time it was tried (out of memory?)"
        else:
            why = f"{name}: {exc}"
        return ItemResult(item, "failed", error=why)
