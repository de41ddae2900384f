"""Phase 1, load: the YAML file into a checked structure, and the line of every part of it.

The shape of a pipeline file is declared once, as pydantic models (`PipelineFile`, `StepFile`);
what they refuse is reported at the line it is written on. A file with mistakes still goes on to
the later phases as far as it can (a step with a bad id is left out, a malformed 'params' reads as
empty), so that one pass reports its unknown tasks and missing files as well.

The YAML is read with a safe loader: a file can never construct Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from .problems import Problems, hint, located

__all__ = ["NAME_RE", "VERSION", "Document", "Lines", "Loc", "PipelineFile", "StepFile", "load"]

VERSION = 1
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # step ids and variable names
Loc = tuple[Hashable, ...]  # a place in the document: ("steps", 0, "params", "alpha")


def _mapping(value: Any, field_name: str) -> dict[Any, Any]:
    """A section's entries; a key left empty (`params:`) has none rather than being an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PydanticCustomError("mapping", f"'{field_name}' must be a mapping NAME: VALUE")
    return value


class StepFile(BaseModel):
    """One entry of 'steps', as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Required, yet None by default: a missing one then goes through the validator's message.
    id: str = Field(None, validate_default=True)
    # Absent or unusable reads as None: the graph reports it, beside the tasks it cannot find.
    task: str | None = None
    params: dict[Any, Any] = {}
    inputs: dict[Any, Any] = {}
    description: Any = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str:
        if value is None:
            raise PydanticCustomError("step_id", "step has no 'id'")
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            raise PydanticCustomError(
                "step_id",
                f"step id {value!r} must start with a letter or '_' and hold only "
                "letters, digits, '_' or '-'",
            )
        return value

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    @field_validator("params", "inputs", mode="before")
    @classmethod
    def _sections(cls, value: Any, info: ValidationInfo) -> dict[Any, Any]:
        return _mapping(value, info.field_name)


class Head(BaseModel):
    """Everything of the file but its steps: what is left usable of it when a step is not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Any = VERSION
    description: Any = None
    vars: dict[Any, Any] = {}
    output: Any = "out"

    @field_validator("version")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value != VERSION:
            raise PydanticCustomError(
                "version",
                f"version {value!r} is not supported; this runner reads version {VERSION}",
            )
        return value

    @field_validator("vars", mode="before")
    @classmethod
    def _vars(cls, value: Any) -> dict[Any, Any]:
        return _mapping(value, "vars")


class PipelineFile(Head):
    """A pipeline file: version, description, vars, output folder, and its steps."""

    steps: list[StepFile] = Field(None, validate_default=True)  # None: see StepFile.id

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise PydanticCustomError("steps", "'steps' must be a non-empty list of steps")
        return value


@dataclass
class Lines:
    """Where each part of the document is written, by its place in it, and keys given twice."""

    display: str
    of: dict[Loc, int] = field(default_factory=dict)
    duplicates: dict[Loc, list[tuple[Any, int]]] = field(default_factory=dict)

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, or of the nearest part holding it (a missing key: its mapping)."""
        while loc not in self.of and loc:
            loc = loc[:-1]
        return self.of.get(loc)

    def where(self, loc: Loc) -> str:
        return located(self.display, self.line(loc))


@dataclass(frozen=True)
class Document:
    """What the later phases read: the parts of the file that passed, and where each is written."""

    head: Head
    steps: tuple[tuple[Loc, StepFile], ...]  # the usable steps (a valid id, not a repeated one)
    lines: Lines
    has_steps: bool  # False when 'steps' itself is unusable: then nothing further is checked


def load(file: Path, problems: Problems) -> Document:
    """Read and check the file's structure; raise at once only if it is no pipeline at all."""
    data, lines = _read(file, problems)
    try:
        head: Head = PipelineFile.model_validate(data)
        errors: list[ErrorDetails] = []
    except ValidationError as exc:
        errors = exc.errors()
        # What passed, and the defaults for what failed (an unknown key is simply left out).
        failed = {e["loc"][0] for e in errors if len(e["loc"]) == 1}
        head = Head.model_validate(
            {k: v for k, v in data.items() if k in Head.model_fields and k not in failed}
        )
    _report_duplicates(lines, (), "key {!r} appears twice", None, problems)
    for error in errors:
        if len(error["loc"]) == 1:  # the head's, and 'steps' as a whole
            _report(error, PipelineFile, None, lines, problems)
    if isinstance(data.get("vars"), dict):
        _report_duplicates(lines, ("vars",), "variable {!r} is declared twice", None, problems)
    nodes = data.get("steps") if isinstance(data.get("steps"), list) else []
    first: dict[str, str] = {}
    steps: list[tuple[Loc, StepFile]] = []
    for place, node in enumerate(nodes):
        loc = ("steps", place)
        step = _step(loc, node, [e for e in errors if e["loc"][:2] == loc], first, lines, problems)
        if step is not None:
            steps.append((loc, step))
    return Document(head, tuple(steps), lines, has_steps=bool(nodes))


