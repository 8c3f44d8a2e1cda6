r"""Cost geometry and Gibbs kernels of the HDM transport problem.

Every problem (one joint) transports the ``P = H·W`` pixel suppliers to the four demanders on
the corners of the unit cell of pixel centres around the keypoint (HDM Eq. 4). The cost is the
Euclidean distance in heatmap pixels (HDM §3.2, "the cost function C")

.. math::
    C_{ji} = \lVert p_i - (\lfloor k \rfloor + c_j) \rVert_2, \qquad
    c_j \in \{(0,0), (1,0), (0,1), (1,1)\},

and Sinkhorn works with the Gibbs kernel :math:`K = e^{-C/\varepsilon}` (Cuturi, 2013). Two
facts make both cheap and safe here:

* **Costs depend only on integer offsets.** :math:`C_{ji}` is a function of
  :math:`p_i - \lfloor k \rfloor - c_j`, an integer vector; so are the kernel and ``K∘C``. One
  table over all offsets that occur in a chunk of problems (:func:`distance_source`) serves every
  problem of the chunk, and per-problem arrays are gathered from it.
* **Row stabilisation.** The four corners are within :math:`\sqrt2` of each other, so for every
  pixel :math:`C_{ji} - \min_k C_{ki} \in [0, \sqrt2]`. Multiplying row :math:`i` of ``K`` by
  :math:`e^{\min_k C_{ki}/\varepsilon}` — a positive factor that the supplier scaling ``u``
  absorbs exactly (the log-domain change of variables of Schmitzer, 2019) — gives
  :math:`\tilde K_{ji} = e^{-(C_{ji} - \min_k C_{ki})/\varepsilon} \in [e^{-\sqrt2/\varepsilon}, 1]`,
  which never underflows, however far the pixel is from the keypoint. The plain kernel's
  entries reach :math:`e^{-\max C/\varepsilon}` (``e^{-120}`` on a 96×72 map at ε = 1), below
  float32's smallest normal number ``e^{-87.3}``.

References:
    M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal Transport. Advances in
    Neural Information Processing Systems 26 (NeurIPS 2013), 2292–2300.
    B. Schmitzer. Stabilized Sparse Scaling Algorithms for Entropy Regularized Transport
    Problems. SIAM Journal on Scientific Computing 41(3), A1443–A1481, 2019.
"""
from __future__ import annotations

import math

import torch

from ...codecs.hdm import CORNER_OFFSETS

__all__ = ["cell_costs", "distance_plane", "corner_planes", "distance_source", "kernel_planes",
           "gathered_kernels", "kernel_source", "shared_kernel_source", "exp_limit", "plain_kernel_ok", "stable_kernel_ok"]


def distance_plane(keypoints: torch.Tensor, heatmap_size: tuple[int, int]) -> torch.Tensor:
    """``D[n, r, c] = ‖(c − 1, r − 1) − floor(kp_n)‖`` on an (H+1)×(W+1) grid starting at −1.

    Args:
        keypoints: ``(N, 2)`` finite ``(x, y)`` in heatmap pixels.
        heatmap_size: ``(H, W)``.
    Returns:
        ``(N, H+1, W+1)`` distances, dtype of ``keypoints``.
    """
    H, W = heatmap_size
    base = torch.floor(keypoints)
    dt, dev = keypoints.dtype, keypoints.device
    dx2 = (torch.arange(-1, W, dtype=dt, device=dev) - base[:, 0, None]) ** 2  # (N, W+1)
    dy2 = (torch.arange(-1, H, dtype=dt, device=dev) - base[:, 1, None]) ** 2  # (N, H+1)
    return (dy2[:, :, None] + dx2[:, None, :]).sqrt_()


def corner_planes(plane: torch.Tensor, heatmap_size: tuple[int, int]) -> torch.Tensor:
    """Stack the four shifted H×W windows of an (N, H+1, W+1) plane into (N, 4, H*W).

    Corner ``(cx, cy)`` of the cell sees pixel ``(h, w)`` at offset ``(w − cx, h − cy)`` from
    ``floor(kp)``, i.e. at ``plane[h + 1 − cy, w + 1 − cx]``.
    """
    H, W = heatmap_size
    views = [plane[:, 1 - cy:H + 1 - cy, 1 - cx:W + 1 - cx] for cx, cy in CORNER_OFFSETS]
    return torch.stack(views, dim=1).reshape(plane.shape[0], 4, H * W)


