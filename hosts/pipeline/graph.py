"""Phase 3, graph: each step's task, its checked parameters, its wiring, and the order to run in.

Tasks are known only through the public API (`list_tasks`, `task_class`, `create_task`) and their
parameters only through their `Param` schema, so a third-party task is as usable in a pipeline as
a built-in one. An input's value is another step's output when it reads STEP.PORT and that step
exists; anything else is a file, folder or glob, which the plan reads.

Each step's task is created here, once, with the step's parameters: that checks them the way the
task itself does, and the runner reuses it for every item (per item it derives new tasks with
`with_params`, leaving this one as it was).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst_plugin import InputError, NSTError, create_task, list_tasks, task_class

from .model import Source, Step
from .problems import Problems, hint
from .resolve import Resolved, Setting, StepSettings

if TYPE_CHECKING:
    from nst_plugin import Param, Port, Task

__all__ = [
    "FILE_PORT_TYPES",
    "ITEM_PARAMS",
    "LOAD_TASK",
    "REF_RE",
    "Graph",
    "build_graph",
    "order_steps",
]

REF_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)")
# Port types a file can feed: images and masks are read by the `image.load` task, paths passed on.
FILE_PORT_TYPES = ("image", "mask", "path")
LOAD_TASK = "image.load"
# Parameters of file-writing tasks that the runner fills in per item; a pipeline may not set them.
ITEM_PARAMS = ("stem", "index")


@dataclass(frozen=True)
class Graph:
    """What the plan reads: every step (their files are read, and reported, even in a loop)."""

    steps: dict[str, Step]  # every step with an id, in file order
    order: list[str]  # those that can run, each after the steps feeding it


@dataclass(frozen=True)
class _Node:
    """A step and its task class, for the checks that need the class of another step."""

    settings: StepSettings
    cls: type | None  # None: no such task (reported); nothing about its ports can be checked

    @property
    def writes_files(self) -> bool:
        """A task that writes files says which before it runs: the plan checks them, and the
        runner skips an item whose files are up to date."""
        return callable(getattr(self.cls, "planned_outputs", None))


def build_graph(resolved: Resolved, base: Path, problems: Problems) -> Graph:
    """The steps with their tasks and wiring, and their order; every problem reported."""
    available = list_tasks()
    nodes = {s.id: _Node(s, _task_class(s, available, problems)) for s in resolved.steps}
    tasks = {
        sid: _params(node, resolved.sets.get(sid, {}), problems) for sid, node in nodes.items()
    }
    wiring = _Wiring(nodes, available, base, problems)
    steps = {}
    for sid, node in nodes.items():
        inputs = _inputs(node, resolved.sets.get(sid, {}), wiring)
        task, params, param_where = tasks[sid]
        steps[sid] = Step(
            sid,
            str(node.settings.task),
            node.settings.where,
            task_cls=node.cls,
            task=task,
            params=params,
            inputs=inputs,
            writes_files=node.writes_files,
            param_where=param_where,
        )
    for step_id, sets in resolved.sets.items():
        if step_id not in steps:
            for setting in sets.values():
                problems.add(setting.where, f"no step {step_id!r}" + hint(step_id, steps))
    order, loops = order_steps({sid: step.deps for sid, step in steps.items()})
    for loop in loops:
        chain = " -> ".join([*loop, loop[0]])
        problems.add(
            steps[loop[0]].where,
            f"cycle: {chain}; a step cannot depend on its own output",
            loop[0],
        )
    return Graph(steps, order)


def order_steps(deps: dict[str, set[str]]) -> tuple[list[str], list[list[str]]]:
    """Steps in waves, each after its inputs and file order breaking ties; and every loop.

    A loop is shown in data-flow order (each step feeds the next), from its first step in the
    file; its steps, and those downstream of it, cannot run and are left out of the order.
    """
    position = {sid: n for n, sid in enumerate(deps)}
    edges = {sid: set(d) for sid, d in deps.items()}
    loops: list[list[str]] = []
    while True:
        sorter = TopologicalSorter(edges)
        try:
            sorter.prepare()
            break
        except CycleError as exc:
            cycle = exc.args[1][:-1]  # each feeds the next; the last closes it
            first = cycle.index(min(cycle, key=position.__getitem__))
            loop = cycle[first:] + cycle[:first]
            loops.append(loop)
            for sid in loop:  # set aside (what it feeds stays blocked), then look again
                del edges[sid]
    blocked = {sid for loop in loops for sid in loop}
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        sorter.done(*ready)
        for sid in ready:
            if sid in blocked or deps[sid] & blocked:
                blocked.add(sid)
            else:
                order.append(sid)
    return order, loops


def _task_class(step: StepSettings, available: dict[str, Any], problems: Problems) -> type | None:
    if step.task is None:
        problems.add(
            step.where, "step has no 'task' (a task id such as nst.style_transfer)", step.id
        )
        return None
    if step.task not in available:
        problems.add(
            step.task_where, f"unknown task {step.task!r}" + hint(step.task, available), step.id
        )
        return None
    return task_class(step.task)


def _params(
    node: _Node, sets: dict[str, Setting], problems: Problems
) -> tuple[Task | None, dict[str, Any], dict[str, str]]:
    """The step's parameters that check out, where each is written, and its task if all do."""
    if node.cls is None:
        return None, {}, {}
    schema = {p.name: p for p in node.cls.schema()}
    ports = {p.name for p in node.cls.inputs}
    given = {s.name: s for s in node.settings.params}
    # A --set name that is no input port is taken for a parameter, unknown ones included.
    given.update({name: s for name, s in sets.items() if name in schema or name not in ports})
    params: dict[str, Any] = {}
    param_where: dict[str, str] = {}
    wrong = False
    for name, setting in given.items():
        message = _param_problem(node, name, setting.value, schema, ports)
        if message is not None:
            problems.add(setting.where, message, node.settings.id)
            wrong = True
            continue
        params[name] = setting.value
        param_where[name] = setting.where
    return (None if wrong else _create(node.settings, params, problems)), params, param_where


