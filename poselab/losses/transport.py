"""Optimal-transport heatmap loss of Heatmap Distribution Matching (Qu et al., NeurIPS 2022).

For every joint the predicted heatmap becomes H·W *suppliers* (Eq. 3: ``S = relu(H)/‖relu(H)‖₁``)
and the dot annotation four *demanders* (Eq. 4, :func:`poselab.codecs.hdm.subpixel_demanders`).
The cost is the Euclidean (not squared) distance in heatmap pixels; the loss is the transport
cost of the entropic (Sinkhorn, Cuturi 2013) plan, ``L_k = ⟨C, P_reg⟩`` (Eq. 2) summed or averaged
over joints (Eq. 5). (Eq. 2 of the paper writes the entropy as ``-Σ C log C``; the entropy of the
plan, ``-Σ P log P``, is meant.) The entropy term is not part of the loss value — the same
quantity as POT's ``ot.sinkhorn2``.

Numerics
--------
* **Stabilised kernel (exact, no underflow).** The four demanders sit on the corners of one unit
  cell, so for every pixel ``i`` the costs ``C_ij`` differ from ``m_i = min_j C_ij`` by at most
  ``√2`` (triangle inequality). Absorbing ``exp(-m_i/ε)`` into the row potential (a log-domain
  change of variables) leaves the kernel ``K̃_ij = exp(-(C_ij - m_i)/ε) ∈ [e^{-√2/ε}, 1]``, which
  never underflows, however far a pixel is from the keypoint; with ``max v = 1`` the row sums
  ``s_i = Σ_j K̃_ij v_j ≥ e^{-√2/ε}`` and their squares (Newton evaluation) do not either. The
  Newton solver always uses it (gathered from per-offset tables, see below). The plain kernel
  ``exp(-C/ε)`` is used by the Sinkhorn solver only where ``exp(-2 max C/ε)`` is a normal number
  (float32: ``max C ≤ 43 ε``). (An earlier bound, ``max C < 80 ε`` in float32, let ``s²``
  underflow ~52 px from the keypoint: NaN for 121 of 136 random joints at 64×48.) For very
  small ``reg`` (``2√2/reg`` beyond what the dtype represents) a full log-domain (log-sum-exp)
  loop is used.
* **Dtypes.** float64 input is solved in float64, everything else in float32: float16 and
  bfloat16 hold neither the marginal accuracy nor (bfloat16) integer pixel offsets beyond 256.
  Loss and gradient come back in the input dtype; keypoints are used in the solve dtype.
* **Batched** over all ``B·K`` problems (chunked to bound memory and stay in cache), no Python
  loop over joints. Each chunk goes from the raw heatmap rows to cost and gradient in one go.
* **Support only** (Newton solver): pixels with ``relu(h_i) = 0`` carry no mass, so they enter
  neither the marginals, nor the cost, nor (ReLU is flat there) the gradient. Each chunk is
  compacted to its supplier support (left-aligned, padded with zero mass to the chunk's largest
  support); on a noisy prediction that is about half the pixels.
* **Costs from one offset table.** ``C_ij`` depends only on the integer offset of pixel ``i``
  from ``floor(kp) + corner_j``: a chunk whose keypoints span a small range shares one table of
  ``‖(dx, dy)‖`` and ``exp(-‖·‖/ε)`` over all its offsets, and ``K``, ``K ∘ C`` are gathered
  from it (no per-problem distance planes, no per-entry exp).
* **Solver (default for ``tol > 0``): Newton on the 4-variable dual.** With ``π_{j|i} =
  softmax_j(g_j − C_ij/ε)`` the supplier marginals are exact for any demander potential ``g``
  (the closed-form supplier potential ``f_i = ε log a_i − ε logsumexp_j((g_j − C_ij)/ε)``), so
  the problem is the 4 equations ``col_j(g) = Σ_i a_i π_{j|i} = d_j`` in 4 unknowns (one gauge
  freedom). Their Jacobian is ``M = diag(col) − Σ_i a_i π_i π_iᵀ`` (the same matrix as in the
  gradient below); one Newton step solves ``(M + 11ᵀ) Δ = r − col Σ_j r_j`` with the
  log-residual ``r = col ∘ log(d / col)`` (exact in the two limits where every pixel has the
  same ``π`` or every pixel one demander, quadratic near the solution) and sets ``g ← g + Δ``.
  Two Sinkhorn column updates from ``v = d / max d`` warm-start it (error ~2e-3); then 1–2
  Newton steps reach ``tol = 1e-6``
  (each evaluation: ``s = vᵀK``, ``G = K diag(a/s²) Kᵀ``, from which ``col = v ∘ Gv`` and
  ``Σ_i a_i π_i π_iᵀ = (vvᵀ) ∘ G`` — about four passes over the ``(n, 4, m)`` kernel, vs two
  per Sinkhorn iteration; on the benchmark maps Sinkhorn needs ~7 iterations for 1e-6 and
  ~14 for 1e-12, Newton 3 and 4 in all, warm-up included).
  Demanders with zero mass keep ``v_j = e^{g_j} = 0``. If two Newton steps in a row fail to
  halve the error (round-off: the error wobbles at a floor, 2e-7 – 1.5e-6 in float32 at 16×12 –
  96×72 maps) it stops there when the error is ≤ 64 eps (7.6e-6 in float32), else the remaining
  iterations are Sinkhorn's. ``solver="sinkhorn"`` (and ``tol = 0``, so that ``n_iters`` is
  exactly the paper's Sinkhorn iteration count) uses plain Sinkhorn scaling instead.
* **Stopping:** at most ``n_iters`` iterations; earlier when, for every problem, the plan with
  exact supplier marginals (``P = a_i π_{j|i}``, the plan whose cost is returned) misses the
  demander marginals by at most ``tol`` in L1, ``Σ_j |Σ_i P_ij − d_j| ≤ tol``, or when the error
  sits at the dtype's round-off floor (no halving in 2 Newton / 10 Sinkhorn iterations at an
  error ≤ 64 eps). With ``reg = 1`` Sinkhorn takes ~5–30 iterations, so the paper's 1000 is a
  cap that is never reached; if it is, above ``tol > 0``, a ``UserWarning`` says so (as POT's).
* **Gradient: implicit differentiation at the fixed point** (not autograd through the
  iterations, not the envelope/dual-potential gradient — the latter is the gradient of the
  *regularised* objective ``⟨C,P⟩ - ε h(P)``, not of the reported ``⟨C, P⟩``). Differentiating
  the marginal constraints of ``P_ij = a_i π_{j|i}``, ``π_{j|i} = softmax_j(g_j - C_ij/ε)`` gives

      ∂⟨C,P⟩/∂a_i = Σ_j π_{j|i} (C_ij − z_j),    M z = w,
      M = diag(Σ_i a_i π_i) − Σ_i a_i π_i π_iᵀ,   w_j = Σ_i a_i π_{j|i} (C_ij − ρ_i),
      ρ_i = Σ_j π_{j|i} C_ij,

  a 4×4 (rank-3, gauge fixed by ``+11ᵀ``) linear system per joint. Memory does not grow with the
  number of iterations. Checked against finite differences (``torch.autograd.gradcheck`` in
  float64) in ``tests/test_hdm_loss.py``. Keypoints get no gradient. The gradient is computed
  during the forward pass (chunk by chunk, while the planes are in cache; the Newton solver
  already has ``π`` and ``M``) and chained through Eq. 3, ``∂/∂h_i = 1[h_i > 0] (g_i −
  Σ_k a_k g_k) / Σ relu(h)``; backward only scales it.
* **No positive mass** (``relu(H) ≡ 0``): the suppliers are taken uniform, so the loss is the
  (finite) cost of spreading mass evenly over the map; its gradient is 0 (ReLU is flat there),
  as for any all-negative pixel under Eq. 3.
"""
from __future__ import annotations