def _step(
    loc: Loc,
    node: Any,
    errors: list[ErrorDetails],
    first: dict[str, str],
    lines: Lines,
    problems: Problems,
) -> StepFile | None:
    """One step as the later phases will see it, its problems reported; None if unusable."""
    where = lines.where(loc)
    if not isinstance(node, dict):
        problems.add(where, "a step is a mapping with 'id' and 'task' (and 'params', 'inputs')")
        return None
    step_id = node.get("id") if isinstance(node.get("id"), str) else None
    _report_duplicates(lines, loc, "key {!r} appears twice", step_id, problems)
    # A step without a usable id is left out: nothing could name it, so nothing more is said.
    bad_id = [e for e in errors if e["loc"][2:] == ("id",)]
    if bad_id:
        _report(bad_id[0], StepFile, None, lines, problems)
        return None
    if step_id in first:
        message = f"duplicate step id (first at {first[step_id]})"
        problems.add(lines.where((*loc, "id")), message, step_id)
        return None
    first[step_id] = where
    for error in errors:
        _report(error, StepFile, step_id, lines, problems)
    failed = {e["loc"][2] for e in errors}
    # What passed, and the defaults for what failed (an unknown key is simply left out).
    step = StepFile.model_validate(
        {k: v for k, v in node.items() if k in StepFile.model_fields and k not in failed}
    )
    _report_duplicates(lines, (*loc, "params"), "parameter {!r} is given twice", step_id, problems)
    _report_duplicates(lines, (*loc, "inputs"), "input {!r} is given twice", step_id, problems)
    return step


def _report(
    error: ErrorDetails,
    model: type[BaseModel],
    step: str | None,
    lines: Lines,
    problems: Problems,
) -> None:
    """A pydantic error as a problem at its line: the model's own message, or an unknown key's."""
    loc = tuple(error["loc"])
    message = error["msg"]
    if error["type"] in ("extra_forbidden", "invalid_key"):  # invalid: a key that is no string
        key = error["input"] if error["type"] == "invalid_key" else loc[-1]
        loc = (*loc[:-1], key)
        message = f"unknown key {key!r}" + hint(str(key), model.model_fields)
    problems.add(lines.where(loc), message, step)


def _report_duplicates(
    lines: Lines, loc: Loc, template: str, step: str | None, problems: Problems
) -> None:
    for key, line in lines.duplicates.get(loc, []):
        problems.add(located(lines.display, line), template.format(key), step)


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


def _read(file: Path, problems: Problems) -> tuple[dict[Any, Any], Lines]:
    """The document as plain data, and its lines; a file that is no YAML mapping is fatal."""
    if not file.is_file():
        raise problems.fatal(None, "file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise problems.fatal(None, f"unreadable: {exc}") from None
    try:
        # A SafeLoader subclass: tags such as !!python/object are refused, never run.
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(m) for m in (exc.context, exc.problem) if m)
        raise problems.fatal(
            mark.line + 1 if mark else None, f"not valid YAML: {message}"
        ) from None
    except yaml.YAMLError as exc:
        raise problems.fatal(None, f"not valid YAML: {exc}") from None
    if not isinstance(doc, _Map):
        raise problems.fatal(None, "a pipeline is a mapping with a 'steps' list")
    lines = Lines(problems.display)
    lines.of[()] = doc.line
    return _plain(doc, (), lines), lines


def _plain(value: Any, loc: Loc, lines: Lines) -> Any:
    """Plain dicts and lists, their lines and repeated keys noted in `lines` by place."""
    if isinstance(value, _Map):
        if value.duplicates:
            lines.duplicates[loc] = value.duplicates
        out = {}
        for key, item in value.items():
            lines.of[(*loc, key)] = value.lines[key]
            out[key] = _plain(item, (*loc, key), lines)
        return out
    if isinstance(value, _Seq):
        for i, line in enumerate(value.lines):
            lines.of[(*loc, i)] = line
        return [_plain(item, (*loc, i), lines) for i, item in enumerate(value)]
    return value
