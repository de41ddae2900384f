"""`nst demo`: serve the Gradio app, added to `nst` through the `register_commands` hook.

Gradio is imported only when the command runs: it takes seconds to import and is an extra.
"""

from __future__ import annotations

import argparse

from nst_plugin import NSTError, hookimpl


def port(text: str) -> int:
    """A TCP port number, or argparse's one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    _add_demo(subparsers)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="try style transfer in the browser (the Gradio demo app)",
        description="Serve the Gradio demo app. It binds to loopback (127.0.0.1) unless --host "
        "says otherwise; needs the demo extra: pip install -e '.[demo]' in the nst-plugin clone.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every network)")
    p.add_argument("--port", type=port, default=7860, help="port to listen on")
    p.add_argument("--share", action="store_true", help="also open a temporary public share link")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    try:  # imported here: Gradio takes seconds to import and is an optional extra
        from .app import launch
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("gradio", "gradio_client"):
            raise NSTError(
                "the demo needs Gradio: pip install -e '.[demo]' in the nst-plugin clone"
            ) from None
        raise
    try:
        launch(args.host, args.port, args.share)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise NSTError(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    return 0