import math
import warnings

import torch

from ..codecs.hdm import CORNER_OFFSETS, naive_demanders, subpixel_demanders

__all__ = ["emd_loss", "hdm_transport", "cell_costs", "EmdLoss"]

_CHUNK_BYTES = 4 << 20  # kernel bytes per chunk (2^19 float64 / 2^20 float32 entries): in cache


def _distance_plane(keypoints: torch.Tensor, heatmap_size: tuple[int, int]) -> torch.Tensor:
    """``D[n, r, c] = ‖(c − 1, r − 1) − floor(kp_n)‖`` on an (H+1)×(W+1) grid starting at −1."""
    H, W = heatmap_size
    base = torch.floor(keypoints)
    dt, dev = keypoints.dtype, keypoints.device
    dx2 = (torch.arange(-1, W, dtype=dt, device=dev) - base[:, 0, None]) ** 2  # (N, W+1)
    dy2 = (torch.arange(-1, H, dtype=dt, device=dev) - base[:, 1, None]) ** 2  # (N, H+1)
    return (dy2[:, :, None] + dx2[:, None, :]).sqrt_()


def _corner_planes(plane: torch.Tensor, heatmap_size: tuple[int, int]) -> torch.Tensor:
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
    """
    return _corner_planes(_distance_plane(keypoints, heatmap_size), heatmap_size)


def _kernel_planes(points, size, reg):
    """Costs (n, 4, P) and a Sinkhorn kernel (n, 4, P) equal to ``exp(-C/ε)`` up to a positive
    factor per pixel (which the row scaling absorbs exactly).

    If :func:`_plain_kernel_ok` (``exp(-2 max C/ε)`` is a normal number of the dtype, so that
    kernel entries, their products and the row sums ``Σ_j K_ji v_j`` stay far from underflow),
    the kernel is ``exp(-D/ε)`` computed once on the distance plane and shifted like the costs
    (one exp per pixel). Otherwise it is the row-stabilised ``exp(-(C − min_j C)/ε) ∈
    [e^{-√2/ε}, 1]`` (four exps per pixel), which never underflows for the four cell corners.
    """
    plane = _distance_plane(points, size)
    costs = _corner_planes(plane, size)
    if plane.numel() and _plain_kernel_ok(float(plane.amax()), reg, plane.dtype):
        kernel = _corner_planes(torch.exp(plane * (-1.0 / reg)), size)
    else:
        kernel = torch.exp((costs.amin(dim=1, keepdim=True) - costs).mul_(1.0 / reg))
    return costs, kernel


def _planes_dot(planes, coef):
    """Σ_j planes[:, j, :] * coef[:, j, None] for planes (n, M, P), coef (n, M) -> (n, P)."""
    return torch.bmm(coef.unsqueeze(1), planes).squeeze(1)


def _exp_limit(dtype: torch.dtype) -> float:
    """``-log`` of the smallest normal number of ``dtype`` (87.3 in float32, 708.4 in float64):
    ``exp(-x)`` is a normal number for ``x`` below it. The solvers run in float32 or float64
    (half-precision inputs are solved in float32, see :func:`_compute_dtype`)."""
    return -math.log(torch.finfo(dtype).tiny)


def _plain_kernel_ok(max_cost: float, reg: float, dtype: torch.dtype) -> bool:
    """The plain kernel ``exp(-C/ε)`` may be used: ``exp(-2 max C/ε)`` is normal, so a kernel
    entry, the product of two entries (``s²`` in a Newton evaluation) and a row sum stay
    representable. In float32 this allows ``max C ≤ 43 ε`` (a 32×24 map at ``ε = 1``), in
    float64 ``354 ε``; beyond, the row-stabilised kernel is used. (The bound used to be
    ``max C < 80 ε`` for float32: ``s²`` then underflowed ~52 px from the keypoint and the Newton
    evaluation returned NaN, on 121 of 136 random joints at 64×48.)"""
    return 2.0 * max_cost / reg < _exp_limit(dtype)


def _stable(reg: float, dtype: torch.dtype) -> bool:
    """The row-stabilised kernel ``exp(-(C - min_j C)/ε) ≥ e^{-√2/ε}`` is usable: its entries
    and their squares (a row sum ``s_i ≥ e^{-√2/ε}`` with ``max v = 1``, and ``s_i²``) are
    normal numbers. Else the full log-domain solver runs (``ε < 0.033`` px in float32)."""
    return 2.0 * math.sqrt(2.0) / reg < _exp_limit(dtype)


class _Progress:
    """Round-off stall detection shared by the solvers.

    In floating point the demander-marginal error cannot fall below a floor set by round-off in
    the sums over ``H·W`` pixels (measured in float32: 2e-7 – 8e-7 at 16×12 – 96×72 heatmaps,
    i.e. 2–7 ``eps``; in float64 ~1e-15). Near that floor the error wobbles, so "no new best
    for a few iterations" never fires reliably. Instead: the solver has *stalled* once the best
    error of the last ``window`` iterations is no better than ``factor`` × the best error before
    them (Newton converges quadratically: a working step cuts the error by orders of magnitude;
    Sinkhorn with ``reg = 1`` by ~5× per iteration) and the error is at most ``floor``.
    """

    def __init__(self, window: int, floor: float = math.inf, factor: float = 0.5):
        self.window, self.floor, self.factor = window, floor, factor
        self.errors: list[float] = []

    def stalled(self, err: float) -> bool:
        self.errors.append(err)
        if len(self.errors) <= self.window or err > self.floor:
            return False
        before = min(self.errors[:-self.window])
        return min(self.errors[-self.window:]) > self.factor * before


def _roundoff_floor(dtype: torch.dtype) -> float:
    """Marginal error below which a solver that stopped improving is taken to be at its
    round-off floor: ``64 eps`` (7.6e-6 in float32, 1.4e-14 in float64), 5× the largest float32
    floor measured at 16×12 – 96×72 heatmaps (2e-7 – 1.5e-6). A stall above it is a solver
    failure: Newton then continues with Sinkhorn, Sinkhorn runs on to its cap (and warns)."""
    return 64.0 * torch.finfo(dtype).eps


def _sinkhorn_scaling(a, kernel, b, n_iters, tol, v0=None):
    """Sinkhorn matrix scaling with a kernel from :func:`_kernel_planes`.

    a (n, P), kernel (n, M, P), b (n, M). Each iteration makes the rows exact
    (``u = a / K v``) and then the columns (``v = b / Kᵀu``); before the column update the
    demander-marginal L1 error of the row-exact plan, ``Σ_j |v_j (Kᵀu)_j − b_j|``, is checked
    against ``tol`` (4 numbers per problem, so the check is free). Stops at ``tol``, after
    ``n_iters`` updates, or (``tol > 0``) when the error sits at its round-off floor
    (:class:`_Progress`: no halving in 10 iterations at an error ≤ :func:`_roundoff_floor`).
    Returns (v (n, M), iterations, error); the row-exact plan is
    ``P_ij = a_i K_ji v_j / Σ_k K_ki v_k``.
    """
    v = torch.ones_like(b) if v0 is None else v0.clone()
    progress = _Progress(10, _roundoff_floor(a.dtype))
    it, err = 0, float("inf")
    while True:
        u = a / _planes_dot(kernel, v)
        col = _rows_dot(kernel, u)  # (n, M)
        err = float((v * col - b).abs().sum(1).max()) if b.numel() else 0.0
        if it >= n_iters or err <= tol or (tol > 0 and progress.stalled(err)):
            return v, it, err
        v = b / col
        it += 1


def _support(a, pos):
    """Compaction of each row to its support: ``(slot (n, P), a_support (n, m))``.

    ``pos`` (n, P) bool marks the support: the pixels with ``h_i > 0`` (and every pixel of a map
    without positive mass, whose suppliers are uniform). ``slot[r, i]`` is the column of pixel
    ``i`` in the compacted row ``r`` (support pixels left-aligned in pixel order) or ``m`` for
    the others; ``m`` is the largest support in the chunk and shorter rows are padded with mass
    0. Pixels with ``h_i ≤ 0`` carry no mass: they do not enter the marginals, the cost or —
    through ``relu'`` — the gradient, so the problems are solved on the support only (a noisy
    prediction has about half its pixels ≤ 0). (The support is taken from ``h``, not from
    ``a = relu(h)/Σ relu(h)``: a subnormal ``h_i > 0`` gives ``a_i = 0`` in float32 but still
    has a gradient.) Scatter with ``slot`` into ``m + 1`` columns to compact, gather with it to
    expand (column ``m`` holding 0). ``(None, a)`` when every map of the chunk is fully positive.
    """
    n, P = a.shape
    counts = pos.sum(1)
    m = int(counts.max()) if n else 0
    if m == P and bool((counts == P).all()):
        return None, a
    # arithmetic, not torch.where: several times faster on the CPU here
    slot = pos.cumsum(1).sub_(m + 1).mul_(pos).add_(m)
    return slot, a.new_zeros(n, m + 1).scatter_(1, slot, a)[:, :m]


def _distance_source(points, size):
    """Distances for every (pixel − corner − floor(kp)) offset of a chunk, flattened.

    Returns ``(D (L,), off (n,), tx)`` such that the cost from pixel ``(h, w)`` to corner
    ``(cx, cy)`` of problem ``n`` is ``D[off_n + (h − cy)·tx + (w − cx)]``. The costs depend only
    on integer offsets (:func:`cell_costs`), so when the keypoints of the chunk span a small
    range one shared offset table serves all problems (one sqrt per offset instead of one
    (H+1)×(W+1) plane per problem); otherwise (few problems, or keypoints far apart, e.g. far
    outside the map) the per-problem planes of :func:`_distance_plane` are used.
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
    plane = _distance_plane(points, size)
    step = (H + 1) * (W + 1)
    return plane.reshape(-1), torch.arange(n, device=dev) * step + (W + 2), W + 1