def _param_problem(
    node: _Node, name: str, value: Any, schema: dict[str, Param], ports: set[str]
) -> str | None:
    task_id = node.settings.task
    if name in ports and name not in schema:
        return f"{name!r} is an input port of {task_id}; put it under 'inputs'"
    if name not in schema:
        return f"unknown parameter {name!r} for task {task_id}" + hint(name, schema)
    if node.writes_files and name in ITEM_PARAMS:
        return (
            f"parameter {name!r} is set per item by the pipeline runner; "
            "shape file names with 'name' instead"
        )
    try:
        schema[name].validate(value)
    except InputError as exc:
        return str(exc)
    return None


def _create(step: StepSettings, params: dict[str, Any], problems: Problems) -> Task | None:
    """The task itself checks its parameters together (which apply to which method, say)."""
    try:
        return create_task(str(step.task), **params)
    except NSTError as exc:
        problems.add(step.params_where, str(exc), step.id)
    except Exception as exc:  # a third-party task's own checks may raise anything
        problems.add(
            step.params_where,
            f"task {step.task} rejected its parameters: {type(exc).__name__}: {exc}",
            step.id,
        )
    return None


@dataclass(frozen=True)
class _Wiring:
    """What wiring a step needs to know of the rest: the other steps, the tasks, the folder."""

    nodes: dict[str, _Node]
    available: dict[str, Any]  # task id -> manifest
    base: Path
    problems: Problems


def _inputs(node: _Node, sets: dict[str, Setting], wiring: _Wiring) -> dict[str, list[Source]]:
    """Each input port's sources: other steps' outputs, type-checked, or files still to read."""
    step, problems = node.settings, wiring.problems
    if node.cls is None:
        return {}
    ports: dict[str, Port] = {p.name: p for p in node.cls.inputs}
    schema = {p.name for p in node.cls.schema()}
    given = {s.name: s for s in step.inputs}
    given.update({name: s for name, s in sets.items() if name in ports and name not in schema})
    inputs: dict[str, list[Source]] = {}
    for name, setting in given.items():
        if name not in ports:
            message = f"unknown input port {name!r} for task {step.task}" + hint(name, ports)
            if name in schema:
                message = f"{name!r} is a parameter of {step.task}; put it under 'params'"
            problems.add(setting.where, message, step.id)
            continue
        port = ports[name]
        values = list(setting.value) if isinstance(setting.value, list) else [setting.value]
        if not port.multiple and len(values) != 1:
            problems.add(
                setting.where, f"input {name!r} takes one value, got {len(values)}", step.id
            )
            continue
        if not values:
            problems.add(setting.where, f"input {name!r} is an empty list", step.id)
            continue
        wheres = setting.item_wheres or (setting.where,) * len(values)
        sources = [_source(node, port, v, w, wiring) for v, w in zip(values, wheres)]
        inputs[name] = [s for s in sources if s is not None]
    for port in node.cls.inputs:
        if port.required and port.name not in given:
            problems.add(
                step.where,
                f"missing input {port.name!r} ({port.type}: {port.description})",
                step.id,
            )
    return inputs


def _source(node: _Node, port: Port, value: Any, where: str, wiring: _Wiring) -> Source | None:
    """One value of an input port: STEP.PORT if such a step exists, else a file to be read."""
    step, problems = node.settings, wiring.problems
    if not isinstance(value, str) or not value.strip():
        text = value if isinstance(value, str) else repr(value)
        problems.add(
            where,
            f"input {port.name!r}: expected a step's output (STEP.PORT) or a "
            f"file, glob or folder, got {text}",
            step.id,
        )
        return None
    text = value.strip()
    if "${" in text:
        return None  # an unknown variable, reported already
    ref = REF_RE.fullmatch(text)
    target = wiring.nodes.get(ref.group(1)) if ref else None
    if ref and target is not None:
        out_name = ref.group(2)
        if target.cls is None:
            return Source(where, text, step=target.settings.id, port=out_name)
        outs = {p.name: p for p in target.cls.outputs}
        if out_name in outs:
            out_type = outs[out_name].type
            if not _compatible(out_type, port.type):
                problems.add(
                    where,
                    f"type mismatch: {text} is {out_type!r} but input "
                    f"{port.name!r} of {step.task} takes {port.type!r}",
                    step.id,
                )
                return None
            return Source(where, text, step=target.settings.id, port=out_name)
        if not (wiring.base / text).exists():
            problems.add(
                where,
                f"step {target.settings.id!r} ({target.settings.task}) has no output "
                f"{out_name!r}" + hint(out_name, outs),
                step.id,
            )
            return None
    if port.type not in FILE_PORT_TYPES:
        problems.add(
            where,
            f"input {port.name!r} takes {port.type!r}, which no file gives; "
            "connect a step's output (STEP.PORT)",
            step.id,
        )
        return None
    if port.type != "path" and LOAD_TASK not in wiring.available:
        problems.add(
            where, f"reading {text} needs the {LOAD_TASK} task, which is not registered", step.id
        )
        return None
    return Source(where, text)  # no files yet: the plan reads them


def _compatible(out_type: str, in_type: str) -> bool:
    # A picture's grey levels serve as a mask (see the task's `mask` port).
    return out_type == in_type or (out_type == "image" and in_type == "mask")
