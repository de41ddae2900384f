"""The one place images cross the boundary between files, hosts and tensors.

In memory an image is a float32 tensor (3, H, W) of RGB in 0..1 (`Image` below); alpha, when the
file had one, travels beside it and is put back on save. Every conversion a host needs (PIL, numpy
HWC uint8, ComfyUI-style BHWC float) lives here, so no host converts pixels on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from .engine.atomic import atomic_path
from .engine.errors import InputError

# About 100 megapixels: far above any photo a user stylizes, far below a decompression bomb.
MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass
class Picture:
    """RGB pixels (3, H, W) float32 0..1, plus the alpha channel (H, W) if the source had one."""

    rgb: torch.Tensor
    alpha: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL and users say it."""
        return self.rgb.shape[-1], self.rgb.shape[-2]


def _to_rgb_and_alpha(img: PILImage.Image) -> tuple[PILImage.Image, PILImage.Image | None]:
    img = ImageOps.exif_transpose(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16- and 32-bit grey: scale by the real range of the type, not by clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = PILImage.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
        return grey.convert("RGB"), None
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        return PILImage.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert(
            "RGB"
        ), None
    if img.mode in ("LA", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBa":
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        return img.convert("RGB"), img.getchannel("A")
    return img.convert("RGB"), None


def load_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> Picture:
    """Open any common image file as RGB (+alpha); EXIF orientation honoured."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"image file not found: {path}")
    if path.is_dir():
        raise InputError(f"expected an image file, got a folder: {path}")
    try:
        with PILImage.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise InputError(
                    f"{path} is {w}x{h} = {w * h / 1e6:.0f} megapixels, above the limit of "
                    f"{max_pixels / 1e6:.0f}; downscale it first"
                )
            img.load()
            rgb, alpha = _to_rgb_and_alpha(img)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None
    except PILImage.DecompressionBombError as exc:
        raise InputError(f"refusing {path}: {exc}") from None
    return from_pil_pair(rgb, alpha)


def from_pil_pair(rgb: PILImage.Image, alpha: PILImage.Image | None = None) -> Picture:
    tensor = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
    a = None if alpha is None else torch.from_numpy(np.array(alpha, dtype=np.float32) / 255.0)
    return Picture(tensor.contiguous(), a)


def from_pil(img: PILImage.Image) -> Picture:
    rgb, alpha = _to_rgb_and_alpha(img)
    return from_pil_pair(rgb, alpha)


def to_pil(picture: Picture) -> PILImage.Image:
    arr = to_numpy(picture)
    return PILImage.fromarray(arr, "RGBA" if arr.shape[-1] == 4 else "RGB")


def from_numpy(arr: np.ndarray) -> Picture:
    """HWC or HW arrays: uint8 0..255, uint16 0..65535 or float 0..1; 1, 3 or 4 channels."""
    if not isinstance(arr, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(arr).__name__}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise InputError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        data = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        data = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        data = np.clip(arr.astype(np.float32), 0.0, 1.0)
    else:
        raise InputError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float")
    tensor = torch.from_numpy(np.ascontiguousarray(data)).permute(2, 0, 1)
    alpha = tensor[3].clone() if tensor.shape[0] == 4 else None
    rgb = tensor[:3] if tensor.shape[0] >= 3 else tensor.expand(3, -1, -1)
    return Picture(rgb.contiguous(), alpha)


def to_numpy(picture: Picture) -> np.ndarray:
    """HWC uint8; four channels when the picture carries alpha."""
    planes = picture.rgb if picture.alpha is None else torch.cat([picture.rgb, picture.alpha[None]])
    return (planes.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def from_bhwc(batch: torch.Tensor) -> list[Picture]:
    """ComfyUI's IMAGE: float32 (B, H, W, C) in 0..1."""
    if not isinstance(batch, torch.Tensor) or batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
        shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise InputError(f"expected a (B, H, W, C) image tensor with C in 1, 3, 4; got {shape}")
    if batch.shape[0] == 0:
        raise InputError("the image batch is empty")
    out = []
    for item in batch.float().clamp(0, 1):
        chw = item.permute(2, 0, 1)
        rgb = chw[:3] if chw.shape[0] >= 3 else chw.expand(3, -1, -1)
        alpha = chw[3].clone() if chw.shape[0] == 4 else None
        out.append(Picture(rgb.contiguous(), alpha))
    return out


def to_bhwc(pictures: list[Picture]) -> torch.Tensor:
    return torch.stack([p.rgb.permute(1, 2, 0) for p in pictures]).float().contiguous()


def resize_longer(picture: Picture, longer: int | None) -> Picture:
    """Resize so the longer side is `longer` pixels (None keeps the size); alpha follows."""
    if longer is None:
        return picture
    w, h = picture.size
    if max(w, h) == longer:
        return picture
    scale = longer / max(w, h)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize_to(picture, size)


def resize_to(picture: Picture, size: tuple[int, int]) -> Picture:
    """Resize to (H, W) with antialiasing; alpha follows."""
    import torch.nn.functional as F

    def _r(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            t[None], size=size, mode="bicubic", antialias=True, align_corners=False
        )[0]

    alpha = None if picture.alpha is None else _r(picture.alpha[None])[0].clamp(0, 1)
    return Picture(_r(picture.rgb).clamp(0, 1), alpha)


def save_image(
    picture: Picture,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write atomically (temp file + rename) and never replace an existing file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; choose another name or allow overwriting")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"unknown image format {path.suffix!r}; use one of {IMAGE_SUFFIXES}")
    img = to_pil(picture)
    fmt = PILImage.registered_extensions()[path.suffix.lower()]
    if fmt == "JPEG" and img.mode == "RGBA":
        img = img.convert("RGB")
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