def _index_dtype(size: int) -> torch.dtype:
    """int32 indices where they fit: index_select with int32 indices ran ~2× faster here."""
    return torch.int32 if size < 2**31 - 1 else torch.long


def _gathered_kernels(points, size, reg, slot=None, m=None):
    """``K`` and ``K∘C``, each ``(n, 4, m)``, on the compacted support ``slot`` of
    :func:`_support` (``None``: all pixels).

    ``K_ji = exp(-(C_ji − min_k C_ki)/ε) ∈ [e^{-√2/ε}, 1]`` is the row-stabilised kernel (equal
    to ``exp(-C_ji/ε)`` up to a positive factor per pixel, which the row scaling absorbs) and
    ``C_ji`` the Euclidean cost from pixel ``i`` to corner ``j`` of the keypoint's cell. Both
    depend only on the pixel's integer offset from ``floor(kp)``, so they are computed once per
    offset of :func:`_distance_source` (four tables, one per corner: four exps per offset) and
    gathered. With ``max v = 1`` the row sums ``s_i = Σ_j K_ji v_j ≥ e^{-√2/ε}`` and ``s_i²``
    never underflow, at any distance from the keypoint and in any dtype.
    """
    H, W = size
    n = points.shape[0]
    dev = points.device
    dist, off, tx = _distance_source(points, size)
    # corner j of the pixel at table position p reads dist[p - shift_j]; tables start at p = first
    shifts = [cy * tx + cx for cx, cy in CORNER_OFFSETS]
    first = max(shifts)
    length = max(0, dist.numel() - first)
    costs = torch.stack([dist[first - c:first - c + length] for c in shifts])  # (4, L)
    table = torch.exp((costs.amin(0, keepdim=True) - costs).mul_(1.0 / reg))
    itype = _index_dtype(4 * length)
    pixels = torch.arange(H * W, device=dev, dtype=itype)
    pixels = torch.div(pixels, W, rounding_mode="floor").mul_(tx).add_(pixels % W).expand(n, H * W)
    if slot is not None:  # padding reads pixel (0, 0): finite, never used (a = 0 there)
        pixels = pixels.new_zeros(n, m + 1).scatter_(1, slot, pixels)[:, :m]
    rel = pixels.add((off - first).to(itype)[:, None])
    corner = torch.arange(4, device=dev, dtype=itype) * length
    index = (rel[:, None, :] + corner[None, :, None]).reshape(-1)
    m = rel.shape[1]
    kernel = table.reshape(-1).index_select(0, index).reshape(n, 4, m)
    return kernel, costs.mul_(table).reshape(-1).index_select(0, index).reshape(n, 4, m)


