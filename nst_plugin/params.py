"""The typed parameter schema: the one place each parameter is defined.

Hosts build their controls from `Param` records (type, default, range, choices, help, and which
method a parameter applies to), and every value a host passes, typed or as a string (Ikomia passes
strings), is checked here before any work starts. A method's engine options may declare their
own entries, in the metadata of their dataclass fields (`params_from_fields`), so an option's
default and range are written once, where the option is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .engine.errors import InputError

TYPES = ("int", "float", "bool", "str", "choice", "floats")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# A declared field's parameter type, by the exact type of its default (so True is no int).
_TYPE_OF_DEFAULT = {bool: "bool", int: "int", float: "float", str: "str"}
Options = TypeVar("Options")


@dataclass(frozen=True)
class Param:
    """One parameter. `methods` empty means it applies whatever the method."""

    name: str
    type: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    methods: tuple[str, ...] = ()
    # a registry whose names become the choices when plugins load ("style_models")
    choices_from: str | None = None
    # a choice that also takes a path to a file with this suffix (a model file, say)
    path_suffix: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"parameter {self.name}: type must be one of {TYPES}")
        if self.type == "choice" and not self.choices and not self.choices_from:
            raise ValueError(f"parameter {self.name}: a choice needs choices")

    def applies_to(self, method: str) -> bool:
        return not self.methods or method in self.methods

    def _range_text(self) -> str:
        if self.type == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices or ())
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"within {lo}..{hi}"

    def validate(self, value: Any) -> Any:
        """The value coerced to this parameter's type, or an InputError naming the problem."""
        fail = f"parameter {self.name!r}"
        try:
            if self.type == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in _TRUE | _FALSE:
                        raise ValueError
                    return low in _TRUE
                if isinstance(value, bool | int):
                    return bool(value)
                raise ValueError
            if self.type == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                out: Any = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif self.type == "float":
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
            elif self.type == "floats":
                items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
                out = [float(v) for v in items]
            elif self.type == "choice":
                out = str(value)
                if out in (self.choices or ()):
                    return out
                if self.path_suffix and out.lower().endswith(self.path_suffix):
                    if not Path(out).is_file():
                        raise InputError(f"{fail}: file not found: {out}")
                    return out
                also = f" or a {self.path_suffix} file" if self.path_suffix else ""
                raise InputError(f"{fail} must be {self._range_text()}{also}, got {value!r}")
            else:
                if not isinstance(value, str):
                    raise ValueError
                return value
        except InputError:
            raise
        except (TypeError, ValueError):
            raise InputError(f"{fail} must be of type {self.type}, got {value!r}") from None
        numbers = out if isinstance(out, list) else [out]
        for n in numbers:
            if (
                n != n
                or (self.min is not None and n < self.min)
                or (self.max is not None and n > self.max)
            ):
                raise InputError(f"{fail} must be {self._range_text()}, got {value!r}")
        return out

    def to_manifest(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        if self.min is not None:
            entry["min"] = self.min
        if self.max is not None:
            entry["max"] = self.max
        if self.type == "choice":
            entry["choices"] = list(self.choices or ())
        if self.methods:
            entry["methods"] = list(self.methods)
        if self.path_suffix:
            entry["path_suffix"] = self.path_suffix
        entry["description"] = self.description
        return entry


def params_from_fields(options: type, *names: str) -> tuple[Param, ...]:
    """The schema entries that the named fields of an options dataclass declare, in that order.

    A field declares one with a `help` in its metadata, and `min`, `max` or `choices` as it needs;
    its default is the parameter's default, its type the parameter's (a str with choices is a
    choice). The schema checks values against them, so the engine need not check them again.
    """
    by_name = {f.name: f for f in dataclasses.fields(options)}
    return tuple(_param_of(by_name[name]) for name in names)


def _param_of(f: dataclasses.Field) -> Param:
    meta = f.metadata
    choices = meta.get("choices")
    kind = "choice" if choices else _TYPE_OF_DEFAULT[type(f.default)]
    return Param(
        f.name,
        kind,
        f.default,
        meta["help"],
        min=meta.get("min"),
        max=meta.get("max"),
        choices=None if choices is None else tuple(choices),
    )


def options_from_params(
    options: type[Options], values: Mapping[str, Any], **others: Any
) -> Options:
    """An options dataclass from validated parameter values: every field that declares a
    parameter takes the value of that name; `others` set the fields that do not."""
    declared = {f.name: values[f.name] for f in dataclasses.fields(options) if "help" in f.metadata}
    return options(**declared, **others)


def validate_params(
    schema: Iterable[Param], values: Mapping[str, Any], *, method: str | None = None
) -> dict[str, Any]:
    """Defaults filled in, every value checked; unknown names and misplaced ones rejected."""
    by_name = {p.name: p for p in schema}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise InputError(
            f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(by_name))}"
        )
    out = {}
    for name, param in by_name.items():
        if name in values and method is not None and not param.applies_to(method):
            raise InputError(
                f"parameter {name!r} applies to method {', '.join(param.methods)}, not {method!r}"
            )
        out[name] = param.validate(values[name]) if name in values else param.default
    return out
