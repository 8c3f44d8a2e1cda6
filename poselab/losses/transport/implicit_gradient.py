r"""Gradient of the HDM transport cost by implicit differentiation at the fixed point.

The loss of one joint is the transport cost of the entropic plan, :math:`L = \langle C,
P_\varepsilon\rangle` (HDM Eq. 2; the entropy is not part of the value, as in POT's
``sinkhorn2``). Its gradient with respect to the suppliers ``a`` is **not** the dual potential
(that is the gradient of the *regularised* objective :math:`\langle C,P\rangle - \varepsilon
H(P)`), and it is not obtained by back-propagating through the solver's iterations (memory and
time would grow with the iteration count, and the result would depend on where the loop
stopped). It follows from the optimality conditions, as in Luise et al. (2018):

Write the plan with exact supplier marginals as :math:`P_{ij} = a_i\,\pi_{j|i}`,
:math:`\pi_{j|i} = \mathrm{softmax}_j(g_j - C_{ij}/\varepsilon)`. The demander potential ``g``
is defined implicitly by the four marginal equations :math:`F(g, a) = \sum_i a_i \pi_{j|i} -
d_j = 0`. With :math:`\partial F/\partial g = M = \mathrm{diag}(\beta) - \sum_i a_i\pi_i\pi_i^\top`
(:math:`\beta` = the column marginals) and :math:`\partial F_j/\partial a_i = \pi_{j|i}`, the
implicit function theorem and the chain rule through :math:`L = \sum_i a_i \rho_i`,
:math:`\rho_i = \sum_j \pi_{j|i} C_{ij}`, give

.. math::
    \frac{\partial L}{\partial a_i} = \sum_j \pi_{j|i}\,(C_{ij} - z_j), \qquad
    M z = w, \qquad w_j = \sum_i a_i\, \pi_{j|i}\,(C_{ij} - \rho_i),

one 4×4 linear system per joint (rank 3: the gauge is fixed by adding ``11ᵀ``; a demander with
zero mass gets a 1 on its diagonal). Solved in float64 whatever the input dtype (4×4: free).
Memory does not grow with the number of iterations; keypoints get no gradient. The
chain rule through Eq. 3 is :func:`poselab.losses.transport.suppliers.suppliers_vjp`.

Two implementations: :func:`newton_gradient` reuses the Newton solver's final evaluation (the
matrix ``M`` is already there; three passes over the kernel), :func:`sinkhorn_gradient` builds
``π`` densely from a Sinkhorn (or log-domain) state. Both are checked against finite differences
(``torch.autograd.gradcheck`` in float64) and against each other in ``tests/test_hdm_loss.py``.

References:
    G. Luise, A. Rudi, M. Pontil, C. Ciliberto. Differential Properties of Sinkhorn
    Approximation for Learning with Wasserstein Distance. Advances in Neural Information
    Processing Systems 31 (NeurIPS 2018).
"""
from __future__ import annotations

import torch

from .geometry import cell_costs, kernel_planes
from .sinkhorn import planes_dot, rows_dot

__all__ = ["conditional_plan", "newton_gradient", "sinkhorn_gradient"]


def _solve_gauge_fixed(beta: torch.Tensor, gram: torch.Tensor, rhs: torch.Tensor,
                       inactive: torch.Tensor) -> torch.Tensor:
    """Solve ``(diag(β) − gram + 11ᵀ + diag(inactive)) z = rhs`` in float64, batched (n, 4, 4).

    On very peaked maps at small ``reg`` (≤ 0.15) every pixel sends its mass to one demander, so
    ``diag(β) − gram`` rounds to zero and the matrix to the singular ``11ᵀ``. Those systems take
    the least-squares solution (pseudo-inverse of the symmetric matrix) instead of raising.
    """
    mat = torch.diag_embed(beta.double()) - gram.double() + 1.0 + torch.diag_embed(inactive.double())
    return solve_or_least_squares(mat, rhs.double())


