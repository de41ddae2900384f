"""Run a validated pipeline: every item through the graph, in topological order.

What the runner promises, and why:

- One failing item never stops the others (unless `fail_fast`): a batch of a thousand photos
  should not be lost to one corrupt file. The summary lists each failure with its step.
- Work done is never lost: outputs are written atomically by the save task, existing files are
  kept unless `overwrite`, and an item whose outputs all exist and are newer than its input files
  is skipped, so re-running an interrupted batch resumes it (`force` redoes everything).
- Work is not repeated: one task instance per step for the whole run (models are cached per
  process), and steps that do not depend on the batch item (loading the style image, say) run
  once and are reused by every item.

The runner knows tasks only through the public API; a task that writes files says which
(`planned_outputs()`), and the runner fills in its per-item parameters (`stem`, `index`, `folder`).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nst_plugin import Cancelled, InputError, NSTError, create_task

from .graph import LOAD_TASK
from .model import Item, Pipeline, Source, Step
from .plan import item_params, planned_outputs

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
MAX_PLAN_ITEMS = 50  # a dry run over a huge folder shows this many items, then a count
_LOCAL_CLUSTER = re.compile(r"local:(\d+)")
_SCHEDULER = re.compile(r"(tcp|tls)://\S+")


@dataclass
class ItemResult:
    """What happened to one item: done, skipped (outputs up to date), failed or interrupted."""

    item: Item
    status: str
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    worker: str = ""  # the Dask worker that ran it; empty in a local run


@dataclass
class RunSummary:
    pipeline: Pipeline
    results: list[ItemResult] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: bool = False  # fail-fast stopped the batch

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failures(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failures else EXIT_OK

    def text(self) -> str:
        total = len(self.pipeline.items)
        parts = [
            f"{self.count('done')} done",
            f"{self.count('skipped')} skipped (up to date)",
            f"{len(self.failures)} failed",
        ]
        not_run = total - len(self.results)
        if not_run:
            parts.append(f"{not_run} not run")
        lines = [
            f"{self.pipeline.display}: {total} item{'s' if total != 1 else ''}: "
            + ", ".join(parts)
            + f"; outputs in {self.pipeline.out_dir}"
        ]
        for r in self.failures:
            lines.append(f"  failed: {_name(r.item)}: {r.error}")
        if self.interrupted:
            lines.append("interrupted: finished outputs are kept; run again to resume")
        elif self.stopped_early:
            lines.append("stopped at the first failure (--fail-fast)")
        return "\n".join(lines)


class Reporter:
    """Progress hooks; the default shows nothing (library use, tests)."""

    def start(self, pipeline: Pipeline) -> None: ...

    def item_start(self, item: Item, steps: list[str]) -> None: ...

    def step_start(self, step: Step) -> None: ...

    def step_progress(self, step: Step, record: Any) -> None: ...

    def step_end(self, step: Step) -> None: ...

    def item_end(self, result: ItemResult) -> None: ...

    def close(self) -> None: ...


class TqdmReporter(Reporter):
    """An overall bar over items and one per item over its steps (with the task's own progress)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.overall: Any = None
        self.bar: Any = None
        self.by_worker: Counter[str] = Counter()

    def start(self, pipeline: Pipeline) -> None:
        from tqdm import tqdm

        self.overall = tqdm(
            total=len(pipeline.items),
            desc="items",
            unit="item",
            position=0,
            file=self.stream,
            dynamic_ncols=True,
        )

    def item_start(self, item: Item, steps: list[str]) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=len(steps),
            desc=_name(item),
            unit="step",
            position=1,
            leave=False,
            file=self.stream,
            dynamic_ncols=True,
        )

    def step_start(self, step: Step) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(step.id)

    def step_progress(self, step: Step, record: Any) -> None:
        if self.bar is not None and getattr(record, "total", 0):
            self.bar.set_postfix_str(f"{step.id} {record.step}/{record.total}")

    def step_end(self, step: Step) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def item_end(self, result: ItemResult) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if result.status == "failed":
            self.overall.write(f"failed: {_name(result.item)}: {result.error}", file=self.stream)
        self.by_worker["failed"] += result.status == "failed"
        if result.worker:
            self.by_worker[f"worker {result.worker}"] += 1
        self.overall.set_postfix(self.by_worker, refresh=False)
        self.overall.update(1)

    def close(self) -> None:
        for bar in (self.bar, self.overall):
            if bar is not None:
                bar.close()