def _rows_dot(planes, x):
    """Σ_i planes[:, j, i] x[:, i] for planes (n, M, P), x (n, P) -> (n, M).

    Written as ``xᵀ planesᵀ``: on the CPU this orientation of the batched product is several
    times faster than ``planes @ x`` for long rows."""
    return torch.bmm(x.unsqueeze(1), planes.transpose(1, 2)).squeeze(1)


def _evaluate(a, kernel, v):
    """One Newton evaluation at the demander scaling ``v`` (n, M).

    ``s_i = Σ_j K_ji v_j`` (row normaliser, ``π_{j|i} = K_ji v_j / s_i``) and
    ``G = K diag(a/s²) Kᵀ`` (n, M, M), from which the demander marginals ``col = v ∘ G v`` and
    the Gram matrix ``Σ_i a_i π_i π_iᵀ = (v vᵀ) ∘ G`` follow without further passes over ``K``.
    Returns (s, G, col).
    """
    s = _planes_dot(kernel, v)  # > 0: every kernel entry is > 0 and max v = 1
    gk = torch.bmm(kernel, (kernel * (a / (s * s)).unsqueeze(1)).transpose(1, 2))
    col = v * torch.bmm(gk, v.unsqueeze(2)).squeeze(2)
    return s, gk, col


def _newton_scaling(a, kernel, b, n_iters, tol, warm=2):
    """Newton's method on the 4-variable demander dual (module docstring, *Solver*).

    a (n, P), kernel (n, M, P) (:func:`_gathered_kernels`), b (n, M). The state is the demander
    scaling ``v = exp(g)`` (``v_j = 0`` for demanders without mass, max ``v`` = 1 as the gauge);
    the supplier side is always exact. One iteration = one :func:`_evaluate` (the marginals
    ``col`` and the Jacobian ``M = diag(col) − Σ_i a_i π_i π_iᵀ`` of ``col`` in ``g``), then the
    log-residual Newton step ``(M + 11ᵀ) Δ = r − col·Σ_j r_j``, ``r = col ∘ log(b / col)``,
    ``v ← v ∘ exp(Δ)``. The first ``warm`` iterations are Sinkhorn column updates from
    ``v = b / max b`` (two mat-vec passes each, vs about four for an evaluation; they bring the
    error to ~2e-3, where Newton needs 1–2 steps). Stops at the rule of
    :func:`_sinkhorn_scaling` (``Σ_j |col_j − b_j| ≤ tol`` for every problem) or after
    ``n_iters`` steps; if two Newton steps in a row fail to halve the best error so far
    (:class:`_Progress`; round-off makes the error wobble at its floor, so "no new best" alone
    would not fire), returns with ``stalled=True``: the caller continues with Sinkhorn unless
    the error is already at the round-off floor (≤ :func:`_roundoff_floor`, e.g. float32 with a
    ``tol`` below its 2e-7 – 2e-6 floor).

    Returns (v (n, M), iterations, error, stalled, evaluation at v: (s, G, col)).
    """
    active = b > 0
    v = b / b.amax(1, keepdim=True)  # start at the demander masses: ~4× smaller error than v = 1
    it = 0
    for _ in range(min(warm, n_iters)):
        col = _rows_dot(kernel, a / _planes_dot(kernel, v))
        v = b / col
        v = v / v.amax(1, keepdim=True)
        it += 1
    log_b = torch.where(active, b, torch.ones_like(b)).log()
    progress = _Progress(2)
    while True:
        ev = _evaluate(a, kernel, v)
        col = ev[2]
        err = float((col - b).abs().sum(1).max()) if b.numel() else 0.0
        if err <= tol or it >= n_iters:
            return v, it, err, False, ev
        if progress.stalled(err):
            return v, it, err, True, ev
        gram = ev[1] * v[:, :, None] * v[:, None, :]
        safe_col = torch.where(active, col, torch.ones_like(col)).clamp_min(torch.finfo(a.dtype).tiny)
        r = torch.where(active, col * (log_b - safe_col.log()), torch.zeros_like(col))
        r = r - col * r.sum(1, keepdim=True)
        mat = torch.diag_embed(col.double()) - gram.double() + 1.0
        mat = mat + torch.diag_embed((~active).double())
        delta = torch.linalg.solve(mat, r.double().unsqueeze(-1)).squeeze(-1)
        delta = delta.clamp(-30.0, 30.0)  # a safeguard only; steps are O(1) in practice
        delta = torch.where(active, delta, torch.full_like(delta, -math.inf))
        delta = delta - delta.amax(1, keepdim=True)  # gauge: max v = 1
        v = (v.double() * delta.exp()).to(a.dtype)
        it += 1


