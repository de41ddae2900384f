"""AdaIN speed: inference per image against the FLOP floor, and training images per second.

Inference: milliseconds per image at 256, 512 and 1024 px (the VGG decoder at --width), next
to the floor = multiply-adds of encoder + decoder divided by this machine's measured 3x3
convolution throughput, so the ratio says how close to the hardware we run; one row per change,
each on top of the one before: the v1 decoder (the paper's, no skips) contiguous in fp32,
channels_last, bf16 autocast (only where the CPU has native bf16, as the method does), the v2
skips; then the lite network (its own small encoder, AdaIN at four levels, no VGG), against the
first row, once for each of `--lite-widths` (random weights: only the time counts; a trailing
"+m" adds the style modulator, `--lite-modulate`; the default is the shipped decoder's), with
the time it takes when AdaIN's restyles are applied to the maps instead of folded into the
convolutions that read them (as before that change).

Training: images per second of one decoder update, for each change that made training cheaper,
measured in this same run:
  paper       every step encodes content, style and output (the paper's loop), full decoder
  cached      content relu4_1 and style moments precomputed (what `nst train adain` does)
  +ch_last    channels_last memory format for encoder and decoder (oneDNN's fast path on CPU)
  +half       half-width decoder (a quarter of its multiply-adds)
  +skips      v2: the photo crops encoded to relu3_1 each step (no gradients) for the skips

    python benchmarks/bench_adain.py [--sizes 256 512 1024] [--repeat 3] [--train-steps 4]
        [--lite-widths 16,32,64,256 16,32,128,256 16,32,128,256+m ...]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nst_plugin.engine.adain import (
    CONTENT_TAP,
    LITE,
    SKIP_TAPS,
    STYLE_TAPS,
    Decoder,
    adain_from_stats,
    calc_mean_std,
    make_decoder,
    restyle,
    skip_features,
    style_moments,
    stylize,
)
from nst_plugin.engine.checkpoints import read_checkpoint
from nst_plugin.engine.encoders import load_encoder
from nst_plugin.engine.precision import autocast, bf16_enabled
from nst_plugin.shipped import SHIPPED_DECODER


class BodyOnly(nn.Module):
    """A v2 decoder run as v1: the paper's stack alone, the skips' inputs ignored."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.body = decoder.body

    def levels(self, encoder, image: torch.Tensor) -> tuple[list[torch.Tensor], None]:  # noqa: ANN001
        """v1 encodes to relu4_1 alone: no skip taps to compute."""
        return [encoder(image, [CONTENT_TAP])[CONTENT_TAP]], None

    def draw(
        self, targets: list[torch.Tensor], context: None = None, restyles: list | None = None
    ) -> torch.Tensor:
        target = targets[0] if restyles is None else restyles[0].apply(targets[0])
        return self.body(target)

    def forward(self, target: torch.Tensor, skips: object = None) -> torch.Tensor:
        return self.body(target)


