"""Built-in image utility tasks: load, save, resize and compare.

They exist so that a workflow (the YAML pipeline runner, or any other host) can express its file
I/O and before/after views with the same task model as style transfer, registered through the
same `register_tasks` hook as a third-party task would be.

A task that writes files (`image.save`) also answers `planned_outputs()`: the files `run` would
write with its current parameters. A host uses it to plan (dry runs), to keep writes inside an
output folder, and to skip work whose outputs already exist. Hosts fill in the parameters
`folder`, `stem` and `index` per item; the template in `name` turns them into a file name.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..engine.errors import InputError
from ..engine.progress import ProgressCallback, StopCheck
from ..hookspecs import hookimpl
from ..images import Picture, load_image, resize_longer, resize_to, save_image
from ..params import Param
from ..task import Port, Task

# Suffix each save format gets, and the suffixes a name template may spell it with.
FORMATS = {
    "png": (".png",),
    "jpg": (".jpg", ".jpeg"),
    "webp": (".webp",),
    "tif": (".tif", ".tiff"),
    "bmp": (".bmp",),
}
NAME_FIELDS = ("stem", "index", "ext")


class LoadImageTask(Task):
    """Read one image file; a pipeline turns globs and folders into one item per file."""

    id = "image.load"
    title = "Load image"
    description = (
        "Read an image file (PNG, JPEG, WebP, TIFF, ...) as RGB plus alpha, EXIF orientation "
        "applied; optionally shrink it so its longer side fits a size."
    )
    inputs = (
        Port(
            "path", "path", "the image file; a pipeline may give a glob or folder (one item each)"
        ),
    )
    outputs = (Port("image", "image", "the image, RGB 0..1 with alpha if the file has one"),)

    @classmethod
    def schema(cls) -> list[Param]:
        return [
            Param(
                "size",
                "int",
                0,
                "longer side in pixels after loading; 0 keeps the file's size",
                min=0,
                max=16384,
            ),
        ]

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        path = inputs["path"]
        if not isinstance(path, str | os.PathLike):
            raise InputError(
                f"task {self.id}: 'path' must be a file path, got {type(path).__name__}"
            )
        picture = load_image(path)
        return {"image": resize_longer(picture, self.params["size"] or None)}


class SaveImageTask(Task):
    """Write one image atomically; an existing file is kept unless `overwrite` is set."""

    id = "image.save"
    title = "Save image"
    description = (
        "Write an image to a file named from a template, in a chosen format and quality. The file "
        "appears complete or not at all; an existing file is never replaced unless asked."
    )
    inputs = (Port("image", "image", "the image to write"),)
    outputs = (Port("path", "path", "the file written"),)

    @classmethod
    def schema(cls) -> list[Param]:
        return [
            Param(
                "name",
                "str",
                "{stem}.{ext}",
                "file name template: {stem} is the source file's name without suffix, {index} "
                "the item's number in a batch, {ext} the format's suffix",
            ),
            Param("format", "choice", "png", "file format", choices=tuple(FORMATS)),
            Param(
                "quality",
                "int",
                95,
                "JPEG and WebP quality (other formats are lossless)",
                min=1,
                max=100,
            ),
            Param(
                "folder",
                "str",
                "",
                "folder to write into ('' is the current folder); in a pipeline, a subfolder "
                "of the output folder",
            ),
            Param(
                "stem",
                "str",
                "image",
                "what {stem} stands for; the pipeline runner sets it per item",
            ),
            Param(
                "index",
                "int",
                0,
                "what {index} stands for; the pipeline runner sets it per item",
                min=0,
            ),
            Param("overwrite", "bool", False, "replace an existing file instead of refusing"),
        ]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._check_name()

    def _check_name(self) -> None:
        """Reject a bad template now, before any work, rather than after a long stylization."""
        template = self.params["name"]
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise InputError(
                f"parameter 'name' {template!r} is not a valid template: {exc}"
            ) from None
        unknown = sorted({f for f in fields if f not in NAME_FIELDS})
        if unknown:
            raise InputError(
                f"parameter 'name' {template!r} uses unknown field(s) "
                f"{', '.join('{' + f + '}' for f in unknown)}; known: "
                f"{', '.join('{' + f + '}' for f in NAME_FIELDS)}"
            )
        self.planned_outputs()

    def planned_outputs(self) -> list[Path]:
        """The file `run` would write with the current parameters."""
        p = self.params
        fmt = p["format"]
        name = p["name"].format(stem=p["stem"], index=p["index"], ext=FORMATS[fmt][0][1:])
        if not name.strip() or name.endswith(("/", os.sep)):
            raise InputError(f"parameter 'name' {p['name']!r} gives an empty file name")
        suffix = Path(name).suffix.lower()
        known = {s for suffixes in FORMATS.values() for s in suffixes}
        if suffix in known and suffix not in FORMATS[fmt]:
            raise InputError(
                f"file name {name!r} ends in {suffix} but the format is {fmt!r}; change one of them"
            )
        if suffix not in FORMATS[fmt]:
            name += FORMATS[fmt][0]
        return [Path(p["folder"] or ".") / name]

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        (path,) = self.planned_outputs()
        written = save_image(
            inputs["image"],
            path,
            overwrite=self.params["overwrite"],
            quality=self.params["quality"],
        )
        return {"path": written}


class ResizeTask(Task):
    """Resize by one rule: longer side, exact width/height (either keeps the aspect), or scale."""

    id = "image.resize"
    title = "Resize image"
    description = (
        "Resize an image with antialiasing: to a longer side, to a width and/or height (one of "
        "them keeps the aspect ratio), or by a scale factor. Alpha follows."
    )
    inputs = (Port("image", "image", "the image to resize"),)
    outputs = (Port("image", "image", "the resized image"),)

    @classmethod
    def schema(cls) -> list[Param]:
        return [
            Param("longer", "int", 0, "longer side in pixels (0: not this rule)", min=0, max=16384),
            Param(
                "width",
                "int",
                0,
                "width in pixels (0: from height and the aspect ratio)",
                min=0,
                max=16384,
            ),
            Param(
                "height",
                "int",
                0,
                "height in pixels (0: from width and the aspect ratio)",
                min=0,
                max=16384,
            ),
            Param("scale", "float", 1.0, "scale factor (1: not this rule)", min=0.01, max=16.0),
        ]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._check_rules()

    def _check_rules(self) -> None:
        p = self.params
        rules = [bool(p["longer"]), bool(p["width"] or p["height"]), p["scale"] != 1.0]
        if sum(rules) > 1:
            raise InputError(
                "image.resize takes one rule: 'longer', or 'width'/'height', or 'scale'; "
                f"got longer={p['longer']}, width={p['width']}, height={p['height']}, "
                f"scale={p['scale']:g}"
            )

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        p, picture = self.params, inputs["image"]
        w, h = picture.size
        if p["longer"]:
            return {"image": resize_longer(picture, p["longer"])}
        if p["width"] and p["height"]:
            size = (p["height"], p["width"])
        elif p["width"]:
            size = (max(1, round(h * p["width"] / w)), p["width"])
        elif p["height"]:
            size = (p["height"], max(1, round(w * p["height"] / h)))
        else:
            size = (max(1, round(h * p["scale"])), max(1, round(w * p["scale"])))
        return {"image": picture if size == (h, w) else resize_to(picture, size)}


class CompareTask(Task):
    """Lay images out side by side, stacked or in a grid, so a result is seen beside its source."""

    id = "image.compare"
    title = "Compare images"
    description = (
        "Place several images in a row, a column or a grid on a plain background, each scaled to "
        "a common height, e.g. the photo before and after stylization."
    )
    inputs = (Port("images", "image", "the images, in reading order", multiple=True),)
    outputs = (Port("image", "image", "the comparison sheet (no alpha)"),)

    @classmethod
    def schema(cls) -> list[Param]:
        return [
            Param(
                "layout",
                "choice",
                "row",
                "row: side by side; column: stacked; grid: rows of 'columns' images",
                choices=("row", "column", "grid"),
            ),
            Param(
                "columns",
                "int",
                0,
                "images per row in a grid (0: as square as possible)",
                min=0,
                max=64,
            ),
            Param(
                "height",
                "int",
                0,
                "height of each cell in pixels (0: the first image's)",
                min=0,
                max=8192,
            ),
            Param(
                "gap",
                "int",
                8,
                "space between cells and around the sheet, in pixels",
                min=0,
                max=256,
            ),
            Param(
                "background",
                "float",
                1.0,
                "background grey level, 0 black to 1 white",
                min=0.0,
                max=1.0,
            ),
        ]

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        p = self.params
        pictures: list[Picture] = list(inputs["images"])
        cell_h = p["height"] or pictures[0].size[1]
        cells = [_flatten(_to_height(pic, cell_h), p["background"]) for pic in pictures]
        cell_w = max(c.shape[-1] for c in cells)
        n = len(cells)
        if p["layout"] == "row":
            cols = n
        elif p["layout"] == "column":
            cols = 1
        else:
            cols = p["columns"] or math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        gap = p["gap"]
        sheet = torch.full(
            (3, rows * cell_h + (rows + 1) * gap, cols * cell_w + (cols + 1) * gap),
            float(p["background"]),
        )
        for i, cell in enumerate(cells):
            r, c = divmod(i, cols)
            top = gap + r * (cell_h + gap)
            left = gap + c * (cell_w + gap) + (cell_w - cell.shape[-1]) // 2
            sheet[:, top : top + cell_h, left : left + cell.shape[-1]] = cell
        return {"image": Picture(sheet)}


def _to_height(picture: Picture, height: int) -> Picture:
    w, h = picture.size
    if h == height:
        return picture
    return resize_to(picture, (height, max(1, round(w * height / h))))


def _flatten(picture: Picture, background: float) -> torch.Tensor:
    """Alpha composited over the sheet's background, so transparent areas look as they would."""
    if picture.alpha is None:
        return picture.rgb
    a = picture.alpha[None].to(picture.rgb.dtype)
    return picture.rgb * a + background * (1.0 - a)


TASKS = (LoadImageTask, SaveImageTask, ResizeTask, CompareTask)


@hookimpl
def register_tasks(register: Callable) -> None:
    for cls in TASKS:
        register(cls)
