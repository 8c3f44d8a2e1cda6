r"""Sinkhorn matrix scaling for the HDM transport problems (Cuturi, 2013), batched.

The entropic transport plan between suppliers ``a`` (``P`` pixels) and demanders ``b`` (4 cell
corners) is

.. math::
    P_\varepsilon = \arg\min_{P \ge 0,\ P\mathbf 1 = a,\ P^\top \mathbf 1 = b}
        \langle C, P\rangle - \varepsilon H(P), \qquad H(P) = -\sum_{ij} P_{ij}\log P_{ij},

(HDM Eq. 2 with :math:`\varepsilon = 1/\lambda`). Its Lagrangian is stationary at
:math:`P_{ij} = u_i K_{ij} v_j` with :math:`K = e^{-C/\varepsilon}` and positive scalings ``u``,
``v``; Sinkhorn's algorithm alternately makes the row and the column sums exact,

.. math::
    u \leftarrow a \oslash (K v), \qquad v \leftarrow b \oslash (K^\top u),

a fixed-point iteration that converges linearly (Sinkhorn & Knopp; Cuturi, 2013). Here the kernel
is stored as ``(n, 4, P)`` planes, one per demander, so both updates are batched matrix–vector
products (:func:`planes_dot`, :func:`rows_dot`). :func:`sinkhorn_log` is the log-domain variant
(log-sum-exp instead of products) for a ``reg`` so small that even the row-stabilised kernel
underflows — POT keeps both variants side by side in the same way (``ot.bregman``).

**Stopping rule.** Before each column update the plan with exact rows,
:math:`P_{ij} = a_i K_{ji} v_j / \sum_k K_{ki} v_k`, misses the demander marginals by
:math:`\sum_j |v_j (K^\top u)_j - b_j|` (L1; four numbers per problem, so the check is free).
The loop stops when that error is ≤ ``tol`` for every problem, after ``n_iters`` updates, or —
for ``tol > 0`` — when the error sits at the dtype's round-off floor (:class:`Progress`).

References:
    M. Cuturi. Sinkhorn Distances: Lightspeed Computation of Optimal Transport. Advances in
    Neural Information Processing Systems 26 (NeurIPS 2013), 2292–2300.
    G. Peyré and M. Cuturi. Computational Optimal Transport. Foundations and Trends in Machine
    Learning 11(5–6), 355–607, 2019 (§4.2 Sinkhorn, §4.4 log-domain stabilisation).
    R. Flamary et al. POT: Python Optimal Transport. JMLR 22(78), 1–8, 2021 (``ot.sinkhorn2``,
    the reference this implementation is checked against).
"""
from __future__ import annotations

import math

import torch

__all__ = ["planes_dot", "rows_dot", "Progress", "roundoff_floor", "sinkhorn_scaling", "sinkhorn_log"]