@dataclass
class SinkAction:
    """What to do with one file-writing step for one item."""

    step: Step
    paths: list[Path]
    run: bool
    overwrite: bool
    status: str  # "write", "replace", "up to date", or why it cannot be written


class Runner:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        overwrite: bool = False,
        force: bool = False,
        fail_fast: bool = False,
        reporter: Reporter | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.p = pipeline
        self.overwrite = overwrite or force
        self.force = force
        self.fail_fast = fail_fast
        self.reporter = reporter or Reporter()
        self.should_stop = should_stop
        self.shared: dict[str, dict[str, Any] | NSTError] = {}
        self.loaded: dict[Path, Any] = {}
        self.loader: Any = None
        self.consumers: dict[str, set[str]] = {sid: set() for sid in pipeline.steps}
        for sid, step in pipeline.steps.items():
            for dep in step.deps:
                self.consumers[dep].add(sid)
        self.common_inputs = pipeline.input_files

    # -- planning ------------------------------------------------------------------------------

    def newest_input(self, item: Item) -> float:
        files = [*self.common_inputs, *([item.file] if item.file else [])]
        return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)

    def sink_actions(self, item: Item) -> list[SinkAction]:
        """Per file-writing step: write, replace, keep (up to date), or refuse (older output)."""
        newest = self.newest_input(item)
        actions = []
        for step in self.p.steps.values():
            if not step.writes_files:
                continue
            paths = planned_outputs(step, item, self.p.out_dir)
            outside = [p for p in paths if not p.is_relative_to(self.p.out_dir)]
            if outside:
                raise InputError(
                    f"step {step.id!r} would write {outside[0]}, outside the output "
                    f"folder {self.p.out_dir}"
                )
            existing = [p for p in paths if p.exists()]
            stale = [p for p in existing if p.stat().st_mtime < newest]
            user_overwrite = bool(step.params.get("overwrite", False))
            if self.force:
                run, status = True, "replace" if existing else "write"
            elif existing and len(existing) == len(paths) and not stale:
                run, status = False, "up to date"
            elif stale and not (self.overwrite or user_overwrite):
                run = False
                status = (
                    f"{stale[0]} exists and is older than its inputs; pass --overwrite to "
                    "replace it"
                )
            else:
                run, status = True, "replace" if existing else "write"
            overwrite = run and (bool(existing) or user_overwrite)
            actions.append(SinkAction(step, paths, run=run, overwrite=overwrite, status=status))
        return actions

    def needed_steps(self, actions: list[SinkAction]) -> list[str]:
        """The steps that feed a file still to be written; all of them if nothing writes files.

        A step whose result reaches no file has no effect, so it is not run; a pipeline without
        file-writing steps (a check, a benchmark) runs everything."""
        if actions:
            wanted = [a.step.id for a in actions if a.run]
        else:
            wanted = [sid for sid in self.p.steps if not self.consumers[sid]]
        needed: set[str] = set()
        stack = list(wanted)
        while stack:
            sid = stack.pop()
            if sid not in needed:
                needed.add(sid)
                stack.extend(self.p.steps[sid].deps)
        return [sid for sid in self.p.steps if sid in needed]

    # -- running -------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        summary = RunSummary(self.p)
        self.reporter.start(self.p)
        try:
            for item in self.p.items:
                if self.should_stop is not None and self.should_stop():
                    summary.interrupted = True
                    break
                result = self.run_item(item)
                if result.status == "interrupted":
                    summary.interrupted = True
                    break
                summary.results.append(result)
                self.reporter.item_end(result)
                if result.status == "failed" and self.fail_fast:
                    summary.stopped_early = True
                    break
        finally:
            self.reporter.close()
        return summary

    def run_item(self, item: Item) -> ItemResult:
        started = time.monotonic()
        result = ItemResult(item, "done")
        current: Step | None = None
        try:
            actions = self.sink_actions(item)
            blocked = [a for a in actions if not a.run and a.status != "up to date"]
            if blocked:
                current = blocked[0].step
                raise InputError(blocked[0].status)
            result.kept = [p for a in actions if not a.run for p in a.paths]
            by_step = {a.step.id: a for a in actions}
            steps = self.needed_steps(actions)
            if not steps:
                result.status = "skipped"
                return result
            self.reporter.item_start(item, steps)
            values: dict[str, dict[str, Any]] = {}
            for sid in steps:
                current = self.p.steps[sid]
                self.reporter.step_start(current)
                values[sid] = self.run_step(current, item, values, by_step.get(sid))
                if sid in by_step:
                    result.written.extend(by_step[sid].paths)
                self.reporter.step_end(current)
        except (KeyboardInterrupt, Cancelled):
            result.status = "interrupted"
        except NSTError as exc:
            result.status, result.error = "failed", _where(current) + str(exc)
        except Exception as exc:  # a bug in a task must not lose the rest of the batch
            result.status = "failed"
            result.error = f"{_where(current)}{type(exc).__name__}: {exc}"
        result.seconds = time.monotonic() - started
        return result

    def run_step(
        self, step: Step, item: Item, values: dict[str, dict[str, Any]], action: SinkAction | None
    ) -> dict[str, Any]:
        shared = step.id not in self.p.per_item and not step.writes_files
        if shared and step.id in self.shared:
            cached = self.shared[step.id]
            if isinstance(cached, NSTError):
                raise cached
            return cached
        try:
            inputs = {
                port: self.port_value(step, port, sources, item, values)
                for port, sources in step.inputs.items()
            }
            task = step.task
            if action is not None:
                task = task.with_params(
                    **item_params(step, item, self.p.out_dir),
                    **({"overwrite": True} if action.overwrite else {}),
                )
            out = task.run(
                inputs,
                on_progress=lambda r: self.reporter.step_progress(step, r),
                should_stop=self.should_stop,
            )
        except NSTError as exc:
            if shared and not isinstance(exc, Cancelled):
                self.shared[step.id] = exc
            raise
        if shared:
            self.shared[step.id] = out
        return out

    def port_value(
        self,
        step: Step,
        port: str,
        sources: list[Source],
        item: Item,
        values: dict[str, dict[str, Any]],
    ) -> Any:
        spec = {p.name: p for p in step.task_cls.inputs}[port]
        collected: list[Any] = []
        for src in sources:
            if src.step is not None:
                value = values[src.step].get(src.port)
                collected.extend(value if isinstance(value, list) and spec.multiple else [value])
                continue
            files = [item.file] if src.batch else list(src.files)
            for f in files:
                collected.append(f if spec.type == "path" else self.load(f, shared=not src.batch))
        return collected if spec.multiple else collected[0]

    def load(self, path: Path, *, shared: bool) -> Any:
        """Files on image ports are read by the `image.load` task; shared ones once per run."""
        if shared and path in self.loaded:
            return self.loaded[path]
        if self.loader is None:
            self.loader = create_task(LOAD_TASK)
        picture = self.loader.run({"path": path})["image"]
        if shared:
            self.loaded[path] = picture
        return picture


