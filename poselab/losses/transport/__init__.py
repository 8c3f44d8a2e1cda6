"""The Heatmap Distribution Matching loss (HDM Eqs. 2–5): entropic optimal transport from a
predicted heatmap to the dot annotation.

Public: :func:`emd_loss` (the loss; its docstring derives the equations), :func:`hdm_transport`
(the whole transport problem, for inspection), :class:`EmdLoss` (``nn.Module`` wrapper) and
:func:`cell_costs` (the cost matrix). The numerics live in one module per idea, each documented
with its mathematics and references:

=========================  ============================================================
``suppliers.py``           Eq. 3 (suppliers), their support, the chain rule through Eq. 3
``geometry.py``            the Euclidean cost, Gibbs kernels (plain and row-stabilised)
``sinkhorn.py``            Sinkhorn scaling and its log-domain variant (Cuturi, 2013)
``newton.py``              Newton on the 4-variable demander dual (poselab's solver)
``implicit_gradient.py``   the gradient of ⟨C, P⟩ at the fixed point
``_checks.py``             input checks
=========================  ============================================================

This module batches all joints, chunk by chunk (``_CHUNK_BYTES`` of kernel per chunk, to stay in
cache), picks the solver, and wires the gradient into autograd.

References:
    H. Qu, L. Xu, Y. Cai, L. G. Foo, J. Liu. Heatmap Distribution Matching for Human Pose
    Estimation. Advances in Neural Information Processing Systems 35 (NeurIPS 2022).
    M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal Transport. Advances in
    Neural Information Processing Systems 26 (NeurIPS 2013), 2292–2300.
"""
from __future__ import annotations

import warnings

import torch

from ...codecs.hdm import naive_demanders, subpixel_demanders
# The solver pieces under their former private names: this module calls them through these
# globals (tests patch _stable and _newton_scaling here), and tests use _compute_dtype,
# _plain_kernel_ok, _Progress, _evaluate directly.
from ._checks import check_solver_args as _check_solver_args
from ._checks import compute_dtype as _compute_dtype
from ._checks import prepare as _prepare
from ._checks import resolve_solver as _resolve_solver
from .geometry import cell_costs, gathered_kernels as _gathered_kernels, kernel_planes as _kernel_planes
from .geometry import plain_kernel_ok as _plain_kernel_ok
from .geometry import shared_kernel_source as _shared_kernel_source
from .geometry import stable_kernel_ok as _stable
from .implicit_gradient import conditional_plan as _conditional_plan
from .implicit_gradient import newton_gradient as _newton_gradient
from .implicit_gradient import sinkhorn_gradient as _sinkhorn_gradient
from .newton import evaluate as _evaluate
from .newton import newton_scaling as _newton_scaling
from .sinkhorn import Progress as _Progress
from .sinkhorn import planes_dot as _planes_dot
from .sinkhorn import roundoff_floor as _roundoff_floor
from .sinkhorn import rows_dot as _rows_dot
from .sinkhorn import sinkhorn_log as _sinkhorn_log
from .sinkhorn import sinkhorn_scaling as _sinkhorn_scaling
from .suppliers import suppliers as _suppliers
from .suppliers import suppliers_vjp as _suppliers_vjp
from .suppliers import support as _support

__all__ = ["emd_loss", "hdm_transport", "cell_costs", "EmdLoss"]

_CHUNK_BYTES = 4 << 20  # kernel bytes per chunk (2^19 float64 / 2^20 float32 entries): in cache


