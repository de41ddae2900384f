"""Is a fast model's blob made by its instance norms? Run it with each norm's per-image
statistics swapped for fixed ones (their mean over calibration photos), and look.

A normalisation "droplet" (Karras et al. 2020) is a spike a network draws so that instance norm
divides everything else down; with fixed statistics the spike has nothing to steer and the
blob would vanish. Writes, for each photo, three panels side by side: as shipped, every norm
fixed, only the residual blocks' norms fixed.

    python benchmarks/probe_fast_norms.py MODEL.safetensors --out DIR [--data DIR] [--size 512]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nst_plugin.engine import fast
from nst_plugin.engine.style_models import load_style_model
from nst_plugin.images import Picture, load_image, resize_longer, save_image

PHOTOS = ("p05", "p11", "p17", "p23", "p28", "p30")


def _fixed(norm: fast.InstanceNorm, mean: torch.Tensor, var: torch.Tensor):  # noqa: ANN202
    def forward(x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        y = (x.float() - mean.view(shape)) / (var.view(shape) + norm.eps).sqrt()
        return y * norm.weight.view(shape) + norm.bias.view(shape)

    return forward


def _photo(path: Path, size: int) -> torch.Tensor:
    return resize_longer(load_image(path), size).rgb[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default="../shared/data/eval-content")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    net, config, _, _ = load_style_model(args.model)
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in {".jpg", ".png"})
    norms = [m for m in net.modules() if isinstance(m, fast.InstanceNorm)]
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {id(m): [] for m in norms}

    def record(m: torch.nn.Module, inp: tuple[torch.Tensor], _: torch.Tensor) -> None:
        x = inp[0].float()
        seen[id(m)].append((x.mean((0, 2, 3)), x.var((0, 2, 3))))

    hooks = [m.register_forward_hook(record) for m in norms]
    calibration = [p for p in files if p.stem not in PHOTOS][:12]
    for path in calibration:
        fast.stylize(net, _photo(path, args.size), config.multiple)
    for h in hooks:
        h.remove()
    fixed = {id(m): _fixed(m, *(torch.stack(s).mean(0) for s in zip(*seen[id(m)]))) for m in norms}
    residual = [
        m for block in net if isinstance(block, fast.ResidualBlock) for m in block.modules()
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in (p for p in files if p.stem in PHOTOS):
        photo = _photo(path, args.size)
        panels = [fast.stylize(net, photo, config.multiple)]
        for swapped in (norms, [m for m in norms if m in residual]):
            for m in swapped:
                m.forward = fixed[id(m)]
            panels.append(fast.stylize(net, photo, config.multiple))
            for m in swapped:
                del m.forward
        save_image(Picture(torch.cat(panels, 3)[0]), out / f"{path.stem}.png", overwrite=True)
    print(f"{len(norms)} norms, calibrated on {len(calibration)} photos; panels in {out}")


if __name__ == "__main__":
    main()
