"""Train (or resume) the shipped fast-style presets, one after another, each for a time slice.

    python scripts/train_presets.py --styles ../shared/data/styles \
        --content-dir ../shared/data/adain-train/content --work train-out --minutes 40

Each preset is written to WORK/<name>.safetensors with its log and sample grids beside it; a
later call resumes each where it stopped. The first preset starts from scratch (with the
identity warm-up); the others start from the first one's weights (`--init`), which is the warm
start they share. Copy a finished model and its .log.jsonl into nst_plugin/weights/styles/.
Paintings not in this table (candy, mosaic, your own) are trained with `nst train fast`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nst_plugin.train_fast import train_fast

# name: (file in --styles, title, artist, painting, year, source)
PRESETS = {
    "starry_night": ("van_gogh_starry_night.jpg", "Starry Night", "Vincent van Gogh",
                     "The Starry Night", "1889", "jcjohnson/neural-style examples/inputs"),
    "the_wave": ("hokusai_the_wave.jpg", "The Wave", "Katsushika Hokusai",
                 "The Great Wave off Kanagawa", "c. 1831", "jcjohnson/fast-neural-style"),
    "the_scream": ("munch_the_scream.jpg", "The Scream", "Edvard Munch", "The Scream", "1893",
                   "jcjohnson/neural-style examples/inputs"),
    "udnie": ("picabia_udnie.jpg", "Udnie", "Francis Picabia",
              "Udnie (Young American Girl, The Dance)", "1913", "pytorch/examples"),
    "composition_vii": ("kandinsky_composition_vii.jpg", "Composition VII", "Wassily Kandinsky",
                        "Composition VII", "1913", "jcjohnson/fast-neural-style"),
    "shipwreck": ("turner_shipwreck_of_the_minotaur.jpg", "Shipwreck", "J. M. W. Turner",
                  "The Shipwreck of the Minotaur", "c. 1810",
                  "jcjohnson/neural-style examples/inputs"),
}  # fmt: skip
FIRST = "starry_night"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", required=True, help="folder holding the paintings")
    ap.add_argument("--content-dir", required=True, help="folder of training photos")
    ap.add_argument("--work", default="train-out", help="where models, logs and samples go")
    ap.add_argument("--only", nargs="+", choices=list(PRESETS), help="these presets only")
    ap.add_argument("--minutes", type=float, default=40.0, help="time slice per preset")
    ap.add_argument("--steps", type=int, default=40_000, help="train each until this many steps")
    ap.add_argument("--style-weight", type=float, default=None, help="override for all")
    ap.add_argument("--crop", type=int, default=None, help="training crop (px), override for all")
    ap.add_argument("--tv-weight", type=float, default=None, help="total-variation weight, for all")
    ap.add_argument("--style-size", type=int, default=None,
                    help="painting's longer side (px), for all; resumes keep theirs")  # fmt: skip
    ap.add_argument("--margin", type=int, default=None, help="unscored px around crops, for all")
    ap.add_argument("--histogram-weight", type=float, default=None,
                    help="channel histogram style term's weight, for all")  # fmt: skip
    ap.add_argument("--teacher-weight", type=float, default=None,
                    help="colour-layout term's weight against our AdaIN, for all")  # fmt: skip
    ap.add_argument("--content-weight", type=float, default=None,
                    help="relu2_2 content term's weight against the photo, for all")  # fmt: skip
    ap.add_argument("--teacher-content-weight", type=float, default=None,
                    help="relu2_2 content term's weight against our AdaIN, for all")  # fmt: skip
    ap.add_argument("--teacher-style-mix", type=float, default=None,
                    help="share of crop Gram targets from our AdaIN, for all")  # fmt: skip
    ap.add_argument("--fine-content-weight", type=float, default=None,
                    help="relu1_1 content term's weight, for all")  # fmt: skip
    ap.add_argument("--style-tap-weights", type=float, nargs=5, default=None, metavar="W",
                    help="style weight at relu1_1..relu5_1, for all")  # fmt: skip
    ap.add_argument("--regularity-weight", type=float, default=None,
                    help="texture regularity term's weight, for all")  # fmt: skip
    ap.add_argument("--stability-weight", type=float, default=None,
                    help="noise stability term's weight, for all")  # fmt: skip
    ap.add_argument("--lr-decay", type=float, default=None,
                    help="learning rate = lr / (1 + decay * step), for all")  # fmt: skip
    ap.add_argument("--batch-gram", action=argparse.BooleanOptionalAction, default=None,
                    help="style statistics pooled over the batch, for all")  # fmt: skip
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(PRESETS):
        file, title, artist, painting, year, source = PRESETS[name]
        out = work / f"{name}.safetensors"
        first = work / f"{FIRST}.safetensors"
        init = str(first) if name != FIRST and not out.exists() and first.exists() else None
        print(f"== {name}: {'resume' if out.exists() else 'init ' + str(init)}", flush=True)
        train_fast(
            style=str(Path(args.styles) / file), content_dir=args.content_dir, out=str(out),
            steps=args.steps, resume=out.exists(), init=init, time_limit_min=args.minutes,
            style_size=args.style_size,
            info={"name": name, "title": title, "artist": artist, "painting": painting,
                  "year": year, "licence": "public domain (the painting); weights MIT",
                  "source": source},
            settings={"style_weight": args.style_weight, "crop": args.crop,
                      "tv_weight": args.tv_weight, "batch_gram": args.batch_gram,
                      "margin": args.margin, "histogram_weight": args.histogram_weight,
                      "teacher_weight": args.teacher_weight,
                      "content_weight": args.content_weight,
                      "teacher_content_weight": args.teacher_content_weight,
                      "teacher_style_mix": args.teacher_style_mix,
                      "fine_content_weight": args.fine_content_weight,
                      "lr_decay": args.lr_decay,
                      "style_tap_weights": args.style_tap_weights,
                      "regularity_weight": args.regularity_weight,
                      "stability_weight": args.stability_weight},
            quiet=True,
        )  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the preset in training was saved
        raise SystemExit(130) from None