def _chunks(n: int, per_problem: int, itemsize: int = 8) -> list[slice]:
    """Slices of ``n`` problems with ``per_problem`` kernel entries of ``itemsize`` bytes each,
    ~:data:`_CHUNK_BYTES` per chunk. Measured at 64×48, B·K = 544 (one thread): smaller chunks
    pay more per-op overhead (~1 ms per chunk), larger ones fall out of cache (2^21 float64
    entries per chunk: 1.3× slower, all problems at once: 2×)."""
    step = max(1, _CHUNK_BYTES // max(1, per_problem * itemsize))
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


def _newton_chunk(maps, points, b, size, reg, n_iters, tol, grad_out=None, source=None):
    """Solve one chunk with Newton (Sinkhorn continuation on a stall): cost, v, gradient.

    From the raw heatmap rows ``maps`` (n, P): suppliers (Eq. 3) compacted to their support, the
    row-stabilised kernel ``K`` and ``K∘C`` gathered on it, Newton, then from the final
    evaluation ``(s, G, col)``: ``ρ_i = (Σ_j v_j (K∘C)_ji) / s_i``, the cost ``Σ_i a_i ρ_i`` and
    (if ``grad_out`` (n, P) is given) the implicit gradient, chained through Eq. 3 and expanded
    into ``grad_out``. ``source``: the batch's shared kernel tables
    (:func:`~poselab.losses.transport.geometry.kernel_source`, ``base`` sliced to this chunk) or
    ``None`` (built here). Returns (cost (n,), v (n, 4), iterations, error).
    """
    a_full, total = _suppliers(maps, return_total=True)
    pos = maps > 0
    empty = total <= 0
    if bool(empty.any()):  # maps without positive mass: uniform suppliers on every pixel
        pos |= empty
    slot, a = _support(a_full, pos)
    kernel, kc = _gathered_kernels(points, size, reg, slot, a.shape[1], source)
    v, it, err, stalled, ev = _newton_scaling(a, kernel, b, n_iters, tol)
    if stalled and it < n_iters and err > _roundoff_floor(a.dtype):
        v, more, err = _sinkhorn_scaling(a, kernel, b, n_iters - it, tol, v0=v)
        it += more
        ev = _evaluate(a, kernel, v)
    s, gk, col = ev
    rho = _planes_dot(kc, v).div_(s)  # ρ_i = Σ_j π_{j|i} C_ji
    cost = (a * rho).sum(1)
    if grad_out is not None:
        g = _suppliers_vjp(a, _newton_gradient(a, kernel, kc, b, v, s, gk, col, rho), total, None)
        if slot is None:
            grad_out.copy_(g)
        else:  # pixels without mass read the zero column m
            torch.gather(torch.nn.functional.pad(g, (0, 1)), 1, slot, out=grad_out)
    return cost, v, it, err


@torch.no_grad()
def _forward(maps, points, b, size, reg, n_iters, tol, solver="newton", need_grad=False):
    """Solve all problems chunk by chunk, from the raw heatmap rows ``maps`` (N, P).

    Each chunk builds its suppliers (Eq. 3), solves and — if ``need_grad`` — computes
    ∂cost/∂maps right away while the chunk's planes are in cache. Warns (as POT does) when a
    chunk reaches ``n_iters`` above ``tol > 0``. Returns (cost (N,), state (N, 4) — ``v``, or
    the log-potential ``g`` of the log-domain solver —, iterations, error, grad (N, P) or None).
    """
    H, W = size
    stable = _stable(reg, maps.dtype)
    cost = maps.new_zeros(maps.shape[0])
    state = b.new_zeros(b.shape)
    grad = torch.empty_like(maps) if need_grad else None
    its, err, capped = 0, 0.0, False
    chunks = _chunks(maps.shape[0], 4 * H * W, maps.element_size())
    # kernel tables shared by every chunk (keypoints close together): built once, not per chunk
    source = (_shared_kernel_source(points, size, reg, chunks[0].stop - chunks[0].start)
              if stable and solver == "newton" and len(chunks) > 1 else None)
    for sl in chunks:
        if stable and solver == "newton":
            src = None if source is None else (*source[:2], source[2][sl], *source[3:])
            c, v, it, e = _newton_chunk(maps[sl], points[sl], b[sl], size, reg, n_iters, tol,
                                        grad[sl] if need_grad else None, src)
            cost[sl], state[sl] = c, v
        else:
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
                g, it, e = _sinkhorn_log(a, costs, b[sl], reg, n_iters, tol)
                pi = torch.softmax(g[:, :, None] - costs / reg, dim=1)
                cost[sl] = (a * (pi * costs).sum(1)).sum(1)
                state[sl] = g
            if need_grad:
                grad_a = _sinkhorn_gradient(a, points[sl], state[sl], size, reg, stable)
                grad[sl] = _suppliers_vjp(a, grad_a, total, (maps[sl] > 0).to(a.dtype))
        its, err, capped = max(its, it), max(err, e), capped or (it >= n_iters and e > tol)
    if capped and tol > 0:  # as POT's sinkhorn warns; tol = 0 asks for exactly n_iters iterations
        warnings.warn(f"EMD transport: the {solver} solver reached its cap of n_iters={n_iters} "
                      f"iterations with a demander-marginal error of {err:.2e} > tol={tol:g}; "
                      f"raise n_iters, loosen tol or raise reg", UserWarning, stacklevel=4)
    return cost, state, its, err, grad


class _EntropicCost(torch.autograd.Function):
    """Raw heatmap rows (N, P) -> transport costs (N,); the gradient w.r.t. the rows (through
    Eq. 3 and the implicit function theorem) is computed in the forward pass, chunk by chunk;
    backward only scales it."""

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


def emd_loss(heatmaps: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor,
             reg: float = 1.0, n_iters: int = 1000, tol: float = 1e-6, demanders: str = "subpixel",
             reduction: str = "mean", solver: str = "auto") -> torch.Tensor:
    r"""Heatmap Distribution Matching loss (HDM Eqs. 2–5): entropic EMD from heatmap to dot.

    **The idea.** Instead of comparing the predicted heatmap with a Gaussian target pixel by
    pixel, HDM asks how much work it takes to move the heatmap's mass onto the annotated dot.
    For every joint (``k``):

    1. *Suppliers* (Eq. 3). The ``H·W`` pixels hold the mass
       :math:`S = \mathrm{relu}(H_{pred}) / \lVert \mathrm{relu}(H_{pred}) \rVert_1`:
       non-negative, summing to 1.
    2. *Demanders* (Eq. 4). The dot :math:`(x, y)` lies in one unit cell of pixel centres;
       its four corners :math:`(x_i, y_i)` demand :math:`d_i = (1 - |x - x_i|)(1 - |y - y_i|)`
       (pixel size ``g = 1``): bilinear weights, so :math:`\sum_i d_i = 1` and
       :math:`\sum_i d_i (x_i, y_i) = (x, y)` exactly — four demanders represent a sub-pixel dot.
       (``demanders="naive"``: one demander at the centre of the pixel holding the dot, the
       paper's Table 4 baseline.)
    3. *Cost.* Moving one unit of mass from pixel ``n`` to demander ``m`` costs their Euclidean
       distance :math:`C_{nm}` in heatmap pixels (§3.2).
    4. *Transport* (Eqs. 1–2). A plan :math:`P \ge 0` has row sums ``S`` and column sums
       ``D``; the EMD is :math:`\min_P \langle C, P\rangle`. HDM uses Cuturi's entropic version:
       :math:`P_{reg} = \arg\min_P \langle C, P\rangle - \varepsilon H(P)`,
       :math:`H(P) = -\sum P \log P` (Eq. 2 prints ``C log C``; the plan's entropy is meant),
       :math:`\varepsilon = 1/\lambda =` ``reg`` (HDM: 1). Setting the derivative of the
       Lagrangian to zero gives :math:`P_{ij} = u_i e^{-C_{ij}/\varepsilon} v_j`; the loss is
       :math:`L_k = \langle C, P_{reg}\rangle` (the entropy term is not added, as in POT's
       ``sinkhorn2``).
    5. *Sum over joints* (Eq. 5): :math:`L = \sum_k L_k` (``reduction="sum"``); ``"mean"``
       divides by the number of labelled joints.

    **Solvers** (a public choice, same problem, same fixed point, same stopping rule):
    ``"sinkhorn"`` is the paper's algorithm (Cuturi, 2013): alternately rescale rows and
    columns, :math:`u = S / Kv`, :math:`v = D / K^\top u`. ``"newton"`` is **poselab's method,
    not the paper's**: with exact rows the plan is :math:`P_{ij} = S_i\,\mathrm{softmax}_j(g_j
    - C_{ij}/\varepsilon)`, so only the four demander potentials ``g`` are unknown, and Newton's
    method on those four equations converges in 3–4 steps where Sinkhorn takes ~7–30
    (``newton.py``). ``"auto"`` (default) is Newton if ``tol > 0``, else Sinkhorn: ``tol=0``
    runs exactly ``n_iters`` Sinkhorn iterations, the paper's knob (it used 1000). Both use a
    row-stabilised kernel that never underflows (``geometry.py``).

    **Gradient**: implicit differentiation at the fixed point (``implicit_gradient.py``), not
    back-propagation through the iterations; keypoints get none. **Dtypes**: float64 is solved
    in float64, float32/float16/bfloat16 in float32 (half precision holds neither the kernel's
    range nor a 1e-6 marginal error); value and gradient come back in the input dtype.

    Args:
        heatmaps: ``(B, K, H, W)`` float predictions (raw; ReLU is applied here).
        keypoints: ``(B, K, 2)`` ``(x, y)`` in heatmap pixels, pixel centres at integers.
        visible: ``(B, K)`` COCO visibility; joints with ``v <= 0`` or non-finite keypoints
            give 0 (and no gradient).
        reg: entropic regularisation ε (heatmap pixels), > 0.
        n_iters: iteration cap (Sinkhorn updates, or Newton warm-up + steps); reaching it above
            ``tol > 0`` issues a ``UserWarning``.
        tol: stop once every joint's demander-marginal L1 error is ≤ ``tol``, or at the dtype's
            round-off floor if that is higher (float32: 2e-7 – 1.5e-6); 0 runs ``n_iters``.
        demanders: ``"subpixel"`` (Eq. 4) or ``"naive"`` (Fig. 2a, Table 4).
        reduction: ``"mean"`` over labelled joints (0 if none), ``"sum"`` (Eq. 5) or
            ``"none"`` → ``(B, K)`` per-joint costs.
        solver: ``"auto"``, ``"newton"`` or ``"sinkhorn"`` (above).

    Returns:
        A scalar (or ``(B, K)``) tensor in the dtype of ``heatmaps``, differentiable in
        ``heatmaps`` — also when no joint is labelled (a zero with zero gradient).

    Example:
        >>> hm = torch.zeros(1, 1, 8, 6)
        >>> hm[0, 0, 3, 2] = 1.0                   # all mass on pixel x=2, y=3
        >>> kp = torch.tensor([[[2.0, 5.0]]])      # the dot two pixels below it
        >>> emd_loss(hm, kp, torch.ones(1, 1))     # the mass moves 2 px
        tensor(2.)
        >>> hm = torch.rand(2, 17, 16, 12, requires_grad=True)
        >>> kp = torch.rand(2, 17, 2) * torch.tensor([11.0, 15.0])
        >>> emd_loss(hm, kp, torch.ones(2, 17), solver="sinkhorn").backward()
        >>> hm.grad.shape
        torch.Size([2, 17, 16, 12])

    References:
        H. Qu, L. Xu, Y. Cai, L. G. Foo, J. Liu. Heatmap Distribution Matching for Human Pose
        Estimation. Advances in Neural Information Processing Systems 35 (NeurIPS 2022).
        M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal Transport. Advances in
        Neural Information Processing Systems 26 (NeurIPS 2013), 2292–2300.
    """
    reg, n_iters, tol = _check_solver_args(reg, n_iters, tol)
    solver = _resolve_solver(solver, tol)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    kp, valid = _prepare(heatmaps, keypoints, visible, demanders)
    B, K, H, W = heatmaps.shape
    flat = heatmaps.reshape(B * K, H * W)
    idx = valid.reshape(-1).nonzero().squeeze(1)
    if idx.numel():
        per_joint = heatmaps.new_zeros(B * K)
        maps, points = flat.to(kp.dtype), kp.reshape(B * K, 2)  # half precision: solved in float32
        if idx.numel() < B * K:  # copy only if some joints are unlabelled
            maps, points = maps.index_select(0, idx), points.index_select(0, idx)
        _, masses = (subpixel_demanders if demanders == "subpixel" else naive_demanders)(points)
        if not torch.is_grad_enabled():  # e.g. evaluation under no_grad: skip the gradient work
            maps = maps.detach()
        cost = _EntropicCost.apply(maps, points, masses, (H, W), reg, n_iters, tol, solver)
        per_joint = per_joint.index_put((idx,), cost.to(per_joint.dtype))
    else:  # no labelled joint: zeros connected to the input (one finite entry × 0), so that
        # backward() works and gives a zero gradient
        per_joint = heatmaps.new_zeros(B * K) + heatmaps.reshape(-1)[:1].sum() * 0.0
    per_joint = per_joint.reshape(B, K)
    if reduction == "none":
        return per_joint
    if reduction == "sum":
        return per_joint.sum()
    return per_joint.sum() / valid.sum().clamp_min(1).to(per_joint.dtype)


@torch.no_grad()
def hdm_transport(heatmaps: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor | None = None,
                  reg: float = 1.0, n_iters: int = 1000, tol: float = 1e-6,
                  demanders: str = "subpixel", solver: str = "sinkhorn") -> dict:
    """The full transport problem behind :func:`emd_loss`, for inspection (no gradient).

    Args: as :func:`emd_loss`; ``visible=None`` means all joints labelled. ``solver`` defaults
    to ``"sinkhorn"`` here so that ``iterations`` counts Sinkhorn iterations (the paper's knob).

    Returns:
        A dict with ``suppliers (B, K, H, W)``, ``positions (B, K, 4, 2)``,
        ``masses (B, K, 4)``, ``plan (B, K, H, W, 4)`` (P_reg, zero for unlabelled joints),
        ``cost (B, K)``, ``iterations`` (max over chunks), ``marginal_error`` (max
        demander-marginal L1 error) and ``stopped``: ``"tol"`` (every problem within ``tol``),
        ``"round-off"`` (the error stopped decreasing at the dtype's round-off floor, above
        ``tol``) or ``"cap"`` (``n_iters`` reached above ``tol``; a ``UserWarning`` is issued
        when ``tol > 0``). Arrays are float32 for half-precision input (the solve dtype).

    Example:
        >>> hm = torch.rand(1, 2, 16, 12, dtype=torch.float64)
        >>> info = hdm_transport(hm, torch.tensor([[[3.5, 4.0], [0.0, 15.0]]]))
        >>> info["plan"].shape, info["stopped"]
        (torch.Size([1, 2, 16, 12, 4]), 'tol')
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
    """``nn.Module`` wrapper of :func:`emd_loss` holding its hyper-parameters.

    Example:
        >>> loss = EmdLoss(reduction="sum")
        >>> float(loss(torch.rand(2, 3, 8, 6), torch.rand(2, 3, 2) * 5, torch.ones(2, 3))) > 0
        True
    """

    def __init__(self, reg: float = 1.0, n_iters: int = 1000, tol: float = 1e-6,
                 demanders: str = "subpixel", reduction: str = "mean", solver: str = "auto"):
        super().__init__()
        self.kwargs = dict(reg=reg, n_iters=n_iters, tol=tol, demanders=demanders,
                           reduction=reduction, solver=solver)

    def forward(self, heatmaps: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        return emd_loss(heatmaps, keypoints, visible, **self.kwargs)
