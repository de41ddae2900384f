"""Temporal consistency for video: optical flow, warping, where the flow can be trusted.

Stylizing a video frame by frame flickers: each frame's optimization lands in its own local
minimum, and a feed-forward network answers a small change in the photo with different strokes.
The remedy of Ruder, Dosovitskiy & Brox ('Artistic style transfer for videos', GCPR 2016) is to
carry the previous frame's result forward along the optical flow and hold the new frame to it
where the flow is reliable:

* the flow between consecutive frames comes from OpenCV's DIS (Kroeger et al. 2016), both ways;
  DIS instead of the paper's DeepFlow/EpicFlow, which cost seconds a frame: DIS takes ~16 ms at
  512x288 on this kind of CPU, and a flow network would need weights we do not ship;
* a pixel is reliable when going back and forth along the two flows returns near where it started
  (the paper's forward-backward test, Sundaram et al. 2010) and it is not on a motion boundary;
  occluded and disoccluded pixels fail it and are stylized afresh;
* feed-forward methods blend their output with the warped previous result (the method's own
  output elsewhere); optimization starts from the warped result and adds a temporal loss
  (`temporal_loss`), as in the paper. Where almost nothing is reliable the shot has changed: the
  caller starts afresh (`RELIABLE_FOR_SAME_SHOT`).

Everything but `optical_flow` works on torch tensors: images (1, 3, H, W) in 0..1, flows (2, H, W)
in pixels (x then y), masks (H, W) in 0..1.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

from .filters import gaussian_blur

# Below this fraction of reliable pixels the frames are taken to be from different shots.
RELIABLE_FOR_SAME_SHOT = 0.3
# Forward-backward test (Sundaram et al.; Ruder et al. Eq. 5-6): |w + ŵ|² ≤ a(|w|² + |ŵ|²) + b.
CONSISTENCY_A, CONSISTENCY_B = 0.01, 0.5
# Motion boundaries: |∇u|² + |∇v|² > c|w|² + d marks a pixel unreliable.
BOUNDARY_C, BOUNDARY_D = 0.01, 0.5

# Bicubic keeps strokes crisper than bilinear as results are resampled frame after frame
# (bench_video.py: style distance 1.19x frame by frame's against 1.30x on the pan clip).
WARP_MODE = "bicubic"
# Pixels this close to the previous frame's edge are not carried once the view moves.
BORDER = 6
# Blending keeps the mix's strokes at the fresh frame's contrast above this scale (pixels).
DETAIL_SIGMA = 6.0
MAX_GAIN = 2.0
_local = threading.local()


def _dis() -> object:
    """One DIS solver per thread: it keeps buffers between calls and is not thread-safe."""
    import cv2

    solver = getattr(_local, "dis", None)
    if solver is None:
        solver = _local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return solver


def grey(image: torch.Tensor) -> np.ndarray:
    """An RGB image ((1, 3, H, W) or (3, H, W), 0..1) as the uint8 luma DIS reads."""
    rgb = image[0] if image.ndim == 4 else image
    y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (y.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def optical_flow(source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """The flow w with source(x) ≈ target(x + w(x)), (2, H, W) in pixels, from two uint8 greys."""
    flow = _dis().calc(source, target, None)
    return torch.from_numpy(flow).permute(2, 0, 1).contiguous()


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image sampled at x + flow(x): the image moved onto the frame the flow starts from.
    Samples outside the image take the border's value (those pixels are not reliable)."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    gx = (xs + flow[0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None].to(image.device, image.dtype)
    return F.grid_sample(image, grid, mode=WARP_MODE, padding_mode="border", align_corners=True)


def reliable(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Where the previous frame's result can be carried to the current frame: (H, W) of 0/1.

    backward: flow from the current frame to the previous one (the one `warp` uses);
    forward: flow from the previous frame to the current one. A pixel passes when following
    `backward` and then `forward` brings it back (it was visible in both frames) and its flow
    is smooth there (not a motion boundary, where DIS smears), and it was inside the previous
    frame (not just come into view at an edge)."""
    fwd_at = warp(forward[None], backward)[0]  # forward flow read where the pixel came from
    round_trip = ((backward + fwd_at) ** 2).sum(0)
    magnitude = (backward**2).sum(0) + (fwd_at**2).sum(0)
    consistent = round_trip <= CONSISTENCY_A * magnitude + CONSISTENCY_B
    du_dy, du_dx = torch.gradient(backward[0])
    dv_dy, dv_dx = torch.gradient(backward[1])
    gradient = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2
    smooth = gradient <= BOUNDARY_C * (backward**2).sum(0) + BOUNDARY_D
    h, w = backward.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    x, y = xs + backward[0], ys + backward[1]
    # Not just come into view; and, once the view moves, not from the previous frame's border,
    # where feed-forward networks paint a band of their own that would otherwise be carried in.
    m = torch.where((backward**2).sum(0) > 0.25, float(BORDER), 0.0)
    inside = (x >= m) & (x <= w - 1 - m) & (y >= m) & (y <= h - 1 - m)
    return (consistent & smooth & inside).float()