def cell_costs(keypoints: torch.Tensor, heatmap_size: tuple[int, int]) -> torch.Tensor:
    """Euclidean costs from every pixel centre to the four cell corners around each keypoint.

    ``C[n, c, i] = ‖pixel_i − (floor(kp_n) + corner_c)‖₂`` in heatmap pixels (HDM §3.2, cost
    function), corners in :data:`poselab.codecs.hdm.CORNER_OFFSETS` order, pixels in row-major
    order. The costs depend only on integer offsets from ``floor(kp)``: one (H+1)×(W+1) distance
    plane per keypoint holds all of them, and the four corner maps are shifted windows of it.

    Args:
        keypoints: ``(N, 2)`` finite ``(x, y)``.
        heatmap_size: ``(H, W)``.
    Returns:
        ``(N, 4, H*W)`` tensor with the dtype of ``keypoints``.

    Example:
        >>> cell_costs(torch.tensor([[0.5, 0.0]]), (1, 2))  # pixels (0,0), (1,0); corners at x 0,1; y 0,1
        tensor([[[0.0000, 1.0000],
                 [1.0000, 0.0000],
                 [1.0000, 1.4142],
                 [1.4142, 1.0000]]])
    """
    return corner_planes(distance_plane(keypoints, heatmap_size), heatmap_size)


def exp_limit(dtype: torch.dtype) -> float:
    """``-log`` of the smallest normal number of ``dtype`` (87.3 in float32, 708.4 in float64):
    ``exp(-x)`` is a normal number for ``x`` below it. The solvers run in float32 or float64
    (half-precision inputs are solved in float32)."""
    return -math.log(torch.finfo(dtype).tiny)


def plain_kernel_ok(max_cost: float, reg: float, dtype: torch.dtype) -> bool:
    """The plain kernel ``exp(-C/ε)`` may be used: ``exp(-2 max C/ε)`` is normal, so a kernel
    entry, the product of two entries (``s²`` in a Newton evaluation) and a row sum stay
    representable. In float32 this allows ``max C ≤ 43 ε`` (a 32×24 map at ``ε = 1``), in
    float64 ``354 ε``; beyond, the row-stabilised kernel is used. (A bound of ``max C < 80 ε``
    for float32 let ``s²`` underflow ~52 px from the keypoint, and the Newton evaluation returned
    NaN for 121 of 136 random joints at 64×48.)"""
    return 2.0 * max_cost / reg < exp_limit(dtype)


def stable_kernel_ok(reg: float, dtype: torch.dtype) -> bool:
    """The row-stabilised kernel ``exp(-(C - min_j C)/ε) ≥ e^{-√2/ε}`` is usable: its entries
    and their squares (a row sum ``s_i ≥ e^{-√2/ε}`` with ``max v = 1``, and ``s_i²``) are
    normal numbers. Otherwise the log-domain solver runs (``ε < 0.033`` px in float32)."""
    return 2.0 * math.sqrt(2.0) / reg < exp_limit(dtype)


