"""Example images that exist on any machine: photos scikit-image ships, paintings we generate.

No image is downloaded and none is copied into the project: the content photos come with the
`scikit-image` wheel, and the style "paintings" are drawn here, stroke by stroke, from a seed.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .images import Picture, from_pil

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea")
PAINTINGS = {
    # name: (palette, swirl strength, stroke length, stroke width)
    "swirls": (
        ((18, 32, 84), (36, 76, 160), (90, 140, 210), (240, 210, 80), (250, 240, 180)),
        1.0,
        18,
        5,
    ),
    "embers": (
        ((40, 10, 10), (140, 30, 20), (230, 90, 30), (250, 180, 60), (60, 40, 90)),
        0.35,
        26,
        6,
    ),
    "meadow": (
        ((30, 70, 40), (90, 150, 60), (200, 210, 90), (240, 120, 140), (250, 250, 230)),
        0.15,
        12,
        4,
    ),
}


def example_photo(name: str = "astronaut") -> Picture:
    """A photo bundled with scikit-image (no download)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown example photo {name!r}; choose from {', '.join(PHOTOS)}")
    from skimage import data

    return from_pil(Image.fromarray(getattr(data, name)()))


def example_painting(name: str = "swirls", size: int = 512, seed: int = 0) -> Picture:
    """A painterly texture: thick strokes of a limited palette following a swirling flow field."""
    if name not in PAINTINGS:
        raise ValueError(f"unknown example painting {name!r}; choose from {', '.join(PAINTINGS)}")
    palette, swirl, length, width = PAINTINGS[name]
    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), palette[0])
    draw = ImageDraw.Draw(img)
    centres = [(rng.uniform(0, size), rng.uniform(0, size), rng.choice((-1, 1))) for _ in range(5)]

    def flow(x: float, y: float) -> float:
        angle = 0.6 * math.sin(x / size * 5.0) + 0.6 * math.cos(y / size * 4.0)
        for cx, cy, turn in centres:
            dx, dy = x - cx, y - cy
            r2 = dx * dx + dy * dy + 1.0
            angle += swirl * turn * math.exp(-r2 / (0.05 * size * size)) * 3.0
            angle += swirl * turn * 0.3 * math.atan2(dy, dx) * math.exp(-r2 / (0.2 * size * size))
        return angle

    scale = size / 512
    for layer in range(3):
        count = int((2600 + 1800 * layer) * scale * scale)
        for _ in range(count):
            x, y = rng.uniform(0, size), rng.uniform(0, size)
            band = min(
                len(palette) - 1,
                int((y / size + rng.uniform(-0.3, 0.3) + layer * 0.25) * (len(palette) - 1))
                % len(palette),
            )
            r, g, b = palette[band]
            jitter = rng.randint(-18, 18)
            colour = tuple(int(min(255, max(0, c + jitter))) for c in (r, g, b))
            points = [(x, y)]
            for _ in range(3):
                a = flow(x, y)
                step = length * scale / 3
                x, y = x + math.cos(a) * step, y + math.sin(a) * step
                points.append((x, y))
            draw.line(points, fill=colour, width=max(1, round(width * scale)), joint="curve")
    img = img.filter(ImageFilter.SMOOTH)
    return from_pil(img)


def write_examples(folder: str | Path) -> dict[str, Path]:
    """Write the example photos and paintings as PNGs (existing files are kept)."""
    from .images import save_image

    folder = Path(folder)
    written = {}
    for name in PHOTOS[:2]:
        written[name] = folder / f"{name}.png"
        if not written[name].exists():
            save_image(example_photo(name), written[name])
    for name in PAINTINGS:
        written[name] = folder / f"{name}.png"
        if not written[name].exists():
            save_image(example_painting(name), written[name])
    return written


def as_array(picture: Picture) -> np.ndarray:
    return (picture.rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