def planes_dot(planes: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """``Σ_j planes[:, j, :] coef[:, j]``: planes (n, M, P), coef (n, M) -> (n, P) (``K v``)."""
    return torch.bmm(coef.unsqueeze(1), planes).squeeze(1)


def rows_dot(planes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Σ_i planes[:, j, i] x[:, i]``: planes (n, M, P), x (n, P) -> (n, M) (``Kᵀ u``).

    Written as ``xᵀ planesᵀ``: on the CPU this orientation of the batched product was several
    times faster than ``planes @ x`` for long rows (and ~3× faster than ``linalg.vecdot``)."""
    return torch.bmm(x.unsqueeze(1), planes.transpose(1, 2)).squeeze(1)


class Progress:
    """Round-off stall detection shared by the solvers.

    In floating point the demander-marginal error cannot fall below a floor set by round-off in
    the sums over ``H·W`` pixels (measured in float32: 2e-7 – 1.5e-6 at 16×12 – 96×72 heatmaps;
    in float64 ~1e-15). Near that floor the error wobbles, so "no new best for a few iterations"
    never fires reliably (it did not, and float32 ran the 1000-iteration cap). Instead the
    solver has *stalled* once the best error of the last ``window`` iterations is no better than
    ``factor`` × the best error before them (Newton converges quadratically: a working step cuts
    the error by orders of magnitude; Sinkhorn with ``reg = 1`` by ~5× per iteration) and the
    error is at most ``floor``.

    Example:
        >>> progress = Progress(window=2)
        >>> [progress.stalled(e) for e in (2e-3, 3e-6, 4.1e-7, 3.9e-7, 4.0e-7)]
        [False, False, False, False, True]
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


def roundoff_floor(dtype: torch.dtype) -> float:
    """Marginal error below which a solver that stopped improving is taken to be at its
    round-off floor: ``64 eps`` (7.6e-6 in float32, 1.4e-14 in float64), 5× the largest float32
    floor measured at 16×12 – 96×72 heatmaps. A stall above it is a solver failure: Newton then
    continues with Sinkhorn, Sinkhorn runs on to its cap (and the caller warns)."""
    return 64.0 * torch.finfo(dtype).eps


def sinkhorn_scaling(a: torch.Tensor, kernel: torch.Tensor, b: torch.Tensor, n_iters: int,
                     tol: float, v0: torch.Tensor | None = None) -> tuple[torch.Tensor, int, float]:
    """Sinkhorn matrix scaling, batched over ``n`` problems.

    Args:
        a: ``(n, P)`` supplier masses (rows sum to 1).
        kernel: ``(n, M, P)`` kernel planes (:func:`~poselab.losses.transport.geometry.kernel_planes`
            or ``gathered_kernels``), ``exp(-C/ε)`` up to a positive factor per pixel.
        b: ``(n, M)`` demander masses.
        n_iters: the cap on column updates.
        tol: stop once every problem's demander-marginal L1 error is ≤ ``tol`` (module
            docstring); ``0`` runs exactly ``n_iters`` updates.
        v0: optional starting demander scaling (default ones).
    Returns:
        ``(v (n, M), iterations, error)``; the row-exact plan is
        ``P_ij = a_i K_ji v_j / Σ_k K_ki v_k``.
    """
    v = torch.ones_like(b) if v0 is None else v0.clone()
    progress = Progress(10, roundoff_floor(a.dtype))
    it, err = 0, float("inf")
    while True:
        u = a / planes_dot(kernel, v)
        col = rows_dot(kernel, u)  # (n, M)
        err = float((v * col - b).abs().sum(1).max()) if b.numel() else 0.0
        if it >= n_iters or err <= tol or (tol > 0 and progress.stalled(err)):
            return v, it, err
        v = b / col
        it += 1


def sinkhorn_log(a: torch.Tensor, costs: torch.Tensor, b: torch.Tensor, reg: float, n_iters: int,
                 tol: float) -> tuple[torch.Tensor, int, float]:
    """Log-domain Sinkhorn: the same iteration and stopping rule as :func:`sinkhorn_scaling`
    with ``g = ε log v`` / ε and log-sum-exp in place of the kernel products, for ``ε`` so small
    that even the row-stabilised kernel underflows.

    Args:
        a: ``(n, P)``; costs: ``(n, M, P)`` (:func:`~poselab.losses.transport.geometry.cell_costs`);
        b: ``(n, M)``; reg: ε; n_iters, tol: as :func:`sinkhorn_scaling`.
    Returns:
        ``(g (n, M), iterations, error)``, the demanders' log-potential:
        ``π_{j|i} = softmax_j(g_j − C_ji/ε)``, ``P_ij = a_i π_{j|i}``.
    """
    log_k = -costs / reg  # (n, M, P)
    log_b = torch.where(b > 0, b.log(), torch.full_like(b, -math.inf))
    g = torch.zeros_like(b)
    progress = Progress(10, roundoff_floor(a.dtype))
    it, err = 0, float("inf")
    while True:
        log_pi = torch.log_softmax(log_k + g[:, :, None], dim=1)  # row-exact plan / a
        col = (a[:, None, :] * log_pi.exp()).sum(-1)  # demander marginal of the row-exact plan
        err = float((col - b).abs().sum(1).max()) if b.numel() else 0.0
        if it >= n_iters or err <= tol or (tol > 0 and progress.stalled(err)):
            return g, it, err
        g = torch.where(b > 0, g + log_b - col.log(), torch.full_like(g, -math.inf))
        it += 1