def _newton_chunk(maps, points, b, size, reg, n_iters, tol, grad_out=None):
    """Solve one chunk with Newton (Sinkhorn fallback on a stall): cost, v, gradient.

    From the raw heatmap rows ``maps`` (n, P): suppliers (Eq. 3), then the problems are solved
    on the supplier support (:func:`_support`). After the solve, from the final evaluation
    ``(s, G)``: ``ρ_i = (Σ_j v_j (K∘C)_ji) / s_i`` (one pass), the cost ``Σ_i a_i ρ_i``, the
    right-hand side of the implicit gradient ``w = v ∘ ((K∘C) q − K (q ∘ ρ))`` with
    ``q = a/s`` (two passes), its matrix ``M = diag(col) − (v vᵀ) ∘ G``, ``∂cost/∂a_i = ρ_i −
    (Σ_j K_ji v_j z_j) / s_i`` with ``(M + 11ᵀ) z = w`` (one pass), chained through Eq. 3 on the
    support (:func:`_suppliers_vjp`) and expanded into ``grad_out`` ((n, P); no gradient if
    ``None``). Returns (cost (n,), v (n, M), iterations, error).
    """
    a_full, total = _suppliers(maps, return_total=True)
    slot, a = _support(a_full, (maps > 0) | (total <= 0))
    kernel, kc = _gathered_kernels(points, size, reg, slot, a.shape[1])
    v, it, err, stalled, ev = _newton_scaling(a, kernel, b, n_iters, tol)
    if stalled and it < n_iters and err > _roundoff_floor(a.dtype):
        v, more, err = _sinkhorn_scaling(a, kernel, b, n_iters - it, tol, v0=v)
        it += more
        ev = _evaluate(a, kernel, v)
    s, gk, col = ev
    rho = _planes_dot(kc, v).div_(s)  # ρ_i = Σ_j π_{j|i} C_ji
    cost = (a * rho).sum(1)
    if grad_out is not None:
        q = a / s
        w = v * (_rows_dot(kc, q) - _rows_dot(kernel, q * rho))
        gram = (gk * v[:, :, None] * v[:, None, :]).double()
        full = torch.diag_embed(col.double()) - gram + 1.0 + torch.diag_embed((b <= 0).double())
        z = torch.linalg.solve(full, w.double().unsqueeze(-1)).squeeze(-1).to(a.dtype)
        g = _suppliers_vjp(a, rho.sub_(_planes_dot(kernel, v * z).div_(s)), total, None)
        if slot is None:
            grad_out.copy_(g)
        else:  # pixels without mass read the zero column m
            torch.gather(torch.nn.functional.pad(g, (0, 1)), 1, slot, out=grad_out)
    return cost, v, it, err


def _sinkhorn_log(a, costs, b, reg, n_iters, tol):
    """Full log-domain Sinkhorn (for ε so small that even the stabilised kernel underflows),
    same iteration and stopping rule as :func:`_sinkhorn_scaling`. Returns (g (n, M), the
    demanders' log-potential, iterations, error); ``π_{j|i} = softmax_j(g_j − C_ji/ε)``.
    """
    log_k = -costs / reg  # (n, M, P)
    log_b = torch.where(b > 0, b.log(), torch.full_like(b, -math.inf))
    g = torch.zeros_like(b)
    progress = _Progress(10, _roundoff_floor(a.dtype))
    it, err = 0, float("inf")
    while True:
        log_pi = torch.log_softmax(log_k + g[:, :, None], dim=1)  # row-exact plan / a
        col = (a[:, None, :] * log_pi.exp()).sum(-1)  # demander marginal of the row-exact plan
        err = float((col - b).abs().sum(1).max()) if b.numel() else 0.0
        if it >= n_iters or err <= tol or (tol > 0 and progress.stalled(err)):
            return g, it, err
        g = torch.where(b > 0, g + log_b - col.log(), torch.full_like(g, -math.inf))
        it += 1


def _conditional_plan(state, points, size, reg, stable):
    """(π (n, M, P), costs (n, M, P)) from the solver state (v if stable, else g)."""
    if stable:
        costs, kernel = _kernel_planes(points, size, reg)
        kv = _planes_dot(kernel, state)
        return kernel.mul_(state[:, :, None]).div_(kv[:, None, :]), costs
    costs = cell_costs(points, size)
    return torch.softmax(state[:, :, None] - costs / reg, dim=1), costs


