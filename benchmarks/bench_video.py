"""Video: frames per second at 512 px, and flicker with and without the temporal terms.

Two clips, both made or found locally (nothing is downloaded):

* `pan`: a photo from ../shared/data/eval-content moved along a known path (a few pixels a
  frame), encoded near-losslessly; its true flow is known, so the warping error needs no flow
  estimate of ours.
* `b`: gradio's own media asset `b.mp4` (480x270, 5 s, 150 frames: a turning globe at night,
  shipped inside the gradio package); its flow is DIS on the input frames, with our consistency
  mask. The temporal method uses the same flow, which favours it here: `pan` is the unbiased
  check.

For each method, frame by frame (temporal 0) and with the temporal terms (the default strength,
or --strengths), through the same tasks a pipeline uses (video.load -> video.style_transfer),
one run: frames per second (decode, flow and stylize; encoding is not counted), the warping error
of Lai et al. 2018 (mean squared difference between each stylized frame and the previous one
warped onto it, on pixels visible in both; 0..1 units) and the mean style distance per frame
(bench_quality's Gram measure, against the painting). Optimization runs one 50-pass scale per
frame in both modes (`scales 1`), so the two modes cost the same per frame.

    python benchmarks/bench_video.py [--frames 48] [--opt-frames 8] [--methods fast adain ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench_quality import distances
from PIL import Image

import nst_plugin as nst
from nst_plugin.engine.precision import bf16_enabled
from nst_plugin.engine.temporal import flows, reliable, warping_error
from nst_plugin.images import Picture, load_image, to_numpy
from nst_plugin.video import require_av

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PAN_STEP = (3, 1)  # pixels per frame, x and y: frame t+1 is frame t moved left by 3, up by 1
MODEL = "the_wave"


def make_pan_clip(path: Path, frames: int, size: tuple[int, int] = (512, 288)) -> None:
    av = require_av()
    photo = load_image(sorted((SHARED / "eval-content").glob("*"))[0]).rgb
    w, h = size
    dx, dy = PAN_STEP
    need_w, need_h = w + dx * frames, h + dy * frames
    k = max(need_w / photo.shape[2], need_h / photo.shape[1])
    big = F.interpolate(
        photo[None], scale_factor=k, mode="bicubic", antialias=True, align_corners=False
    )[0].clamp(0, 1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.options = {"crf": "4"}
        for i in range(frames):
            crop = big[:, dy * i : dy * i + h, dx * i : dx * i + w]
            rgb = to_numpy(Picture(crop.contiguous()))
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def true_flow(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pan clip's backward flow (current -> previous frame) and where it stays in frame."""
    dx, dy = PAN_STEP
    flow = torch.empty(2, h, w)
    flow[0], flow[1] = dx, dy
    mask = torch.zeros(h, w)
    mask[: h - dy, : w - dx] = 1
    return flow, mask


def real_clip() -> Path:
    import gradio

    return Path(gradio.__file__).parent / "media_assets" / "videos" / "b.mp4"


def run(clip: Path, method: str, temporal: float, limit: int, reference: Picture) -> dict:
    """One clip by one method: frames/s, warping error, style distance, and three frames."""
    params: dict = {"model": MODEL} if method == "fast" else {}
    if method == "optimization":
        params["scales"] = 1
    styles = [] if method == "fast" else [reference]
    frames = nst.create_task("video.load").run({"path": clip})["frames"]
    task = nst.create_task(
        "video.style_transfer", method=method, temporal=temporal, size=512, **params
    )
    stylized = task.run({"frames": frames, "styles": styles})["frames"]
    # the input frames at the working size, decoded in step with the stylized ones
    inputs = nst.create_task("video.load", size=512).run({"path": clip})["frames"].frames()
    errors, style_d, kept = [], [], []
    seconds, last_in, last_out = 0.0, None, None
    started = time.perf_counter()
    for frame in stylized.frames():
        seconds += time.perf_counter() - started
        out, content = frame.picture, next(inputs).picture
        if last_out is not None:
            if clip.stem == "pan":
                backward, mask = true_flow(*out.rgb.shape[-2:])
            else:
                backward, forward = flows(last_in.rgb, content.rgb)
                mask = reliable(backward, forward)
            errors.append(warping_error(out.rgb[None], last_out.rgb[None], backward, mask))
        if frame.index % 4 == 0:
            style_d.append(distances(out, content, reference)[0])
        if frame.index in (0, limit // 2, limit - 1):
            kept.append((content, out))
        last_in, last_out = content, out
        if frame.index + 1 >= limit:
            break
        started = time.perf_counter()  # the measures above are not the method's time
    n = len(errors) + 1
    return {
        "fps": n / seconds,
        "warp": statistics.mean(errors),
        "style": statistics.mean(style_d),
        "cuts": stylized.cuts,
        "kept": kept,
    }


def strip(rows: list[list[Picture]], path: Path) -> None:
    grid = np.concatenate([np.concatenate([to_numpy(p) for p in row], 1) for row in rows], 0)
    Image.fromarray(grid).save(path, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48, help="frames per clip (fast, adain)")
    ap.add_argument("--opt-frames", type=int, default=8, help="frames per clip (optimization)")
    ap.add_argument("--methods", nargs="+", default=["fast", "adain", "optimization"])
    ap.add_argument("--strengths", nargs="+", type=float, default=[0.5])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_video.md"))
    ap.add_argument("--strip", default=str(ROOT / "docs" / "images" / "video-strip.jpg"))
    args = ap.parse_args()
    torch.manual_seed(0)
    reference = nst.create_task("nst.style_transfer", method="fast", model=MODEL, size=64).run(
        {"content": Picture(torch.rand(3, 32, 32))}
    )["reference"]
    lines = [
        "| clip | method | temporal | frames/s @512 | warping error | style distance | cuts |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rows: list[list[Picture]] = []
    with tempfile.TemporaryDirectory() as tmp:
        pan = Path(tmp) / "pan.mp4"
        make_pan_clip(pan, max(args.frames, args.opt_frames))
        for clip in (pan, real_clip()):
            for method in args.methods:
                limit = args.opt_frames if method == "optimization" else args.frames
                base = None
                for temporal in (0.0, *args.strengths):
                    r = run(clip, method, temporal, limit, reference)
                    base = base or r
                    ratio = f" ({r['warp'] / base['warp']:.2f}x)" if temporal else ""
                    sratio = f" ({r['style'] / base['style']:.2f}x)" if temporal else ""
                    line = (
                        f"| {clip.stem} | {method} | {temporal:g} | {r['fps']:.2f} | "
                        f"{r['warp']:.5f}{ratio} | {r['style']:.3f}{sratio} | {r['cuts']} |"
                    )
                    print(line, flush=True)
                    lines.append(line)
                    if clip.stem == "b" and method == args.methods[0]:
                        if not rows:
                            rows.append([c for c, _ in r["kept"]])
                        rows.append([o for _, o in r["kept"]])
    if rows:
        strip(rows, Path(args.strip))
    cpu = (
        "AVX-512 BF16 (bf16 autocast on)"
        if bf16_enabled(torch.device("cpu"))
        else "no native bf16 (fp32)"
    )
    text = (
        f"# bench_video ({cpu}, {torch.get_num_threads()} threads)\n\n"
        f"`python benchmarks/bench_video.py {' '.join(_argv())}`\n\n" + "\n".join(lines) + "\n"
    )
    Path(args.out).write_text(text)
    print(text)


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


if __name__ == "__main__":
    main()
