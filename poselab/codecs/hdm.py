"""Heatmap Distribution Matching codec (Qu et al., NeurIPS 2022): sub-pixel demanders and
four-pixel decoding.

Coordinates follow the poselab convention: ``(x, y)`` in heatmap pixels, pixel ``(i, j)``
(row ``i``, column ``j``) has its centre at ``x = j, y = i``.

- :func:`subpixel_demanders` — HDM Eq. 4: a keypoint becomes four weighted "demanders" at the
  pixel centres around it, with bilinear masses that sum to 1 and whose weighted mean is the
  keypoint exactly.
- :func:`naive_demanders` — the Table 4 baseline: one demander at the centre of the pixel that
  contains the keypoint (returned in the same 4-corner layout with one-hot masses).
- :func:`decode_four_pixel` — HDM §3.4: the 2×2 square of pixels with the largest sum,
  normalised, weighted mean of its pixel centres.
- :class:`FourPixelCodec` — the codec of an EMD-trained heatmap model: dot targets, four-pixel
  decoding, knows its stride (from ``input_size`` and ``heatmap_size``).
"""
from __future__ import annotations

import torch

from .heatmap import HeatmapCodec

__all__ = ["subpixel_demanders", "naive_demanders", "decode_four_pixel", "CORNER_OFFSETS", "FourPixelCodec"]

# Order of the four demanders: (x0, y0), (x0+1, y0), (x0, y0+1), (x0+1, y0+1) with
# (x0, y0) = floor(keypoint). Offsets are (dx, dy).
CORNER_OFFSETS = ((0, 0), (1, 0), (0, 1), (1, 1))


def _check_keypoints(keypoints: torch.Tensor) -> torch.Tensor:
    keypoints = torch.as_tensor(keypoints)
    if not keypoints.is_floating_point():
        keypoints = keypoints.to(torch.get_default_dtype())
    if keypoints.ndim < 1 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (..., 2) holding (x, y) in heatmap pixels, "
                         f"got {tuple(keypoints.shape)}")
    if not torch.isfinite(keypoints).all():
        raise ValueError("keypoints contain NaN/inf; replace unlabelled joints by any finite value "
                         "(e.g. 0) and mask them out with the visibility instead")
    return keypoints


def _corner_positions(keypoints: torch.Tensor) -> torch.Tensor:
    """(..., 4, 2) integer-valued positions of the unit cell's corners around each keypoint."""
    base = torch.floor(keypoints)
    offsets = torch.tensor(CORNER_OFFSETS, dtype=keypoints.dtype, device=keypoints.device)
    return base.unsqueeze(-2) + offsets


