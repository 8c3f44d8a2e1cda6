"""2-D heatmap targets and decoders: Gaussian (MSRA and unbiased), dot annotations, argmax
(+ quarter-pixel shift) and DARK.

Coordinate convention (used by every codec in :mod:`poselab.codecs`)
---------------------------------------------------------------------
Keypoints are ``(x, y)`` in **pixel-centre units**: pixel ``(row i, column j)`` of an image or a
heatmap has its centre at ``x = j, y = i`` and covers ``[j - 0.5, j + 0.5]``. A heatmap with
stride ``s = input / heatmap`` (per axis) tiles the input so that heatmap pixel ``u`` covers
input pixels ``[u*s - 0.5, (u+1)*s - 0.5]``; hence

    x_heat = (x_in + 0.5) / s - 0.5          x_in = (x_heat + 0.5) * s - 0.5

(:func:`input_to_heatmap`, :func:`heatmap_to_input`; exact affine inverses). MMPose's MSRA codec
uses the plain ``x_in / s`` instead; the two differ by ``(s - 1) / (2 s)`` heatmap px (0.375 px at
stride 4). Everything here — encoders and decoders — works in heatmap pixels; the codec objects
(:class:`HeatmapCodec`) convert at the boundary, so encode → decode is an exact round trip up to
the representation's own quantisation.

Inputs may be torch tensors or numpy arrays; outputs are torch tensors. Leading batch dimensions
``...`` are arbitrary (including empty batches of size 0).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ._checks import (_as_tensor, _check_maps, _check_sigma, _keypoints_and_visibility,  # noqa: F401
                      _size2)
from .base import Codec

__all__ = [
    "heatmap_stride", "input_to_heatmap", "heatmap_to_input",
    "encode_gaussian", "encode_dot", "decode_argmax", "decode_dark", "HeatmapCodec",
]


# ----------------------------------------------------------------------------- scale helpers
def heatmap_stride(input_size: Sequence[int], heatmap_size: Sequence[int]) -> tuple[float, float]:
    """Per-axis stride ``(s_x, s_y) = (W_in / W_hm, H_in / H_hm)`` for ``(H, W)`` sizes."""
    hi, wi = _size2(input_size, "input_size")
    hh, wh = _size2(heatmap_size, "heatmap_size")
    return wi / wh, hi / hh


#: Largest heatmap (pixels per map) the encoders build: a typo such as (100000, 100000) would
#: otherwise try to allocate tens of GB per joint.
MAX_HEATMAP_PIXELS = 1 << 24


def _heatmap_size(size) -> tuple[int, int]:
    H, W = _size2(size, "heatmap_size")
    if H * W > MAX_HEATMAP_PIXELS:
        raise ValueError(f"heatmap_size {(H, W)} has {H * W} pixels per map, more than "
                         f"{MAX_HEATMAP_PIXELS}; heatmaps are the input / stride, e.g. (64, 48)")
    return H, W


def _xy(xy) -> torch.Tensor:
    t = _as_tensor(xy, "xy")
    if t.ndim < 1 or t.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (..., 2) holding (x, y), got {tuple(t.shape)}; "
                         "pass keypoints[..., :2] (without the visibility column)")
    return t


def input_to_heatmap(xy, input_size: Sequence[int], heatmap_size: Sequence[int]) -> torch.Tensor:
    """Map ``(..., 2)`` input-pixel coordinates to heatmap pixels: ``(x + 0.5) / s - 0.5``.

    Pixel-centre convention (module docstring); exact inverse of :func:`heatmap_to_input`.
    NaN/Inf pass through unchanged.
    """
    t = _xy(xy)
    sx, sy = heatmap_stride(input_size, heatmap_size)
    s = torch.tensor([sx, sy], dtype=t.dtype, device=t.device)
    return (t + 0.5) / s - 0.5


def heatmap_to_input(xy, input_size: Sequence[int], heatmap_size: Sequence[int]) -> torch.Tensor:
    """Map ``(..., 2)`` heatmap-pixel coordinates to input pixels: ``(x + 0.5) * s - 0.5``."""
    t = _xy(xy)
    sx, sy = heatmap_stride(input_size, heatmap_size)
    s = torch.tensor([sx, sy], dtype=t.dtype, device=t.device)
    return (t + 0.5) * s - 0.5


# ----------------------------------------------------------------------------- encoders
def encode_gaussian(keypoints, visible=None, heatmap_size: Sequence[int] = (64, 48),
                    sigma: float = 2.0, unbiased: bool = False,
                    dtype: torch.dtype = torch.float32):
    """Gaussian heatmap targets with peak 1, one channel per joint.

    ``unbiased=False`` (MSRA / SimpleBaseline, as in MMPose ``MSRAHeatmap``): the Gaussian is
    centred on the rounded pixel ``c = floor(kp + 0.5)`` (= ``int(kp + 0.5)`` for kp >= -0.5) and
    truncated to the square ``(6σ+1)²`` window ``|j - c_x| <= 3σ, |i - c_y| <= 3σ``.
    ``unbiased=True`` (DARK's unbiased encoding): ``exp(-|p - kp|² / 2σ²)`` at the real-valued
    sub-pixel keypoint over the whole map (no window; per-axis factors below 1e-19 in float32 are
    stored as 0 to avoid slow subnormal floats).

    Weights are 1 for a labelled, finite joint whose 3σ window (around ``c`` resp. ``kp``)
    overlaps the map, else 0; the heatmap of a weight-0 joint is all zeros.

    Args:
        keypoints: ``(..., K, 2)`` ``(x, y)`` in heatmap pixels (pixel-centre units).
        visible: ``(..., K)`` COCO visibility (v > 0 = labelled) or bool; ``None`` = all.
        heatmap_size: ``(H, W)``.
        sigma: Gaussian standard deviation in heatmap pixels.
    Returns:
        ``(heatmaps (..., K, H, W) dtype, weights (..., K) dtype)``.
    """
    H, W = _heatmap_size(heatmap_size)
    sigma = _check_sigma(sigma)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    kp, valid = _keypoints_and_visibility(keypoints, visible, work)
    dev = kp.device
    radius = 3.0 * sigma
    centre = kp if unbiased else torch.floor(kp + 0.5)
    cx, cy = centre[..., 0:1], centre[..., 1:2]
    xs = torch.arange(W, dtype=work, device=dev)
    ys = torch.arange(H, dtype=work, device=dev)
    # Exponents below log(tiny)/2 are set to 0 so that products gy*gx never become subnormal
    # floats (which are ~10x slower on CPUs); the values dropped are < 1e-19 (float32).
    floor = 0.5 * math.log(torch.finfo(work).tiny)
    ex = -((xs - cx) ** 2) / (2 * sigma * sigma)
    ey = -((ys - cy) ** 2) / (2 * sigma * sigma)
    gx = torch.exp(ex) * (ex > floor)  # (..., K, W)
    gy = torch.exp(ey) * (ey > floor)  # (..., K, H)
    if not unbiased:
        gx = gx * ((xs - cx).abs() <= radius)
        gy = gy * ((ys - cy).abs() <= radius)
    # The 3σ window overlaps the map iff it overlaps in x and in y.
    inside = ((cx[..., 0] + radius >= 0) & (cx[..., 0] - radius <= W - 1)
              & (cy[..., 0] + radius >= 0) & (cy[..., 0] - radius <= H - 1))
    weights = (valid & inside).to(work)
    heat = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
    return heat.to(dtype), weights.to(dtype)


def encode_dot(keypoints, visible=None, heatmap_size: Sequence[int] = (64, 48),
               bilinear: bool = False, dtype: torch.dtype = torch.float32):
    """Dot-annotation heatmaps (the HDM paper's target): a unit mass per joint.

    ``bilinear=False``: one-hot at the rounded pixel ``floor(kp + 0.5)``.
    ``bilinear=True``: the unit mass split over the four pixels around ``kp`` with bilinear
    weights ``(1-fx)(1-fy), fx(1-fy), (1-fx)fy, fx fy`` (``fx = x - floor(x)``); its centroid is
    exactly ``kp`` when all four pixels are inside. Mass falling outside the map is dropped.

    Weight 1 for a labelled finite joint with some mass inside the map, else 0 (zero map).

    Args/Returns: as :func:`encode_gaussian` (``(..., K, H, W)``, ``(..., K)``).
    """
    H, W = _heatmap_size(heatmap_size)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    kp, valid = _keypoints_and_visibility(keypoints, visible, work)
    dev = kp.device
    xs = torch.arange(W, dtype=work, device=dev)
    ys = torch.arange(H, dtype=work, device=dev)
    x, y = kp[..., 0:1], kp[..., 1:2]
    if bilinear:
        # tent kernel max(0, 1 - |p - kp|) is exactly the bilinear split along each axis
        gx = torch.clamp(1.0 - (xs - x).abs(), min=0.0)
        gy = torch.clamp(1.0 - (ys - y).abs(), min=0.0)
    else:
        gx = (xs == torch.floor(x + 0.5)).to(work)
        gy = (ys == torch.floor(y + 0.5)).to(work)
    inside = (gx.sum(-1) > 0) & (gy.sum(-1) > 0)
    weights = (valid & inside).to(work)
    heat = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
    return heat.to(dtype), weights.to(dtype)


# ----------------------------------------------------------------------------- decoders
def _flat_maps(heatmaps):
    """Checked ``(..., H, W)`` maps -> (maps, leading shape, ``(N, H, W)`` view)."""
    h = _check_maps(heatmaps, "heatmaps")
    return h, h.shape[:-2], h.reshape(-1, *h.shape[-2:])


def _no_keypoints(lead, device):
    """Decoders' result for an empty batch: ``(coords (*lead, 2), scores lead)`` zeros."""
    return (torch.zeros(*lead, 2, dtype=torch.float32, device=device),
            torch.zeros(lead, dtype=torch.float32, device=device))


def _argmax2d(maps: torch.Tensor):
    """``maps (N, H, W)`` -> ``(x (N,) long, y (N,) long, value (N,))`` of the first maximum."""
    N, H, W = maps.shape
    val, idx = maps.reshape(N, H * W).max(-1)
    return idx % W, torch.div(idx, W, rounding_mode="floor"), val


def decode_argmax(heatmaps, refine: str | None = "quarter"):
    """Decode heatmaps by their maximum (SimpleBaseline/HRNet decoding, BCIR Eq. 2).

    ``refine="quarter"``: move 0.25 px from the maximum toward the higher of its two neighbours,
    separately in x and y (no shift when they are equal, or at the map border where a neighbour
    is missing). ``refine=None``: the integer argmax pixel.

    Args:
        heatmaps: ``(..., K, H, W)`` (any ``(..., H, W)`` works), finite.
    Returns:
        ``(coords (..., 2) float32 heatmap px, scores (...,) = maximum value)``.
    Raises:
        ValueError on NaN/Inf maps or an unknown ``refine``.
    """
    if refine not in ("quarter", None):
        raise ValueError(f"refine must be 'quarter' or None, got {refine!r}")
    h, lead, maps = _flat_maps(heatmaps)
    H, W = maps.shape[-2:]
    if maps.shape[0] == 0:
        return _no_keypoints(lead, h.device)
    x, y, val = _argmax2d(maps)
    coords = torch.stack([x, y], -1).to(torch.float32)
    if refine == "quarter":
        flat = maps.reshape(maps.shape[0], H * W)

        def at(xx, yy):
            xx = xx.clamp(0, W - 1)
            yy = yy.clamp(0, H - 1)
            return flat.gather(1, (yy * W + xx)[:, None])[:, 0]

        dx = torch.sign(at(x + 1, y) - at(x - 1, y)) * ((x >= 1) & (x <= W - 2))
        dy = torch.sign(at(x, y + 1) - at(x, y - 1)) * ((y >= 1) & (y <= H - 2))
        coords = coords + 0.25 * torch.stack([dx, dy], -1).to(torch.float32)
    return coords.reshape(*lead, 2), val.to(torch.float32).reshape(lead)


def _cv2_sigma(kernel: int) -> float:
    """OpenCV's default Gaussian sigma for an odd kernel size (as used by DARK's blur)."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def _blurred_stencil(maps: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, kernel: int):
    """The 3x3 patch around ``(cx, cy)`` of the Gaussian-blurred maps, ``(N, 3, 3)``.

    Equal to the full map blurred with a separable ``kernel``-tap Gaussian of OpenCV's default σ
    (zero padding: the map is taken to be 0 outside, as heatmaps are; of zero / replicate /
    reflect / normalised padding this biased DARK least near the border in our round-trip test),
    then cropped to ``[cy-1:cy+2, cx-1:cx+2]``; only the ``(kernel + 2)²`` window around each
    stencil is gathered and blurred, so the cost does not grow with the map size.
    ``kernel=1`` returns the raw patch.
    """
    N, H, W = maps.shape
    r = kernel // 2
    size = 2 * r + 3
    padded = F.pad(maps, (r, r, r, r)).reshape(N, -1)  # zeros outside the map
    Wp = W + 2 * r
    ar = torch.arange(size, device=maps.device)
    rows = (cy - 1)[:, None] + ar  # padded row index of (cy - 1 - r) + t is cy - 1 + t
    cols = (cx - 1)[:, None] + ar
    idx = (rows[:, :, None] * Wp + cols[:, None, :]).reshape(N, -1)
    window = padded.gather(1, idx).reshape(N, size, size)
    if kernel == 1:
        return window
    sigma = _cv2_sigma(kernel)
    t = torch.arange(-r, r + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = k / k.sum()
    cols3 = torch.stack([window[:, :, b:b + kernel] @ k for b in range(3)], -1)  # (N, size, 3)
    return torch.stack([(cols3[:, a:a + kernel, :] * k[:, None]).sum(1) for a in range(3)], 1)


def decode_dark(heatmaps, kernel: int | None = 11, eps: float = 1e-10):
    """DARK decoding (Zhang et al., CVPR 2020): one Newton step on the log of the blurred map.

    1. blur each map with a Gaussian of OpenCV's default sigma for ``kernel`` (11 -> σ = 2;
       zero padding); ``kernel=None`` (or 1) skips the blur — right for exact Gaussian
       targets, whose log is already quadratic;
    2. ``L = log(max(blurred, eps))``;
    3. at the stencil centre ``c`` = argmax of the *unblurred* map clamped to ``[1, W-2] x
       [1, H-2]`` take central-difference gradient ``g`` and Hessian ``Hs`` (3x3 stencil) and
       return ``c - Hs^{-1} g`` (the vertex of the fitted quadratic; DARK Eq. 5). Without blur,
       clamping the stencil lets a maximum on the border pixel still be refined (exact for a
       Gaussian, whose log is quadratic); with blur, border maxima are left unrefined as in
       DARK (the blur's zero padding skews the border pixels).
    The step is skipped (argmax returned) when ``Hs`` is not negative definite, and the result
    is clamped to the argmax pixel's own area (±0.5 px per axis): for a symmetric unimodal blob
    the largest sample is the pixel nearest the mode, so the mode lies in that area. Maps smaller than 3x3 are not refined.

    Args:
        heatmaps: ``(..., H, W)`` finite.
        kernel: odd blur kernel size or None.
    Returns:
        ``(coords (..., 2) float32 heatmap px, scores (...,) = max of the unblurred map)``.
    """
    if kernel is not None and (int(kernel) != kernel or kernel < 1 or kernel % 2 == 0):
        raise ValueError(f"kernel must be an odd positive int or None, got {kernel!r}")
    h, lead, maps = _flat_maps(heatmaps)
    H, W = maps.shape[-2:]
    if maps.shape[0] == 0:
        return _no_keypoints(lead, h.device)
    x, y, val = _argmax2d(maps)
    coords = torch.stack([x, y], -1).to(torch.float64)
    if H >= 3 and W >= 3:
        cx, cy = x.clamp(1, W - 2), y.clamp(1, H - 2)
        blurred = kernel is not None and kernel > 1
        patch = _blurred_stencil(maps, cx, cy, int(kernel) if blurred else 1)  # (N, 3, 3)
        L = torch.log(patch.to(torch.float64).clamp_min(eps))

        def at(dx, dy):
            return L[:, 1 + dy, 1 + dx]

        l00 = at(0, 0)
        gx = 0.5 * (at(1, 0) - at(-1, 0))
        gy = 0.5 * (at(0, 1) - at(0, -1))
        hxx = at(1, 0) - 2 * l00 + at(-1, 0)
        hyy = at(0, 1) - 2 * l00 + at(0, -1)
        hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = hxx * hyy - hxy * hxy
        ok = (hxx < 0) & (det > 1e-12)
        if blurred:  # the zero-padded blur skews the border pixels: refine interior maxima only
            ok = ok & (cx == x) & (cy == y)
        safe = torch.where(ok, det, torch.ones_like(det))
        ox = -(hyy * gx - hxy * gy) / safe
        oy = -(hxx * gy - hxy * gx) / safe
        ref = torch.stack([cx + ox, cy + oy], -1)
        ref = torch.minimum(torch.maximum(ref, coords - 0.5), coords + 0.5)
        coords = torch.where(ok[:, None], ref, coords)
    return coords.to(torch.float32).reshape(*lead, 2), val.to(torch.float32).reshape(lead)


# ----------------------------------------------------------------------------- codec object
class HeatmapCodec(Codec):
    """Keypoints in input pixels <-> 2-D heatmaps (Gaussian or dot), one object per setting.

    ``codec.encode(keypoints (..., K, 2) input px, visible (..., K))`` returns
    ``{"target": (..., K, H, W) float32, "weights": (..., K) float32}`` and is usable directly as
    a dataset ``target_fn`` (``codec(keypoints, visible)`` is the same call).
    ``codec.decode(heatmaps (..., K, H, W))`` returns ``(coords (..., K, 2) input px,
    scores (..., K))`` (:class:`poselab.codecs.Codec` protocol: the maps must be
    ``heatmap_size``, else a ValueError names both sizes).

    Args:
        input_size, heatmap_size: ``(H, W)``.
        sigma: Gaussian σ in heatmap px (ignored for dot targets).
        unbiased: sub-pixel-centred full-map Gaussian instead of MSRA's rounded, truncated one.
        target: ``"gaussian"``, ``"dot"`` or ``"bilinear_dot"``.
        decoder: ``"quarter"`` (argmax + 0.25 px shift), ``"argmax"`` or ``"dark"``.
        dark_kernel: blur kernel for DARK (None = no blur).
    """

    TARGETS = ("gaussian", "dot", "bilinear_dot")
    DECODERS = ("quarter", "argmax", "dark")

    def __init__(self, input_size=(256, 192), heatmap_size=(64, 48), sigma: float = 2.0,
                 unbiased: bool = False, target: str = "gaussian", decoder: str = "quarter",
                 dark_kernel: int | None = 11):
        self.input_size = _size2(input_size, "input_size")
        self.heatmap_size = _heatmap_size(heatmap_size)
        self.sigma = _check_sigma(sigma)
        if target not in self.TARGETS:
            raise ValueError(f"target must be one of {self.TARGETS}, got {target!r}")
        if decoder not in self.DECODERS:
            raise ValueError(f"decoder must be one of {self.DECODERS}, got {decoder!r}")
        self.unbiased, self.target, self.decoder = bool(unbiased), target, decoder
        self.dark_kernel = dark_kernel
        self._remember(input_size=self.input_size, heatmap_size=self.heatmap_size, sigma=self.sigma,
                       unbiased=self.unbiased, target=target, decoder=decoder, dark_kernel=dark_kernel)

    def __repr__(self) -> str:
        return (f"HeatmapCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}, unbiased={self.unbiased}, target={self.target!r}, "
                f"decoder={self.decoder!r})")

    def to_heatmap(self, keypoints) -> torch.Tensor:
        return input_to_heatmap(keypoints, self.input_size, self.heatmap_size)

    def to_input(self, coords) -> torch.Tensor:
        return heatmap_to_input(coords, self.input_size, self.heatmap_size)

    def encode(self, keypoints, visible=None) -> dict:
        kp = self.to_heatmap(_as_tensor(keypoints, "keypoints"))
        if self.target == "gaussian":
            heat, w = encode_gaussian(kp, visible, self.heatmap_size, self.sigma, self.unbiased)
        else:
            heat, w = encode_dot(kp, visible, self.heatmap_size, self.target == "bilinear_dot")
        return {"target": heat, "weights": w}

    __call__ = encode

    def decode(self, heatmaps):
        heatmaps = _check_maps(heatmaps, "heatmaps")
        self.check_map_size(heatmaps, "heatmap")
        if self.decoder == "dark":
            coords, scores = decode_dark(heatmaps, kernel=self.dark_kernel)
        else:
            coords, scores = decode_argmax(heatmaps, refine="quarter" if self.decoder == "quarter" else None)
        return self.to_input(coords), scores
