"""Phase 4, plan: the files each input reads, the items of the batch, and every file written.

A glob or folder on a one-image port makes the batch: the graph runs once per file, and the steps
that depend on it run per item while the others run once. Before anything runs, every file each
file-writing step would write, for every item, is worked out: inside the output folder, and no
two items writing the same file.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst_plugin import IMAGE_SUFFIXES, NSTError

from .graph import REF_RE, Graph
from .model import Item, Pipeline, Source, Step
from .problems import Problems, hint

if TYPE_CHECKING:
    from nst_plugin import Port

__all__ = ["item_params", "output_folder", "plan", "planned_outputs"]

GLOB_CHARS = frozenset("*?[")
MAX_REPEATS = 3  # the same problem across many batch items is shown this many times, then counted


def plan(
    graph: Graph,
    *,
    file: Path,
    base: Path,
    out_dir: Path,
    problems: Problems,
) -> Pipeline:
    """The runnable pipeline: steps in order with their files read, items, outputs checked."""
    steps = {
        sid: _read_files(step, graph.steps, base, problems) for sid, step in graph.steps.items()
    }
    ordered = {sid: steps[sid] for sid in graph.order}
    items, per_item, batch_text = _items(ordered, file, problems)
    pipeline = Pipeline(file, problems.display, base, out_dir, ordered, items, per_item, batch_text)
    _check_outputs(pipeline, problems)
    return pipeline


def output_folder(
    out: str | os.PathLike | None, value: Any, where: str, base: Path, problems: Problems
) -> Path:
    """--out if given, else the file's 'output' (relative to the file); always absolute."""
    if out is not None:
        return Path(out).expanduser().resolve()
    if not isinstance(value, str) or not value.strip():
        problems.add(where, "'output' must be a folder path")
        return base / "out"
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _read_files(step: Step, steps: dict[str, Step], base: Path, problems: Problems) -> Step:
    """The step with its file inputs' files listed, as a new step: the graph's stays as it was."""
    ports = {p.name: p for p in step.task_cls.inputs} if step.task_cls else {}
    inputs = {}
    for port, sources in step.inputs.items():
        read = [
            src if src.step else _files(src, step.id, ports[port], steps, base, problems)
            for src in sources
        ]
        inputs[port] = [src for src in read if src is not None]
    return dataclasses.replace(step, inputs=inputs)


def _files(
    src: Source,
    step_id: str,
    port: Port,
    steps: dict[str, Step],
    base: Path,
    problems: Problems,
) -> Source | None:
    """The file, a folder's files or a glob's matches (images, or the port's suffixes); a batch
    if many on a one-file port."""
    text, where, multiple = src.text, src.where, port.multiple
    suffixes = port.suffixes or IMAGE_SUFFIXES
    kind = "image" if not port.suffixes else "video" if ".mp4" in suffixes else "matching"
    noun = {"image": "images", "video": "videos"}.get(kind, "matching files")
    path = Path(os.path.expanduser(text))
    path = path if path.is_absolute() else base / path
    if GLOB_CHARS & set(text):
        files = sorted(
            Path(f)
            for f in glob.glob(str(path), recursive=True)
            if Path(f).is_file() and Path(f).suffix.lower() in suffixes
        )
        if not files:
            problems.add(where, f"no {kind} files match {text!r} (looked for {path})", step_id)
            return None
        return dataclasses.replace(src, files=tuple(files), batch=not multiple)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        if not files:
            problems.add(where, f"folder {text!r} holds no {noun} ({', '.join(suffixes)})", step_id)
            return None
        return dataclasses.replace(src, files=tuple(files), batch=not multiple)
    if path.is_file():
        return dataclasses.replace(src, files=(path,))
    ref = REF_RE.fullmatch(text)
    hint_text = ""
    if ref:
        hint_text = f"; nor is it a step's output: no step {ref.group(1)!r}" + hint(
            ref.group(1), steps
        )
    problems.add(where, f"input file not found: {text} (looked for {path}){hint_text}", step_id)
    return None


