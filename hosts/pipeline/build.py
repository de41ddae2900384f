"""A pipeline file through its phases, each reading only what the one before it made.

    load     YAML, with line numbers, checked against the declared structure   (load.py)
    resolve  variables, `${...}` and `--set`                                   (resolve.py)
    graph    tasks, parameters, STEP.PORT wiring, types, cycles, order         (graph.py)
    plan     files, batch items, outputs                                       (plan.py)
    run      items through the graph                                           (runner.py)

A pipeline file looks like this::

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
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .graph import build_graph
from .load import load
from .model import Pipeline
from .plan import output_folder, plan
from .problems import Problems
from .resolve import resolve

__all__ = ["load_pipeline"]


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
    file = Path(path)
    base = file.resolve().parent
    problems = Problems(str(path))
    doc = load(file, problems)
    resolved = resolve(doc, list(overrides), base, problems, out_given=out is not None)
    if not doc.has_steps:  # nothing to wire: what the file and --set got wrong is all there is
        problems.raise_if_any()
    graph = build_graph(resolved, base, problems)
    out_dir = output_folder(out, resolved.output, resolved.output_where, base, problems)
    pipeline = plan(graph, file=file, base=base, out_dir=out_dir, problems=problems)
    problems.raise_if_any()
    return pipeline
