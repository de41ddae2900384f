"""Video: reading, writing (timestamps, audio), temporal consistency, resume, bad input.

Every clip is made here, a few frames of 64x48 (a generated photo moved along a known path),
so each test takes seconds; the fast method runs a shipped preset at that size."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from nst_plugin import create_task
from nst_plugin.cli import main
from nst_plugin.engine.errors import Cancelled, InputError
from nst_plugin.engine.temporal import warping_error
from nst_plugin.images import Picture, to_numpy
from nst_plugin.video import FrameStream, probe
from tests.conftest import make_image

W, H = 64, 48
STEP = (2, 1)  # the pan: each frame is the last moved 2 px left and 1 px up


def pan_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    big = make_image(H + STEP[1] * n, W + STEP[0] * n, seed=seed)
    return [
        to_numpy(Picture(big[:, STEP[1] * i : STEP[1] * i + H, STEP[0] * i : STEP[0] * i + W]))
        for i in range(n)
    ]


def make_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    audio: bool = True,
    pts: list[int] | None = None,
    codec: str = "libx264",
) -> Path:
    """A clip of these RGB frames; `pts` in 1/1000 s (a variable frame rate), else 10 fps."""
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=10)
        v.width, v.height, v.pix_fmt = W, H, "yuv444p" if codec == "libx264" else "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":
            v.options = {"crf": "0"}
        a = out.add_stream("aac", rate=8000, layout="mono") if audio else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = (pts[i] if pts else i * 100), Fraction(1, 1000)
            for packet in v.encode(frame):
                out.mux(packet)
        if a is not None:
            seconds = (pts[-1] if pts else len(frames) * 100) / 1000
            tone = (0.2 * np.sin(np.arange(int(8000 * seconds)) / 3)).astype(np.float32)[None]
            sound = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            sound.sample_rate = 8000
            for packet in [*a.encode(sound), *a.encode(None)]:
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    return path


def decoded(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [float(f.time) for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def stylize(clip: Path, **params: object) -> FrameStream:
    frames = create_task("video.load").run({"path": clip})["frames"]
    task = create_task("video.style_transfer", **{"method": "fast", "model": "the_wave", **params})
    return task.run({"frames": frames})["frames"]


def save(stream: FrameStream, out: Path, **params: object) -> dict:
    task = create_task("video.save", name=out.name, folder=str(out.parent), **params)
    return task.run({"frames": stream})


def test_copy_keeps_every_frame_timestamps_and_audio_packets(tmp_path: Path) -> None:
    pts = [0, 100, 150, 400, 450, 500, 900]  # variable frame rate
    clip = make_clip(tmp_path / "in.mp4", pan_frames(7), pts=pts)
    frames = create_task("video.load").run({"path": clip})["frames"]
    result = save(frames, tmp_path / "out.mp4", crf=0)
    times, pixels = decoded(result["path"])
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    _, source = decoded(clip)
    diff = [np.abs(pixels[3].astype(int) - s.astype(int)).mean() for s in source]
    assert diff[3] < 6 and diff[3] == min(diff)  # the same frame, chroma 4:4:4 -> 4:2:0
    assert audio_packets(result["path"]) == audio_packets(clip)  # copied, not re-encoded
    assert result["note"] == ""
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "out.mp4"]  # no work folder left


def test_audio_the_container_cannot_hold_is_reencoded_and_said(tmp_path: Path) -> None:
    clip = tmp_path / "in.avi"
    with av.open(str(clip), "w") as out:  # MS ADPCM audio: AVI holds it, MP4 does not
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = out.add_stream("adpcm_ms", rate=8000, layout="mono")
        for rgb in pan_frames(3):
            for packet in v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        tone = (3000 * np.sin(np.arange(2048) / 3)).astype(np.int16)[None]
        sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        sound.sample_rate = 8000
        for packet in [*a.encode(sound), *a.encode(None), *v.encode(None)]:
            out.mux(packet)
    frames = create_task("video.load").run({"path": clip})["frames"]
    result = save(frames, tmp_path / "out.mp4")
    assert "re-encoded to AAC" in result["note"]
    assert probe(result["path"]).audio == "aac"


def test_png_sequence_is_a_folder_of_frames(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", pan_frames(4), audio=False)
    frames = create_task("video.load").run({"path": clip})["frames"]
    result = save(frames, tmp_path / "{stem}.{ext}", format="png", stem="in")
    assert result["path"] == tmp_path / "in.frames"
    assert sorted(os.listdir(result["path"])) == [f"{i:06d}.png" for i in range(4)]
    assert not list(tmp_path.glob(".*"))


def true_warping_error(frames: list[np.ndarray]) -> float:
    """Lai et al.'s measure with the pan's known flow (no flow estimate of ours involved)."""
    flow = torch.empty(2, H, W)
    flow[0], flow[1] = STEP
    mask = torch.zeros(H, W)
    mask[: H - STEP[1], : W - STEP[0]] = 1
    t = [torch.from_numpy(f).permute(2, 0, 1).float()[None] / 255 for f in frames]
    return float(np.mean([warping_error(b, a, flow, mask) for a, b in zip(t, t[1:])]))


@pytest.mark.parametrize("method", ["fast", "adain"])
def test_temporal_terms_at_least_halve_the_flicker(tmp_path: Path, method: str) -> None:
    clip = make_clip(tmp_path / "in.mp4", pan_frames(8), audio=False)
    errors = {}
    for temporal in (0.0, 0.8):
        params: dict = {"size": 0, "temporal": temporal}
        if method == "adain":
            frames = create_task("video.load").run({"path": clip})["frames"]
            task = create_task("video.style_transfer", method="adain", **params)
            style = Picture(make_image(64, 64, kind="art", seed=3))
            stream = task.run({"frames": frames, "styles": [style]})["frames"]
        else:
            stream = stylize(clip, **params)
        errors[temporal] = true_warping_error([to_numpy(f.picture) for f in stream.frames()])
    assert errors[0.8] < 0.5 * errors[0.0]


def test_optimization_frames_after_the_first_start_from_the_carried_result(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", pan_frames(3), audio=False)
    frames = create_task("video.load").run({"path": clip})["frames"]
    style = Picture(make_image(64, 64, kind="art", seed=3))
    task = create_task(
        "video.style_transfer", method="optimization", size=0, iterations=4,
        coarse_iterations=4, scales=2, tolerance=0.0,
    )  # fmt: skip
    records = []
    stream = task.run({"frames": frames, "styles": [style]})["frames"]
    original = task.frame_task.run

    def run(inputs: dict, **kw: object) -> dict:
        out = original(inputs, **kw)
        records.append(("previous" in inputs, {r["size"] for r in out["history"]}, out))
        return out

    task.frame_task.run = run  # type: ignore[method-assign]
    list(stream.frames())
    assert [carried for carried, _, _ in records] == [False, True, True]
    assert len(records[0][1]) == 2  # the first frame coarse to fine
    assert records[1][1] == {(W, H)}  # later ones: one pass at full size
    assert "temporal" in records[1][2]["history"][-1]["losses"]


def test_a_scene_cut_starts_afresh(tmp_path: Path) -> None:
    second = [np.ascontiguousarray(255 - f[::-1, ::-1]) for f in pan_frames(3, seed=7)]
    frames = pan_frames(3, seed=0) + second
    clip = make_clip(tmp_path / "in.mp4", frames, audio=False)
    stream = stylize(clip, size=0)
    list(stream.frames())
    assert stream.cuts == 1


def test_cancel_keeps_the_frames_done_and_the_next_run_resumes(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", pan_frames(6))
    out = tmp_path / "out.mp4"
    polls = iter([False, False, False, True])
    with pytest.raises(Cancelled, match="resumes"):
        task = create_task("video.save", name=out.name, folder=str(tmp_path))
        task.run({"frames": stylize(clip, size=0)}, should_stop=lambda: next(polls))
    work = tmp_path / ".out.mp4.part"
    assert sorted(p.name for p in work.glob("*.png")) == [f"{i:06d}.png" for i in range(3)]
    assert not out.exists()

    stream = stylize(clip, size=0)
    computed = []
    frames = stream.frames

    def counting(start: int = 0, previous: Picture | None = None):  # noqa: ANN202
        assert start == 3 and previous is not None
        for f in frames(start, previous):
            computed.append(f.index) if f.picture is not None else None
            yield f

    stream.frames = counting  # type: ignore[method-assign]
    save(stream, out)
    assert computed == [3, 4, 5]
    times, pixels = decoded(out)
    assert len(pixels) == 6 and audio_packets(out) == audio_packets(clip)
    assert not work.exists()


def test_a_killed_run_resumes_from_its_last_frame(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", pan_frames(24), audio=False)
    out = tmp_path / "out.mp4"
    code = (
        "import sys; from nst_plugin.cli import main; "
        f"sys.exit(main(['video', {str(clip)!r}, '-o', {str(out)!r}, '--method', 'fast', "
        "'--model', 'the_wave', '--size', '0', '--quiet']))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    work = tmp_path / ".out.mp4.part"
    import time

    deadline = time.monotonic() + 60
    while len(list(work.glob("*.png"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    kept = len(list(work.glob("*.png")))
    assert 3 <= kept < 24 and not out.exists()
    assert main(["video", str(clip), "-o", str(out), "--method", "fast", "--model",
                 "the_wave", "--size", "0", "--quiet"]) == 0  # fmt: skip
    assert len(decoded(out)[1]) == 24 and not work.exists()


def test_cli_writes_a_stylized_video_with_its_audio(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    clip = make_clip(tmp_path / "in.mp4", pan_frames(4))
    out = tmp_path / "styled.mp4"
    assert main(["video", str(clip), "-o", str(out), "--method", "fast", "--model",
                 "the_wave", "--size", "32", "--temporal", "0.5"]) == 0  # fmt: skip
    assert "wrote" in capsys.readouterr().out
    info = probe(out)
    assert (info.width, info.height) == (32, 24) and info.frames == 4
    assert audio_packets(out) == audio_packets(clip)


def test_output_that_exists_is_kept(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    clip = make_clip(tmp_path / "in.mp4", pan_frames(3), audio=False)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"mine")
    args = ["video", str(clip), "-o", str(out), "--method", "fast", "--model", "the_wave"]
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"
    assert main([*args, "--overwrite", "--size", "0", "--quiet"]) == 0
    assert probe(out).frames == 3


def _silence(path: Path, fmt: str, *, with_video: bool) -> Path:
    """Half a second of silent AAC, beside an empty video stream if asked."""
    with av.open(str(path), "w", format=fmt) as out:
        if with_video:
            v = out.add_stream("mpeg4", rate=10)
            v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = out.add_stream("aac", rate=8000, layout="mono")
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.float32), format="fltp",
                                           layout="mono")  # fmt: skip
        sound.sample_rate = 8000
        for packet in [*a.encode(sound), *a.encode(None)]:
            out.mux(packet)
    return path


def _no_video_stream(path: Path) -> Path:
    return _silence(path, "mp4", with_video=False)


def _zero_frames(path: Path) -> Path:
    return _silence(path, "avi", with_video=True)  # a video stream, only audio packets


def _text(path: Path) -> Path:
    """Plain text, not random bytes: 4,000 random bytes now and then probe as an audio stream."""
    path.write_text("not a video, only these words\n" * 150)
    return path


def _truncated(path: Path) -> Path:
    clip = make_clip(path.with_name("whole.mp4"), pan_frames(10), audio=False)
    data = clip.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "video file not found"),
        (_text, "cannot read video"),
        (_no_video_stream, "has no video stream"),
        (_zero_frames, "has no video frames"),
        (_truncated, "cannot read video|corrupt or truncated"),
    ],
    ids=["missing", "not a video", "audio only", "zero frames", "truncated"],
)
def test_bad_videos_are_one_line_errors(tmp_path: Path, capsys, make, message: str) -> None:  # noqa: ANN001
    bad = make(tmp_path / "bad.mp4")
    out = tmp_path / "out.mp4"
    args = ["video", str(bad), "-o", str(out), "--method", "fast", "--model", "the_wave"]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nst: error:")
    import re

    assert re.search(message, err), err
    assert not out.exists()


def test_the_pixel_limit_applies_per_frame(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from nst_plugin import video

    clip = make_clip(tmp_path / "in.mp4", pan_frames(2), audio=False)
    monkeypatch.setattr(video, "MAX_PIXELS", W * H - 1)
    with pytest.raises(InputError, match=r"64x48 frames .* above the limit"):
        create_task("video.load").run({"path": clip})


def test_an_unwritable_output_is_a_one_line_error(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    clip = make_clip(tmp_path / "in.mp4", pan_frames(2), audio=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "out.mp4"
    assert main(["video", str(clip), "-o", str(out), "--method", "fast", "--model",
                 "the_wave", "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write" in err
    assert blocker.read_text() == "not a folder"


def test_styles_are_checked_before_any_frame(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", pan_frames(2), audio=False)
    frames = create_task("video.load").run({"path": clip})["frames"]
    with pytest.raises(InputError, match="needs at least one style image"):
        create_task("video.style_transfer", method="adain").run({"frames": frames})


def test_the_video_example_pipeline_runs_and_then_skips(tmp_path: Path) -> None:
    import shutil

    from nst_plugin_hosts.pipeline import load_pipeline, run_pipeline

    (tmp_path / "videos").mkdir()
    for name in ("a", "b"):
        make_clip(tmp_path / "videos" / f"{name}.mp4", pan_frames(3))
    (tmp_path / "videos" / "notes.txt").write_text("not a video: not an item")
    spec = tmp_path / "video_fast.yaml"
    shutil.copy(Path(__file__).parents[1] / "examples" / "video_fast.yaml", spec)
    summary = run_pipeline(load_pipeline(spec, overrides=["stylize.size=32"]))
    assert summary.exit_code == 0 and summary.count("done") == 2, summary.text()
    for name in ("a", "b"):
        out = tmp_path / "out" / f"{name}_the_wave.mp4"
        assert probe(out).frames == 3 and audio_packets(out)
    again = run_pipeline(load_pipeline(spec, overrides=["stylize.size=32"]))
    assert again.count("skipped") == 2
