"""Pipeline files: parse, substitute variables, apply `--set`, and validate before any work.

A pipeline is a YAML file (read with a safe loader, so it can never construct Python objects)::

    version: 1
    vars:
      images: images              # relative to this file; override with --set images=DIR
    output: out                   # default output folder, relative to this file (--out wins)
    steps:
      - id: stylize
        task: nst.style_transfer
        params: {method: adain, alpha: 0.8}
        inputs:
          content: ${images}/photos      # a folder or glob on a one-image port: one item per file
          styles: ${images}/style.png    # a file; several with a list, or a folder
      - id: save
        task: image.save
        params: {name: "{stem}_adain.{ext}"}
        inputs:
          image: stylize.image           # another step's output: STEP.PORT

Paths are relative to the pipeline file; `${here}` is its folder. Inside `[...]` or `{...}`, quote
a value holding `${...}` (YAML reads a bare `{` there as a mapping): `styles: ["${art}/a.png"]`.

Every problem found (unknown task, port or parameter, bad value, type mismatch, cycle, missing file,
an output outside the output folder) is collected with the file, line and step it belongs to and
reported together, so a user fixes a file in one pass instead of one error per run.

Tasks are known only through the plugin registry and their parameters only through their `Param`
schema, so a third-party task is as usable in a pipeline as a built-in one.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nst_plugin import IMAGE_SUFFIXES, InputError, NSTError, list_images, plugins

VERSION = 1
TOP_KEYS = ("version", "description", "vars", "output", "steps")
STEP_KEYS = ("id", "task", "params", "inputs", "description")
ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
REF_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)")
VAR_RE = re.compile(r"\$\$|\$\{([^}]*)\}")
GLOB_CHARS = frozenset("*?[")
# Port types a file can feed: images and masks are read by the `image.load` task, paths passed on.
FILE_PORT_TYPES = ("image", "mask", "path")
LOAD_TASK = "image.load"
# Parameters of file-writing tasks that the runner fills in per item; a pipeline may not set them.
ITEM_PARAMS = ("stem", "index")
MAX_REPEATS = 3  # the same problem across many batch items is shown this many times, then counted


class PipelineError(NSTError):
    """A pipeline file is unusable; the message lists every problem with its file and line."""

    def __init__(self, display: str, problems: Sequence[Problem]) -> None:
        self.display = display
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"pipeline {display}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (file:line, or the --set option), which step, what and the fix."""

    where: str
    step: str | None
    message: str

    def __str__(self) -> str:
        step = f"step {self.step!r}: " if self.step else ""
        return f"{self.where}: {step}{self.message}"


@dataclass(frozen=True)
class Source:
    """One value feeding an input port: another step's output (`step`, `port`) or files."""

    where: str
    text: str
    step: str | None = None
    port: str | None = None
    files: tuple[Path, ...] = ()
    batch: bool = False  # a glob or folder on a one-image port: one item per file


@dataclass
class Step:
    id: str
    task_id: str
    where: str
    task_cls: type | None = None
    task: Any = None  # the validated task instance, reused for every item
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, list[Source]] = field(default_factory=dict)
    writes_files: bool = False
    param_where: dict[str, str] = field(default_factory=dict)

    @property
    def deps(self) -> set[str]:
        return {s.step for sources in self.inputs.values() for s in sources if s.step}


@dataclass(frozen=True)
class Item:
    """One pass through the graph: a file of the batch input (or the only pass, without one)."""

    index: int
    stem: str
    file: Path | None


@dataclass
class Pipeline:
    """A validated pipeline: steps in topological order, items, and where outputs go."""

    file: Path
    display: str
    base: Path
    out_dir: Path
    steps: dict[str, Step]
    items: list[Item]
    per_item: set[str]
    batch_text: str | None = None

    @property
    def input_files(self) -> list[Path]:
        """Files every item reads (not the batch file): what item outputs must be newer than."""
        return sorted(
            {
                f
                for step in self.steps.values()
                for sources in step.inputs.values()
                for s in sources
                if not s.batch
                for f in s.files
            }
        )