def flows(previous: torch.Tensor, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(backward, forward) flows between two RGB frames of one size (see `reliable`)."""
    a, b = grey(previous), grey(current)
    return optical_flow(b, a), optical_flow(a, b)


def blend(current: torch.Tensor, carried: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """current where weight is 0, the carried-forward result where it is 1, linear between."""
    w = weight.to(current.device, current.dtype)
    w = w.view(1, 1, *w.shape[-2:])
    return current + w * (carried - current)


def temporal_loss(x: torch.Tensor, carried: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Ruder et al.'s short-term loss, Eq. 7: mean over pixels of c·(x - warped previous)².

    The paper's c is the 0/1 reliability; here it is that times the user's strength, so one
    knob sets both the blend of feed-forward methods and this term's pull."""
    w = weight.to(x.device, x.dtype).view(1, 1, *weight.shape[-2:])
    return (w * (x - carried) ** 2).mean()


def warping_error(
    current: torch.Tensor, previous: torch.Tensor, backward: torch.Tensor, mask: torch.Tensor
) -> float:
    """Lai et al. 2018's measure of flicker: the mean squared difference, on reliable pixels,
    between a stylized frame and the previous stylized frame warped onto it (0..1 units)."""
    diff = ((current - warp(previous, backward)) ** 2).mean(1)[0]
    m = mask.to(diff.dtype)
    return float((diff * m).sum() / m.sum().clamp_min(1.0))


def blend_detail(
    current: torch.Tensor, carried: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """`blend`, with the strokes' contrast kept: how feed-forward results are carried forward.

    Not in Ruder et al., whose optimization re-imposes the style on every frame. A plain blend
    averages two paintings of the same place whose strokes do not line up (a network is not
    shift-equivariant) and resamples the carried one every frame: the strokes fade (style
    distance 1.2-1.3x frame by frame's on bench_video.py's clips). So the mix's detail (what a
    Gaussian of DETAIL_SIGMA removes) is scaled back to the fresh frame's energy, per channel,
    on the carried pixels (a gain of 1 to 2)."""
    mixed = blend(current, carried, weight)
    w = weight.to(current.device, current.dtype).view(1, 1, *weight.shape[-2:])
    hp_cur = current - gaussian_blur(current, DETAIL_SIGMA)
    hp_mix = mixed - gaussian_blur(mixed, DETAIL_SIGMA)
    m = (w > 0).to(current.dtype)
    gain = ((hp_cur**2 * m).sum((2, 3)) / (hp_mix**2 * m).sum((2, 3)).clamp_min(1e-8)).sqrt()
    gain = gain.clamp(1.0, MAX_GAIN).view(1, -1, 1, 1)
    return (mixed + (gain - 1) * hp_mix * m).clamp(0, 1)