def _chunks(n: int, per_problem: int, itemsize: int = 8):
    """Slices of ``n`` problems with ``per_problem`` kernel entries of ``itemsize`` bytes each,
    ~:data:`_CHUNK_BYTES` per chunk. Measured at 64×48, B·K = 544 (one thread): smaller chunks
    pay more per-op overhead (~1 ms per chunk), larger ones fall out of cache (2^21 float64
    entries per chunk: 1.3× slower, all problems at once: 2×)."""
    step = max(1, _CHUNK_BYTES // max(1, per_problem * itemsize))
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


def _suppliers_vjp(a, grad_a, total, positive):
    """Chain ∂cost/∂a through Eq. 3, ``a = relu(h)/Σ relu(h)``: ``∂cost/∂h_i = 1[h_i > 0]
    (g_i − Σ_k a_k g_k) / Σ relu(h)``; 0 for maps without positive mass (uniform fallback, ReLU
    flat). a, grad_a (n, P), total (n, 1) = Σ relu(h), positive (n, P) = ``1[h_i > 0]`` as a
    float mask, or ``None`` on a compacted support (every column is a support pixel; the
    expansion gives the others 0) -> (n, P)."""
    centred = grad_a - (a * grad_a).sum(1, keepdim=True)
    scale = torch.where(total > 0, 1.0 / torch.where(total > 0, total, torch.ones_like(total)),
                        torch.zeros_like(total))
    centred.mul_(scale)
    return centred if positive is None else centred.mul_(positive)


@torch.no_grad()
def _forward(maps, points, b, size, reg, n_iters, tol, solver="newton", need_grad=False):
    """Solve all problems chunk by chunk, from the raw heatmap rows ``maps`` (N, P).

    Each chunk builds its suppliers (Eq. 3), solves, and — if ``need_grad`` — computes
    ∂cost/∂maps right away while the chunk's planes are in cache (Newton: from the final Newton
    evaluation; Sinkhorn / log-domain: :func:`_backward` on the chunk). Returns (cost (N,),
    state (N, M), iterations, error, grad (N, P) or None).
    """
    H, W = size
    stable = _stable(reg, maps.dtype)
    cost = maps.new_zeros(maps.shape[0])
    state = b.new_zeros(b.shape)
    grad = torch.empty_like(maps) if need_grad else None
    its, err, capped = 0, 0.0, False
    for sl in _chunks(maps.shape[0], 4 * H * W, maps.element_size()):
        if stable and solver == "newton":
            c, v, it, e = _newton_chunk(maps[sl], points[sl], b[sl], size, reg, n_iters, tol,
                                        grad[sl] if need_grad else None)
            cost[sl], state[sl] = c, v
            its, err, capped = max(its, it), max(err, e), capped or (it >= n_iters and e > tol)
            continue
        a, total = _suppliers(maps[sl], return_total=True)
        if stable:
            costs, kernel = _kernel_planes(points[sl], size, reg)
            v, it, e = _sinkhorn_scaling(a, kernel, b[sl], n_iters, tol)
            r = a / torch.bmm(v.unsqueeze(1), kernel).squeeze(1)
            # ⟨C, P⟩ = Σ_j v_j Σ_i K_ji C_ji r_i  (P_ij = r_i K_ji v_j)
            cost[sl] = (_rows_dot(kernel.mul_(costs), r) * v).sum(1)
            state[sl] = v
        else:
            costs = cell_costs(points[sl], size)
            gg, it, e = _sinkhorn_log(a, costs, b[sl], reg, n_iters, tol)
            pi = torch.softmax(gg[:, :, None] - costs / reg, dim=1)
            cost[sl] = (a * (pi * costs).sum(1)).sum(1)
            state[sl] = gg
        if need_grad:
            grad[sl] = _suppliers_vjp(a, _backward(a, points[sl], state[sl], size, reg), total,
                                      (maps[sl] > 0).to(a.dtype))
        its, err, capped = max(its, it), max(err, e), capped or (it >= n_iters and e > tol)
    if capped and tol > 0:  # as POT's sinkhorn warns; tol = 0 asks for exactly n_iters iterations
        warnings.warn(f"EMD transport: the {solver} solver reached its cap of n_iters={n_iters} "
                      f"iterations with a demander-marginal error of {err:.2e} > tol={tol:g}; "
                      f"raise n_iters, loosen tol or raise reg", UserWarning, stacklevel=4)
    return cost, state, its, err, grad


@torch.no_grad()
def _backward(a, points, state, size, reg):
    """∂⟨C, P⟩/∂a at the fixed point (module docstring) for the Sinkhorn states, chunk by
    chunk. Returns (N, P)."""
    stable = _stable(reg, a.dtype)
    grad = torch.empty_like(a)
    for sl in _chunks(a.shape[0], 4 * size[0] * size[1], a.element_size()):
        ac = a[sl]
        pi, costs = _conditional_plan(state[sl], points[sl], size, reg, stable)  # (n, M, P)
        pc = pi * costs
        rho = pc.sum(1)  # ρ_i = Σ_j π_ij C_ij
        beta = _rows_dot(pi, ac)  # column marginals of P = a π
        gram = torch.bmm(pi * ac[:, None, :], pi.transpose(1, 2))  # Σ_i a_i π_i π_iᵀ
        w = _rows_dot(pc, ac) - _rows_dot(pi, ac * rho)
        mat = torch.diag_embed(beta.double()) - gram.double() + 1.0
        mat = mat + torch.diag_embed((beta <= 0).double())  # demanders without mass (naive)
        z = torch.linalg.solve(mat, w.double().unsqueeze(-1)).squeeze(-1).to(a.dtype)
        grad[sl] = rho - _planes_dot(pi, z)
    return grad


class _EntropicCost(torch.autograd.Function):
    """Raw heatmap rows (N, P) -> transport costs (N,); the gradient w.r.t. the rows (through
    Eq. 3 and the implicit function theorem) is computed in the forward pass, chunk by chunk."""

    @staticmethod
    def forward(ctx, maps, points, b, size, reg, n_iters, tol, solver):
        cost, _, it, err, grad = _forward(maps.detach(), points, b, size, reg, n_iters, tol,
                                          solver, need_grad=ctx.needs_input_grad[0])
        ctx.save_for_backward(grad if grad is not None else maps.new_empty(0))
        ctx.info = (it, err)
        return cost

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        grad_maps = grad_out[:, None] * grad if ctx.needs_input_grad[0] else None
        return grad_maps, None, None, None, None, None, None, None


def _resolve_solver(solver, tol):
    if solver not in ("auto", "newton", "sinkhorn"):
        raise ValueError(f"solver must be 'auto' (Newton if tol > 0, else Sinkhorn), 'newton' or "
                         f"'sinkhorn', got {solver!r}")
    if solver == "auto":
        return "newton" if tol > 0 else "sinkhorn"
    return solver


def _check_solver_args(reg, n_iters, tol):
    reg = float(reg)
    if not math.isfinite(reg) or reg <= 0:
        raise ValueError(f"reg (entropic regularisation ε, heatmap px) must be positive, got {reg!r}")
    if int(n_iters) != n_iters or n_iters < 1:
        raise ValueError(f"n_iters must be a positive integer (the iteration cap), got {n_iters!r}")
    tol = float(tol)
    if not (tol >= 0):
        raise ValueError(f"tol must be ≥ 0 (0 runs exactly n_iters iterations), got {tol!r}")
    return reg, int(n_iters), tol


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the transport problems are solved in: float64 for float64 input, else float32.

    Half precision (float16: 10 mantissa bits, smallest normal 6e-5; bfloat16: 7 bits) can hold
    neither the kernel's dynamic range nor integer pixel offsets beyond 256 (bfloat16), nor a
    marginal error of 1e-6; float16/bfloat16 heatmaps are therefore upcast (exactly) and solved
    in float32, and the loss and its gradient are returned in the input dtype — as autocast
    treats reductions and losses."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _prepare(heatmaps, keypoints, visible, demanders):
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 4 or not heatmaps.is_floating_point():
        raise ValueError("heatmaps must be a float tensor (B, K, H, W), got "
                         f"{getattr(heatmaps, 'shape', type(heatmaps))}")
    B, K, H, W = heatmaps.shape
    keypoints = torch.as_tensor(keypoints, device=heatmaps.device)
    if tuple(keypoints.shape) != (B, K, 2):
        raise ValueError(f"keypoints must have shape (B, K, 2) = {(B, K, 2)} in heatmap pixels, "
                         f"got {tuple(keypoints.shape)}")
    visible = torch.as_tensor(visible, device=heatmaps.device)
    if tuple(visible.shape) != (B, K):
        raise ValueError(f"visible must have shape (B, K) = {(B, K)}, got {tuple(visible.shape)}")
    if demanders not in ("subpixel", "naive"):
        raise ValueError(f"demanders must be 'subpixel' (HDM Eq. 4) or 'naive' (Table 4 baseline), "
                         f"got {demanders!r}")
    # a finite sum implies finite entries (one cheap pass); only if it is not, look closer
    if heatmaps.numel() and not (bool(torch.isfinite(heatmaps.detach().sum()))
                                 or bool(torch.isfinite(heatmaps.detach()).all())):
        raise ValueError("heatmaps contain NaN/inf; the network output diverged (lower the learning "
                         "rate) — the transport loss needs finite predictions")
    kp = keypoints.detach().to(_compute_dtype(heatmaps.dtype))
    finite = torch.isfinite(kp).all(-1)
    valid = finite & (torch.nan_to_num(visible.to(torch.float32), nan=0.0) > 0)
    kp = torch.where(valid[..., None], kp, torch.zeros((), dtype=kp.dtype, device=kp.device))
    return kp, valid


def _suppliers(heatmaps_flat, return_total=False):
    """Eq. 3 with a uniform fallback for maps without positive mass. (N, HW) -> (N, HW)
    (and the positive mass Σ relu(h) (N, 1) if ``return_total``)."""
    mass = torch.relu(heatmaps_flat)
    total = mass.sum(dim=1, keepdim=True)
    empty = total <= 0
    mass.div_(torch.where(empty, torch.ones_like(total), total))
    if bool(empty.any()):
        mass[empty.squeeze(1)] = 1.0 / max(1, mass.shape[1])
    return (mass, total) if return_total else mass


def emd_loss(heatmaps, keypoints, visible, reg=1.0, n_iters=1000, tol=1e-6, demanders="subpixel",
             reduction="mean", solver="auto"):
    """Heatmap Distribution Matching loss (HDM Eqs. 3–5): entropic EMD from heatmap to dot.

    ``L_k = ⟨C_k, P_reg⟩`` with suppliers ``relu(H_k)/‖relu(H_k)‖₁`` (Eq. 3), four sub-pixel
    demanders (Eq. 4) or one naive demander, Euclidean cost in heatmap pixels, Sinkhorn plan with
    entropic regularisation ``reg`` (the paper's 1/λ = 1). See the module docstring for the
    stabilised log-domain solver, the stopping rule and the implicit gradient.

    Args:
        heatmaps: ``(B, K, H, W)`` float predictions (raw; ReLU is applied here).
        keypoints: ``(B, K, 2)`` ``(x, y)`` in heatmap pixels, pixel centres at integers.
        visible: ``(B, K)`` COCO visibility; joints with ``v <= 0`` or non-finite keypoints give 0.
        reg: entropic regularisation ε (heatmap pixels), > 0.
        n_iters: maximum number of Sinkhorn iterations (a cap).
        tol: stop once every problem's demander-marginal L1 error is ≤ tol (0: run n_iters).
        demanders: ``"subpixel"`` (Eq. 4) or ``"naive"`` (Fig. 2a, Table 4).
        reduction: ``"mean"`` over labelled joints (0 if none), ``"sum"`` (Eq. 5) or ``"none"``
            → ``(B, K)`` per-joint costs.
        solver: ``"auto"`` (default: ``"newton"`` if ``tol > 0``, else ``"sinkhorn"`` so that
            ``tol=0`` runs exactly ``n_iters`` Sinkhorn iterations, the paper's knob),
            ``"newton"`` (Newton on the 4-variable dual; ``n_iters`` caps Newton steps) or
            ``"sinkhorn"``. Both solve the same problem to the same stopping rule.

    Example:
        >>> hm = torch.rand(2, 17, 16, 12, requires_grad=True)
        >>> kp = torch.rand(2, 17, 2) * torch.tensor([11.0, 15.0])
        >>> emd_loss(hm, kp, torch.ones(2, 17)).backward()
    """
    reg, n_iters, tol = _check_solver_args(reg, n_iters, tol)
    solver = _resolve_solver(solver, tol)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    kp, valid = _prepare(heatmaps, keypoints, visible, demanders)
    B, K, H, W = heatmaps.shape
    flat = heatmaps.reshape(B * K, H * W)
    idx = valid.reshape(-1).nonzero().squeeze(1)
    per_joint = heatmaps.new_zeros(B * K)
    if not idx.numel() and flat.numel():  # no labelled joint: zeros connected to the input, so
        per_joint = flat[:, 0] * 0.0      # that backward() works (and gives a zero gradient)
    if idx.numel():
        maps, points = flat.to(kp.dtype), kp.reshape(B * K, 2)  # half precision: solved in float32
        if idx.numel() < B * K:  # copy only if some joints are unlabelled
            maps, points = maps.index_select(0, idx), points.index_select(0, idx)
        _, masses = (subpixel_demanders if demanders == "subpixel" else naive_demanders)(points)
        if not torch.is_grad_enabled():  # e.g. evaluation under no_grad: skip the gradient work
            maps = maps.detach()
        cost = _EntropicCost.apply(maps, points, masses, (H, W), reg, n_iters, tol, solver)
        per_joint = per_joint.index_put((idx,), cost.to(per_joint.dtype))
    per_joint = per_joint.reshape(B, K)
    if reduction == "none":
        return per_joint
    if reduction == "sum":
        return per_joint.sum()
    return per_joint.sum() / valid.sum().clamp_min(1).to(per_joint.dtype)


@torch.no_grad()
def hdm_transport(heatmaps, keypoints, visible=None, reg=1.0, n_iters=1000, tol=1e-6,
                  demanders="subpixel", solver="sinkhorn"):
    """The full transport problem behind :func:`emd_loss`, for inspection (no gradient).

    Args: as :func:`emd_loss`; ``visible=None`` means all joints labelled. ``solver`` defaults
    to ``"sinkhorn"`` here so that ``iterations`` counts Sinkhorn iterations (the paper's knob).
    Returns a dict with ``suppliers (B, K, H, W)``, ``positions (B, K, 4, 2)``,
    ``masses (B, K, 4)``, ``plan (B, K, H, W, 4)`` (P_reg, zero for unlabelled joints),
    ``cost (B, K)``, ``iterations`` (max over chunks), ``marginal_error`` (max demander-marginal
    L1 error) and ``stopped``: ``"tol"`` (every problem within ``tol``), ``"round-off"`` (the
    error stopped decreasing at the dtype's round-off floor, above ``tol``) or ``"cap"``
    (``n_iters`` reached above ``tol``; a ``UserWarning`` is issued when ``tol > 0``). Arrays
    are float32 for half-precision input (the dtype the problems are solved in).
    """
    reg, n_iters, tol = _check_solver_args(reg, n_iters, tol)
    solver = _resolve_solver(solver, tol)
    if visible is None and isinstance(heatmaps, torch.Tensor) and heatmaps.ndim == 4:
        visible = torch.ones(heatmaps.shape[:2], device=heatmaps.device)
    kp, valid = _prepare(heatmaps, keypoints, visible, demanders)
    B, K, H, W = heatmaps.shape
    maps = heatmaps.detach().reshape(B * K, H * W).to(kp.dtype)
    a = _suppliers(maps)
    points = kp.reshape(B * K, 2)
    positions, masses = (subpixel_demanders if demanders == "subpixel" else naive_demanders)(points)
    cost, state, it, err, _ = _forward(maps, points, masses, (H, W), reg, n_iters, tol, solver)
    pi, _ = _conditional_plan(state, points, (H, W), reg, _stable(reg, a.dtype))
    plan = (a[:, None, :] * pi).transpose(1, 2) * valid.reshape(-1, 1, 1)
    stopped = "tol" if err <= tol else ("cap" if it >= n_iters else "round-off")
    return {"suppliers": a.reshape(B, K, H, W), "positions": positions.reshape(B, K, 4, 2),
            "masses": masses.reshape(B, K, 4), "plan": plan.reshape(B, K, H, W, 4),
            "cost": cost.reshape(B, K) * valid, "iterations": it, "marginal_error": err,
            "stopped": stopped}


class EmdLoss(torch.nn.Module):
    """``nn.Module`` wrapper of :func:`emd_loss` holding its hyper-parameters."""

    def __init__(self, reg=1.0, n_iters=1000, tol=1e-6, demanders="subpixel", reduction="mean",
                 solver="auto"):
        super().__init__()
        self.kwargs = dict(reg=reg, n_iters=n_iters, tol=tol, demanders=demanders,
                           reduction=reduction, solver=solver)

    def forward(self, heatmaps, keypoints, visible):
        return emd_loss(heatmaps, keypoints, visible, **self.kwargs)
