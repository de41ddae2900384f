"""Colour preservation for any style transfer method (Gatys et al., 'Preserving Color in Neural
Artistic Style Transfer', 2016).

Two remedies for a result that takes the style's palette along with its brushwork:
`luminance_transfer` keeps only the stylized brightness and puts back the content's colours;
`match_color` recolours the style image beforehand so its palette already is the content's.
All images are RGB tensors in 0..1 shaped (B, 3, H, W).
"""

from __future__ import annotations

import torch

from .errors import InputError

# NTSC YIQ, as in the paper: Y carries brightness, I and Q the colour opponents. Stored in float32
# (inverted in float64) because some devices, Apple's MPS among them, have no float64.
_RGB_TO_YIQ_64 = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_RGB_TO_YIQ = _RGB_TO_YIQ_64.float()
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ_64).float()


def _check_rgb(image: torch.Tensor, name: str) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"{name} must be an RGB tensor shaped (B, 3, H, W), got {shape}")


def _apply_matrix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    m = matrix.to(device=image.device, dtype=image.dtype)
    return torch.einsum("ij,bjhw->bihw", m, image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return _apply_matrix(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return _apply_matrix(_YIQ_TO_RGB, image)


def luminance_transfer(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """The stylized image's luminance (Y) with the content's chrominance (I, Q).

    Brightness carries the strokes and texture a style contributes; the colour opponents carry
    the palette. Swapping in the content's I and Q keeps the first and discards the second, at no
    cost to the optimization. Colours that leave the RGB cube are clipped, so very saturated
    content on a very bright or dark stroke loses a little chroma.
    """
    _check_rgb(content, "content")
    _check_rgb(stylized, "stylized")
    if content.shape[-2:] != stylized.shape[-2:]:
        raise InputError(
            f"content {tuple(content.shape[-2:])} and stylized {tuple(stylized.shape[-2:])} "
            "images differ in size; resize one to the other first"
        )
    y = rgb_to_yiq(stylized)[:, :1]
    iq = rgb_to_yiq(content.to(stylized.dtype))[:, 1:]
    if iq.shape[0] != y.shape[0]:
        iq = iq.expand(y.shape[0], -1, -1, -1)
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0.0, 1.0)


def _sym_matrix_power(cov: torch.Tensor, power: float, eps: float) -> torch.Tensor:
    """cov^power for symmetric positive semi-definite (…, 3, 3) matrices, floored at eps.

    Done on the CPU in float64: a 3x3 eigendecomposition is instant there, and not every
    accelerator has float64 or a fast small-matrix solver.
    """
    values, vectors = torch.linalg.eigh(cov.detach().cpu().to(torch.float64))
    values = values.clamp_min(eps).pow(power)
    return vectors @ torch.diag_embed(values) @ vectors.mT


def _mean_cov(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.reshape(image.shape[0], 3, -1).float()
    mean = pixels.mean(dim=2, keepdim=True)
    centred = pixels - mean
    return mean, centred @ centred.mT / pixels.shape[2]


def match_color(
    source: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-5, clamp: bool = True
) -> torch.Tensor:
    """Recolour `source` so its pixels' mean and RGB covariance equal `target`'s.

    The linear map x' = Σₜ^½ Σₛ^-½ (x − μₛ) + μₜ, with symmetric matrix square roots (the
    'Image Analogies' variant the paper prefers: unlike a Cholesky factor it does not depend on the
    channel order, so it rotates colours least). Used on the style image, it makes the style's
    palette the content's before any Gram target is computed. `eps` floors the eigenvalues so a
    flat-coloured source does not blow up; `clamp=False` keeps the exact statistics for tests.
    """
    _check_rgb(source, "source")
    _check_rgb(target, "target")
    if target.shape[0] not in (1, source.shape[0]):
        raise InputError(
            f"target batch of {target.shape[0]} does not match source batch of {source.shape[0]}"
        )
    mu_s, cov_s = _mean_cov(source)
    mu_t, cov_t = _mean_cov(target)
    transform = _sym_matrix_power(cov_t, 0.5, eps) @ _sym_matrix_power(cov_s, -0.5, eps)
    transform = transform.to(device=source.device, dtype=torch.float32)
    pixels = source.reshape(source.shape[0], 3, -1).float()
    out = (transform @ (pixels - mu_s) + mu_t).reshape(source.shape).to(source.dtype)
    return out.clamp(0.0, 1.0) if clamp else out
