"""Train (or resume) the shipped fast-style presets, one after another, each for a time slice.

    python scripts/train_presets.py --styles ../shared/data/styles \
        --content-dir ../shared/data/adain-train/content --work train-out --minutes 40

Each preset is written to WORK/<name>.safetensors with its log and sample grids beside it; a
later call resumes each where it stopped. With `--recipe`, a preset listed in RECIPES is
trained by its recipe: in phases, each lasting until the model's training time in all (the
log's `hours`) reaches the phase's end, so a call stopped anywhere picks up in the right phase,
and the whole recipe fits the 2-hour budget a preset is allowed.

The first preset (FIRST) starts from scratch (with the identity warm-up); the others start from
its weights where they have its network's shape (`--init`), which is the warm start they share
(copy a trained one into WORK to start from it), or, with `--from-adain`
(and by their recipes udnie and composition_vii, FROM_ADAIN), from our AdaIN with the painting
(`fast.AdaINPreset`).
With `--teacher-dir`, each preset's teacher terms compare with that folder's model of its name
(distillation: a smaller network learns a trained preset's picture). Copy a finished model and
its .log.jsonl into nst_plugin/weights/styles/.
Paintings not in this table (candy, mosaic, your own) are trained with `nst train fast`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from nst_plugin.engine.style_models import info_from_metadata, net_config, read_metadata
from nst_plugin.engine.training import FastSettings
from nst_plugin.train_fast import train_fast

# name: (file in --styles, title, artist, painting, year, source); the first is FIRST
PRESETS = {
    "the_scream": ("munch_the_scream.jpg", "The Scream", "Edvard Munch", "The Scream", "1893",
                   "jcjohnson/neural-style examples/inputs"),
    "starry_night": ("van_gogh_starry_night.jpg", "Starry Night", "Vincent van Gogh",
                     "The Starry Night", "1889", "jcjohnson/neural-style examples/inputs"),
    "the_wave": ("hokusai_the_wave.jpg", "The Wave", "Katsushika Hokusai",
                 "The Great Wave off Kanagawa", "c. 1831", "jcjohnson/fast-neural-style"),
    "udnie": ("picabia_udnie.jpg", "Udnie", "Francis Picabia",
              "Udnie (Young American Girl, The Dance)", "1913", "pytorch/examples"),
    "composition_vii": ("kandinsky_composition_vii.jpg", "Composition VII", "Wassily Kandinsky",
                        "Composition VII", "1913", "jcjohnson/fast-neural-style"),
    "shipwreck": ("turner_shipwreck_of_the_minotaur.jpg", "Shipwreck", "J. M. W. Turner",
                  "The Shipwreck of the Minotaur", "c. 1810",
                  "jcjohnson/neural-style examples/inputs"),
}  # fmt: skip
FIRST = "the_scream"

# name: [(until hours, settings)]; a phase's settings are whole (a resume would keep the last
# phase's otherwise), and every phase starts from the one before with its optimizer state.
# udnie's and composition_vii's: our AdaIN with the painting (FROM_ADAIN), tuned against the
# quality benchmark's own distances, the style's weight to the content's chosen on 12 training
# photos (benchmarks/fast-training.md, items 44-45): udnie's moments alone, 3 to 1, for about
# 300 steps; composition_vii's every weight, 2.2 to 1, for about 600 steps (its moments alone
# traded style for content along a line through our AdaIN's own figures). The Johnson-network
# recipes these replace (items 23-41: a lattice over flat areas) are in the history.
_FROM_ADAIN = {
    "margin": 32,
    "style_weight": 0.0,
    "content_weight": 0.0,
    "relative_content_weight": 1.0,
}
# the_scream's: a network of width 6 with 2 blocks (about a fifth of our AdaIN's time), from
# scratch, the Johnson presets' style weight, the content weight raised once the painting is
# in (item 46); starry_night's and the_wave's: the same network from the_scream's weights, the
# wave's content weight lowered once the layout holds (items 47, 49)
_SMALL = {"width": 6, "blocks": 2, "style_weight": 6e4, "lr": 1e-3, "lr_decay": 1e-4,
          "tv_weight": 0.0}  # fmt: skip
RECIPES: dict[str, list[tuple[float, dict[str, Any]]]] = {
    "the_scream": [(0.33, {**_SMALL, "content_weight": 1.0}),
                   (0.60, {**_SMALL, "content_weight": 2.5})],
    "starry_night": [(0.47, {**_SMALL, "content_weight": 1.0})],
    "the_wave": [(0.63, {**_SMALL, "content_weight": 2.5}),
                 (1.06, {**_SMALL, "content_weight": 1.0})],
    "udnie": [(0.05, {**_FROM_ADAIN, "moments_only": True, "lr": 1e-3,
                      "relative_style_weight": 3.0})],
    "composition_vii": [(0.13, {**_FROM_ADAIN, "lr": 1e-4, "relative_style_weight": 2.2})],
}  # fmt: skip
# presets whose recipe starts from our AdaIN with the painting (`--from-adain`)
FROM_ADAIN = {"udnie", "composition_vii"}


# settings a call may override for every preset (not with --recipe): FastSettings field,
# argument type, help
OVERRIDES: list[tuple[str, type, str]] = [
    ("style_weight", float, "override for all"),
    ("crop", int, "training crop (px), override for all"),
    ("batch_size", int, "crops per step, for all"),
    ("tv_weight", float, "total-variation weight, for all"),
    ("margin", int, "unscored px around crops, for all"),
    ("histogram_weight", float, "channel histogram style term's weight, for all"),
    ("teacher_weight", float, "colour-layout term's weight against the teacher, for all"),
    ("content_weight", float, "relu2_2 content term's weight against the photo, for all"),
    ("teacher_content_weight", float, "relu2_2 content term's weight against the teacher, for all"),
    ("teacher_style_mix", float, "share of crop Gram targets from the teacher, for all"),
    ("detail_threshold", float, "gradient under which no painting style is asked, for all"),
    ("flat_tv_weight", float, "total variation's weight on flat spots, for all"),
    ("fine_content_weight", float, "relu1_1 content term's weight, for all"),
    ("deep_content_weight", float, "relu4_2 content term's weight, for all"),
    ("regularity_weight", float, "texture regularity term's weight, for all"),
    ("stability_weight", float, "noise stability term's weight, for all"),
    ("spectrum_weight", float, "power spectrum term's weight against the teacher, for all"),
    ("spectrum_peak_weight", float, "spectral peak term's weight against the teacher, for all"),
    ("texture_layout_weight", float, "texture placement's weight against the teacher, for all"),
    ("noise_channels", int, "noise channels beside the photo, for all"),
    ("noise_cell", int, "px between the noise field's independent values, for all"),
    ("relative_style_weight", float, "benchmark-measured style distance's weight, for all"),
    ("relative_content_weight", float, "benchmark-measured content distance's weight, for all"),
    ("width", int, "a new network's first-stage width, for all"),
    ("blocks", int, "a new network's residual blocks, for all"),
    ("edge_kernel", int, "a new network's first and last kernel size, for all"),
    ("lr", float, "Adam's learning rate, for all"),
    ("lr_decay", float, "learning rate = lr / (1 + decay * step), for all"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", required=True, help="folder holding the paintings")
    ap.add_argument("--content-dir", required=True, help="folder of training photos")
    ap.add_argument("--work", default="train-out", help="where models, logs and samples go")
    ap.add_argument("--only", nargs="+", choices=list(PRESETS), help="these presets only")
    ap.add_argument("--minutes", type=float, default=40.0, help="time slice per preset")
    ap.add_argument("--steps", type=int, default=40_000, help="train each until this many steps")
    for field, kind, help_text in OVERRIDES:
        ap.add_argument(f"--{field.replace('_', '-')}", type=kind, default=None, help=help_text)
    ap.add_argument("--style-size", type=int, default=None,
                    help="painting's longer side (px), for all; resumes keep theirs")  # fmt: skip
    ap.add_argument("--lite-widths", type=int, nargs=4, default=None, metavar="C",
                    help="a new network's lite AdaIN layout widths, for all")  # fmt: skip
    ap.add_argument("--style-tap-weights", type=float, nargs=5, default=None, metavar="W",
                    help="style weight at relu1_1..relu5_1, for all")  # fmt: skip
    ap.add_argument(
        "--moments-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train only a preset from our AdaIN's moments, for all",
    )
    ap.add_argument("--batch-gram", action=argparse.BooleanOptionalAction, default=None,
                    help="style statistics pooled over the batch, for all")  # fmt: skip
    ap.add_argument(
        "--from-adain",
        action="store_true",
        help="a new preset starts from our AdaIN with its painting (fast.AdaINPreset)",
    )
    ap.add_argument("--teacher-dir",
                    help="each preset's teacher terms compare with DIR/<name>.safetensors's "
                    "picture (`nst train fast --teacher`)")  # fmt: skip
    ap.add_argument("--recipe", action="store_true",
                    help="train by the preset's recipe (RECIPES), no setting flags")  # fmt: skip
    args = ap.parse_args()
    overrides = {field: getattr(args, field) for field, _, _ in OVERRIDES}
    overrides |= {
        "style_tap_weights": args.style_tap_weights,
        "lite_widths": args.lite_widths,
        "batch_gram": args.batch_gram,
        "moments_only": args.moments_only,
    }
    names = args.only or list(PRESETS)
    if args.recipe:
        given = [k for k, v in overrides.items() if v is not None]
        if given or args.style_size is not None:
            ap.error(f"--recipe sets the settings itself: drop {given or ['style_size']}")
        if missing := [n for n in names if n not in RECIPES]:
            ap.error(f"no recipe for {', '.join(missing)} (recipes: {', '.join(RECIPES)})")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        phases = RECIPES[name] if args.recipe else [(None, overrides)]
        out = work / f"{name}.safetensors"
        started = time.monotonic()
        for until, settings in phases:
            if until is not None and out.exists() and _hours_trained(out) >= until:
                continue
            minutes = args.minutes - (time.monotonic() - started) / 60
            if minutes <= 0:
                break
            _train(args, name, out, settings, hours=until, minutes=minutes)
        if args.recipe and out.exists() and (done := _hours_trained(out)) >= phases[-1][0]:
            print(f"== {name}: recipe done, {done:.3f} h", flush=True)


def _hours_trained(model: Path) -> float:
    """The model's training time in all, as its log's `hours` counts it."""
    return info_from_metadata(read_metadata(model)).state["seconds"] / 3600


def _same_shape(model: Path, settings: dict[str, Any]) -> bool:
    """Whether `model`'s network has the shape `settings` ask for (noise input aside, which a
    warm start adds): the first preset warm-starts only presets of its own shape."""
    asked = FastSettings(**{k: v for k, v in settings.items() if v is not None}).net_config()
    have = net_config(read_metadata(model))
    return replace(have, noise_channels=asked.noise_channels, noise_cell=asked.noise_cell) == asked


def _train(
    args: argparse.Namespace,
    name: str,
    out: Path,
    settings: dict[str, Any],
    *,
    hours: float | None,
    minutes: float,
) -> None:
    file, title, artist, painting, year, source = PRESETS[name]
    first = out.parent / f"{FIRST}.safetensors"
    fresh = name != FIRST and not out.exists() and first.exists()
    init = str(first) if fresh and _same_shape(first, settings) else None
    from_adain = (args.from_adain or (args.recipe and name in FROM_ADAIN)) and not out.exists()
    init = None if from_adain else init
    phase = "" if hours is None else f" until {hours} h"
    start = "from our AdaIN" if from_adain else f"init {init}"
    print(f"== {name}: {'resume' if out.exists() else start}{phase}", flush=True)
    teacher = str(Path(args.teacher_dir) / f"{name}.safetensors") if args.teacher_dir else None
    train_fast(
        style=str(Path(args.styles) / file), content_dir=args.content_dir, out=str(out),
        steps=args.steps, resume=out.exists(), init=init, from_adain=from_adain,
        teacher=teacher,
        time_limit_min=minutes,
        hours=hours, style_size=args.style_size,
        info={"name": name, "title": title, "artist": artist, "painting": painting,
              "year": year, "licence": "public domain (the painting); weights MIT",
              "source": source},
        settings=settings,
        quiet=True,
    )  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the preset in training was saved
        raise SystemExit(130) from None