def kernel_planes(points: torch.Tensor, size: tuple[int, int], reg: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense costs (n, 4, P) and a Sinkhorn kernel (n, 4, P) equal to ``exp(-C/ε)`` up to a
    positive factor per pixel (which the supplier scaling absorbs exactly).

    If :func:`plain_kernel_ok`, the kernel is ``exp(-D/ε)`` computed once on the distance plane
    and shifted like the costs (one exp per pixel). Otherwise it is the row-stabilised
    ``exp(-(C − min_j C)/ε) ∈ [e^{-√2/ε}, 1]`` (four exps per pixel).
    """
    plane = distance_plane(points, size)
    costs = corner_planes(plane, size)
    if plane.numel() and plain_kernel_ok(float(plane.amax()), reg, plane.dtype):
        kernel = corner_planes(torch.exp(plane * (-1.0 / reg)), size)
    else:
        kernel = torch.exp((costs.amin(dim=1, keepdim=True) - costs).mul_(1.0 / reg))
    return costs, kernel


def distance_source(points: torch.Tensor, size: tuple[int, int]
                    ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Distances for every (pixel − corner − floor(kp)) offset of a chunk, flattened.

    Returns ``(D (L,), off (n,), tx)`` such that the cost from pixel ``(h, w)`` to corner
    ``(cx, cy)`` of problem ``n`` is ``D[off_n + (h − cy)·tx + (w − cx)]``. When the keypoints
    of the chunk span a small range one shared offset table serves all problems (one sqrt per
    offset instead of one (H+1)×(W+1) plane per problem); otherwise (few problems, or keypoints
    far apart, e.g. far outside the map) the per-problem planes of :func:`distance_plane`.
    """
    H, W = size
    n = points.shape[0]
    dt, dev = points.dtype, points.device
    base = torch.floor(points)
    lo, hi = base.amin(0), base.amax(0)
    tx, ty = float(hi[0] - lo[0]) + W + 1, float(hi[1] - lo[1]) + H + 1
    if tx * ty <= n * (H + 1) * (W + 1):
        tx, ty = int(tx), int(ty)
        dx = torch.arange(tx, dtype=dt, device=dev) - (hi[0] + 1)
        dy = torch.arange(ty, dtype=dt, device=dev) - (hi[1] + 1)
        table = (dy[:, None] ** 2 + dx[None, :] ** 2).sqrt_().reshape(-1)
        off = ((hi[1] + 1 - base[:, 1]) * tx + (hi[0] + 1 - base[:, 0])).long()
        return table, off, tx
    plane = distance_plane(points, size)
    step = (H + 1) * (W + 1)
    return plane.reshape(-1), torch.arange(n, device=dev) * step + (W + 2), W + 1


def _index_dtype(size: int) -> torch.dtype:
    """int32 indices where they fit: index_select with int32 indices ran ~2× faster here."""
    return torch.int32 if size < 2**31 - 1 else torch.long


def kernel_source(points: torch.Tensor, size: tuple[int, int], reg: float) -> tuple:
    """The offset tables behind :func:`gathered_kernels`, computable once for many chunks.

    ``K_ji = exp(-(C_ji − min_k C_ki)/ε)`` and ``K∘C`` depend only on a pixel's integer offset
    from ``floor(kp)``; they are tabulated once per offset of :func:`distance_source` (four
    tables, one per corner: four exps per offset). Returns ``(kernel_table (4L,), kc_table (4L,),
    base (n,), pixel_offsets (H·W,), length)``: corner ``j`` of pixel ``i`` of problem ``n``
    reads entry ``j·L + base_n + pixel_offsets_i`` of either table. When all keypoints of a batch
    lie close together (the usual case) one table serves every chunk of the batch; slice
    ``base`` per chunk.
    """
    H, W = size
    dev = points.device
    dist, off, tx = distance_source(points, size)
    # corner j of the pixel at table position p reads dist[p - shift_j]; tables start at p = first
    shifts = [cy * tx + cx for cx, cy in CORNER_OFFSETS]
    first = max(shifts)
    length = max(0, dist.numel() - first)
    costs = torch.stack([dist[first - c:first - c + length] for c in shifts])  # (4, L)
    table = torch.exp((costs.amin(0, keepdim=True) - costs).mul_(1.0 / reg))
    itype = _index_dtype(4 * length)
    pixels = torch.arange(H * W, device=dev, dtype=itype)
    pixels = torch.div(pixels, W, rounding_mode="floor").mul_(tx).add_(pixels % W)
    return (table.reshape(-1), costs.mul_(table).reshape(-1), (off - first).to(itype), pixels, length)


def shared_kernel_source(points: torch.Tensor, size: tuple[int, int], reg: float,
                         chunk: int) -> tuple | None:
    """:func:`kernel_source` for a whole batch if one shared offset table serves it at no more
    entries than per-chunk tables of ``chunk`` problems would use (keypoints close together:
    a table per chunk would be the same table, recomputed); else ``None`` (build per chunk)."""
    H, W = size
    if points.shape[0] == 0:
        return None
    base = torch.floor(points)
    span = base.amax(0) - base.amin(0)
    entries = (float(span[0]) + W + 1) * (float(span[1]) + H + 1)
    if entries > min(chunk, points.shape[0]) * (H + 1) * (W + 1):
        return None
    return kernel_source(points, size, reg)


def gathered_kernels(points: torch.Tensor, size: tuple[int, int], reg: float,
                     slot: torch.Tensor | None = None, m: int | None = None,
                     source: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``K`` and ``K∘C``, each ``(n, 4, m)``, on the compacted support ``slot`` of
    :func:`poselab.losses.transport.suppliers.support` (``None``: all pixels).

    ``K_ji = exp(-(C_ji − min_k C_ki)/ε) ∈ [e^{-√2/ε}, 1]`` is the row-stabilised kernel and
    ``C_ji`` the Euclidean cost from pixel ``i`` to corner ``j`` of the keypoint's cell. Both
    depend only on the pixel's integer offset from ``floor(kp)``, so they are computed once per
    offset (:func:`kernel_source`; pass ``source`` — its ``base`` sliced to these ``points`` —
    to reuse tables built for a whole batch) and gathered. With ``max v = 1`` the row sums
    ``s_i = Σ_j K_ji v_j ≥ e^{-√2/ε}`` and ``s_i²`` never underflow, at any distance from the
    keypoint and in any dtype.
    """
    H, W = size
    n = points.shape[0]
    table, kc_table, base, pixels, length = kernel_source(points, size, reg) if source is None else source
    itype = pixels.dtype
    pixels = pixels.expand(n, H * W)
    if slot is not None:  # padding reads pixel (0, 0): finite, never used (a = 0 there)
        pixels = pixels.new_zeros(n, m + 1).scatter_(1, slot, pixels)[:, :m]
    rel = pixels.add(base[:, None])
    corner = torch.arange(4, device=points.device, dtype=itype) * length
    index = (rel[:, None, :] + corner[None, :, None]).reshape(-1)
    m = rel.shape[1]
    return (table.index_select(0, index).reshape(n, 4, m),
            kc_table.index_select(0, index).reshape(n, 4, m))
