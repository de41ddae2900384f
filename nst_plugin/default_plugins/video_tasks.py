"""Video as workflow tasks: `video.load` -> frames -> `video.style_transfer` -> `video.save`.

Frames travel between them as a `video.FrameStream`: nothing is decoded until `video.save` pulls
the first frame, and then one frame at a time, so a pipeline holds one frame per stage whatever
the clip's length. Style transfer is the image task run frame by frame, with what keeps a video
from flickering (engine/temporal.py): the previous result, carried along the optical flow onto
the new frame, with the pixels where that flow is reliable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .. import plugins
from ..engine.errors import InputError
from ..engine.progress import ProgressCallback, StopCheck
from ..engine.temporal import RELIABLE_FOR_SAME_SHOT, flows, reliable, warp
from ..hookspecs import hookimpl
from ..images import Picture, resize_longer
from ..params import Param
from ..task import Port, Task
from ..video import FORMATS, VIDEO_SUFFIXES, Frame, FrameStream, VideoFile, output_path, write_video
from .style_transfer import StyleTransferTask

# Each save format's {ext} in a name template ("png" writes a folder of frames).
EXTENSIONS = {"mp4": "mp4", "mkv": "mkv", "png": "frames"}

TEMPORAL_PARAMS = (
    Param(
        "temporal",
        "float",
        0.5,
        "how strongly each frame holds to the previous result carried along the optical flow, "
        "where that flow is reliable (0: frame by frame, flickering; more also fades strokes)",
        min=0.0,
        max=1.0,
    ),
    Param(
        "scene_cut",
        "float",
        RELIABLE_FOR_SAME_SHOT,
        "a frame whose reliable share is below this starts afresh (a new shot)",
        min=0.0,
        max=1.0,
    ),
)


class LoadVideoTask(Task):
    id = "video.load"
    title = "Load video"
    description = (
        "Open a video file (any container and codec FFmpeg reads) as a stream of frames, "
        "decoded one at a time when a later step asks; optionally shrunk to a longer side."
    )
    inputs = (
        Port(
            "path",
            "path",
            "the video file; a pipeline may give a glob or folder (one item each)",
            suffixes=VIDEO_SUFFIXES,
        ),
    )
    outputs = (Port("frames", "frames", "the video's frames, with their timestamps and audio"),)

    @classmethod
    def schema(cls) -> list[Param]:
        return [
            Param(
                "size",
                "int",
                0,
                "longer side of the frames in pixels; 0 keeps the video's size",
                min=0,
                max=16384,
            )
        ]

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        return {"frames": VideoFile(inputs["path"], self.params["size"] or None)}


class VideoStyleTransferTask(Task):
    """The style-transfer task over frames, each held to the one before along the flow."""

    id = "video.style_transfer"
    title = "Video style transfer"
    description = (
        "Stylize every frame of a video by any method, temporally consistent: each frame is "
        "held to the previous result carried along the optical flow where the flow is reliable "
        "(blended for feed-forward methods, a temporal loss for optimization)."
    )
    inputs = (
        Port("frames", "frames", "the video's frames"),
        Port(
            "styles",
            "image",
            "one or more style images (none for the fast method)",
            required=False,
            multiple=True,
        ),
    )
    outputs = (Port("frames", "frames", "the stylized frames, at the output size"),)

    @classmethod
    def schema(cls) -> list[Param]:
        return [*StyleTransferTask.schema(), *TEMPORAL_PARAMS]

    @classmethod
    def _method_of(cls, params: Mapping[str, Any]) -> str | None:
        return StyleTransferTask._method_of(params)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        own = {p.name for p in TEMPORAL_PARAMS}
        frame_params = {k: v for k, v in self._given.items() if k not in own}
        self.frame_task = StyleTransferTask(**{**frame_params, "size": 0})

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        source = inputs["frames"]
        styles = list(inputs.get("styles") or [])
        method = plugins.get_method(self.frame_task.params["method"])
        if method.needs_styles and not styles:  # said now, before the first frame is decoded
            raise InputError(f"method {method.name!r} needs at least one style image")
        if styles and not method.needs_styles:
            raise InputError(
                f"method {method.name!r} paints its model's style and takes no style images"
            )
        return {"frames": StylizedFrames(source, self, styles, should_stop)}


class StylizedFrames(FrameStream):
    """Frames of `source`, each stylized by the task's frame task, carried forward as set."""

    def __init__(
        self,
        source: FrameStream,
        task: VideoStyleTransferTask,
        styles: list[Picture],
        should_stop: StopCheck | None,
    ) -> None:
        self.source, self.task, self.styles = source, task, styles
        self.info = source.info
        self.should_stop = should_stop
        self.cuts = 0  # frames that started afresh (a new shot) in the last pass

    def key(self) -> dict[str, Any]:
        params = {k: v for k, v in self.task.params.items() if k != "preview_every"}
        return {"source": self.source.key(), "style_transfer": params, "styles": len(self.styles)}

    def frames(self, start: int = 0, previous: Picture | None = None) -> Iterator[Frame]:
        p = self.task.params
        longer = p["size"] or None
        strength, cut = p["temporal"], p["scene_cut"]
        last_in: Picture | None = None
        last_out = previous
        for frame in self.source.frames(start=max(0, start - 1)):
            if frame.index < start - 1 or frame.picture is None:
                yield frame
                continue
            content = resize_longer(Picture(frame.picture.rgb), longer)
            if frame.index == start - 1:  # the frame before the resume point: only its photo
                last_in = content
                yield Frame(frame.index, frame.pts, None)
                continue
            inputs: dict[str, Any] = {"content": content, "styles": self.styles}
            if strength > 0 and last_in is not None and last_out is not None:
                backward, forward = flows(last_in.rgb, content.rgb)
                mask = reliable(backward, forward)
                if float(mask.mean()) >= cut:
                    inputs["previous"] = Picture(warp(last_out.rgb[None], backward)[0])
                    inputs["previous_weight"] = mask * strength
                else:
                    self.cuts += 1
            out = self.task.frame_task.run(inputs, should_stop=self.should_stop)["image"]
            yield Frame(frame.index, frame.pts, out)
            last_in, last_out = content, out


