"""Phase 2, resolve: variables, `${...}` substitution and `--set` overrides.

`vars` are filled in file order (a variable may use those above it, and `${here}`, the file's
folder); `--set VAR=VALUE` replaces a declared variable's value before that. `--set STEP.NAME=VALUE`
entries are attached to their step as given: whether NAME is a parameter or an input port is the
task's to say, so the graph sorts them out.

A value that is one variable and nothing else (`styles: ${paintings}`) becomes that variable's
value whatever its type, a list included; elsewhere `${name}` is replaced by its text and `$$` is a
literal `$`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .load import NAME_RE, Document, Loc, StepFile
from .problems import Problems, hint

__all__ = ["Resolved", "Setting", "StepSettings", "resolve"]

VAR_RE = re.compile(r"\$\$|\$\{([^}]*)\}")
WHOLE_VAR_RE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Setting:
    """One parameter or input value, its variables filled in, and where it was written."""

    name: str
    value: Any
    where: str
    # A list's items' own places (file:line), where the list was written item by item.
    item_wheres: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepSettings:
    """A step as written, its variables filled in: what the graph turns into a task."""

    id: str
    task: str | None
    where: str  # the step's first line
    task_where: str
    params_where: str  # where a task's refusal of its parameters is shown
    params: tuple[Setting, ...]
    inputs: tuple[Setting, ...]


@dataclass(frozen=True)
class Resolved:
    steps: tuple[StepSettings, ...]
    sets: dict[str, dict[str, Setting]]  # --set STEP.NAME=VALUE by step id, known or not
    output: Any  # the 'output' value; None when --out chose the folder (or nothing will run)
    output_where: str


@dataclass(frozen=True)
class _Var:
    value: Any
    origin: Loc | None  # where a list value's items are written, for their lines


def resolve(
    doc: Document, overrides: Iterable[str], base: Path, problems: Problems, *, out_given: bool
) -> Resolved:
    """Fill in variables everywhere, and sort the `--set` options into variables and steps."""
    subst = _Substitution(doc, problems)
    sets = subst.read_vars(overrides, base)
    steps = tuple(subst.step(loc, step) for loc, step in doc.steps)
    # --out wins over the file's own; and a file without steps is not looked at any further.
    wanted = doc.has_steps and not out_given
    output = subst.value(doc.head.output, ("output",), None) if wanted else None
    return Resolved(steps, sets, output, doc.lines.where(("output",)))


class _Substitution:
    """The variables known so far, and `${...}` filled in from them."""

    def __init__(self, doc: Document, problems: Problems) -> None:
        self.doc = doc
        self.problems = problems
        self.vars: dict[str, _Var] = {}

    def read_vars(self, overrides: Iterable[str], base: Path) -> dict[str, dict[str, Setting]]:
        """Resolve `vars` (with --set values) in order; return the per-step `--set` entries."""
        lines = self.doc.lines
        declared: dict[str, Any] = {}
        for key, value in self.doc.head.vars.items():
            where = lines.where(("vars", key))
            if not isinstance(key, str) or not NAME_RE.fullmatch(key):
                self.problems.add(
                    where, f"variable name {key!r} must be letters, digits, '_' or '-'"
                )
            elif key == "here":
                self.problems.add(
                    where, "'here' is built in (the pipeline file's folder); choose another name"
                )
            else:
                declared[key] = value
        var_sets, step_sets = _sort_overrides(overrides, declared, self.problems)
        self.vars = {"here": _Var(str(base), None)}
        for key, value in declared.items():
            if key in var_sets:
                raw = var_sets[key]
                filled = self.text(raw, f"--set {key}={raw}", None)
                self.vars[key] = _Var(filled, self.origin(raw, None))
            else:
                self.vars[key] = _Var(
                    self.value(value, ("vars", key), None), self.origin(value, ("vars", key))
                )
        return step_sets

    def step(self, loc: Loc, step: StepFile) -> StepSettings:
        lines = self.doc.lines
        params_loc = (*loc, "params")
        return StepSettings(
            id=step.id,
            task=step.task,
            where=lines.where(loc),
            task_where=lines.where((*loc, "task")),
            params_where=lines.where(params_loc if params_loc in lines.of else loc),
            params=self.section(step.params, params_loc, step.id),
            inputs=self.section(step.inputs, (*loc, "inputs"), step.id),
        )

    def section(self, values: dict[Any, Any], loc: Loc, step_id: str) -> tuple[Setting, ...]:
        lines = self.doc.lines
        out = []
        for key, raw in values.items():
            value = self.value(raw, (*loc, key), step_id)
            origin = self.origin(raw, (*loc, key))
            items: tuple[str, ...] = ()
            if isinstance(value, list) and origin is not None:
                items = tuple(lines.where((*origin, i)) for i in range(len(value)))
            out.append(Setting(str(key), value, lines.where((*loc, key)), items))
        return tuple(out)

    def origin(self, raw: Any, loc: Loc | None) -> Loc | None:
        """Where the items of `raw`'s value are written: a lone variable's are that variable's."""
        name = _lone_var(raw)
        return self.vars[name].origin if name in self.vars else loc

    def value(self, raw: Any, loc: Loc, step: str | None) -> Any:
        """A value of the file, its variables filled in, down to the last nested item."""
        if isinstance(raw, dict):
            return {k: self.value(v, (*loc, k), step) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(v, (*loc, i), step) for i, v in enumerate(raw)]
        return self.text(raw, self.doc.lines.where(loc), step)

    def text(self, raw: Any, where: str, step: str | None) -> Any:
        """`${name}` in a string filled in; a lone `${name}` becomes the variable's value."""
        if not isinstance(raw, str) or "$" not in raw:
            return raw
        name = _lone_var(raw)
        if name in self.vars:
            return self.vars[name].value

        def replace(m: re.Match) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1).strip()
            if name not in self.vars:
                self.problems.add(
                    where, f"unknown variable ${{{name}}}" + hint(name, self.vars), step
                )
                return m.group(0)
            return str(self.vars[name].value)

        return VAR_RE.sub(replace, raw)


def _sort_overrides(
    overrides: Iterable[str], declared: dict[str, Any], problems: Problems
) -> tuple[dict[str, str], dict[str, dict[str, Setting]]]:
    """`--set` options as variables' values and, by step id, steps' settings (still as text)."""
    var_sets: dict[str, str] = {}
    step_sets: dict[str, dict[str, Setting]] = {}
    for entry in overrides:
        where = f"--set {entry}"
        key, eq, value = entry.partition("=")
        key = key.strip()
        if not eq or not key:
            problems.add(where, "expected KEY=VALUE (a variable, or STEP.PARAMETER)")
        elif "." in key:
            step_id, _, name = key.partition(".")
            step_sets.setdefault(step_id, {})[name] = Setting(name, value, where)
        elif key not in declared:
            problems.add(
                where,
                f"no variable {key!r} is declared in 'vars'"
                + hint(key, declared)
                + "; to set a step's parameter use STEP.PARAMETER=VALUE",
            )
        else:
            var_sets[key] = value
    return var_sets, step_sets


def _lone_var(raw: Any) -> str | None:
    whole = WHOLE_VAR_RE.fullmatch(raw.strip()) if isinstance(raw, str) else None
    return whole.group(1).strip() if whole else None