def _items(
    steps: dict[str, Step], file: Path, problems: Problems
) -> tuple[list[Item], set[str], str | None]:
    """One item per file of the batch input (only one allowed), or one for the whole pipeline."""
    batch = [
        (s, src) for s in steps.values() for srcs in s.inputs.values() for src in srcs if src.batch
    ]
    first = batch[0][1] if batch else None
    for step, src in batch[1:]:
        if first is not None and src.files != first.files:
            problems.add(
                src.where,
                f"a second batch input ({src.text!r}); a pipeline has "
                f"one, here {first.text!r} ({first.where}). Feed other one-image "
                "inputs a single file",
                step.id,
            )
    per_item: set[str] = set()
    for sid, step in steps.items():
        srcs = [src for sources in step.inputs.values() for src in sources]
        if any(src.batch or src.step in per_item for src in srcs):
            per_item.add(sid)
    if first is not None:
        items = [Item(i + 1, f.stem, f) for i, f in enumerate(first.files)]
        return items, per_item, first.text
    files = [
        f for s in steps.values() for srcs in s.inputs.values() for src in srcs for f in src.files
    ]
    return [Item(1, files[0].stem if files else file.stem, None)], per_item, None


def _check_outputs(pipeline: Pipeline, problems: Problems) -> None:
    """Every file a step would write, for every item: inside the output folder, none twice,
    and never one of the pipeline's own input files (through symlinks and `..`)."""
    seen: dict[Path, tuple[Item, str]] = {}
    inputs = {
        f.resolve()
        for s in pipeline.steps.values()
        for sources in s.inputs.values()
        for src in sources
        for f in src.files
    }
    for step in pipeline.steps.values():
        if not step.writes_files or step.task is None:
            continue
        where = next(
            (step.param_where[k] for k in ("name", "folder") if k in step.param_where),
            step.where,
        )
        clashes = []
        for item in pipeline.items:
            try:
                paths = planned_outputs(step, item, pipeline.out_dir)
            except NSTError as exc:
                problems.add(where, str(exc), step.id)
                break
            outside = [p for p in paths if not p.is_relative_to(pipeline.out_dir)]
            if outside:  # reported once: every item would escape the same way
                problems.add(
                    where,
                    f"would write {outside[0]}, outside the output folder "
                    f"{pipeline.out_dir}; keep 'folder' and 'name' relative",
                    step.id,
                )
                break
            overwritten = [p for p in paths if p.resolve() in inputs]
            if overwritten:  # reported once, like an escape: the user's file must survive
                problems.add(
                    where,
                    f"would write {overwritten[0]}, which is one of the pipeline's inputs; "
                    "choose another 'name' or output folder",
                    step.id,
                )
                break
            for path in paths:
                if path in seen:
                    other, other_step = seen[path]
                    clashes.append(
                        f"{_item_name(item)} would write {path}, as {_item_name(other)} "
                        f"does in step {other_step!r}; put {{index}} in 'name' to tell "
                        "them apart"
                    )
                seen.setdefault(path, (item, step.id))
        for message in clashes[:MAX_REPEATS]:
            problems.add(where, message, step.id)
        if len(clashes) > MAX_REPEATS:
            more = len(clashes) - MAX_REPEATS
            problems.add(where, f"... and {more} more like these", step.id)


def _item_name(item: Item) -> str:
    return f"item {item.file.name}" if item.file else "the pipeline"


def item_params(step: Step, item: Item, out_dir: Path) -> dict[str, Any]:
    """What the runner sets on a file-writing task for one item: stem, index, folder."""
    names = {p.name for p in step.task_cls.schema()} if step.task_cls else set()
    values: dict[str, Any] = {"stem": item.stem, "index": item.index}
    if "folder" in names:
        values["folder"] = str(out_dir / str(step.params.get("folder", "") or ""))
    return {k: v for k, v in values.items() if k in names}


def planned_outputs(step: Step, item: Item, out_dir: Path) -> list[Path]:
    """The files a file-writing step would write for this item, as absolute paths.

    The step's own task is never changed: the item's values go to a new task (`with_params`)."""
    if step.task is None:
        return []
    task = step.task.with_params(**item_params(step, item, out_dir))
    return [Path(os.path.abspath(p)) for p in task.planned_outputs()]
