"""What is wrong with a pipeline file, kept until every phase has looked, then reported at once.

A user fixes a file in one pass when every problem comes with its file:line and step; so no phase
stops at its first finding: each adds to one `Problems` and the last raises `PipelineError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nst_plugin import NSTError

__all__ = ["PipelineError", "Problem", "Problems", "hint", "located"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (file:line, or the --set option), which step, what and the fix."""

    where: str
    step: str | None
    message: str

    def __str__(self) -> str:
        step = f"step {self.step!r}: " if self.step else ""
        return f"{self.where}: {step}{self.message}"


class PipelineError(NSTError):
    """A pipeline file is unusable; the message lists every problem with its file and line."""

    def __init__(self, display: str, problems: Sequence[Problem]) -> None:
        self.display = display
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"pipeline {display}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def located(display: str, line: int | None) -> str:
    """`file:line`, or the file alone for what belongs to no line."""
    return f"{display}:{line}" if line else display


def hint(name: str, known: Iterable[str]) -> str:
    """The closest known name, and all of them: a typo is fixed without opening the docs."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(name, known, n=1)
    listing = ", ".join(known) if known else "none"
    return (f"; did you mean {close[0]!r}?" if close else "") + f" (known: {listing})"


class Problems:
    """The problems of one file, from every phase, listed in file order when raised."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.found: list[Problem] = []

    def at(self, line: int | None) -> str:
        return located(self.display, line)

    def add(self, where: str, message: str, step: str | None = None) -> None:
        self.found.append(Problem(where, step, message))

    def fatal(self, line: int | None, message: str) -> PipelineError:
        """For a file that cannot be read as a pipeline at all: nothing further to check."""
        return PipelineError(self.display, [Problem(self.at(line), None, message)])

    def raise_if_any(self) -> None:
        if self.found:
            raise PipelineError(self.display, sorted(self.found, key=self._order))

    def _order(self, problem: Problem) -> tuple[int, int]:
        """The file's problems by line, then those of --set options as they were found."""
        prefix = self.display + ":"
        if problem.where.startswith(prefix) and problem.where[len(prefix) :].isdigit():
            return (0, int(problem.where[len(prefix) :]))
        return (0, 0) if problem.where == self.display else (1, 0)