def conv_macs(module: nn.Module, run: callable) -> int:  # type: ignore[valid-type]
    """Multiply-adds of every Conv2d during `run()`, counted with forward hooks."""
    total = 0

    def hook(mod: nn.Conv2d, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * mod.in_channels // mod.groups * k

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total


def conv_throughput(device: torch.device, channels_last: bool) -> float:
    """GFLOP/s of a VGG-like 3x3 convolution (256 -> 256 channels at 128x128)."""
    conv = nn.Conv2d(256, 256, 3, padding=1).to(device)
    x = torch.randn(1, 256, 128, 128, device=device)
    if channels_last:
        fmt = torch.channels_last
        conv, x = conv.to(memory_format=fmt), x.to(memory_format=fmt)
    flops = 2 * 128 * 128 * 256 * 256 * 9
    with torch.no_grad():
        for _ in range(2):
            conv(x)
        _sync(device)
        t = time.perf_counter()
        n = 5
        for _ in range(n):
            conv(x)
        _sync(device)
    return flops * n / (time.perf_counter() - t) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# a lite network's stage widths, and whether it has the style modulator
LiteSpec = tuple[tuple[int, ...], bool]


def bench_inference(
    device: torch.device,
    sizes: list[int],
    repeat: int,
    width: str,
    lite_widths: list[LiteSpec],
) -> None:
    encoder = copy.deepcopy(load_encoder()).to(device)
    decoder = make_decoder(width).to(device).eval()
    style = torch.rand(1, 3, 512, 512, device=device)
    moments = [style_moments(encoder, style)]
    bf16 = bf16_enabled(device)
    print(f"\n### AdaIN inference on {device} ({width} decoder, style moments precomputed)\n")
    print("| size | variant | ms / image | GMACs | floor ms | ratio to floor | gain |")
    print("|---|---|---|---|---|---|---|")
    variants = [("v1, contiguous, fp32", False, False, False)]
    variants.append(("+ channels_last", True, False, False))
    if bf16:
        variants.append(("+ bf16 autocast", True, True, False))
    variants.append(("+ v2 skips", True, bf16, True))
    gflops = {cl: conv_throughput(device, cl) for cl in (False, True)}
    for size in sizes:
        base = None
        for name, channels_last, half, skips in variants:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            enc, dec = encoder.to(memory_format=fmt), decoder.to(memory_format=fmt)
            dec = dec if skips else BodyOnly(dec)
            x = torch.rand(1, 3, size, size, device=device).contiguous(memory_format=fmt)
            with torch.no_grad():
                feats = enc(x, [*SKIP_TAPS, CONTENT_TAP])
                z, sk = feats[CONTENT_TAP], skip_features(feats)
                macs = conv_macs(enc, lambda e=enc, x=x: e(x, [CONTENT_TAP]))
                macs += conv_macs(dec, lambda d=dec, z=z, sk=sk: d(z, sk))
                run = functools.partial(stylize, enc, dec, x, moments)
                ms = _ms_per_call(run, device, repeat, half)
            base = base or ms
            floor = 2 * macs / (gflops[channels_last] * 1e9) * 1000
            print(
                f"| {size} | {name} | {ms:.0f} | {macs / 1e9:.1f} | {floor:.0f} | "
                f"{ms / floor:.2f} | {base / ms:.2f}x |"
            )
        timed = _time_lites(device, size, repeat, bf16, lite_widths)
        for (widths, modulated), (ms, applied, macs) in zip(lite_widths, timed, strict=True):
            floor = 2 * macs / (gflops[True] * 1e9) * 1000
            print(
                f"| {size} | lite network {' '.join(map(str, widths))}"
                f"{' with the style modulator' if modulated else ''} (own encoder, AdaIN at 4 "
                f"levels), channels_last{', bf16' if bf16 else ''} | {ms:.0f} | "
                f"{macs / 1e9:.1f} | {floor:.0f} | {ms / floor:.2f} | {base / ms:.2f}x "
                f"({ms / timed[0][0]:.2f}x the first lite row's time; {applied:.0f} ms with "
                f"the restyles applied, not folded: {applied / ms:.2f}x) |"
            )
    print(
        f"\nmeasured 3x3 conv throughput: {gflops[True]:.0f} GFLOP/s (channels_last, fp32); "
        f"bf16 {'native: autocast on' if bf16 else 'not native here: fp32 only'}"
    )


def _time_lites(
    device: torch.device, size: int, repeat: int, bf16: bool, widths: list[LiteSpec]
) -> list[tuple[float, float, int]]:
    """Lite networks (no VGG at inference) of these widths: milliseconds per image (the median
    of `repeat` calls, the networks taking turns, so a busy machine slows each alike), the same
    with the restyles applied to the maps instead of folded, and multiply-adds."""
    fmt = torch.channels_last
    x = torch.rand(1, 3, size, size, device=device).contiguous(memory_format=fmt)
    style = torch.rand(1, 3, 512, 512, device=device)
    runs, macs = [], []
    with torch.no_grad():
        for w, modulated in widths:
            net = make_decoder(LITE, widths=w, modulated=modulated)
            net = net.to(device).eval().to(memory_format=fmt)
            moments = [style_moments(None, style, net)]
            with torch.enable_grad():  # unfolded, so every convolution's hook fires
                macs.append(conv_macs(net, lambda net=net: net(x)))
            runs.append(functools.partial(stylize, None, net, x, moments))
            runs.append(functools.partial(_restyles_applied, net, x, moments))
        times: list[list[float]] = [[] for _ in runs]
        with autocast(device) if bf16 else contextlib.nullcontext():
            for run in runs:
                run()  # warm-up, once per network
            for _ in range(repeat):
                for run, t in zip(runs, times, strict=True):
                    t0 = time.perf_counter()
                    run()
                    _sync(device)
                    t.append((time.perf_counter() - t0) * 1000)
    ms = [statistics.median(t) for t in times]
    return [(f, a, m) for f, a, m in zip(ms[::2], ms[1::2], macs, strict=True)]


def _restyles_applied(net: nn.Module, x: torch.Tensor, moments: list) -> torch.Tensor:
    """`stylize` without the fold: each map restyled (one pass over it), then drawn."""
    maps, context = net.levels(None, x)  # x: a multiple of MULTIPLE, no padding needed
    targets = [restyle(f, [m[k] for m in moments], [1.0], None, 1.0) for k, f in enumerate(maps)]
    return net.draw(targets, context).clamp(0.0, 1.0)


def _ms_per_call(run: Callable[[], object], device: torch.device, repeat: int, bf16: bool) -> float:
    """Milliseconds per call of `run` after one warm-up call, under bf16 autocast if asked."""
    with autocast(device) if bf16 else contextlib.nullcontext():
        run()
        _sync(device)
        t = time.perf_counter()
        for _ in range(repeat):
            run()
        _sync(device)
    return (time.perf_counter() - t) / repeat * 1000


def bench_training(device: torch.device, steps: int, batch: int, crop: int) -> None:
    encoder = copy.deepcopy(load_encoder().truncated(CONTENT_TAP)).to(device)
    content = torch.rand(batch, 3, crop, crop, device=device)
    style = torch.rand(batch, 3, crop, crop, device=device)
    print(f"\n### AdaIN training on {device}: batch {batch} of {crop} px crops\n")
    print("| variant | s / step | images / s | gain vs paper |")
    print("|---|---|---|---|")
    base = None
    for name, cached, channels_last, width, skips in (
        ("paper (encode content, style, output; full decoder)", False, False, "full", False),
        ("cached content features + style moments", True, False, "full", False),
        ("+ channels_last", True, True, "full", False),
        ("+ half-width decoder", True, True, "half", False),
        ("+ v2 skips (photo to relu3_1 each step)", True, True, "half", True),
    ):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        enc = encoder.to(memory_format=fmt)
        full = make_decoder(width).to(device).to(memory_format=fmt)
        dec = full if skips else BodyOnly(full)
        opt = torch.optim.Adam(dec.parameters(), 1e-4)
        with torch.no_grad():
            c_feat = enc(content, [CONTENT_TAP])[CONTENT_TAP]
            s_taps = enc(style, STYLE_TAPS)
            s_stats = {t: calc_mean_std(s_taps[t]) for t in STYLE_TAPS}

        def step(
            enc: nn.Module = enc,
            dec: nn.Module = dec,
            opt: torch.optim.Optimizer = opt,
            cached: bool = cached,
            skips: bool = skips,
            fmt: torch.memory_format = fmt,
            c_feat: torch.Tensor = c_feat,
            s_stats: dict = s_stats,
        ) -> None:
            if cached:
                feat, stats = c_feat, s_stats
            else:
                with torch.no_grad():
                    feat = enc(content.contiguous(memory_format=fmt), [CONTENT_TAP])[CONTENT_TAP]
                    taps = enc(style.contiguous(memory_format=fmt), STYLE_TAPS)
                    stats = {t: calc_mean_std(taps[t]) for t in STYLE_TAPS}
            sk = None
            if skips:
                with torch.no_grad():
                    sk = skip_features(enc(content.contiguous(memory_format=fmt), SKIP_TAPS))
            target = adain_from_stats(feat, *stats[CONTENT_TAP])
            out = dec(target.contiguous(memory_format=fmt), sk)
            taps_o = enc(out, STYLE_TAPS)
            loss = F.mse_loss(taps_o[CONTENT_TAP], target)
            for t in STYLE_TAPS:
                m, s = calc_mean_std(taps_o[t])
                loss = loss + F.mse_loss(m, stats[t][0]) + F.mse_loss(s, stats[t][1])
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        sec = (time.perf_counter() - t) / steps
        base = base or sec
        print(f"| {name} | {sec:.2f} | {batch / sec:.1f} | {base / sec:.2f}x |")


def _shipped_lite() -> str:
    """The shipped decoder's widths, as --lite-widths takes them."""
    _, meta = read_checkpoint(SHIPPED_DECODER)
    return ",".join(map(str, meta["widths"])) + ("+m" if meta.get("modulated") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--width", choices=("half", "full"), default="half")
    parser.add_argument("--train-steps", type=int, default=4, help="0 skips the training part")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--lite-widths",
        nargs="+",
        default=[_shipped_lite()],
        help="a lite network row for each of these stage widths, as A,B,C,D (random weights); "
        "A,B,C,D+m: with the style modulator",
    )
    args = parser.parse_args()
    lite_widths = [
        (tuple(int(c) for c in w.removesuffix("+m").split(",")), w.endswith("+m"))
        for w in args.lite_widths
    ]
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for device in devices:
        bench_inference(device, args.sizes, args.repeat, args.width, lite_widths)
        if args.train_steps:
            bench_training(device, args.train_steps, args.batch, args.crop)


if __name__ == "__main__":
    main()
