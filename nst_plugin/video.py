"""Video files in and out (PyAV, FFmpeg's libraries), and the frame streams video tasks pass on.

A video is never in memory whole: a `FrameStream` yields one `Frame` at a time, and each stage
(decode, stylize, encode) holds only the frame it works on and what it carries from the last one,
so memory stays flat however long the clip.

Writing is resumable. Each finished frame is also kept as a PNG in a hidden work folder beside
the output (`.NAME.part/`); a run that was killed or cancelled picks up after the last of them,
re-encoding the earlier ones from their PNGs, so the video still comes out in one piece. The
output appears (renamed into place) only when every frame is in; the work folder then goes.

Timestamps are the source's: each frame keeps its presentation time, so a variable frame rate
survives, and the first audio stream is copied packet for packet (re-encoded to AAC only when
the output container cannot hold its codec, which is said).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from .engine.atomic import REASONS, atomic_path
from .engine.errors import Cancelled, InputError, WriteError
from .engine.progress import Progress, ProgressCallback, StopCheck
from .images import MAX_PIXELS, Picture, from_numpy, load_image, to_numpy

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv")
# Output formats: container and suffix; "png" is a folder of numbered frames.
FORMATS = {"mp4": ".mp4", "mkv": ".mkv", "png": ""}
FRAME_NAME = "{:06d}.png"
JOB_FILE = "job.json"
# Work PNGs are read back once; a light compression saves ~30 ms a frame at 512 px.
PNG_LEVEL = 2


def require_av() -> Any:
    """PyAV, or a one-line error naming the extra to install."""
    try:
        import av
    except ImportError:
        raise InputError(
            "video needs PyAV and OpenCV: pip install -e '.[video]' (from the project folder)"
        ) from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read before any frame is decoded."""

    path: Path
    width: int
    height: int
    frames: int  # the container's count; an estimate from duration x rate when it has none
    fps: float  # average frame rate
    time_base: Fraction  # of the video stream: pts x time_base = seconds
    codec: str
    audio: str | None  # codec of the first audio stream, None without one

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.fps else 0.0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open a video's header; a missing file, a non-video, a file with no video stream or frames
    too large are one-line errors here, before any work."""
    av = require_av()
    path = Path(path)
    if not path.exists():
        raise InputError(f"video file not found: {path}")
    if path.is_dir():
        raise InputError(f"expected a video file, got a folder: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            width, height = ctx.width, ctx.height
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            frames = stream.frames
            if not frames and stream.duration and stream.time_base:
                frames = round(float(stream.duration * stream.time_base * rate))
            if not frames and container.duration:
                frames = round(container.duration / 1e6 * float(rate))
            audio = (
                container.streams.audio[0].codec_context.name if container.streams.audio else None
            )
            info = VideoInfo(
                path, width, height, int(frames or 0), float(rate),
                stream.time_base or Fraction(1, 90000), ctx.name, audio,
            )  # fmt: skip
    except InputError:
        raise
    except av.FFmpegError as exc:
        raise InputError(f"cannot read video {path}: {_reason(exc)}") from None
    if width <= 0 or height <= 0:
        raise InputError(f"{path} has a video stream without a frame size; is it corrupt?")
    if width * height > MAX_PIXELS:
        raise InputError(
            f"{path} has {width}x{height} frames = {width * height / 1e6:.0f} megapixels each, "
            f"above the limit of {MAX_PIXELS / 1e6:.0f}; downscale it first"
        )
    return info


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


@dataclass(frozen=True)
class Frame:
    """One frame: its number, its presentation time in the source's time base (from 0), and its
    pixels, None for a frame before the resume point (already done, not computed again)."""

    index: int
    pts: int
    picture: Picture | None


class FrameStream(ABC):
    """A video as a sequence of frames, produced lazily; tasks pass these along a pipeline."""

    info: VideoInfo  # of the source file

    @abstractmethod
    def key(self) -> dict[str, Any]:
        """What determines the frames: a resumed write checks it against the one it started."""

    @abstractmethod
    def frames(self, start: int = 0, previous: Picture | None = None) -> Iterator[Frame]:
        """Every frame in order; those before `start` with no picture. `previous` is the result
        already written for frame start - 1, for a stage that carries results forward."""


class VideoFile(FrameStream):
    """Frames decoded from a file, optionally shrunk so the longer side fits `longer`."""

    def __init__(self, path: str | os.PathLike, longer: int | None = None) -> None:
        self.info = probe(path)
        self.longer = longer
        w, h = self.info.width, self.info.height
        if longer and max(w, h) != longer:
            k = longer / max(w, h)
            w, h = max(1, round(w * k)), max(1, round(h * k))
        self.size = (w, h)

    def key(self) -> dict[str, Any]:
        stat = self.info.path.stat()
        return {
            "source": str(self.info.path.resolve()),
            "bytes": stat.st_size,
            "mtime": stat.st_mtime,
            "size": list(self.size),
        }

    def frames(self, start: int = 0, previous: Picture | None = None) -> Iterator[Frame]:
        av = require_av()
        path, (w, h) = self.info.path, self.size
        index, first, last_pts = 0, None, -1
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    pts = frame.pts
                    if pts is None:  # some AVI and raw streams: count frames at the average rate
                        pts = round(index / self.info.fps / self.info.time_base)
                    first = pts if first is None else first
                    pts = max(pts - first, last_pts + 1)  # never backwards: encoders refuse it
                    last_pts = pts
                    picture = None
                    if index >= start:
                        if (frame.width, frame.height) != (w, h):
                            frame = frame.reformat(width=w, height=h, interpolation="AREA")
                        picture = from_numpy(frame.to_ndarray(format="rgb24"))
                    yield Frame(index, pts, picture)
                    index += 1
        except av.FFmpegError as exc:
            raise InputError(
                f"{path} is corrupt or truncated: decoding stopped after frame {index} "
                f"({_reason(exc)})"
            ) from None
        if index == 0:
            raise InputError(f"{path} has no video frames")


class PictureFrames(FrameStream):
    """Frames a host already holds (a ComfyUI batch, a napari stack), in order, at `fps`."""

    def __init__(self, pictures: list[Picture], fps: float = 25.0) -> None:
        if not pictures:
            raise InputError("no frames were given")
        w, h = pictures[0].size
        if any(p.size != (w, h) for p in pictures):
            raise InputError("every frame of a video must have the same size")
        self.pictures = pictures
        self.info = VideoInfo(Path("frames"), w, h, len(pictures), fps, Fraction(1, 1000), "", None)

    def key(self) -> dict[str, Any]:
        return {"frames": id(self.pictures)}  # in memory: nothing to resume across processes

    def frames(self, start: int = 0, previous: Picture | None = None) -> Iterator[Frame]:
        for i, picture in enumerate(self.pictures):
            pts = round(i / self.info.fps / self.info.time_base)
            yield Frame(i, pts, picture if i >= start else None)


# --------------------------------------------------------------------------------------------
# Writing


class Encoder:
    """H.264 (yuv420p, `crf`) in MP4 or MKV, frames at the source's timestamps, and the source's
    first audio stream copied across, interleaved by time as the frames arrive.

    H.264 in 4:2:0 needs even sides: an odd last row or column is dropped."""

    def __init__(
        self, target: str, fmt: str, info: VideoInfo, size: tuple[int, int], crf: int
    ) -> None:
        self.av = av = require_av()
        self.out = av.open(target, "w", format="mp4" if fmt == "mp4" else "matroska")
        self.width, self.height = size[0] // 2 * 2, size[1] // 2 * 2
        if self.width == 0 or self.height == 0:
            raise InputError(
                f"frames of {size[0]}x{size[1]} are too small for H.264 (2x2 at least)"
            )
        rate = Fraction(info.fps).limit_denominator(1001)
        self.video = self.out.add_stream("libx264", rate=rate)
        self.video.width, self.video.height = self.width, self.height
        self.video.pix_fmt = "yuv420p"
        self.video.time_base = info.time_base
        self.video.codec_context.time_base = info.time_base
        self.video.options = {"crf": str(crf), "preset": "medium"}
        self.time_base = info.time_base
        self.note = ""
        self._audio_in = None
        self._packets: Iterator[Any] = iter(())
        self._pending: Any = None
        if info.audio:
            self._open_audio(info.path)

    def _open_audio(self, source: Path) -> None:
        av = self.av
        self._audio_in = av.open(str(source))
        in_stream = self._audio_in.streams.audio[0]
        self._copy = in_stream.codec_context.name in self.out.supported_codecs
        if self._copy:
            self.audio = self.out.add_stream_from_template(in_stream)
            self._packets = (p for p in self._audio_in.demux(in_stream) if p.dts is not None)
        else:
            rate = in_stream.codec_context.sample_rate or 48000
            self.audio = self.out.add_stream("aac", rate=rate)
            self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
            self.note = f"audio re-encoded to AAC ({in_stream.codec_context.name} cannot go in it)"
            self._packets = self._transcoded(in_stream)
        self._audio_tb = in_stream.time_base

    def _transcoded(self, in_stream: Any) -> Iterator[Any]:
        for frame in self._audio_in.decode(in_stream):
            for resampled in self._resampler.resample(frame):
                yield from self.audio.encode(resampled)
        yield from self.audio.encode(None)

    def _mux_audio_until(self, seconds: float | None) -> None:
        """Audio packets up to this time (all of them when None), in order."""
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            tb = packet.time_base or self._audio_tb
            t = float((packet.dts if packet.dts is not None else 0) * tb)
            if seconds is not None and t > seconds:
                self._pending = packet
                return
            if self._copy:
                packet.stream = self.audio
            self.out.mux(packet)

    def write(self, picture: Picture, pts: int) -> None:
        rgb = to_numpy(Picture(picture.rgb))[: self.height, : self.width]
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        if self._audio_in is not None:
            self._mux_audio_until(float(pts * self.time_base))
        for packet in self.video.encode(frame):
            self.out.mux(packet)

    def close(self) -> None:
        for packet in self.video.encode(None):
            self.out.mux(packet)
        if self._audio_in is not None:
            self._mux_audio_until(None)
            self._audio_in.close()
        self.out.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self._audio_in is not None:
                self._audio_in.close()
            self.out.close()


def output_path(folder: str, name: str, fmt: str) -> Path:
    """The file (or, for "png", the folder of frames) a save writes."""
    suffix = FORMATS[fmt]
    stem = Path(name)
    known = [s for s in FORMATS.values() if s]
    if stem.suffix.lower() in known and stem.suffix.lower() != suffix:
        raise InputError(
            f"output name {name!r} ends in {stem.suffix} but the format is {fmt!r}; change one"
        )
    if suffix and stem.suffix.lower() != suffix:
        name += suffix
    return Path(folder or ".") / name


def write_video(
    stream: FrameStream,
    out: Path,
    *,
    fmt: str = "mp4",
    crf: int = 18,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[Path, str]:
    """Write every frame of `stream` to `out` (a video file, or a folder of PNGs for "png"),
    resuming a run that stopped; returns the path and a note for the user ('' when none)."""
    require_av()
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; choose another name or allow overwriting")
    work = out.parent / f".{out.name}.part"
    job = {"stream": stream.key(), "format": fmt, "crf": crf}
    done = _prepare_work(work, job)
    previous = load_image(work / FRAME_NAME.format(done - 1)) if done else None
    total = max(stream.info.frames, done)
    encoder: Encoder | None = None
    written = 0
    started = time.perf_counter()
    try:
        with atomic_path(out) if fmt != "png" else contextlib.nullcontext("") as target:
            for frame in stream.frames(start=done, previous=previous):
                if should_stop is not None and should_stop():
                    raise Cancelled(
                        f"stopped after frame {written} of about {total}; the same command "
                        "resumes from there"
                    )
                frame_file = work / FRAME_NAME.format(frame.index)
                picture = frame.picture
                if picture is None:
                    picture = load_image(frame_file)
                else:
                    _save_frame(picture, frame_file)
                if fmt != "png":
                    if encoder is None:
                        encoder = Encoder(target, fmt, stream.info, picture.size, crf)
                    encoder.write(picture, frame.pts)
                written = frame.index + 1
                if on_progress is not None:
                    on_progress(
                        Progress(
                            step=written,
                            total=max(total, written),
                            elapsed=time.perf_counter() - started,
                            size=picture.size,
                        )
                    )
            if written == 0:
                raise InputError(f"{stream.info.path} has no video frames")
            if encoder is not None:
                encoder.close()
    except OSError as exc:
        if encoder is not None:
            encoder.abort()
        if exc.errno in REASONS:
            raise WriteError(f"cannot write {out}: {REASONS[exc.errno]}") from None
        raise
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
    if fmt == "png":
        (work / JOB_FILE).unlink()
        _replace_folder(work, out)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return out, encoder.note if encoder is not None else ""


def _prepare_work(work: Path, job: dict[str, Any]) -> int:
    """The work folder for this job, and how many frames in a row it already holds. A folder
    left by a different job (another source, size or setting) is started afresh."""
    job_file = work / JOB_FILE
    if work.is_dir():
        try:
            same = json.loads(job_file.read_text()) == json.loads(json.dumps(job))
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
        if not job_file.exists():
            with atomic_path(job_file) as tmp:
                Path(tmp).write_text(json.dumps(job, indent=1))
    except OSError as exc:
        reason = REASONS.get(exc.errno or 0, exc.strerror or str(exc))
        raise WriteError(f"cannot write into {work.parent}: {reason}") from None
    done = 0
    while (work / FRAME_NAME.format(done)).exists():
        done += 1
    return done


def _save_frame(picture: Picture, path: Path) -> None:
    with atomic_path(path) as tmp:
        PILImage.fromarray(to_numpy(Picture(picture.rgb))).save(
            tmp, format="PNG", compress_level=PNG_LEVEL
        )


def _replace_folder(new: Path, out: Path) -> None:
    """Put the finished folder at `out`; an old one (overwrite was asked) goes only after."""
    old = out.parent / f".{out.name}.old"
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