class _Map(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []


class _Seq(list):
    """A YAML sequence that remembers the line of itself and of each item."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


class _LineLoader(yaml.SafeLoader):
    """The safe loader, building containers that carry line numbers for error messages."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        if key in out:
            out.duplicates.append((key, line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq()
    out.line = node.start_mark.line + 1
    for child in node.value:
        out.append(loader.construct_object(child, deep=True))
        out.lines.append(child.start_mark.line + 1)
    return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_pipeline(
    path: str | os.PathLike,
    *,
    overrides: Iterable[str] = (),
    out: str | os.PathLike | None = None,
) -> Pipeline:
    """Parse and validate a pipeline file; raise `PipelineError` listing every problem found.

    `overrides` are `--set` strings: `VAR=VALUE` for a declared variable, `STEP.NAME=VALUE` for a
    step's parameter or input. `out` is the output folder (default: the file's `output:` key,
    relative to the file, else `out/` beside it); nothing is ever written outside it.
    """
    return _Builder(Path(path), str(path)).build(list(overrides), out)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _hint(name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    listing = ", ".join(known) if known else "none"
    return (f"; did you mean {close[0]!r}?" if close else "") + f" (known: {listing})"


def _compatible(out_type: str, in_type: str) -> bool:
    # A picture's grey levels serve as a mask (see the task's `mask` port).
    return out_type == in_type or (out_type == "image" and in_type == "mask")


class _Builder:
    """Collects problems while turning the YAML document into a `Pipeline`."""

    def __init__(self, file: Path, display: str) -> None:
        self.file = file
        self.display = display
        self.base = file.resolve().parent
        self.problems: list[Problem] = []
        self.vars: dict[str, Any] = {}
        self.steps: dict[str, Step] = {}

    # -- reporting ---------------------------------------------------------------------------

    def at(self, line: int | None) -> str:
        return f"{self.display}:{line}" if line else self.display

    def problem(self, where: str, message: str, step: str | None = None) -> None:
        self.problems.append(Problem(where, step, message))

    def fail_if_problems(self) -> None:
        if self.problems:
            raise PipelineError(self.display, sorted(self.problems, key=self.line_of))

    def line_of(self, problem: Problem) -> tuple[int, int]:
        """Sort key: the file's problems by line, then those of --set options, in given order."""
        prefix = self.display + ":"
        if problem.where.startswith(prefix) and problem.where[len(prefix) :].isdigit():
            return (0, int(problem.where[len(prefix) :]))
        return (0, 0) if problem.where == self.display else (1, 0)

    # -- top level ---------------------------------------------------------------------------

    def build(self, overrides: list[str], out: str | os.PathLike | None) -> Pipeline:
        doc = self.parse()
        for key, line in doc.duplicates:
            self.problem(self.at(line), f"key {key!r} appears twice")
        for key in doc:
            if key not in TOP_KEYS:
                self.problem(
                    self.at(doc.lines[key]), f"unknown key {key!r}" + _hint(str(key), TOP_KEYS)
                )
        version = doc.get("version", VERSION)
        if version != VERSION:
            self.problem(
                self.at(doc.lines.get("version")),
                f"version {version!r} is not supported; this runner reads version {VERSION}",
            )
        step_overrides = self.read_vars(doc, overrides)
        steps_node = doc.get("steps")
        if not isinstance(steps_node, _Seq) or not steps_node:
            self.problem(
                self.at(doc.lines.get("steps", doc.line)),
                "'steps' must be a non-empty list of steps",
            )
            self.fail_if_problems()
        nodes = self.read_steps(steps_node)
        for step, node in nodes:
            self.read_params(step, node, step_overrides.get(step.id, {}))
        for step, node in nodes:
            self.read_inputs(step, node, step_overrides.get(step.id, {}))
        for step_id, sets in step_overrides.items():
            if step_id not in self.steps:
                for where in sets.values():
                    self.problem(where[0], f"no step {step_id!r}" + _hint(step_id, self.steps))
        order = self.topological_order()
        out_dir = self.output_folder(doc, out)
        steps = {sid: self.steps[sid] for sid in order}
        items, per_item, batch_text = self.plan_items(steps)
        pipeline = Pipeline(
            self.file, self.display, self.base, out_dir, steps, items, per_item, batch_text
        )
        self.check_outputs(pipeline)
        self.fail_if_problems()
        return pipeline

    def fatal(self, line: int | None, message: str) -> PipelineError:
        """For a file that cannot be read as a pipeline at all: nothing further to check."""
        return PipelineError(self.display, [Problem(self.at(line), None, message)])

    def parse(self) -> _Map:
        if not self.file.is_file():
            raise self.fatal(None, "file not found")
        try:
            text = self.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise self.fatal(None, f"unreadable: {exc}") from None
        try:
            # A SafeLoader subclass: tags such as !!python/object are refused, never run.
            doc = yaml.load(text, Loader=_LineLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = " ".join(str(m) for m in (exc.context, exc.problem) if m)
            raise self.fatal(
                mark.line + 1 if mark else None, f"not valid YAML: {message}"
            ) from None
        except yaml.YAMLError as exc:
            raise self.fatal(None, f"not valid YAML: {exc}") from None
        if not isinstance(doc, _Map):
            raise self.fatal(None, "a pipeline is a mapping with a 'steps' list")
        return doc

    # -- variables and overrides -------------------------------------------------------------

    def read_vars(self, doc: _Map, overrides: list[str]) -> dict[str, dict[str, tuple[str, str]]]:
        """Resolve `vars` (with --set values) in order; return per-step `--set` entries."""
        node = doc.get("vars")
        declared: dict[str, Any] = {}
        lines: dict[str, int] = {}
        if node is not None and not isinstance(node, _Map):
            self.problem(self.at(doc.lines.get("vars")), "'vars' must be a mapping NAME: VALUE")
        elif node is not None:
            for key, line in node.duplicates:
                self.problem(self.at(line), f"variable {key!r} is declared twice")
            for key, value in node.items():
                if not isinstance(key, str) or not ID_RE.fullmatch(key):
                    self.problem(
                        self.at(node.lines[key]),
                        f"variable name {key!r} must be letters, digits, '_' or '-'",
                    )
                    continue
                if key == "here":
                    self.problem(
                        self.at(node.lines[key]),
                        "'here' is built in (the pipeline file's folder); choose another name",
                    )
                    continue
                declared[key] = value
                lines[key] = node.lines[key]
        step_sets: dict[str, dict[str, tuple[str, str]]] = {}
        var_sets: dict[str, str] = {}
        for entry in overrides:
            where = f"--set {entry}"
            key, eq, value = entry.partition("=")
            key = key.strip()
            if not eq or not key:
                self.problem(where, "expected KEY=VALUE (a variable, or STEP.PARAMETER)")
            elif "." in key:
                step_id, _, name = key.partition(".")
                step_sets.setdefault(step_id, {})[name] = (where, value)
            elif key not in declared:
                self.problem(
                    where,
                    f"no variable {key!r} is declared in 'vars'"
                    + _hint(key, declared)
                    + "; to set a step's parameter use STEP.PARAMETER=VALUE",
                )
            else:
                var_sets[key] = value
        self.vars = {"here": str(self.base)}
        for key, value in declared.items():
            raw = var_sets.get(key, value)
            where = f"--set {key}={raw}" if key in var_sets else self.at(lines[key])
            self.vars[key] = self.subst(raw, where, None)
        return step_sets

    def subst(self, value: Any, where: str, step: str | None) -> Any:
        """`${name}` replaced by a variable: the value itself when it is the whole string."""
        if isinstance(value, _Map):
            out = _Map()
            out.line, out.lines, out.duplicates = value.line, value.lines, value.duplicates
            for k, v in value.items():
                out[k] = self.subst(v, self.at(value.lines[k]), step)
            return out
        if isinstance(value, _Seq):
            seq = _Seq()
            seq.line, seq.lines = value.line, value.lines
            seq.extend(self.subst(v, self.at(value.lines[i]), step) for i, v in enumerate(value))
            return seq
        if not isinstance(value, str) or "$" not in value:
            return value
        whole = re.fullmatch(r"\$\{([^}]*)\}", value.strip())
        if whole and whole.group(1).strip() in self.vars:
            return self.vars[whole.group(1).strip()]

        def replace(m: re.Match) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1).strip()
            if name not in self.vars:
                self.problem(where, f"unknown variable ${{{name}}}" + _hint(name, self.vars), step)
                return m.group(0)
            return str(self.vars[name])

        return VAR_RE.sub(replace, value)

    # -- steps -------------------------------------------------------------------------------

    def read_steps(self, steps_node: _Seq) -> list[tuple[Step, _Map]]:
        available = plugins.tasks()
        nodes: list[tuple[Step, _Map]] = []
        for i, node in enumerate(steps_node):
            where = self.at(steps_node.lines[i])
            if not isinstance(node, _Map):
                self.problem(
                    where, "a step is a mapping with 'id' and 'task' (and 'params', 'inputs')"
                )
                continue
            for key, line in node.duplicates:
                self.problem(self.at(line), f"key {key!r} appears twice", node.get("id"))
            step_id = node.get("id")
            if step_id is None:
                self.problem(where, "step has no 'id'")
                continue
            if not isinstance(step_id, str) or not ID_RE.fullmatch(step_id):
                self.problem(
                    self.at(node.lines["id"]),
                    f"step id {step_id!r} must start with a letter or '_' and hold only "
                    "letters, digits, '_' or '-'",
                )
                continue
            if step_id in self.steps:
                first = self.steps[step_id].where
                self.problem(
                    self.at(node.lines["id"]), f"duplicate step id (first at {first})", step_id
                )
                continue
            for key in node:
                if key not in STEP_KEYS:
                    self.problem(
                        self.at(node.lines[key]),
                        f"unknown key {key!r}" + _hint(str(key), STEP_KEYS),
                        step_id,
                    )
            task_id = node.get("task")
            step = Step(step_id, str(task_id), where)
            self.steps[step_id] = step
            if not isinstance(task_id, str) or not task_id:
                self.problem(
                    where, "step has no 'task' (a task id such as nst.style_transfer)", step_id
                )
            elif task_id not in available:
                self.problem(
                    self.at(node.lines["task"]),
                    f"unknown task {task_id!r}" + _hint(task_id, available),
                    step_id,
                )
            else:
                step.task_cls = available[task_id]
                step.writes_files = callable(getattr(step.task_cls, "planned_outputs", None))
            nodes.append((step, node))
        return nodes

    def section(self, step: Step, node: _Map, key: str) -> _Map:
        value = node.get(key)
        if value is None:
            return _Map()
        if not isinstance(value, _Map):
            self.problem(
                self.at(node.lines[key]), f"'{key}' must be a mapping NAME: VALUE", step.id
            )
            return _Map()
        for name, line in value.duplicates:
            what = "parameter" if key == "params" else "input"
            self.problem(self.at(line), f"{what} {name!r} is given twice", step.id)
        return self.subst(value, self.at(node.lines[key]), step.id)

    def read_params(self, step: Step, node: _Map, sets: dict[str, tuple[str, str]]) -> None:
        params_node = self.section(step, node, "params")
        if step.task_cls is None:
            return
        schema = {p.name: p for p in step.task_cls.schema()}
        ports = {p.name for p in step.task_cls.inputs}
        given: dict[str, tuple[Any, str]] = {
            str(k): (v, self.at(params_node.lines[k])) for k, v in params_node.items()
        }
        for name, (where, value) in sets.items():
            if name in schema or name not in ports:
                given[name] = (value, where)
        before = len(self.problems)
        for name, (value, where) in given.items():
            if name not in schema:
                if name in ports:
                    message = f"{name!r} is an input port of {step.task_id}; put it under 'inputs'"
                else:
                    message = f"unknown parameter {name!r} for task {step.task_id}" + _hint(
                        name, schema
                    )
                self.problem(where, message, step.id)
                continue
            if step.writes_files and name in ITEM_PARAMS:
                self.problem(
                    where,
                    f"parameter {name!r} is set per item by the pipeline runner; "
                    "shape file names with 'name' instead",
                    step.id,
                )
                continue
            try:
                schema[name].validate(value)
            except InputError as exc:
                self.problem(where, str(exc), step.id)
                continue
            step.params[name] = value
            step.param_where[name] = where
        if len(self.problems) > before:
            return
        where = self.at(node.lines["params"]) if "params" in node else step.where
        try:
            step.task = step.task_cls(**step.params)
        except NSTError as exc:
            self.problem(where, str(exc), step.id)
        except Exception as exc:  # a third-party task's own checks may raise anything
            self.problem(
                where,
                f"task {step.task_id} rejected its parameters: {type(exc).__name__}: {exc}",
                step.id,
            )

    def read_inputs(self, step: Step, node: _Map, sets: dict[str, tuple[str, str]]) -> None:
        inputs_node = self.section(step, node, "inputs")
        if step.task_cls is None:
            return
        ports = {p.name: p for p in step.task_cls.inputs}
        schema = {p.name for p in step.task_cls.schema()}
        given: dict[str, tuple[Any, str, list[int] | None]] = {}
        for k, v in inputs_node.items():
            lines = v.lines if isinstance(v, _Seq) else None
            given[str(k)] = (v, self.at(inputs_node.lines[k]), lines)
        for name, (where, value) in sets.items():
            if name in ports and name not in schema:
                given[name] = (value, where, None)
        for name, (value, where, lines) in given.items():
            if name not in ports:
                message = f"unknown input port {name!r} for task {step.task_id}" + _hint(
                    name, ports
                )
                if name in schema:
                    message = f"{name!r} is a parameter of {step.task_id}; put it under 'params'"
                self.problem(where, message, step.id)
                continue
            port = ports[name]
            values = list(value) if isinstance(value, list) else [value]
            if not port.multiple and len(values) != 1:
                self.problem(where, f"input {name!r} takes one value, got {len(values)}", step.id)
                continue
            if not values:
                self.problem(where, f"input {name!r} is an empty list", step.id)
                continue
            sources = []
            for i, v in enumerate(values):
                source = self.read_source(step, port, v, self.at(lines[i]) if lines else where)
                if source is not None:
                    sources.append(source)
            step.inputs[name] = sources
        for port in step.task_cls.inputs:
            if port.required and port.name not in given:
                self.problem(
                    step.where,
                    f"missing input {port.name!r} ({port.type}: {port.description})",
                    step.id,
                )

    def read_source(self, step: Step, port: Any, value: Any, where: str) -> Source | None:
        """An input port's value: STEP.PORT if such a step exists, else a file, glob or folder."""
        if not isinstance(value, str) or not value.strip():
            self.problem(
                where,
                f"input {port.name!r}: expected a step's output (STEP.PORT) or a "
                f"file, glob or folder, got {_text(value)}",
                step.id,
            )
            return None
        text = value.strip()
        if "${" in text:
            return None  # an unknown variable, reported already
        ref = REF_RE.fullmatch(text)
        target = self.steps.get(ref.group(1)) if ref else None
        if ref and target is not None:
            out_name = ref.group(2)
            outs = {p.name: p for p in target.task_cls.outputs} if target.task_cls else None
            if outs is None:
                return Source(where, text, step=target.id, port=out_name)
            if out_name in outs:
                out_type = outs[out_name].type
                if not _compatible(out_type, port.type):
                    self.problem(
                        where,
                        f"type mismatch: {text} is {out_type!r} but input "
                        f"{port.name!r} of {step.task_id} takes {port.type!r}",
                        step.id,
                    )
                    return None
                return Source(where, text, step=target.id, port=out_name)
            if not (self.base / text).exists():
                self.problem(
                    where,
                    f"step {target.id!r} ({target.task_id}) has no output "
                    f"{out_name!r}" + _hint(out_name, outs),
                    step.id,
                )
                return None
        if port.type not in FILE_PORT_TYPES:
            self.problem(
                where,
                f"input {port.name!r} takes {port.type!r}, which no file gives; "
                "connect a step's output (STEP.PORT)",
                step.id,
            )
            return None
        if port.type != "path" and LOAD_TASK not in plugins.tasks():
            self.problem(
                where,
                f"reading {text} needs the {LOAD_TASK} task, which is not registered",
                step.id,
            )
            return None
        path = Path(os.path.expanduser(text))
        path = path if path.is_absolute() else self.base / path
        if GLOB_CHARS & set(text):
            files = sorted(
                Path(f)
                for f in glob.glob(str(path), recursive=True)
                if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                self.problem(where, f"no image files match {text!r} (looked for {path})", step.id)
                return None
            return Source(where, text, files=tuple(files), batch=not port.multiple)
        if path.is_dir():
            files = list_images(path)
            if not files:
                self.problem(
                    where, f"folder {text!r} holds no images ({', '.join(IMAGE_SUFFIXES)})", step.id
                )
                return None
            return Source(where, text, files=tuple(files), batch=not port.multiple)
        if path.is_file():
            return Source(where, text, files=(path,))
        hint = ""
        if ref:
            hint = f"; nor is it a step's output: no step {ref.group(1)!r}" + _hint(
                ref.group(1), self.steps
            )
        self.problem(where, f"input file not found: {text} (looked for {path}){hint}", step.id)
        return None

    # -- graph, items, outputs ---------------------------------------------------------------

    def topological_order(self) -> list[str]:
        """Steps ordered so each runs after its inputs; file order breaks ties; cycles reported."""
        remaining = {sid: set(s.deps) & set(self.steps) for sid, s in self.steps.items()}
        order: list[str] = []
        while True:
            ready = [sid for sid, deps in remaining.items() if not deps]
            if not ready:
                break
            for sid in ready:
                order.append(sid)
                del remaining[sid]
            for deps in remaining.values():
                deps.difference_update(ready)
        reported: set[frozenset[str]] = set()
        for start in remaining:
            path = [start]
            while path[-1] not in path[:-1]:
                path.append(sorted(remaining[path[-1]])[0])
            cycle = path[path.index(path[-1]) :]
            if frozenset(cycle) in reported:
                continue
            reported.add(frozenset(cycle))
            # Shown in data-flow order: each step feeds the next.
            chain = " -> ".join(reversed(cycle))
            self.problem(
                self.steps[cycle[0]].where,
                f"cycle: {chain}; a step cannot depend on its own output",
                cycle[0],
            )
        return order

    def output_folder(self, doc: _Map, out: str | os.PathLike | None) -> Path:
        if out is not None:
            return Path(out).expanduser().resolve()
        value = self.subst(doc.get("output", "out"), self.at(doc.lines.get("output")), None)
        if not isinstance(value, str) or not value.strip():
            self.problem(self.at(doc.lines.get("output")), "'output' must be a folder path")
            return self.base / "out"
        path = Path(value).expanduser()
        return (path if path.is_absolute() else self.base / path).resolve()

    def plan_items(self, steps: dict[str, Step]) -> tuple[list[Item], set[str], str | None]:
        batch = [
            (s, src)
            for s in steps.values()
            for srcs in s.inputs.values()
            for src in srcs
            if src.batch
        ]
        first = batch[0][1] if batch else None
        for step, src in batch[1:]:
            if src.files != first.files:
                self.problem(
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
            f
            for s in steps.values()
            for srcs in s.inputs.values()
            for src in srcs
            for f in src.files
        ]
        return [Item(1, files[0].stem if files else self.file.stem, None)], per_item, None

    def check_outputs(self, pipeline: Pipeline) -> None:
        """Every file a step would write, for every item: inside the output folder, none twice."""
        seen: dict[Path, tuple[Item, str]] = {}
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
                    self.problem(where, str(exc), step.id)
                    break
                outside = [p for p in paths if not p.is_relative_to(pipeline.out_dir)]
                if outside:  # reported once: every item would escape the same way
                    self.problem(
                        where,
                        f"would write {outside[0]}, outside the output folder "
                        f"{pipeline.out_dir}; keep 'folder' and 'name' relative",
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
                self.problem(where, message, step.id)
            if len(clashes) > MAX_REPEATS:
                more = len(clashes) - MAX_REPEATS
                self.problem(where, f"... and {more} more like these", step.id)


def _item_name(item: Item) -> str:
    return f"item {item.file.name}" if item.file else "the pipeline"


def item_params(step: Step, item: Item, out_dir: Path) -> dict[str, Any]:
    """What the runner sets on a file-writing task for one item: stem, index, folder."""
    names = {p.name for p in step.task_cls.schema()}
    values: dict[str, Any] = {"stem": item.stem, "index": item.index}
    if "folder" in names:
        values["folder"] = str(out_dir / str(step.params.get("folder", "") or ""))
    return {k: v for k, v in values.items() if k in names}


def planned_outputs(step: Step, item: Item, out_dir: Path) -> list[Path]:
    """The files a file-writing step would write for this item, as absolute paths."""
    task = step.task.with_params(**item_params(step, item, out_dir))
    return [Path(os.path.abspath(p)) for p in task.planned_outputs()]


__all__ = [
    "Item",
    "Pipeline",
    "PipelineError",
    "Problem",
    "Source",
    "Step",
    "load_pipeline",
    "planned_outputs",
]
