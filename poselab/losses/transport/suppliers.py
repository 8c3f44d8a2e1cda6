r"""Suppliers from a predicted heatmap (HDM Eq. 3), their support, and the chain rule through Eq. 3.

HDM turns the ``H×W`` predicted heatmap of a joint into ``H·W`` suppliers holding
non-negative mass that sums to one,

.. math::
    S = \frac{\mathrm{relu}(H_{pred})}{\lVert \mathrm{relu}(H_{pred}) \rVert_1}
    \qquad \text{(HDM Eq. 3)}.

A map without positive mass has no Eq. 3; poselab then takes uniform suppliers (the loss is the
finite cost of spreading mass evenly) and a zero gradient (ReLU is flat there).

Pixels with :math:`h_i \le 0` carry no mass: they enter neither the marginals, nor the cost, nor
— through relu′ — the gradient. :func:`support` therefore compacts each problem to its
positive pixels (on a noisy prediction about half of them), and the solvers work on
``(n, 4, m)`` kernels with ``m`` the largest support in a chunk.
"""
from __future__ import annotations

import torch

__all__ = ["suppliers", "support", "suppliers_vjp"]


def suppliers(heatmaps_flat: torch.Tensor, return_total: bool = False):
    """HDM Eq. 3 with a uniform fallback for maps without positive mass.

    Args:
        heatmaps_flat: ``(N, H*W)`` raw predictions.
        return_total: also return the positive mass ``Σ relu(h)`` ``(N, 1)`` (``inf`` where
            that sum overflows the dtype; the masses are still exact, the chain rule's
            ``1/Σ relu(h)`` then rounds to the zero it is in that dtype).
    Returns:
        ``(N, H*W)`` supplier masses (rows sum to 1), and ``total`` if asked.

    Example:
        >>> suppliers(torch.tensor([[2.0, -1.0, 1.0, 1.0]]))
        tensor([[0.5000, 0.0000, 0.2500, 0.2500]])
    """
    mass = torch.relu(heatmaps_flat)
    total = mass.sum(dim=1, keepdim=True)
    empty = total <= 0
    huge = torch.isinf(total)  # finite maps whose sum overflows (float32 values near 1e38)
    divisor = torch.where(empty | huge, torch.ones_like(total), total)
    if bool(huge.any()):  # those rows: divided by their peak first, then by the finite sum left
        rows = huge.squeeze(1)
        scaled = mass[rows] / mass[rows].amax(dim=1, keepdim=True)
        mass[rows] = scaled / scaled.sum(dim=1, keepdim=True)
    mass.div_(divisor)
    if bool(empty.any()):
        mass[empty.squeeze(1)] = 1.0 / max(1, mass.shape[1])
    return (mass, total) if return_total else mass


def support(a: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Compaction of each row to its support: ``(slot (n, P), a_support (n, m))``.

    ``pos`` (n, P) bool marks the support: the pixels with ``h_i > 0`` (and every pixel of a map
    without positive mass, whose suppliers are uniform). ``slot[r, i]`` is the column of pixel
    ``i`` in the compacted row ``r`` (support pixels left-aligned in pixel order) or ``m`` for
    the others; ``m`` is the largest support in the chunk and shorter rows are padded with mass
    0. (The support is taken from ``h``, not from ``a = relu(h)/Σ relu(h)``: a subnormal
    ``h_i > 0`` gives ``a_i = 0`` in float32 but still has a gradient.) Scatter with ``slot``
    into ``m + 1`` columns to compact, gather with it to expand (column ``m`` holding 0).
    ``(None, a)`` when every map of the chunk is fully positive.
    """
    n, P = a.shape
    counts = pos.sum(1)
    m = int(counts.max()) if n else 0
    if m == P and bool((counts == P).all()):
        return None, a
    # arithmetic, not torch.where: several times faster on the CPU here; in int32 (P < 2^31),
    # widened once for scatter/gather: bool → int64 cumsum plus three int64 passes cost ~1.5×
    slot = pos.cumsum(1, dtype=torch.int32).sub_(m + 1).mul_(pos).add_(m).long()
    return slot, a.new_zeros(n, m + 1).scatter_(1, slot, a)[:, :m]


def suppliers_vjp(a: torch.Tensor, grad_a: torch.Tensor, total: torch.Tensor,
                  positive: torch.Tensor | None) -> torch.Tensor:
    """Chain ∂cost/∂a through Eq. 3, ``a = relu(h)/Σ relu(h)``:
    ``∂cost/∂h_i = 1[h_i > 0] (g_i − Σ_k a_k g_k) / Σ relu(h)`` with ``g = ∂cost/∂a``; 0 for maps
    without positive mass (uniform fallback, ReLU flat).

    Args:
        a, grad_a: ``(n, P)``; total: ``(n, 1)`` = ``Σ relu(h)``; positive: ``(n, P)`` float mask
            ``1[h_i > 0]``, or ``None`` on a compacted support (every column is a support pixel;
            the expansion gives the others 0).
    Returns:
        ``(n, P)`` (``grad_a``'s storage is not reused).
    """
    centred = grad_a - (a * grad_a).sum(1, keepdim=True)
    scale = torch.where(total > 0, 1.0 / torch.where(total > 0, total, torch.ones_like(total)),
                        torch.zeros_like(total))
    centred.mul_(scale)
    return centred if positive is None else centred.mul_(positive)
