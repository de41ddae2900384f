"""The YAML pipeline runner: steps of registered tasks wired port to port, run over batches.

`load_pipeline` parses and validates a file (every problem at once, with file and line);
`run_pipeline` runs it item by item; `describe_plan` is the dry run. `nst pipeline run|validate`
is the command line (see `cli.py`).
"""

from .runner import Reporter, RunSummary, TqdmReporter, describe_plan, run_pipeline
from .spec import Pipeline, PipelineError, Problem, load_pipeline

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
