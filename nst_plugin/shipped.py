"""Where the package's own weights lie, named once for the built-in plugins and the trainers."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED_DECODER = WEIGHTS_DIR / "adain_decoder.safetensors"
PRESETS_DIR = WEIGHTS_DIR / "styles"
