"""`nst` command line: each subcommand is a thin call into the task, the trainer or a host."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, plugins
from .engine.errors import NSTError

EXIT_USAGE = 2


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only where there is one: a None default is explained in the help itself."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_train(sub: argparse._SubParsersAction, with_options: bool) -> None:
    """`nst train adain|fast`; their options (with defaults read from the trainers' settings,
    which import torch) only when `train` is the command being parsed."""
    train = sub.add_parser("train", help="train models").add_subparsers(dest="model", required=True)
    adain = train.add_parser(
        "adain", help="train or resume the AdaIN decoder", formatter_class=_DefaultsHelp
    )
    fast = train.add_parser(
        "fast",
        help="train or resume one painting's fast style network",
        description="Train a fast per-style network (Johnson et al. 2016) on one painting; the "
        "file written is both the style model (`--model FILE`, or a preset once installed) and "
        "the checkpoint `--resume` continues. A painting takes one to two hours on a 2-core CPU.",
        formatter_class=_DefaultsHelp,
    )
    adain.set_defaults(func=_run_train, trainer="adain")
    fast.set_defaults(func=_run_train, trainer="fast")
    if not with_options:
        return
    from .engine.training import FastSettings, TrainSettings

    adain.add_argument("--style-dir", required=True, help="folder of artworks")
    adain.add_argument(
        "--init",
        help="continue this decoder file's training (weights, optimizer, steps) into --out, "
        "the file untouched; also moves a decoder of the previous architecture to this one",
    )
    fast.add_argument("--style", required=True, help="the painting (image file)")
    fast.add_argument("--init", help="start from this style model's weights (a warm start)")
    fast.add_argument(
        "--from-adain",
        action="store_true",
        help="start from the package's AdaIN network with the painting fixed: our AdaIN's "
        "picture from the first step, then tuned (Ghiasi et al. 2017)",
    )
    fast.add_argument(
        "--teacher",
        help="the teacher terms compare with this style model's picture (a name or a file) "
        "instead of our AdaIN's: a smaller network learns a trained one's (a resumed model "
        "keeps its own)",
    )
    fast.add_argument(
        "--style-size",
        type=int,
        help="painting's longer side in px: smaller paints smaller shapes "
        "(512; a resumed model keeps its own)",
    )
    _training_options(adain, TrainSettings(), "decoder", steps=100_000, every=100, sample=500)
    _training_options(fast, FastSettings(), "style model", steps=20_000, every=200, sample=1000)
    d = TrainSettings()
    adain.add_argument(
        "--width",
        choices=("full", "half", "lite"),
        help=f"decoder width ({d.width}); lite: its own small encoder, no VGG at inference",
    )
    adain.add_argument(
        "--content-margin",
        type=int,
        help="relu4_1 cells (8 px each) at each crop edge left out of the content loss "
        f"({d.content_margin})",
    )
    adain.add_argument(
        "--structure-weight",
        type=float,
        help="weight of the relu3_1 structure term (channel-normalised, against the photo) "
        f"({d.structure_weight:g})",
    )
    adain.add_argument(
        "--colour-weight",
        type=float,
        help="weight of a term on broad colour areas: each RGB channel's mean and spread over "
        f"16 px squares against the style crop's ({d.colour_weight:g}: off)",
    )
    adain.add_argument(
        "--gram-weight",
        type=float,
        help="weight of a Gram term at conv1_1..conv3_1 beside the paper's moments "
        f"({d.gram_weight:g}: off)",
    )
    adain.add_argument(
        "--recycle-every",
        type=int,
        help="a lite network's dormant ReLU units recycled every N steps, output unchanged "
        f"({d.recycle_every}: never)",
    )
    adain.add_argument(
        "--recycle-parts",
        help=f"which dormant units are recycled: all, or decoder ({d.recycle_parts})",
    )
    adain.add_argument(
        "--lite-slope",
        type=float,
        help="negative slope of a lite network's activations, so no unit dies; on --resume it "
        f"turns a ReLU file leaky with its weights ({d.lite_slope:g}: ReLU)",
    )
    adain.add_argument(
        "--lite-widths",
        type=int,
        nargs=4,
        metavar="C",
        help="a lite network's channels at its four stages; on --resume, wider than the file's, "
        "it widens that network with its output unchanged "
        f"({' '.join(map(str, d.lite_widths))})",
    )
    adain.add_argument(
        "--lite-modulate",
        action="store_const",
        const=True,
        dest="lite_modulated",
        help="a lite network's decoder filters scaled and shifted by the style (MicroAST's "
        "filter modulation); on --resume it adds the modulator with the output unchanged",
    )
    f = FastSettings()
    fast.add_argument("--width", type=int, help=f"network width ({f.width})")
    fast.add_argument("--blocks", type=int, help=f"residual blocks ({f.blocks})")
    fast.add_argument(
        "--lite-widths",
        type=int,
        nargs=4,
        metavar="C",
        help="a new network in our lite AdaIN's layout with the painting fixed "
        "(fast.AdaINPreset) and these four stages' channels, from scratch; --from-adain "
        "starts one from the package's widths and weights instead",
    )
    fast.add_argument(
        "--noise-channels",
        type=int,
        help="Gaussian noise channels fed beside the photo, so flat areas need not repeat a "
        "texture; on --resume or --init a file without them gets them, zero-weighted "
        f"({f.noise_channels}: none)",
    )
    fast.add_argument(
        "--noise-cell",
        type=int,
        help="px between the noise field's independent values: above 1 a smooth field, seeds "
        f"for patches that size; on --resume a file's noise changes cell ({f.noise_cell})",
    )
    fast.add_argument("--tv-weight", type=float, help=f"total variation weight ({f.tv_weight:g})")
    fast.add_argument(
        "--histogram-weight",
        type=float,
        help="weight of a channel histogram style term beside the Gram one (Risser et al. 2017), "
        f"that charges saturated spots ({f.histogram_weight:g}: off)",
    )
    fast.add_argument(
        "--teacher-weight",
        type=float,
        help="weight of a colour-layout term that holds the network to the teacher's rendering "
        "of each photo (our AdaIN's with the painting, or --teacher's), in 16 px squares "
        f"({f.teacher_weight:g}: off)",
    )
    fast.add_argument(
        "--teacher-content-weight",
        type=float,
        help="weight of a relu2_2 content term against the teacher's rendering of each photo "
        f"({f.teacher_content_weight:g}: off)",
    )
    fast.add_argument(
        "--teacher-style-mix",
        type=float,
        help="share (0..1) of each crop's Gram targets taken from the teacher's rendering of that "
        f"crop instead of the whole painting ({f.teacher_style_mix:g}: the painting's alone)",
    )
    fast.add_argument(
        "--detail-threshold",
        type=float,
        help="photo gradient under which a spot counts as flat: the painting's style is asked "
        f"only of the rest, so plain skies get no texture of their own ({f.detail_threshold:g}: "
        "every spot)",
    )
    fast.add_argument(
        "--flat-tv-weight",
        type=float,
        help="weight of a total-variation term on the spots --detail-threshold calls flat, "
        f"against texture painted over plain skies and walls ({f.flat_tv_weight:g}: off)",
    )
    fast.add_argument(
        "--style-tap-weights",
        type=float,
        nargs=5,
        metavar="W",
        help="the style term's weight at relu1_1 relu2_1 relu3_1 relu4_1 relu5_1 "
        f"({' '.join(f'{x:g}' for x in f.style_tap_weights)})",
    )
    fast.add_argument(
        "--regularity-weight",
        type=float,
        help="weight of a term charging fine texture that repeats more regularly than the "
        f"photo's, wallpaper-like strokes in flat areas ({f.regularity_weight:g}: off)",
    )
    fast.add_argument(
        "--stability-weight",
        type=float,
        help="weight of a term charging the output's change under faint input noise, so photo "
        f"grain is not painted up into a hatch ({f.stability_weight:g}: off)",
    )
    fast.add_argument(
        "--spectrum-weight",
        type=float,
        help="weight of a term comparing the output's power spectrum with our AdaIN's rendering "
        f"of each crop, so a texture is not painted as bands ({f.spectrum_weight:g}: off)",
    )
    fast.add_argument(
        "--spectrum-peak-weight",
        type=float,
        help="weight of a term charging the output's largest spectral excesses over our "
        f"AdaIN's rendering, so no band or lattice is painted ({f.spectrum_peak_weight:g}: off)",
    )
    fast.add_argument(
        "--texture-layout-weight",
        type=float,
        help="weight of a term comparing how much fine texture each 32 px square holds with our "
        f"AdaIN's rendering, so smooth skies stay smooth ({f.texture_layout_weight:g}: off)",
    )
    fast.add_argument(
        "--fine-content-weight",
        type=float,
        help="weight of a second content term at relu1_1, that charges blobs where the photo "
        f"is flat ({f.fine_content_weight:g}: off)",
    )
    fast.add_argument(
        "--deep-content-weight",
        type=float,
        help="weight of a content term at relu4_2 beside relu2_2's, that holds the photo's "
        f"objects and layout and leaves the strokes free ({f.deep_content_weight:g}: off)",
    )
    fast.add_argument(
        "--relative-style-weight",
        type=float,
        help="weight of Gatys et al.'s style distance (conv1_1..conv5_1, relative to the "
        f"painting's Gram matrices) as the quality benchmark measures it "
        f"({f.relative_style_weight:g}: off)",
    )
    fast.add_argument(
        "--relative-content-weight",
        type=float,
        help="weight of the conv4_2 distance from the photo, relative, as the quality "
        f"benchmark measures it ({f.relative_content_weight:g}: off)",
    )
    fast.add_argument(
        "--moments-only",
        action=argparse.BooleanOptionalAction,
        help="with --from-adain: train only the painting's moments, each level's instance-norm "
        f"scale and shift; the filters stay our AdaIN's ({f.moments_only})",
    )
    fast.add_argument(
        "--batch-gram",
        action=argparse.BooleanOptionalAction,
        help="match the painting's style statistics over the batch, not each crop; with "
        f"--teacher-style-mix only the painting's share ({f.batch_gram})",
    )
    fast.add_argument(
        "--margin",
        type=int,
        help="px of photo the network sees around each crop and the losses do not, so it "
        f"cannot place colours by the distance from the border ({f.margin})",
    )
    info = fast.add_argument_group("what the model file records about its painting")
    for field in ("title", "artist", "painting", "year", "licence", "source"):
        info.add_argument(f"--{field}", default="", help=f"the model's {field}")
    info.add_argument("--name", default="", help="the model's name (default: --out's stem)")


def _training_options(
    p: argparse.ArgumentParser, d: Any, what: str, *, steps: int, every: int, sample: int
) -> None:
    """What both trainers take; a setting's default (in brackets) is its dataclass's."""
    p.add_argument("--content-dir", required=True, help="folder of photographs")
    p.add_argument("--out", required=True, help=f"{what} file (.safetensors) to write")
    p.add_argument("--steps", type=int, default=steps, help="train until this many steps in all")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--overwrite", action="store_true", help="replace --out instead of refusing")
    p.add_argument("--time-limit", type=float, help="stop cleanly after MINUTES")
    p.add_argument("--hours", type=float, help="stop cleanly once trained HOURS in all (step time)")
    p.add_argument("--batch-size", type=int, help=f"images a step ({d.batch_size})")
    p.add_argument("--crop", type=int, help=f"crop size in px ({d.crop})")
    p.add_argument("--lr", type=float, help=f"learning rate ({d.lr:g})")
    p.add_argument("--lr-decay", type=float, help=f"lr / (1 + decay * step) ({d.lr_decay:g})")
    p.add_argument("--style-weight", type=float, help=f"style loss weight ({d.style_weight:g})")
    p.add_argument("--content-weight", type=float, help=f"content weight ({d.content_weight:g})")
    p.add_argument(
        "--recon-steps",
        type=int,
        help=f"first steps learn to reconstruct the photo (pixel L1) ({d.recon_steps})",
    )
    p.add_argument("--seed", type=int, help=f"random seed ({d.seed})")
    p.add_argument("--checkpoint-every", type=int, default=every, help="save every N steps")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0, help="and every M minutes")
    p.add_argument("--sample-every", type=int, default=sample, help="sample grid every N (0: none)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="where to train (bf16 autocast on CUDA and on CPUs with native bf16)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--cache-dir", help="what is computed once per image and kept (default ~/.cache/nst-plugin)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_train(args: argparse.Namespace) -> int:
    """Both trainers: the settings given on the command line (None: the recorded or default)."""
    import dataclasses

    import torch

    from .engine.training import FastSettings, TrainSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    common = {
        "content_dir": args.content_dir, "out": args.out, "steps": args.steps,
        "resume": args.resume, "overwrite": args.overwrite, "time_limit_min": args.time_limit,
        "hours": args.hours,
        "checkpoint_every": args.checkpoint_every, "checkpoint_minutes": args.checkpoint_minutes,
        "sample_every": args.sample_every, "device": args.device, "quiet": args.quiet,
        "cache_dir": args.cache_dir,
    }  # fmt: skip
    cls = TrainSettings if args.trainer == "adain" else FastSettings
    settings = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
    if args.trainer == "adain":
        from .train_adain import train_adain

        train_adain(
            **common,
            style_dir=args.style_dir,
            init=args.init,
            settings=settings,
        )
        return 0
    from .train_fast import train_fast

    info = ("name", "title", "artist", "painting", "year", "licence", "source")
    train_fast(
        **common,
        style=args.style,
        init=args.init,
        from_adain=args.from_adain,
        teacher=str(plugins.get_style_model(args.teacher).path) if args.teacher else None,
        style_size=args.style_size,
        info={k: getattr(args, k) for k in info},
        settings=settings,
    )
    return 0


def _add_stylize(sub: argparse._SubParsersAction, with_schema: bool) -> None:
    """The stylize command; its options (from the task schema, which loads the plugins and so
    torch) only when it is the command being parsed, so `nst --help` stays light."""
    p = sub.add_parser(
        "stylize",
        help="stylize a photo with style images, or with a style model (--method fast)",
        description="Repaint CONTENT in the style of STYLE (several styles blend), or with "
        "--method fast --model NAME in a trained model's style (no style file; `nst models` "
        "lists them). Every option below comes from the task's parameter schema.",
    )
    p.add_argument("content", help="content image file")
    p.add_argument("styles", nargs="*", metavar="style", help="style image file(s)")
    p.add_argument("-o", "--out", required=True, help="output image file (.png, .jpg, ...)")
    p.add_argument(
        "--mask", help="grey image: where to apply the style (two styles: 0 first, 1 second)"
    )
    p.add_argument("--init-image", help="start image for --init image (optimization)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_stylize)
    if not with_schema:
        return
    from .default_plugins.style_transfer import StyleTransferTask

    _add_schema_options(p, StyleTransferTask.schema())


def _add_schema_options(p: argparse.ArgumentParser, schema: list[Any]) -> None:
    """One option per schema parameter, `--name-with-dashes`, stored as `param_<name>`."""
    group = p.add_argument_group("parameters (from the task schema)")
    for param in schema:
        extra = ""
        if param.choices:
            extra = f" {{{','.join(param.choices)}}}"
        elif param.min is not None or param.max is not None:
            lo = "" if param.min is None else f"{param.min:g}"
            hi = "" if param.max is None else f"{param.max:g}"
            extra = f" [{lo}..{hi}]"
        where = f" ({', '.join(param.methods)} only)" if param.methods else ""
        default = (
            ",".join(map(str, param.default)) if isinstance(param.default, list) else param.default
        )
        group.add_argument(
            "--" + param.name.replace("_", "-"),
            dest=f"param_{param.name}",
            default=None,
            metavar=param.type.upper(),
            help=f"{param.description}{where}.{extra} Default: {default!r}",
        )


def _schema_values(args: argparse.Namespace) -> dict[str, Any]:
    return {k[6:]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}


def _run_stylize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .api import create_task
    from .devices import resolve_device
    from .engine.errors import InputError
    from .images import load_image, save_image

    params = _schema_values(args)
    out = Path(args.out)
    given = [args.content, *args.styles, args.mask, args.init_image]
    if any(f and _same_file(f, out) for f in given):
        raise InputError(f"{out} is one of the inputs; choose another output file")
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    task = create_task("nst.style_transfer", **params)
    inputs = {"content": load_image(args.content), "styles": [load_image(s) for s in args.styles]}
    if args.mask:
        inputs["mask"] = load_image(args.mask).rgb.mean(0)
    if args.init_image:
        inputs["init"] = load_image(args.init_image)
    bar = None

    def progress(record) -> None:  # noqa: ANN001
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=record.total, desc="stylize", unit="step")
        bar.total = record.total
        bar.n = record.step
        w, h = record.size
        bar.set_postfix_str(
            f"{w}x{h} " + " ".join(f"{k}={v:.3g}" for k, v in record.losses.items())
        )
        bar.refresh()

    try:
        result = task.run(inputs, on_progress=progress)
    except KeyboardInterrupt:
        raise InputError("interrupted; nothing written") from None
    finally:
        if bar is not None:
            bar.close()
    save_image(result["image"], out, overwrite=args.overwrite)
    if not args.quiet:
        w, h = result["image"].size
        device = resolve_device(task.params["device"])
        print(f"wrote {out} ({w}x{h}, method {task.params['method']}, device {device})")
    return 0


def _add_video(sub: argparse._SubParsersAction, with_schema: bool) -> None:
    p = sub.add_parser(
        "video",
        help="stylize a video, temporally consistent (every method)",
        description="Stylize every frame of VIDEO, each held to the previous result along the "
        "optical flow so it does not flicker; writes H.264 MP4 with the source's audio and "
        "timestamps (or PNG frames). A stopped run resumes from its last frame when run again. "
        "Every option below comes from the task's parameter schema.",
    )
    p.add_argument("video", help="input video file (any container and codec FFmpeg reads)")
    p.add_argument("styles", nargs="*", metavar="style", help="style image file(s)")
    p.add_argument("-o", "--out", required=True, help="output video (.mp4, .mkv) or folder (png)")
    p.add_argument("--format", choices=("mp4", "mkv", "png"), help="default: from OUT's suffix")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality: 0 lossless .. 51 smallest")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_video)
    if with_schema:
        from .default_plugins.video_tasks import VideoStyleTransferTask

        _add_schema_options(p, VideoStyleTransferTask.schema())


def _run_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .api import create_task
    from .engine.errors import Cancelled, InputError
    from .images import load_image

    out = Path(args.out)
    if any(_same_file(f, out) for f in [args.video, *args.styles]):
        raise InputError(f"{out} is one of the inputs; choose another output")
    fmt = args.format or {".mkv": "mkv", ".mp4": "mp4", "": "png"}.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the format from {out.name!r}; end it in .mp4 or .mkv, "
                         "or pass --format")  # fmt: skip
    save = create_task(
        "video.save", name=out.name, folder=str(out.parent), format=fmt, crf=args.crf,
        overwrite=args.overwrite,
    )  # fmt: skip
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    stylize = create_task("video.style_transfer", **_schema_values(args))
    frames = create_task("video.load").run({"path": args.video})["frames"]
    styles = [load_image(s) for s in args.styles]
    stylized = stylize.run({"frames": frames, "styles": styles})["frames"]
    bar = None if args.quiet else tqdm(total=frames.info.frames or None, desc="video", unit="frame")

    def progress(record) -> None:  # noqa: ANN001
        if bar is not None:
            bar.total = max(bar.total or 0, record.total)
            bar.n = record.step
            bar.refresh()

    try:
        result = save.run({"frames": stylized}, on_progress=progress)
    except (KeyboardInterrupt, Cancelled):
        raise InputError(
            "interrupted; the frames done are kept: run the same command again to resume"
        ) from None
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        info = frames.info
        note = f"; {result['note']}" if result["note"] else ""
        cuts = f", {stylized.cuts} scene cuts" if stylized.cuts else ""
        print(f"wrote {out} ({info.frames} frames, method {stylize.params['method']}{cuts}){note}")
    return 0


def _same_file(a: str | Path, b: str | Path) -> bool:
    """The same file on disk, through symlinks and `..`: an input must never be overwritten."""
    try:
        return Path(a).resolve() == Path(b).resolve() or Path(a).samefile(b)
    except OSError:  # b does not exist yet: it cannot be a's file
        return False


def _add_example(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "example",
        help="stylize the embedded example photo (no files needed)",
        description="Write example images (a photo scikit-image ships, generated paintings) to "
        "OUT/images and stylize the photo with each method. Existing files are kept.",
        formatter_class=_DefaultsHelp,
    )
    p.add_argument("--out", default="out", help="folder for the results")
    p.add_argument("--photo", default="astronaut", help="example photo")
    p.add_argument("--painting", default="swirls", help="example painting")
    p.add_argument(
        "--methods",
        default="adain,optimization,fast",
        help="comma-separated methods ('none': only write the example images)",
    )
    p.add_argument("--size", type=int, default=512, help="longer side of the results")
    p.add_argument(
        "--opt-size",
        type=int,
        default=384,
        help="longer side of the optimization result (two scales, its default passes)",
    )
    p.add_argument(
        "--model", default="", help="the fast method's style model (default: the task's)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing results")
    p.set_defaults(func=_run_example)


def _run_example(args: argparse.Namespace) -> int:
    from .examples import write_examples

    out = Path(args.out)
    images = write_examples(out / "images")
    for name in (args.photo, args.painting):
        if name not in images:
            raise NSTError(f"unknown example image {name!r}; choose from {', '.join(images)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip() not in ("", "none")]
    for method in methods:
        target = out / f"{args.photo}-{args.painting}-{method}.png"
        if target.exists() and not args.overwrite:
            print(f"kept {target} (exists; --overwrite to redo)")
            continue
        sized = ["--size", str(args.size)]
        if method == "optimization":
            sized = ["--size", str(args.opt_size), "--scales", "2"]
        styles = [str(images[args.painting])]
        if method == "fast":  # a preset carries its painting
            styles, sized = [], [*sized, *(["--model", args.model] if args.model else [])]
        _run_stylize(
            build_parser(["stylize"]).parse_args(
                [
                    "stylize",
                    str(images[args.photo]),
                    *styles,
                    "-o",
                    str(target),
                    "--method",
                    method,
                    *sized,
                    *(["--overwrite"] if args.overwrite else []),
                ]
            )
        )
    results = [out / f"{args.photo}-{args.painting}-{m}.png" for m in methods]
    if results:
        _write_sheet(
            [images[args.photo], images[args.painting], *results],
            out / f"{args.photo}-{args.painting}-sheet.jpg",
        )
    return 0


def _write_sheet(files: list[Path], target: Path) -> None:
    """Photo, painting and results side by side, through the same compare task pipelines use."""
    from .api import create_task
    from .images import load_image, save_image

    sheet = create_task("image.compare", layout="row", height=384).run(
        {"images": [load_image(f) for f in files]}
    )["image"]
    save_image(sheet, target, overwrite=True, quality=90)
    print(f"wrote {target}")


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the installed fast style models",
        description="Every style model the built-in presets and installed plugins provide, with "
        "its painting, licence and training; use one with --method fast --model NAME.",
    )
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from . import plugins

    models = plugins.style_models()
    if not models:
        print("no style models installed")
    for name, entry in models.items():
        info = entry.info
        seen = info.state.get("images_seen")
        trained = f"; trained on {seen:,} photo crops" if seen else ""
        if info.settings.get("lite_widths"):
            trained = f"; our AdaIN network with the painting{trained or ', untuned'}"
        print(f"{name}: {info.summary() or info.title}")
        print(f"    licence: {info.licence or 'not stated'}; from {entry.plugin}{trained}")
        if info.source:
            print(f"    painting source: {info.source}")
    for problem in plugins.load_problems():
        print(f"problem: {problem}", file=sys.stderr)
    return 0


def _add_plugin(sub: argparse._SubParsersAction) -> None:
    plugin = sub.add_parser("plugin", help="inspect plugins").add_subparsers(
        dest="what", required=True
    )
    p = plugin.add_parser("list", help="tasks, methods and encoders from every plugin")
    p.set_defaults(func=_run_plugin_list)
    p = plugin.add_parser("manifest", help="print plugin.yaml as generated from the code")
    p.add_argument("--all", action="store_true", help="include third-party plugins' methods")
    p.set_defaults(func=_run_plugin_manifest)


def _run_plugin_list(args: argparse.Namespace) -> int:
    from . import plugins

    pm = plugins.manager()
    print("plugins:")
    for plugin in pm.get_plugins():
        print(f"  {pm.get_name(plugin)}")
    print("tasks:")
    for task_id, cls in plugins.tasks().items():
        print(f"  {task_id}: {cls.title}")
    print("methods:")
    for name, spec in plugins.methods().items():
        print(f"  {name}: {spec.description}")
    print("encoders:")
    for name, entry in plugins.encoders().items():
        print(f"  {name}: {entry.description}")
    for problem in plugins.load_problems():
        print(f"problem: {problem}", file=sys.stderr)
    return 0


def _run_plugin_manifest(args: argparse.Namespace) -> int:
    import os

    from . import plugins
    from .manifest import render_manifest

    if not args.all:
        os.environ[plugins.ENV_VAR] = ""
        plugins.reset()
    sys.stdout.write(render_manifest())
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst",
        description="Neural style transfer: optimization (Gatys), arbitrary (AdaIN) and fast "
        "per-style (Johnson) methods.",
    )
    parser.add_argument("--version", action="version", version=f"nst-plugin {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    words = sys.argv[1:] if argv is None else argv
    command = next((a for a in words if not a.startswith("-")), None)
    _add_stylize(sub, with_schema=command == "stylize")
    _add_video(sub, with_schema=command == "video")
    _add_example(sub)
    _add_train(sub, with_options=command == "train")
    _add_models(sub)
    _add_plugin(sub)
    plugins.command_hooks().register_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # whatever was saved was reported; no traceback
        print("nst: interrupted", file=sys.stderr)
        return 130
    except NSTError as exc:
        print(f"nst: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
