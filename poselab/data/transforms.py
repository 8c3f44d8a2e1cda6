"""Top-down crop geometry: box → (center, scale), affine crops, flips and the inverse mapping.

Conventions (DEVELOPERS.md): sizes are ``(H, W)``; points are ``(x, y)`` in **pixel-centre**
coordinates — pixel ``(i, j)`` has its centre at ``x = j, y = i`` and covers
``[j - 0.5, j + 0.5] × [i - 0.5, i + 0.5]``. The same convention holds in the image and in the
crop, so a crop of size ``(H, W)`` covers ``x ∈ [-0.5, W - 0.5]``, ``y ∈ [-0.5, H - 0.5]``.

The crop of a person is described by ``center = (cx, cy)`` and ``scale = (w, h)``: the
axis-aligned window ``[cx - w/2, cx + w/2] × [cy - h/2, cy + h/2]`` of the image (edges, not
centres) is mapped onto the whole output ``(H, W)``. In formulas (rotation θ, counter-clockwise
in the (x, y) axes, i.e. clockwise on screen because y points down)::

    crop = D · R(θ) · (p − c) + o,   D = diag(W / w, H / h),   o = ((W − 1) / 2, (H − 1) / 2)
    p    = c + R(θ)ᵀ · D⁻¹ · (crop − o)

With θ = 0 the window edge ``cx − w/2`` lands on the crop edge ``−0.5`` and ``cx + w/2`` on
``W − 0.5``. Unlike the HRNet code, ``scale`` is in pixels (no ``/200``).

All functions here are numpy (float64); :func:`apply_affine`, :func:`flip_keypoints`,
:func:`crop_to_image` and :func:`image_to_crop` also accept torch tensors and broadcast over
leading batch axes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from poselab.skeleton import FLIP_INDEX, NUM_KEYPOINTS

__all__ = [
    "bbox_to_center_scale", "affine_matrix", "warp_image", "apply_affine", "flip_keypoints",
    "flip_matrix", "crop_to_image", "image_to_crop", "BBOX_PADDING",
]

#: Default enlargement of the person box before cropping (HRNet / SimpleBaseline use 1.25).
BBOX_PADDING = 1.25
#: Largest zoom (window px per output px, or its inverse) :func:`affine_matrix` accepts; beyond it
#: the matrix is numerically singular and the crop meaningless.
_MAX_ZOOM = 1e5
#: Largest crop :func:`warp_image` makes (pixels): a typo such as (100000, 100000) would otherwise
#: allocate 30 GB.
_MAX_OUTPUT_PIXELS = 1 << 26


def _size_hw(size: Sequence[int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(size[0]), int(size[1]))
        if len(size) != 2 or isinstance(size, str) or h != size[0] or w != size[1]:
            raise TypeError
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{name} must be a (H, W) pair of positive ints, got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be a (H, W) pair of positive ints, got {size!r}")
    return h, w


def bbox_to_center_scale(bbox_xywh, input_size, padding: float = BBOX_PADDING):
    """Crop window of a person box, enlarged by ``padding`` and fixed to the input aspect ratio.

    Args:
        bbox_xywh: ``(4,)`` COCO box ``[x, y, w, h]``, read as the interval ``[x, x + w]`` in the
            keypoints' coordinate system, so its centre is ``(x + w/2, y + h/2)``.
        input_size: ``(H, W)`` of the crop the window will be mapped to.
        padding: enlargement factor applied to both sides (1.25 as in SimpleBaseline/HRNet).

    Returns:
        ``center`` ``(2,)`` float64 ``(cx, cy)`` and ``scale`` ``(2,)`` float64 ``(w, h)`` in
        image pixels with ``w / h == W / H``: the shorter side (relative to the target aspect) is
        grown, never shrunk, so the whole box stays inside the window.
    """
    box = np.asarray(bbox_xywh, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"bbox_xywh must have shape (4,) [x, y, w, h], got {box.shape}")
    if not np.isfinite(box).all():
        raise ValueError(f"bbox_xywh must be finite, got {box.tolist()}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"bbox width and height must be > 0, got w={w}, h={h}; skip zero-area "
                         "boxes or build the box from the labelled keypoints")
    if not (np.isfinite(padding) and padding > 0):
        raise ValueError(f"padding must be a positive number, got {padding}")
    in_h, in_w = _size_hw(input_size, "input_size")
    aspect = in_w / in_h
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    center = np.array([x + box[2] * 0.5, y + box[3] * 0.5], dtype=np.float64)
    scale = np.array([w, h], dtype=np.float64) * float(padding)
    return center, scale


def affine_matrix(center, scale, output_size, rotation_deg: float = 0.0, inverse: bool = False):
    """The ``(2, 3)`` float64 matrix mapping image points to crop points (or back).

    ``crop = D · R(θ) · (p − c) + o`` (see module docstring); ``inverse=True`` returns the matrix
    of ``p = c + R(θ)ᵀ · D⁻¹ · (crop − o)``. Apply it with :func:`apply_affine`.

    Args:
        center: ``(2,)`` window centre ``(cx, cy)`` in image pixels.
        scale: ``(2,)`` window size ``(w, h)`` in image pixels (both > 0).
        output_size: ``(H, W)`` of the crop.
        rotation_deg: rotation θ in degrees (positive turns the content clockwise on screen).
        inverse: return the crop → image matrix instead.
    """
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    if c.shape != (2,) or s.shape != (2,):
        raise ValueError(f"center and scale must have shape (2,), got {c.shape} and {s.shape}")
    if not (np.isfinite(c).all() and np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"center must be finite and scale finite and > 0, got center={c.tolist()}, "
                         f"scale={s.tolist()}")
    out_h, out_w = _size_hw(output_size, "output_size")
    try:
        rotation_ok = not isinstance(rotation_deg, (bool, str)) and np.isfinite(float(rotation_deg))
    except (TypeError, ValueError):
        rotation_ok = False
    if not rotation_ok:
        raise ValueError(f"rotation_deg must be a finite number of degrees, got {rotation_deg!r}")
    ratio = max(s[0] / out_w, s[1] / out_h, out_w / s[0], out_h / s[1])
    if ratio > _MAX_ZOOM:
        raise ValueError(f"the crop window {s.tolist()} (w, h) px cannot be mapped to an output of "
                         f"{out_h}x{out_w} (H x W): a zoom of {ratio:.3g}x exceeds {_MAX_ZOOM:g}x; "
                         "check the bbox/scale (a corrupt annotation?)")
    theta = np.deg2rad(float(rotation_deg))
    cos, sin = np.cos(theta), np.sin(theta)
    rot = np.array([[cos, -sin], [sin, cos]], dtype=np.float64)
    d = np.array([out_w / s[0], out_h / s[1]], dtype=np.float64)
    o = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0], dtype=np.float64)
    if not inverse:
        a = d[:, None] * rot
        t = o - a @ c
    else:
        a = rot.T / d[None, :]
        t = c - a @ o
    return np.concatenate([a, t[:, None]], axis=1)


def flip_matrix(width: int):
    """``(2, 3)`` matrix of the horizontal mirror ``x → width − 1 − x`` (pixel centres)."""
    return np.array([[-1.0, 0.0, float(width) - 1.0], [0.0, 1.0, 0.0]], dtype=np.float64)


def _compose(outer, inner):
    """``(2, 3)`` matrix of ``outer ∘ inner`` (apply ``inner`` first)."""
    a = outer[:, :2] @ inner[:, :2]
    t = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.concatenate([a, t[:, None]], axis=1)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def apply_affine(points, matrix):
    """Apply a ``(2, 3)`` affine matrix to points ``(..., 2)`` (numpy float64 or torch tensor).

    Returns ``points @ A.T + t`` with the same leading shape. Extra columns (e.g. a visibility
    column of ``(K, 3)`` keypoints) are not accepted: pass ``keypoints[..., :2]``.
    """
    if _is_torch(points):
        import torch  # deferred: poselab.data works without torch (torch input brings it)
        m = torch.as_tensor(np.asarray(matrix), dtype=points.dtype, device=points.device)
        if points.shape[-1] != 2 or m.shape != (2, 3):
            raise ValueError(f"points must be (..., 2) and matrix (2, 3), got {tuple(points.shape)} "
                             f"and {tuple(m.shape)}")
        return points @ m[:, :2].T + m[:, 2]
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    if p.shape[-1:] != (2,) or m.shape != (2, 3):
        raise ValueError(f"points must be (..., 2) and matrix (2, 3), got {p.shape} and {m.shape}")
    return p @ m[:, :2].T + m[:, 2]


def warp_image(image, matrix, output_size, fill=(0, 0, 0)):
    """Crop an image with the image → crop ``matrix`` (as from :func:`affine_matrix`).

    Bilinear interpolation (PIL ``Image.transform(..., AFFINE, BILINEAR)``), no anti-aliasing
    pre-filter (like ``cv2.warpAffine(INTER_LINEAR)`` in the reference code); output pixels whose
    source lies outside the image get ``fill``. Crop pixel ``(i, j)`` takes the image value at
    the continuous point ``matrix⁻¹ · (j, i)`` in pixel-centre coordinates (PIL itself samples at
    pixel edges + 0.5; the half-pixel shift is folded into the coefficients here).

    Args:
        image: ``(H_img, W_img, 3)`` uint8 array or an RGB ``PIL.Image``.
        matrix: ``(2, 3)`` image → crop matrix.
        output_size: ``(H, W)`` of the crop.
    Returns:
        ``(H, W, 3)`` uint8 array.
    """
    out_h, out_w = _size_hw(output_size, "output_size")
    if out_h * out_w > _MAX_OUTPUT_PIXELS:
        raise ValueError(f"output_size {(out_h, out_w)} is {out_h * out_w} pixels, more than the "
                         f"{_MAX_OUTPUT_PIXELS} a crop may have; pass the crop size (H, W), e.g. "
                         "(256, 192)")
    if isinstance(image, Image.Image):
        pil = image if image.mode == "RGB" else image.convert("RGB")
    else:
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W, 3) uint8 array, got shape {arr.shape} "
                             f"dtype {arr.dtype}")
        pil = Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3) or not np.isfinite(m).all():
        raise ValueError(f"matrix must be a finite (2, 3) array, got shape {m.shape}")
    a = m[:, :2]
    det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    if abs(det) < 1e-12:
        raise ValueError(f"matrix is singular (determinant {det:.3g}): the crop window is far "
                         "larger than the output; check the bbox / scale passed to affine_matrix")
    a_inv = np.array([[a[1, 1], -a[0, 1]], [-a[1, 0], a[0, 0]]]) / det
    t_inv = -a_inv @ m[:, 2]
    # PIL: src_edge = A · dst_edge + c, with edge = centre + 0.5 on both sides.
    c = t_inv + 0.5 - a_inv @ np.array([0.5, 0.5])
    data = (a_inv[0, 0], a_inv[0, 1], c[0], a_inv[1, 0], a_inv[1, 1], c[1])
    out = pil.transform((out_w, out_h), Image.Transform.AFFINE, data,
                        resample=Image.Resampling.BILINEAR, fillcolor=tuple(fill))
    return np.asarray(out)


def flip_keypoints(keypoints, width: int):
    """Mirror keypoints horizontally inside an image of ``width`` columns and swap left/right.

    ``x → width − 1 − x`` (pixel-centre convention, so the mirror axis is ``x = (width − 1)/2``),
    then joint ``k`` of the result is the mirrored joint ``FLIP_INDEX[k]`` (a left wrist becomes
    the right wrist). Works on ``(..., K, 2)`` or ``(..., K, 3)`` (the third column, e.g. the
    visibility flag, is carried along unchanged); numpy or torch. Flipping twice is the identity.
    Unlabelled joints (v = 0, stored as x = 0) are mirrored like the others; mask them with v.
    """
    if not _is_torch(keypoints):
        keypoints = np.asarray(keypoints, dtype=np.float64)
    if isinstance(width, bool) or not isinstance(width, (int, float, np.integer, np.floating)) or (
            not np.isfinite(width) or width < 1 or int(width) != width):
        raise ValueError(f"width must be the image width in pixels (a positive int), got {width!r}")
    if keypoints.ndim < 2 or keypoints.shape[-2] != NUM_KEYPOINTS or keypoints.shape[-1] not in (2, 3):
        raise ValueError(f"keypoints must be (..., {NUM_KEYPOINTS}, 2|3), got "
                         f"{tuple(keypoints.shape)}")
    index = list(FLIP_INDEX)
    if _is_torch(keypoints):
        out = keypoints[..., index, :].clone()
    else:
        out = np.array(np.asarray(keypoints)[..., index, :], dtype=np.float64)
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def _window_maps(center, scale, input_size, points):
    h, w = _size_hw(input_size, "input_size")
    size = np.array([w, h], dtype=np.float64)
    o = (size - 1.0) / 2.0
    if _is_torch(points):
        import torch  # deferred: poselab.data works without torch (torch input brings it)
        c = torch.as_tensor(center, dtype=points.dtype, device=points.device)
        s = torch.as_tensor(scale, dtype=points.dtype, device=points.device)
        if not (bool(torch.isfinite(c).all()) and bool((s > 0).all()) and bool(torch.isfinite(s).all())):
            raise ValueError("center must be finite and scale finite and > 0 (the crop window in "
                             "image pixels, as TopDownDataset items give them)")
        size_t = torch.as_tensor(size, dtype=points.dtype, device=points.device)
        o_t = torch.as_tensor(o, dtype=points.dtype, device=points.device)
        return c.unsqueeze(-2), s.unsqueeze(-2), size_t, o_t
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    if c.shape[-1:] != (2,) or s.shape[-1:] != (2,):
        raise ValueError(f"center and scale must be (..., 2), got {c.shape} and {s.shape}")
    if not (np.isfinite(c).all() and np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("center must be finite and scale finite and > 0 (the crop window in "
                         "image pixels, as TopDownDataset items give them)")
    return c[..., None, :], s[..., None, :], size, o


def crop_to_image(points_crop, center, scale, input_size):
    """Map crop coordinates back to the image (inverse of an un-rotated top-down crop).

    ``p = c + (q − o) · scale / (W, H)`` with ``o = ((W − 1)/2, (H − 1)/2)``, i.e. the inverse
    of :func:`affine_matrix` with θ = 0, vectorised over a batch.

    Args:
        points_crop: ``(..., K, 2)`` points in crop pixels (numpy or torch).
        center: ``(..., 2)`` crop centres in image pixels (leading axes as points_crop's).
        scale: ``(..., 2)`` crop window sizes ``(w, h)`` in image pixels.
        input_size: ``(H, W)`` of the crop.
    Returns:
        ``(..., K, 2)`` image points (float64 for numpy input, input dtype for torch).
    """
    if points_crop.shape[-1] != 2:
        raise ValueError(f"points_crop must be (..., K, 2), got {tuple(points_crop.shape)}")
    c, s, size, o = _window_maps(center, scale, input_size, points_crop)
    q = points_crop if _is_torch(points_crop) else np.asarray(points_crop, dtype=np.float64)
    return c + (q - o) * (s / size)


def image_to_crop(points, center, scale, input_size):
    """Map image points into an un-rotated crop: ``q = o + (p − c) · (W, H) / scale``.

    Shapes as :func:`crop_to_image`; the two are exact inverses.
    """
    if points.shape[-1] != 2:
        raise ValueError(f"points must be (..., K, 2), got {tuple(points.shape)}")
    c, s, size, o = _window_maps(center, scale, input_size, points)
    p = points if _is_torch(points) else np.asarray(points, dtype=np.float64)
    return o + (p - c) * (size / s)