class SaveVideoTask(Task):
    """Write frames as H.264 video (or PNGs), resumable; an existing output is kept unless
    `overwrite` is set."""

    id = "video.save"
    title = "Save video"
    description = (
        "Encode frames as H.264 in MP4 (or MKV) at the source's timestamps with its audio "
        "copied, or as a folder of PNG frames. Resumes a stopped run from its last frame; the "
        "output appears complete or not at all."
    )
    inputs = (Port("frames", "frames", "the frames to write"),)
    outputs = (
        Port("path", "path", "the file (or folder of frames) written"),
        Port("note", "text", "what the user should know (audio re-encoded)", required=False),
    )

    @classmethod
    def schema(cls) -> list[Param]:
        return [
            Param(
                "name",
                "str",
                "{stem}.{ext}",
                "output name template: {stem} the source's name without suffix, {index} the "
                "item's number, {ext} the format's suffix ('frames' for a PNG folder)",
            ),
            Param(
                "format",
                "choice",
                "mp4",
                "H.264 in MP4 or MKV, or PNG frames",
                choices=tuple(FORMATS),
            ),
            Param(
                "crf",
                "int",
                18,
                "H.264 quality, constant rate factor: 0 lossless, 18 visually clean, 28 small",
                min=0,
                max=51,
            ),
            Param("folder", "str", "", "folder to write into ('' is the current folder)"),
            Param("stem", "str", "video", "what {stem} stands for; the pipeline sets it"),
            Param("index", "int", 0, "what {index} stands for; the pipeline sets it", min=0),
            Param("overwrite", "bool", False, "replace an existing output instead of refusing"),
        ]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.planned_outputs()

    def planned_outputs(self) -> list[Any]:
        p = self.params
        try:
            name = p["name"].format(stem=p["stem"], index=p["index"], ext=EXTENSIONS[p["format"]])
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(
                f"parameter 'name' {p['name']!r} is not a valid template: {exc}"
            ) from None
        if not name.strip():
            raise InputError(f"parameter 'name' {p['name']!r} gives an empty file name")
        return [output_path(p["folder"], name, p["format"])]

    def _run(
        self,
        inputs: dict[str, Any],
        on_progress: ProgressCallback | None,
        should_stop: StopCheck | None,
    ) -> dict[str, Any]:
        (path,) = self.planned_outputs()
        written, note = write_video(
            inputs["frames"],
            path,
            fmt=self.params["format"],
            crf=self.params["crf"],
            overwrite=self.params["overwrite"],
            on_progress=on_progress,
            should_stop=should_stop,
        )
        return {"path": written, "note": note}


TASKS = (LoadVideoTask, VideoStyleTransferTask, SaveVideoTask)


@hookimpl
def register_tasks(register: Callable) -> None:
    for cls in TASKS:
        register(cls)
