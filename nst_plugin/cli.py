"""`nst` command line: each subcommand is a thin call into the task, the trainer or a host."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .engine.errors import NSTError

EXIT_USAGE = 2


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train models").add_subparsers(dest="model", required=True)
    p = train.add_parser(
        "adain",
        help="train or resume the AdaIN decoder",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--content-dir", required=True, help="folder of photographs")
    p.add_argument("--style-dir", required=True, help="folder of artworks")
    p.add_argument("--out", required=True, help="decoder file (.safetensors) to write")
    p.add_argument("--steps", type=int, default=100_000, help="train until this many steps in all")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--overwrite", action="store_true", help="replace --out instead of refusing")
    p.add_argument("--time-limit", type=float, default=None, help="stop cleanly after MINUTES")
    p.add_argument("--batch-size", type=int, default=None, help="images a step (default 8)")
    p.add_argument("--crop", type=int, default=None, help="crop size in px (default 128)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-4)")
    p.add_argument("--lr-decay", type=float, default=None, help="lr / (1 + decay * step) (5e-5)")
    p.add_argument("--style-weight", type=float, default=None, help="style loss weight (10)")
    p.add_argument("--content-weight", type=float, default=None, help="content loss weight (1)")
    p.add_argument("--recon-steps", type=int, default=None,
                   help="first steps learn to reconstruct images (pixel L1) before AdaIN (0)")
    p.add_argument("--width", choices=("full", "half"), default=None, help="decoder width (half)")
    p.add_argument("--seed", type=int, default=None, help="random seed (0)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="save every N steps")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0, help="and every M minutes")
    p.add_argument("--sample-every", type=int, default=500, help="sample grid every N steps (0: none)")
    p.add_argument("--cache-dir", default=None, help="feature cache (default ~/.cache/nst-plugin)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_train_adain)


def _run_train_adain(args: argparse.Namespace) -> int:
    import torch

    from .train_adain import train_adain

    if args.threads:
        torch.set_num_threads(args.threads)
    keys = ("batch_size", "crop", "lr", "lr_decay", "style_weight", "content_weight",
            "recon_steps", "width", "seed")  # fmt: skip
    train_adain(
        content_dir=args.content_dir, style_dir=args.style_dir, out=args.out, steps=args.steps,
        resume=args.resume, overwrite=args.overwrite, time_limit_min=args.time_limit,
        checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes,
        sample_every=args.sample_every, cache_dir=args.cache_dir,
        settings={k: getattr(args, k) for k in keys}, quiet=args.quiet,
    )  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst",
        description="Neural style transfer: optimization (Gatys) and arbitrary (AdaIN) methods.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NSTError as exc:
        print(f"nst: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
