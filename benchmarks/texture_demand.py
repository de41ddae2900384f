"""Which of a fast model's training terms ask for more fine texture where the photo is flat,
and which for less, at the model's current weights.

On training batches (the model's own recorded settings, its painting and our AdaIN's teacher
renderings, as `nst train fast` sees them), the network's output is split into a blur (sigma
2 px) and the rest, its fine texture. The texture's gain is raised by eps, separately on the
photo's flat spots and on its detailed ones (`fast.detail_mask`), and each weighted term's
derivative in eps is printed: negative means the term asks for more texture there. The style
term is split into the painting's share and the teacher's.

    python benchmarks/texture_demand.py MODEL --style PAINTING --content-dir DIR [--batches N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nst_plugin import train_fast
from nst_plugin.engine import fast
from nst_plugin.engine.encoders import load_encoder
from nst_plugin.engine.filters import gaussian_blur
from nst_plugin.engine.style_models import load_style_model
from nst_plugin.engine.training import FastSettings, FastTrainer
from nst_plugin.images import load_image, resize_longer
from nst_plugin.training_data import default_cache_dir

TEXTURE_SIGMA = 2.0  # px: the blur whose residue counts as texture
FLAT_THRESHOLD = 0.01  # fast.detail_mask's threshold that splits flat from detailed spots


def demand(trainer: FastTrainer, batch_step: int) -> dict[str, torch.Tensor]:
    """Each weighted term's derivative in the texture's gain, (flat, detailed), on one batch."""
    s, net = trainer.settings, trainer.net
    seen, (rows, cols), teach = trainer.batch(batch_step)
    if isinstance(net[0], fast.NoiseInput):
        net[0].draw = batch_step
    with torch.no_grad():
        out0 = net(seen)[..., rows, cols].float()
        photo = seen[..., rows, cols]
        content = trainer.encoder(photo, [fast.CONTENT_TAP])[fast.CONTENT_TAP]
        taught = trainer.encoder(teach, list(trainer.style_taps)) if teach is not None else {}
    low = gaussian_blur(out0, TEXTURE_SIGMA)
    detail = fast.detail_mask(photo, FLAT_THRESHOLD)
    gain = torch.zeros(2, requires_grad=True)
    out = low + (out0 - low) * (1 + gain[0] * (1 - detail) + gain[1] * detail)
    feats = trainer.encoder(out, trainer.feature_taps)
    args = (feats, content, trainer.grams, trainer.scales, out)
    own = fast.perceptual_losses(
        *args,
        tap_weights=trainer.tap_weights,
        detail=fast.detail_mask(photo, s.detail_threshold) if s.detail_threshold > 0 else None,
    )
    mix = s.teacher_style_mix
    terms = {
        "content": s.content_weight * own["content"],
        "style (painting)": s.style_weight * (1 - mix) * own["style"],
        "total variation": s.tv_weight * own["tv"],
    }
    if s.flat_tv_weight > 0:
        detailed = fast.detail_mask(photo, s.detail_threshold)
        terms["flat total variation"] = s.flat_tv_weight * fast.flat_variation(out, detailed)
    if teach is not None:
        taught_grams = fast.teacher_grams(taught, trainer.scales, trainer.style_taps)
        as_taught = fast.perceptual_losses(
            *args, taught=taught_grams, mix=1.0, tap_weights=trainer.tap_weights
        )
        terms |= {
            "style (teacher)": s.style_weight * mix * as_taught["style"],
            "layout": s.teacher_weight * fast.layout_loss(out, teach),
            "spectrum": s.spectrum_weight * fast.spectrum_loss(out, teach),
            "spectrum peaks": s.spectrum_peak_weight * fast.spectrum_peak_loss(out, teach),
        }
    return {
        name: torch.autograd.grad(term, gain, retain_graph=True)[0] for name, term in terms.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a fast model file with its recorded settings")
    ap.add_argument("--style", required=True, help="the painting it was trained on")
    ap.add_argument("--content-dir", required=True, help="the folder of training photos")
    ap.add_argument("--batches", type=int, default=4)
    args = ap.parse_args()
    net, _, info, _ = load_style_model(args.model)
    recorded = {k: v for k, v in info.settings.items() if k in FastSettings.__dataclass_fields__}
    settings = FastSettings(**recorded)
    size = int(info.settings.get("style_size", train_fast.DEFAULT_STYLE_SIZE))
    painting = resize_longer(load_image(args.style), size)
    photos = train_fast._load_photos(args.content_dir, settings.crop + settings.margin)
    teachers = train_fast._teachers(photos, painting, default_cache_dir("teachers"), True)
    trainer = FastTrainer(
        load_encoder("vgg19"), photos, painting.rgb[None], settings, net=net, teachers=teachers
    )
    trainer.net.eval()
    total: dict[str, torch.Tensor] = {}
    for b in range(args.batches):
        for name, d in demand(trainer, 1_000_000 + b).items():
            total[name] = total.get(name, 0) + d / args.batches
    print(f"{Path(args.model).name}: d loss / d texture gain (below 0: the term asks for more)")
    print("| term | flat spots | detailed spots |\n|---|---:|---:|")
    for name, d in [*total.items(), ("sum", sum(total.values()))]:
        print(f"| {name} | {float(d[0]):.2f} | {float(d[1]):.2f} |")


if __name__ == "__main__":
    main()