def check_cluster(spec: str) -> str:
    """`local:N` or a Dask scheduler's address; anything else is a one-line error."""
    if local_workers(spec) or _SCHEDULER.fullmatch(spec):
        return spec
    raise InputError(
        f"--cluster {spec!r}: expected local:N (N >= 1 worker processes on this machine) "
        "or a Dask scheduler's address such as tcp://HOST:8786"
    )


def local_workers(spec: str) -> int:
    """N for `local:N`, else 0."""
    m = _LOCAL_CLUSTER.fullmatch(spec)
    return int(m.group(1)) if m else 0


def run_pipeline(
    pipeline: Pipeline,
    *,
    overwrite: bool = False,
    force: bool = False,
    fail_fast: bool = False,
    reporter: Reporter | None = None,
    should_stop: Callable[[], bool] | None = None,
    cluster: str | None = None,
) -> RunSummary:
    """Run every item; see the module docstring for what is skipped, kept and reported.

    `cluster` (`local:N` or `tcp://HOST:PORT`) runs the items on Dask workers instead of here,
    with the same rules and the same summary (see `cluster.py`)."""
    if cluster is not None:
        check_cluster(cluster)
        if importlib.util.find_spec("distributed") is None:
            raise InputError(
                "--cluster needs Dask distributed, an optional extra: "
                'pip install -e ".[distributed]" in the clone'
            )
        from .cluster import run_on_cluster

        return run_on_cluster(
            pipeline,
            cluster,
            overwrite=overwrite,
            force=force,
            fail_fast=fail_fast,
            reporter=reporter,
            should_stop=should_stop,
        )
    runner = Runner(
        pipeline,
        overwrite=overwrite,
        force=force,
        fail_fast=fail_fast,
        reporter=reporter,
        should_stop=should_stop,
    )
    return runner.run()


