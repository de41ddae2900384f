"""The YAML pipeline runner: steps of registered tasks wired port to port, run over batches.

`load_pipeline` parses and validates a file (every problem at once, with file and line);
`run_pipeline` runs it item by item; `describe_plan` is the dry run. `nst pipeline run|validate`
is the command line (see `cli.py`); `build.py` lists the phases a file goes through.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Reporter": "runner",
    "RunSummary": "runner",
    "TqdmReporter": "runner",
    "describe_plan": "runner",
    "run_pipeline": "runner",
    "Pipeline": "model",
    "PipelineError": "problems",
    "Problem": "problems",
    "load_pipeline": "build",
}


def __getattr__(name: str) -> Any:
    """Names load on first use, so `nst` builds its parser without the runner (or torch)."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Pipeline",
    "PipelineError",
    "Problem",
    "Reporter",
    "RunSummary",
    "TqdmReporter",
    "describe_plan",
    "load_pipeline",
    "run_pipeline",
]
