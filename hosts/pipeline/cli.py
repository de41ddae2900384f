"""`nst pipeline run|validate FILE`: the pipeline runner's command line.

Registered through the `register_commands` hook (an entry point of this distribution), as a
third-party plugin would add a command. It imports nothing heavy itself, so `nst --help` stays
fast; the runner (and torch) load when a subcommand runs.
"""

from __future__ import annotations

import argparse
import sys

from nst_plugin import hookimpl

EPILOG = """\
--set takes VAR=VALUE for a variable declared under 'vars', or STEP.NAME=VALUE for a step's
parameter or input, e.g. --set images=~/photos --set stylize.alpha=0.6 (repeatable).
An item is skipped when all its outputs exist and are newer than its input files; an output older
than its inputs is kept and the item reported, unless --overwrite. Example pipelines: examples/.
"""


def add_pipeline_parser(sub: argparse._SubParsersAction) -> None:
    """Add `pipeline run` and `pipeline validate` to the `nst` subcommands."""
    pipeline = sub.add_parser(
        "pipeline",
        help="run a YAML pipeline of tasks over images or folders",
        description="Run or check a YAML pipeline: steps of registered tasks (style transfer, "
        "load, save, resize, compare, and any plugin's) wired output to input.",
    )
    commands = pipeline.add_subparsers(dest="pipeline_command", required=True)
    run = commands.add_parser(
        "run",
        help="run a pipeline",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check = commands.add_parser(
        "validate",
        help="check a pipeline without running it (every problem, with file and line)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for p in (run, check):
        p.add_argument("file", help="pipeline file (.yaml)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="set a variable or STEP.PARAMETER",
        )
        p.add_argument(
            "--out",
            default=None,
            metavar="DIR",
            help="output folder (default: the file's 'output:', else out/ beside it); "
            "nothing is written outside it",
        )
    run.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs that are older than their inputs",
    )
    run.add_argument(
        "--force", action="store_true", help="redo every item, replacing outputs even if up to date"
    )
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failed item")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--cluster",
        type=_cluster,
        default=None,
        metavar="local:N|tcp://HOST:PORT",
        help="run the items on Dask: N worker processes here, or a running scheduler "
        '(needs pip install -e ".[distributed]")',
    )
    run.set_defaults(func=_run)
    check.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    from .build import load_pipeline

    pipeline = load_pipeline(args.file, overrides=args.overrides, out=args.out)
    count = len(pipeline.items)
    print(
        f"{args.file}: ok: {len(pipeline.steps)} steps, {count} item{'s' if count != 1 else ''}"
        f", outputs in {pipeline.out_dir}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from .build import load_pipeline
    from .runner import Reporter, TqdmReporter, describe_plan, run_pipeline

    pipeline = load_pipeline(args.file, overrides=args.overrides, out=args.out)
    if args.dry_run:
        print(describe_plan(pipeline, overwrite=args.overwrite, force=args.force))
        return 0
    reporter = Reporter() if args.quiet else TqdmReporter()
    summary = run_pipeline(
        pipeline,
        overwrite=args.overwrite,
        force=args.force,
        fail_fast=args.fail_fast,
        reporter=reporter,
        cluster=args.cluster,
    )
    print(summary.text(), file=sys.stderr if summary.exit_code else sys.stdout)
    return summary.exit_code


def _cluster(spec: str) -> str:
    from nst_plugin import InputError

    from .runner import check_cluster

    try:
        return check_cluster(spec)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--cluster {spec!r}: ")) from None


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    add_pipeline_parser(subparsers)