def solve_or_least_squares(mat: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``mat⁻¹ rhs`` for a batch of symmetric ``(n, M, M)`` matrices and ``(n, M)`` right-hand
    sides; where a matrix is singular (or the solution not finite), the minimum-norm
    least-squares solution ``pinv(mat) rhs``."""
    z, info = torch.linalg.solve_ex(mat, rhs.unsqueeze(-1))
    z = z.squeeze(-1)
    bad = (info != 0) | ~torch.isfinite(z).all(-1)
    if bool(bad.any()):
        z = z.clone()
        z[bad] = (torch.linalg.pinv(mat[bad], hermitian=True) @ rhs[bad].unsqueeze(-1)).squeeze(-1)
    return z


def newton_gradient(a: torch.Tensor, kernel: torch.Tensor, kc: torch.Tensor, b: torch.Tensor,
                    v: torch.Tensor, s: torch.Tensor, gk: torch.Tensor, col: torch.Tensor,
                    rho: torch.Tensor) -> torch.Tensor:
    """∂⟨C, P⟩/∂a from the Newton solver's final evaluation (module docstring).

    With ``q = a/s``: ``w = v ∘ ((K∘C) q − K (q ∘ ρ))`` (two passes), ``M = diag(col) − (v vᵀ)
    ∘ G``, then ``∂L/∂a_i = ρ_i − (Σ_j K_ji v_j z_j) / s_i`` (one pass).

    Args:
        a: ``(n, P)``; kernel, kc: ``(n, 4, P)`` the row-stabilised kernel and ``K∘C``;
        b: ``(n, 4)`` demander masses; v: ``(n, 4)``; ``(s, gk, col)`` the
        :func:`~poselab.losses.transport.newton.evaluate` result at ``v``; rho: ``(n, P)``,
        ``ρ_i = Σ_j π_{j|i} C_ij`` — **overwritten** with the result.
    Returns:
        ``(n, P)`` gradient with respect to ``a`` (``rho``'s storage).
    """
    q = a / s
    w = v * (rows_dot(kc, q) - rows_dot(kernel, q * rho))
    gram = gk * v[:, :, None] * v[:, None, :]
    z = _solve_gauge_fixed(col, gram, w, b <= 0).to(a.dtype)
    return rho.sub_(planes_dot(kernel, v * z).div_(s))


def conditional_plan(state: torch.Tensor, points: torch.Tensor, size: tuple[int, int], reg: float,
                     stable: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(π (n, 4, P), costs (n, 4, P))``, ``π_{j|i} = P_ij / a_i``, from a solver state: the
    demander scaling ``v`` if ``stable`` (kernel solvers), else the log-potential ``g``
    (:func:`~poselab.losses.transport.sinkhorn.sinkhorn_log`)."""
    if stable:
        costs, kernel = kernel_planes(points, size, reg)
        kv = planes_dot(kernel, state)
        return kernel.mul_(state[:, :, None]).div_(kv[:, None, :]), costs
    costs = cell_costs(points, size)
    return torch.softmax(state[:, :, None] - costs / reg, dim=1), costs


@torch.no_grad()
def sinkhorn_gradient(a: torch.Tensor, points: torch.Tensor, state: torch.Tensor,
                      size: tuple[int, int], reg: float, stable: bool) -> torch.Tensor:
    """∂⟨C, P⟩/∂a (module docstring) from a Sinkhorn state (``stable``: ``v``, else ``g``),
    with the dense conditional plan of :func:`conditional_plan`. a (n, P) -> (n, P)."""
    pi, costs = conditional_plan(state, points, size, reg, stable)  # (n, M, P)
    pc = pi * costs
    rho = pc.sum(1)  # ρ_i = Σ_j π_ij C_ij
    beta = rows_dot(pi, a)  # column marginals of P = a π
    gram = torch.bmm(pi * a[:, None, :], pi.transpose(1, 2))  # Σ_i a_i π_i π_iᵀ
    w = rows_dot(pc, a) - rows_dot(pi, a * rho)
    z = _solve_gauge_fixed(beta, gram, w, beta <= 0).to(a.dtype)  # beta <= 0: naive demanders
    return rho - planes_dot(pi, z)