def describe_plan(pipeline: Pipeline, *, overwrite: bool = False, force: bool = False) -> str:
    """The dry-run text: steps in order with their parameters and inputs, then each item's files."""
    runner = Runner(pipeline, overwrite=overwrite, force=force)
    lines = [f"pipeline {pipeline.display}", f"output folder: {pipeline.out_dir}", "steps:"]
    for n, step in enumerate(pipeline.steps.values(), 1):
        params = " ".join(f"{k}={v!r}" for k, v in step.params.items())
        once = (
            "  (once per run)" if pipeline.batch_text and step.id not in pipeline.per_item else ""
        )
        lines.append(f"  {n}. {step.id}: {step.task_id} {params}".rstrip() + once)
        for port, sources in step.inputs.items():
            for src in sources:
                if src.step:
                    what = f"{src.step}.{src.port}"
                elif src.batch:
                    what = f"{src.text} (batch, {len(src.files)} files)"
                else:
                    what = (
                        src.text if len(src.files) == 1 else f"{src.text} ({len(src.files)} files)"
                    )
                lines.append(f"       {port} <- {what}")
    count = len(pipeline.items)
    lines.append(
        f"items: {count}" + (f" from {pipeline.batch_text}" if pipeline.batch_text else "")
    )
    for item in pipeline.items[:MAX_PLAN_ITEMS]:
        try:
            actions = runner.sink_actions(item)
        except NSTError as exc:
            lines.append(f"  {_name(item)}: cannot run: {exc}")
            continue
        lines.append(f"  {_name(item)}:" + ("" if actions else " (writes no files)"))
        for a in actions:
            for path in a.paths:
                status = a.status if a.run or a.status == "up to date" else f"refused: {a.status}"
                lines.append(f"    {a.step.id} -> {_rel(path, pipeline.out_dir)} ({status})")
    if count > MAX_PLAN_ITEMS:
        lines.append(f"  ... and {count - MAX_PLAN_ITEMS} more items")
    return "\n".join(lines)


def _name(item: Item) -> str:
    return item.file.name if item.file else item.stem


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _where(step: Step | None) -> str:
    return f"step {step.id!r} ({step.task_id}): " if step is not None else ""
