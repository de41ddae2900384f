"""The Gradio demo host: `build_app()` makes the page, `launch()` serves it (`nst demo`)."""

from .app import Limits, build_app, launch

__all__ = ["Limits", "build_app", "launch"]