def subpixel_demanders(keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Four sub-pixel demanders of a dot annotation (HDM §3.2, Eq. 4).

    The paper splits the pixel containing the dot into four sub-pixels, finds the sub-pixel the
    dot lies in and places demanders at the centres of that pixel and of the three pixels
    adjacent to the sub-pixel. With pixel centres at integers this is exactly the unit cell of
    pixel centres containing the dot: corners ``floor(x) + {0, 1}`` × ``floor(y) + {0, 1}``.
    Masses (Eq. 4 with pixel size g = 1): ``d_i = (1 - |x - x_i|) (1 - |y - y_i|)``, i.e.
    bilinear weights, so ``Σ d_i = 1`` and ``Σ d_i p_i = (x, y)`` exactly.

    Args:
        keypoints: ``(..., 2)`` float tensor of ``(x, y)`` in heatmap pixels (finite).

    Returns:
        positions ``(..., 4, 2)`` (order :data:`CORNER_OFFSETS`) and masses ``(..., 4)``.
        Demanders may lie outside the heatmap (a keypoint in the last column puts two of them
        at ``x = W``, with mass ``≤ 1/2``); the transport cost is defined for any position.

    Example:
        >>> pos, m = subpixel_demanders(torch.tensor([2.25, 3.5]))
        >>> (m[:, None] * pos).sum(0)
        tensor([2.2500, 3.5000])
    """
    keypoints = _check_keypoints(keypoints)
    positions = _corner_positions(keypoints)
    distance = (keypoints.unsqueeze(-2) - positions).abs()
    masses = (1.0 - distance[..., 0]) * (1.0 - distance[..., 1])
    return positions, masses


def naive_demanders(keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One demander at the centre of the pixel containing the dot (HDM Fig. 2a, Table 4 row 2).

    The pixel containing ``x`` is ``floor(x + 1/2)``, which is one of the four corners of
    :func:`subpixel_demanders`; it is returned in the same layout with a one-hot mass so both
    formulations share the transport solver.

    Returns:
        positions ``(..., 4, 2)`` and one-hot masses ``(..., 4)``.
    """
    keypoints = _check_keypoints(keypoints)
    positions = _corner_positions(keypoints)
    nearest = torch.floor(keypoints + 0.5)
    hit = (positions == nearest.unsqueeze(-2)).all(dim=-1)
    return positions, hit.to(keypoints.dtype)


def decode_four_pixel(heatmaps: torch.Tensor, return_scores: bool = False):
    """Four-pixel decoding (HDM §3.4).

    Choose the square of 2×2 adjacent pixels whose values have the largest sum, normalise the
    four values to sum 1 and return the weighted mean of their pixel centres (the inverse of
    Eq. 4). Values are passed through ReLU first, like the suppliers of Eq. 3 (this changes
    nothing for non-negative heatmaps and keeps the result inside the square otherwise). If all
    four values of the best square are ≤ 0 the square's centre is returned.

    Args:
        heatmaps: ``(..., H, W)`` with ``H, W ≥ 2``.
        return_scores: also return the best square's sum ``(...)`` (a confidence).

    Raises:
        ValueError: fewer than 2 dims, a map smaller than 2×2, or any NaN/Inf value.

    Returns:
        coords ``(..., 2)`` as ``(x, y)`` in heatmap pixels (same dtype as ``heatmaps``), and
        the scores if requested. Ties pick the first square in row-major order.
    """
    heatmaps = torch.as_tensor(heatmaps)
    if heatmaps.ndim < 2:
        raise ValueError(f"heatmaps must have shape (..., H, W), got {tuple(heatmaps.shape)}")
    if not heatmaps.is_floating_point():
        heatmaps = heatmaps.to(torch.get_default_dtype())
    if heatmaps.numel() and not bool(torch.isfinite(heatmaps).all()):
        # a NaN would otherwise give a finite location with a NaN score (a silent NaN)
        bad = int((~torch.isfinite(heatmaps)).sum())
        raise ValueError(f"heatmaps contain {bad} NaN/Inf value(s); four-pixel decoding needs "
                         "finite maps (check the network output, e.g. a diverged loss)")
    H, W = heatmaps.shape[-2:]
    if H < 2 or W < 2:
        raise ValueError(f"four-pixel decoding needs heatmaps of at least 2×2, got {H}×{W}")
    lead = heatmaps.shape[:-2]
    h = torch.relu(heatmaps.reshape(-1, H, W))
    sums = h[:, :-1, :-1] + h[:, :-1, 1:] + h[:, 1:, :-1] + h[:, 1:, 1:]
    best = sums.flatten(1).argmax(dim=1)
    y0 = torch.div(best, W - 1, rounding_mode="floor")
    x0 = best - y0 * (W - 1)
    rows = torch.arange(h.shape[0], device=h.device)
    vals = torch.stack([h[rows, y0, x0], h[rows, y0, x0 + 1],
                        h[rows, y0 + 1, x0], h[rows, y0 + 1, x0 + 1]], dim=1)  # corner order
    total = vals.sum(dim=1, keepdim=True)
    ok = total > 0
    weights = torch.where(ok, vals / torch.where(ok, total, torch.ones_like(total)),
                          torch.full_like(vals, 0.25))
    offsets = torch.tensor(CORNER_OFFSETS, dtype=h.dtype, device=h.device)  # (4, 2) as (dx, dy)
    coords = torch.stack([x0, y0], dim=1).to(h.dtype) + weights @ offsets
    coords = coords.reshape(*lead, 2)
    if return_scores:
        return coords, sums.flatten(1).gather(1, best[:, None]).reshape(lead)
    return coords


class FourPixelCodec(HeatmapCodec):
    """:class:`HeatmapCodec` whose ``decode`` is HDM's four-pixel rule (§3.4).

    ``decode(heatmaps (..., K, H, W)) -> (coords (..., K, 2) input px, scores (..., K))``; the
    score is the share of the map's positive mass inside the chosen 2×2 square (in [0, 1],
    independent of the map's scale, which the EMD loss leaves free). Encoding is the parent's
    (``target="dot"`` by default: the dot annotation EMD matches).
    """

    def __init__(self, input_size=(64, 48), heatmap_size=(16, 12), target: str = "dot", **kw):
        super().__init__(input_size, heatmap_size, target=target, **kw)

    def decode(self, heatmaps):
        h = torch.as_tensor(heatmaps)
        if h.ndim < 3:
            raise ValueError(f"heatmaps must have shape (..., K, H, W), got {tuple(h.shape)}")
        if not h.is_floating_point():  # bool / integer maps score like decode_four_pixel reads them
            h = h.to(torch.get_default_dtype())
        self.check_map_size(h, "heatmap")
        coords, square = decode_four_pixel(h, return_scores=True)
        total = torch.relu(h).sum(dim=(-2, -1))
        scores = torch.where(total > 0, square / total.clamp_min(1e-12), torch.zeros_like(total))
        return self.to_input(coords), scores.to(torch.float32)
