"""Confidence-ranking losses: RCNet's Laplacian rank loss and the learning-to-rank rivals it is
compared with (RCNet, "On the ranking of human pose confidence", Def. 1, Eq. 8–9, App. E, G).

Every loss here takes the same arguments::

    loss(pred (N,), target (N,), ..., groups=None) -> scalar tensor

``pred`` are refined confidence scores (RCNet's sigmoid outputs, in [0, 1]); ``target`` the
surrogate ground-truth scores s* (the OKS of each pose with its matched person, in [0, 1]);
``groups`` (N,) integers restrict every pair (and every list) to poses of the same group (e.g.
the same image). ``groups=None`` ranks the whole batch as one list, which is what COCO AP does:
it sorts the detections of *all* images together.

Pairs are "ordered pairs i ≠ j" unless a docstring says otherwise; the pairwise terms are built
as (N, N) tensors (no Python loop over pairs), so memory is O(N²): a few thousand poses per call.
:func:`laplacian_rank_loss` also accepts ``chunk=`` to bound memory for evaluation on large sets.

Bad input: a non-tensor, integer, non-1-D or NaN/Inf ``pred``/``target``, or lengths that differ
raise ``ValueError`` naming the argument. Nothing to rank (a single pose, all targets equal, an
empty batch) gives a defined finite loss: the pair term is 0 (the L1 term, where there is one,
still counts), with a graph so ``backward()`` works.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._numbers import whole_number
from ._checks import check_pair_memory, check_tensor, finite_number

__all__ = [
    "laplacian_rank_loss", "rank_pair_term", "rank_pair_term_eq9", "ranknet_loss",
    "lambdarank_loss", "approx_ndcg_loss", "neural_ndcg_loss", "ap_rank_loss", "dr_loss",
    "crps_rank_loss", "gaussian_rank_loss", "l1_score_loss", "mse_score_loss",
    "CONFIDENCE_RANKING_LOSSES", "REGRESSION_CONTROLS", "ConfidenceRankingLoss", "LaplacianRankLoss",
]


# ----------------------------------------------------------------------------- checks and pairs

#: (N, N) float64 tables a pairwise loss holds at once (differences, order, terms, weights)
PAIR_TABLES = 4


def _check_inputs(pred, target, groups, pair_rows: int | None = None, what: str = "this loss",
                  slates: bool = False):
    if not isinstance(pred, torch.Tensor):
        raise ValueError(f"pred must be a torch.Tensor of shape (N,), got {type(pred).__name__}")
    if not pred.is_floating_point():
        raise ValueError(f"pred must be a floating tensor, got dtype {pred.dtype}; use .float()")
    if pred.dim() != 1:
        raise ValueError(f"pred must be 1-D (one score per pose), got shape {tuple(pred.shape)}")
    if not isinstance(target, torch.Tensor):
        target = torch.as_tensor(target)
    if target.dim() != 1 or target.shape != pred.shape:
        raise ValueError(f"target must have pred's shape {tuple(pred.shape)} (one OKS per pose), "
                         f"got {tuple(target.shape)}")
    target = target.to(device=pred.device, dtype=_wide_dtype(pred.device))
    if pred.numel() and not bool(torch.isfinite(pred.detach()).all()):
        raise ValueError("pred contains NaN or Inf; check the network output (RCNet's sigmoid "
                         "output is always finite for finite inputs)")
    if target.numel() and not bool(torch.isfinite(target).all()):
        raise ValueError("target contains NaN or Inf; give every pose a finite target score "
                         "(OKS with its matched person, 0 when unmatched)")
    if target.numel():
        lo, hi = float(target.min()), float(target.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"target must lie in [0, 1] (the OKS of each pose with its matched "
                             f"person), got values in [{lo:g}, {hi:g}]; percentages must be "
                             f"divided by 100")
    if groups is not None:
        if not isinstance(groups, torch.Tensor):
            groups = torch.as_tensor(groups)
        if groups.shape != pred.shape:
            raise ValueError(f"groups must have pred's shape {tuple(pred.shape)} (one group id "
                             f"per pose, e.g. the image id), got {tuple(groups.shape)}")
        if groups.is_floating_point() or groups.is_complex():
            raise ValueError("groups must hold integer ids (e.g. image ids), got dtype "
                             f"{groups.dtype}")
        groups = groups.to(pred.device)
    n = pred.numel()
    if slates and groups is not None and n:  # (G, L, L) tables, L the largest group
        _, counts = torch.unique(groups, return_counts=True)
        entries = counts.numel() * int(counts.max()) ** 2
    else:  # the (N, N) table (groups only mask it), or ``pair_rows`` rows of it at a time
        entries = n * (n if pair_rows is None else min(n, pair_rows))
    check_pair_memory(entries * 8 * PAIR_TABLES,
                      f"{what} on {n:,} poses ({entries:,} pairs at once): rank a subset or per "
                      "image, or evaluate with laplacian_rank_loss(..., chunk=...);")
    return target, groups


def _wide_dtype(device) -> torch.dtype:
    """The dtype targets and ranks are compared in: float64 (exact ties between OKS values), but
    float32 on Apple MPS, which has no float64 (a float64 target there is a runtime error)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _check_positive(value: float, name: str, allow_zero: bool = False) -> float:
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, "
                         f"got {value}")
    return value


def _check_threshold(value) -> float:
    """The OKS at which a pose counts as a positive: in (0, 1] (0 makes every pose a positive,
    above 1 none; NaN compares False with everything: every pose a negative, loss 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in (0, 1] (an OKS), got {value!r}") from None
    if not 0.0 < v <= 1.0:
        raise ValueError(f"threshold must be in (0, 1] (the OKS from which a pose is a positive), "
                         f"got {value!r}")
    return v


def _same_group(groups, rows: slice | None = None) -> torch.Tensor | None:
    """(n_rows, N) bool: pose i and pose j are in the same group (None when groups is None)."""
    if groups is None:
        return None
    g_rows = groups if rows is None else groups[rows]
    return g_rows[:, None] == groups[None, :]


def _order(target, groups, rows: slice | None = None) -> torch.Tensor:
    """(n_rows, N) sign(target_i − target_j) in {−1, 0, 1} (float64), 0 across groups and on ties."""
    t_rows = target if rows is None else target[rows]
    s = torch.sign(t_rows[:, None] - target[None, :])
    same = _same_group(groups, rows)
    return s if same is None else s * same


def _zero(pred: torch.Tensor) -> torch.Tensor:
    return pred.sum() * 0.0


def _group_index(groups, n: int, device) -> tuple[torch.Tensor, int]:
    """Group ids remapped to 0..G−1 (all zeros when groups is None) and G."""
    if groups is None:
        return torch.zeros(n, dtype=torch.long, device=device), 1
    _, inverse = torch.unique(groups, return_inverse=True)
    return inverse, int(inverse.max()) + 1 if n else 0


def _gains(target: torch.Tensor) -> torch.Tensor:
    """NDCG gains 2^y − 1 (allRank's powered relevance)."""
    return torch.pow(2.0, target) - 1.0


def _ranks_desc(values: torch.Tensor, same: torch.Tensor | None) -> torch.Tensor:
    """1-based rank of each item in descending order within its group; ties broken by index."""
    n = values.numel()
    idx = torch.arange(n, device=values.device)
    before = (values[None, :] > values[:, None]) | (
        (values[None, :] == values[:, None]) & (idx[None, :] < idx[:, None]))
    if same is not None:
        before = before & same
    return 1.0 + before.sum(dim=1).to(_wide_dtype(values.device))


def _max_dcg(gains: torch.Tensor, same, group_idx, n_groups) -> torch.Tensor:
    """Ideal DCG of every group (gains sorted descending), shape (G,)."""
    ideal_rank = _ranks_desc(gains, same)
    contrib = gains / torch.log2(1.0 + ideal_rank)
    return torch.zeros(n_groups, dtype=contrib.dtype, device=contrib.device).index_add_(
        0, group_idx, contrib)


# ----------------------------------------------------------------------------- RCNet's rank loss

def rank_pair_term(delta: torch.Tensor, order: torch.Tensor, c: float = 1.0,
                   margin: float | None = None, *, continuous: bool = True) -> torch.Tensor:
    """g(δ) of a pair in the |δ| form (RCNet App. J.3, Eq. 38), elementwise.

    With u = order·δ (positive when the pair is ordered like its target):

        g = (u − m)² + c²/4            if u > 0   (ordered: pulled to the margin m)
        g = −c·u + m² + c²/4           if u ≤ 0   (misordered, or tied: slope −c drives u up)

    with the margin m = c/2 (Prop. 2). For m = c/2 the misordered branch is c·|δ| + c²/2 and
    this equals Eq. 9 exactly on δ ∈ [−c, c] (:func:`rank_pair_term_eq9`).

    **Ties.** At exactly tied predictions (δ = 0) Eq. 9 puts the pair in its δ ∈ [0, c] case,
    ½(δ ∓ c)² ± ½δ², whose derivative there is −c·order: the gradient pushes the pair apart in
    the right direction. Written as c·|δ| the branch would get autograd's sign(0) = 0 instead (a
    tied pair would never be separated); written as −c·u it gets Eq. 9's −c.

    **Other margins (Table 7).** Eq. 38 with m ≠ c/2 printed literally (``continuous=False``:
    misordered branch c·|δ| + c²/2) jumps at δ = 0 from m² + c²/4 to c²/2 (margin 1: 1.25 vs
    0.5), so a pair crossing zero could *lower* the loss by becoming misordered. The default
    (``continuous=True``) shifts the misordered branch by the constant m² − c²/4 so that g is
    continuous at δ = 0 for every margin; at m = c/2 the shift is 0 (the paper's loss exactly).
    A constant shift of one branch leaves every gradient unchanged, so training is the same
    either way; the loss *value* (what Theorem 3 speaks of) is what the shift repairs.

    Args:
        delta: pairwise differences δ_ij = μ_i − μ_j (any shape).
        order: sign(s*_i − s*_j) broadcastable to ``delta``; pairs with order 0 get g = 0.
        c: the score range (1 for scores in [0, 1]). margin: m (default c/2).
        continuous: the continuous form above (default) or the literal Eq. 38 branches.

    Example:
        >>> rank_pair_term(torch.tensor([0.5, -0.5]), torch.tensor([1.0, 1.0])).tolist()
        [0.25, 1.0]
    """
    delta, order = _check_pair_inputs(delta, order)
    c = _check_positive(c, "c")
    margin = None if margin is None else _check_positive(margin, "margin", allow_zero=True)
    return _pair_term(delta, order, c, margin, continuous)


def _check_pair_inputs(delta, order) -> tuple[torch.Tensor, torch.Tensor]:
    """``delta`` a finite floating tensor, ``order`` a finite tensor (of signs) broadcastable to it."""
    delta = check_tensor(delta, "delta")
    if not isinstance(order, torch.Tensor):
        raise ValueError(f"order must be a torch.Tensor of signs (+1, 0, -1), got {type(order).__name__}")
    if order.numel() and not bool(torch.isfinite(order.to(torch.float64)).all()):
        raise ValueError("order contains NaN or Inf: it holds the signs sign(s*_i - s*_j)")
    try:
        torch.broadcast_shapes(order.shape, delta.shape)
    except RuntimeError:
        raise ValueError(f"order {tuple(order.shape)} does not broadcast to delta {tuple(delta.shape)}") from None
    return delta, order


def _pair_term(delta: torch.Tensor, order: torch.Tensor, c: float, margin: float | None,
               continuous: bool = True) -> torch.Tensor:
    """:func:`rank_pair_term` without the input checks (the loss checks its inputs once)."""
    m = c / 2.0 if margin is None else float(margin)
    order = order.to(delta.dtype)
    u = order * delta
    correct = (u > 0).to(delta.dtype)
    valid = order.abs()
    wrong_at_zero = (m * m + c * c / 4.0) if continuous else c * c / 2.0
    return correct * ((u - m) ** 2 + c * c / 4.0) + (valid - correct) * (wrong_at_zero - c * u)


def rank_pair_term_eq9(delta: torch.Tensor, order: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """g(δ) exactly as printed in RCNet Eq. 9, its four cases (reference for the |δ| form).

        s*_i > s*_j, δ ∈ [0, c]:   ½(δ − c)² + ½δ²
        s*_i < s*_j, δ ∈ [0, c]:   ½(δ + c)² − ½δ²
        s*_i > s*_j, δ ∈ [−c, 0):  ½(δ − c)² − ½δ²
        s*_i < s*_j, δ ∈ [−c, 0):  ½(δ + c)² + ½δ²

    Pairs with order 0 (tied targets) get 0. Outside [−c, c] the polynomials are evaluated as
    they are (Eq. 9 does not define them there).

    Example:
        >>> rank_pair_term_eq9(torch.tensor([0.5, -0.5]), torch.tensor([1.0, 1.0])).tolist()
        [0.25, 1.0]
    """
    delta, order = _check_pair_inputs(delta, order)
    c = _check_positive(c, "c")
    order = order.to(delta.dtype)
    nonneg = delta >= 0
    case1 = 0.5 * (delta - c) ** 2 + 0.5 * delta ** 2
    case2 = 0.5 * (delta + c) ** 2 - 0.5 * delta ** 2
    case3 = 0.5 * (delta - c) ** 2 - 0.5 * delta ** 2
    case4 = 0.5 * (delta + c) ** 2 + 0.5 * delta ** 2
    above = torch.where(nonneg, case1, case3)
    below = torch.where(nonneg, case2, case4)
    zero = torch.zeros_like(delta)
    return torch.where(order > 0, above, torch.where(order < 0, below, zero))


def laplacian_rank_loss(pred: torch.Tensor, target: torch.Tensor, b_prime: float = 2.0,
                        c: float = 1.0, groups: torch.Tensor | None = None, *,
                        margin: float | None = None, chunk: int = 4096) -> torch.Tensor:
    """RCNet's rank loss under the Laplacian assumptions (RCNet Def. 1, Eq. 8–9).

        l = (2/b′) · mean_i |s*_i − μ_i|  +  mean_{(i,j): i≠j, s*_i≠s*_j} g(μ_i − μ_j)

    with g from Eq. 9 (equivalently Eq. 38, :func:`rank_pair_term`): a correctly ordered pair is
    pulled to the margin |δ| = c/2, a misordered pair pays c·|δ| + c²/2 (its gradient drives δ
    through 0, flipping the order). The first term is the L1 pull to the targets.

    Args:
        pred: (N,) refined scores μ_θ (RCNet's sigmoid outputs).
        target: (N,) surrogate ground-truth scores s* (OKS with the matched person).
        b_prime: b′, the Laplace scale of μ around s* (paper: 2.0, so the L1 weight is 1).
        c: score range (1 for scores in [0, 1]).
        groups: (N,) ids; pairs only within a group. None: all pairs of the batch.
        margin: m in g's ordered branch; default c/2 (Prop. 2). Table 7 ablates 0 … 1.
        chunk: rows of the (N, N) pair table built at once (memory bound; same value).

    Returns a scalar in ``pred``'s dtype. With no valid pair (N ≤ 1, all targets equal) the
    pair term is 0; with N = 0 the loss is 0 (with a graph).

    Example:
        >>> pred = torch.tensor([0.9, 0.2], requires_grad=True)
        >>> loss = laplacian_rank_loss(pred, torch.tensor([0.8, 0.3]))
        >>> round(loss.item(), 4)  # 1.0·mean(0.1, 0.1) + g(0.7)=(0.7−0.5)²+0.25
        0.39
        >>> loss.backward()
    """
    chunk = whole_number(chunk, "chunk", 1)
    target, groups = _check_inputs(pred, target, groups, pair_rows=chunk, what="laplacian_rank_loss")
    b_prime = _check_positive(b_prime, "b_prime")
    c = _check_positive(c, "c")
    if margin is not None:
        margin = _check_positive(margin, "margin", allow_zero=True)
    n = pred.numel()
    if n == 0:
        return _zero(pred)
    l1 = (target.to(pred.dtype) - pred).abs().mean()
    total = _zero(pred)
    count = 0
    for start in range(0, n, int(chunk)):
        rows = slice(start, min(n, start + int(chunk)))
        order = _order(target, groups, rows).to(pred.dtype)
        delta = pred[rows, None] - pred[None, :]
        total = total + _pair_term(delta, order, c, margin).sum()
        count += int(order.abs().sum().item())
    pair = total / count if count else total
    return (2.0 / b_prime) * l1 + pair


# ----------------------------------------------------------------------------- pairwise LTR rivals

def ranknet_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None, *,
                 sigma: float = 1.0) -> torch.Tensor:
    """RankNet (Burges et al. 2005; RCNet App. E): binary cross-entropy on the pair order.

        P_ij = sigmoid(σ (s_i − s_j));  loss = mean_{s*_i > s*_j} −log P_ij

    (the mean over ordered pairs with distinct targets is the same number: the BCE is symmetric).
    As allRank's ``rankNet``, without its optional |Δy| weighting.

    Example:
        >>> round(ranknet_loss(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])).item(), 4)
        0.6931
    """
    target, groups = _check_inputs(pred, target, groups, what="ranknet_loss")
    sigma = _check_positive(sigma, "sigma")
    better = (_order(target, groups) > 0).to(pred.dtype)
    count = better.sum()
    if pred.numel() == 0 or count.item() == 0:
        return _zero(pred)
    diff = pred[:, None] - pred[None, :]
    return (F.softplus(-sigma * diff) * better).sum() / count


def lambdarank_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None, *,
                    sigma: float = 1.0) -> torch.Tensor:
    """LambdaRank (Burges et al. 2006; allRank ``lambdaLoss`` with ``lambdaRank_scheme``).

        w_ij = |1/D_i − 1/D_j| · |G_i − G_j|,  D = log2(1 + rank by pred),  G = (2^{s*} − 1)/maxDCG
        loss = mean over groups of  Σ_{s*_i > s*_j in the group} −w_ij · log2 sigmoid(σ(s_i − s_j))

    The weights (|ΔNDCG| of swapping i and j) carry no gradient. allRank sums over the whole
    batch; here each group's sum is averaged over groups (one group when ``groups=None``).
    Groups whose gains are all 0 contribute 0.

    Example:
        >>> lambdarank_loss(torch.tensor([0.9, 0.1]), torch.tensor([0.9, 0.1])).item() > 0
        True
    """
    target, groups = _check_inputs(pred, target, groups, what="lambdarank_loss")
    sigma = _check_positive(sigma, "sigma")
    n = pred.numel()
    if n < 2:
        return _zero(pred)
    same = _same_group(groups)
    group_idx, n_groups = _group_index(groups, n, pred.device)
    gains = _gains(target)
    max_dcg = _max_dcg(gains, same, group_idx, n_groups)[group_idx]
    g = torch.where(max_dcg > 0, gains / max_dcg.clamp_min(1e-300), torch.zeros_like(gains))
    inv_d = 1.0 / torch.log2(1.0 + _ranks_desc(pred.detach().to(_wide_dtype(pred.device)), same))
    weights = (inv_d[:, None] - inv_d[None, :]).abs() * (g[:, None] - g[None, :]).abs()
    weights = (weights * (_order(target, groups) > 0)).to(pred.dtype)
    diff = pred[:, None] - pred[None, :]
    pair = F.softplus(-sigma * diff) / math.log(2.0)  # −log2 sigmoid(σ Δs)
    return (weights * pair).sum() / n_groups


def approx_ndcg_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None,
                     *, alpha: float = 1.0) -> torch.Tensor:
    """ApproxNDCG (Qin et al. 2010; allRank ``approxNDCGLoss``, α = 1): −mean NDCG with smooth ranks.

        π̂_i = 1 + Σ_{j≠i} sigmoid(α (s_j − s_i)),   NDCG = Σ_i (2^{s*_i} − 1)/log2(1 + π̂_i) / maxDCG

    averaged over groups whose ideal DCG is positive (0 if there is none).

    Example:
        >>> round(approx_ndcg_loss(torch.tensor([0.5]), torch.tensor([1.0])).item(), 4)
        -1.0
    """
    target, groups = _check_inputs(pred, target, groups, what="approx_ndcg_loss")
    alpha = _check_positive(alpha, "alpha")
    n = pred.numel()
    if n == 0:
        return _zero(pred)
    same = _same_group(groups)
    group_idx, n_groups = _group_index(groups, n, pred.device)
    gains = _gains(target)
    max_dcg = _max_dcg(gains, same, group_idx, n_groups)
    diff = pred[None, :] - pred[:, None]  # s_j − s_i
    soft = torch.sigmoid(alpha * diff)
    off_diag = 1.0 - torch.eye(n, dtype=pred.dtype, device=pred.device)
    mask = off_diag if same is None else off_diag * same.to(pred.dtype)
    approx_rank = 1.0 + (soft * mask).sum(dim=1)
    dcg = torch.zeros(n_groups, dtype=pred.dtype, device=pred.device).index_add(
        0, group_idx, gains.to(pred.dtype) / torch.log2(1.0 + approx_rank))
    keep = max_dcg > 0
    if not bool(keep.any()):
        return _zero(pred)
    ndcg = dcg[keep] / max_dcg[keep].to(pred.dtype)
    return -ndcg.mean()


def _slates(groups, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Group members as padded rows: index (G, L) (−1 = padding) and mask (G, L)."""
    group_idx, n_groups = _group_index(groups, n, device)
    counts = torch.bincount(group_idx, minlength=n_groups)
    order = torch.argsort(group_idx, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    sorted_groups = group_idx[order]
    position = torch.arange(n, device=device) - starts[sorted_groups]
    length = int(counts.max()) if n else 0
    index = torch.full((n_groups, length), -1, dtype=torch.long, device=device)
    index[sorted_groups, position] = order
    return index, index >= 0


def neural_ndcg_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None,
                     *, temperature: float = 1.0, sinkhorn_iters: int = 50,
                     tol: float = 1e-6) -> torch.Tensor:
    """NeuralNDCG (Pobrotyn & Białobrzeski 2021; allRank ``neuralNDCG``): −mean NDCG of a soft sort.

    Deterministic NeuralSort: row k of P̂ = softmax(((n + 1 − 2k)·s − A·1)/τ), A_ij = |s_i − s_j|,
    is a soft "k-th largest" selector; Sinkhorn scaling (≤ ``sinkhorn_iters``, stop when every
    row and column sums to 1 within ``tol``) makes P̂ doubly stochastic; the soft-sorted gains
    P̂·(2^{s*} − 1) are discounted by log2(k + 1). One list per group (padded), groups with zero
    ideal DCG skipped (0 if none).

    Example:
        >>> loss = neural_ndcg_loss(torch.tensor([0.9, 0.1]), torch.tensor([0.9, 0.1]))
        >>> -1.0 <= loss.item() < 0
        True
    """
    target, groups = _check_inputs(pred, target, groups, what="neural_ndcg_loss", slates=True)
    temperature = _check_positive(temperature, "temperature")
    sinkhorn_iters = whole_number(sinkhorn_iters, "sinkhorn_iters", 0)
    n = pred.numel()
    if n == 0:
        return _zero(pred)
    index, mask = _slates(groups, n, pred.device)
    safe = index.clamp_min(0)
    s = pred[safe] * mask  # (G, L)
    gains = (_gains(target)[safe] * mask).to(pred.dtype)
    m = mask.to(pred.dtype)
    sizes = m.sum(dim=1, keepdim=True)  # (G, 1)
    L = index.shape[1]
    a = (s[:, :, None] - s[:, None, :]).abs() * m[:, :, None] * m[:, None, :]
    row_sums = a.sum(dim=2)  # B_j = Σ_i |s_j − s_i|, (G, L)
    k = torch.arange(1, L + 1, dtype=pred.dtype, device=pred.device)[None, :, None]
    logits = ((sizes[:, :, None] + 1 - 2 * k) * s[:, None, :] - row_sums[:, None, :]) / temperature
    logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
    p = torch.softmax(logits, dim=2) * m[:, :, None]  # rows k > n_g are 0
    pair_mask = m[:, :, None] * m[:, None, :]
    for _ in range(sinkhorn_iters):
        p = p / p.sum(dim=2, keepdim=True).clamp_min(1e-10) * pair_mask
        p = p / p.sum(dim=1, keepdim=True).clamp_min(1e-10) * pair_mask
        err_rows = ((p.detach().sum(dim=2) - 1.0).abs() * m).max()
        if float(err_rows) < tol:
            break
    sorted_gains = torch.bmm(p, gains[:, :, None]).squeeze(2)  # (G, L)
    discount = 1.0 / torch.log2(1.0 + k.view(1, L))
    dcg = (sorted_gains * discount * m).sum(dim=1)
    ideal = torch.sort(gains, dim=1, descending=True).values
    max_dcg = (ideal * discount).sum(dim=1)
    keep = max_dcg > 0
    if not bool(keep.any()):
        return _zero(pred)
    return -(dcg[keep] / max_dcg[keep]).mean()


# ----------------------------------------------------------------------------- detection rivals

def ap_rank_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None, *,
                 threshold: float = 0.5, delta: float = 0.1) -> torch.Tensor:
    """AP-Loss (Chen et al. 2019/2020; RCNet App. E Eq. 12) with its error-driven update.

    Positives are poses with s* ≥ ``threshold`` (a true positive at COCO's loosest OKS, 0.5),
    the others negatives. With the smoothed step H(x) = clamp(x/(2δ) + ½, 0, 1) of
    x_ij = s_j − s_i, each positive i has rank⁺_i = 1 + Σ_{j∈P, j≠i} H(x_ij) and
    rank_i = rank⁺_i + Σ_{j∈N} H(x_ij); the value is 1 − mean_{i∈P} rank⁺_i / rank_i (1 − AP).
    The gradient is the paper's error-driven update, not the derivative of that value:
    L_ij = H(x_ij)/rank_i for i ∈ P, j ∈ N, ∂/∂s_j = Σ_i L_ij/|P|, ∂/∂s_i = −Σ_j L_ij/|P|
    (as ``cccorn/AP-loss``, without its interpolated-AP rescaling). ``delta`` is in score units:
    0.1 for scores in [0, 1] (the detection code uses δ = 1 on logits). No positive → 0.

    Example:
        >>> round(ap_rank_loss(torch.tensor([0.9, 0.1]), torch.tensor([0.9, 0.1])).item(), 4)
        0.0
    """
    target, groups = _check_inputs(pred, target, groups, what="ap_rank_loss")
    delta = _check_positive(delta, "delta")
    pos = target >= _check_threshold(threshold)
    n_pos = int(pos.sum())
    if n_pos == 0:
        return _zero(pred)
    x = pred.detach()[None, :] - pred.detach()[:, None]  # x_ij = s_j − s_i
    h = ((x / (2 * delta)) + 0.5).clamp(0.0, 1.0)
    same = _same_group(groups)
    allowed = ~torch.eye(pred.numel(), dtype=torch.bool, device=pred.device)
    if same is not None:
        allowed = allowed & same
    h = h * allowed
    posf, negf = pos.to(pred.dtype), (~pos).to(pred.dtype)
    rank_pos = 1.0 + (h * posf[None, :]).sum(dim=1)
    rank = rank_pos + (h * negf[None, :]).sum(dim=1)
    value = 1.0 - (rank_pos / rank)[pos].mean()
    primary = h * negf[None, :] / rank[:, None] * posf[:, None]  # L_ij, i ∈ P, j ∈ N
    diff = pred[None, :] - pred[:, None]
    surrogate = (primary * diff).sum() / n_pos
    return value.detach() + surrogate - surrogate.detach()


def dr_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None, *,
            threshold: float = 0.5, margin: float = 0.5, steepness: float = 6.0,
            scale: float = 4.0, lambda_pos: float = 1.0,
            lambda_neg: float = 0.1 / math.log(3.5)) -> torch.Tensor:
    """DR-Loss, distributional ranking (Qian et al. 2020; RCNet App. E Eq. 13; ``idstcv/DR_loss``).

        E_neg = Σ_{j∈N} softmax(p_j/λ_neg)·p_j,  E_pos = Σ_{i∈P} softmax(−p_i/λ_pos)·p_i
        loss = τ/L · log(1 + exp(L·(E_neg − E_pos + γ)))

    with p = ``pred`` (probabilities), positives s* ≥ ``threshold``, γ = ``margin`` (0.5),
    L = ``steepness`` (6), τ = ``scale`` (4), λ as the official code. Per group, averaged over
    groups; a group with no positive uses E_pos = 1 (as the official code), none negative E_neg = 0.

    Example:
        >>> dr_loss(torch.tensor([0.9, 0.1]), torch.tensor([0.9, 0.1])).item() > 0
        True
    """
    target, groups = _check_inputs(pred, target, groups, what="dr_loss")
    lambda_pos = _check_positive(lambda_pos, "lambda_pos")
    lambda_neg = _check_positive(lambda_neg, "lambda_neg")
    steepness = _check_positive(steepness, "steepness")
    scale = _check_positive(scale, "scale")          # τ < 0 would ascend the loss
    margin = finite_number(margin, "margin")
    threshold = _check_threshold(threshold)
    n = pred.numel()
    if n == 0:
        return _zero(pred)
    group_idx, n_groups = _group_index(groups, n, pred.device)
    pos = (target >= threshold).to(pred.dtype)
    neg = 1.0 - pos

    def weighted_mean(logit, member):
        w = torch.exp(logit - logit.detach().max()) * member
        num = torch.zeros(n_groups, dtype=pred.dtype, device=pred.device).index_add(0, group_idx, w * pred)
        den = torch.zeros(n_groups, dtype=pred.dtype, device=pred.device).index_add(0, group_idx, w)
        return num, den

    num_n, den_n = weighted_mean(pred / lambda_neg, neg)
    num_p, den_p = weighted_mean(-pred / lambda_pos, pos)
    e_neg = torch.where(den_n > 0, num_n / den_n.clamp_min(1e-30), torch.zeros_like(num_n))
    e_pos = torch.where(den_p > 0, num_p / den_p.clamp_min(1e-30), torch.ones_like(num_p))
    per_group = scale / steepness * F.softplus(steepness * (e_neg - e_pos + margin))
    return per_group.mean()


# ----------------------------------------------------------------------------- other assumptions

def crps_rank_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """CRPS form (RCNet App. G): mean_i |μ_i − s*_i| − ½ · mean_{i≠j} |μ_i − μ_j|.

    The energy form of the continuous ranked probability score with μ as the forecast; the
    pair term runs over **all** ordered pairs i ≠ j (of the same group): it spreads the scores
    apart without looking at the targets' order. No pair → the L1 term alone.

    Example:
        >>> round(crps_rank_loss(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5])).item(), 4)
        0.0
    """
    target, groups = _check_inputs(pred, target, groups, what="crps_rank_loss")
    n = pred.numel()
    if n == 0:
        return _zero(pred)
    l1 = (pred - target.to(pred.dtype)).abs().mean()
    same = _same_group(groups)
    mask = 1.0 - torch.eye(n, dtype=pred.dtype, device=pred.device)
    if same is not None:
        mask = mask * same.to(pred.dtype)
    count = mask.sum()
    if count.item() == 0:
        return l1
    spread = ((pred[:, None] - pred[None, :]).abs() * mask).sum() / count
    return l1 - 0.5 * spread


def gaussian_rank_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None,
                       *, sigma: float = math.sqrt(2.0), sigma_prime: float = 1.0,
                       c: float = 1.0) -> torch.Tensor:
    """Gaussian form of the rank loss (RCNet App. G, Eq. 15).

        l = 2/σ² · mean_i (s*_i − μ_i)²  +  1/(6σ′²) · mean_{s*_i≠s*_j} (c − sign(s*_i − s*_j)·δ_ij)³

    Eq. 15 prints g′ = (δ − c)³ for s*_i ≥ s*_j, whose minimum over δ ∈ [−c, c] is at δ = −c —
    the wrong order. Integrating the Gaussian log-density as Eq. 29 does gives
    ∫_0^c (z − δ)² dz = ((c − δ)³ + δ³)/3; the paper drops the δ³ term ("lacks the
    regularisation term"), leaving (c − δ)³, which pushes δ to +c as its text says. We use that
    sign. Pairs with tied targets are skipped. σ = √2 makes the first weight 1, as the Laplacian
    loss's 2/b′ with b′ = 2.

    Example:
        >>> round(gaussian_rank_loss(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).item(), 4)
        0.0
    """
    target, groups = _check_inputs(pred, target, groups, what="gaussian_rank_loss")
    sigma = _check_positive(sigma, "sigma")
    sigma_prime = _check_positive(sigma_prime, "sigma_prime")
    c = _check_positive(c, "c")
    n = pred.numel()
    if n == 0:
        return _zero(pred)
    sq = (target.to(pred.dtype) - pred).square().mean()
    order = _order(target, groups).to(pred.dtype)
    count = order.abs().sum()
    if count.item() == 0:
        return 2.0 / sigma ** 2 * sq
    delta = pred[:, None] - pred[None, :]
    cubic = ((c - order * delta) ** 3 * order.abs()).sum() / count
    return 2.0 / sigma ** 2 * sq + cubic / (6.0 * sigma_prime ** 2)


# ----------------------------------------------------------------------------- the control

def l1_score_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Plain L1 regression of the score to its target: mean_i |μ_i − s*_i| (no pair term).

    Not in the paper: the **control** for its claim that the *rank* term helps. It is Def. 1's
    first term alone (2/b′ = 1), so any gain it gives is a gain of pulling scores to the OKS,
    not of ranking. ``groups`` is accepted (and ignored) for the common signature.

    Example:
        >>> round(l1_score_loss(torch.tensor([0.9, 0.2]), torch.tensor([0.8, 0.4])).item(), 4)
        0.15
    """
    target, _ = _check_inputs(pred, target, groups, pair_rows=0, what="l1_score_loss")
    if pred.numel() == 0:
        return _zero(pred)
    return (pred - target.to(pred.dtype)).abs().mean()


def mse_score_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Plain squared-error regression of the score to its target: mean_i (μ_i − s*_i)².

    The second control beside :func:`l1_score_loss` (DEKR's ScoreNet is trained this way).

    Example:
        >>> round(mse_score_loss(torch.tensor([0.9, 0.2]), torch.tensor([0.8, 0.4])).item(), 4)
        0.025
    """
    target, _ = _check_inputs(pred, target, groups, pair_rows=0, what="mse_score_loss")
    if pred.numel() == 0:
        return _zero(pred)
    return (pred - target.to(pred.dtype)).square().mean()


CONFIDENCE_RANKING_LOSSES = {
    "laplacian": laplacian_rank_loss, "ranknet": ranknet_loss, "lambdarank": lambdarank_loss,
    "approx_ndcg": approx_ndcg_loss, "neural_ndcg": neural_ndcg_loss, "ap_loss": ap_rank_loss,
    "dr_loss": dr_loss, "crps": crps_rank_loss, "gaussian": gaussian_rank_loss,
    "l1": l1_score_loss, "mse": mse_score_loss,
}
"""name → loss; every entry is ``loss(pred, target, groups=None) -> scalar`` with its paper defaults."""

REGRESSION_CONTROLS = ("l1", "mse")
"""The entries of :data:`CONFIDENCE_RANKING_LOSSES` that are plain score regressions (no ranking)."""


class ConfidenceRankingLoss(torch.nn.Module):
    """``nn.Module`` form of a loss of :data:`CONFIDENCE_RANKING_LOSSES` with its keyword
    arguments fixed, for training code that composes modules::

        criterion = ConfidenceRankingLoss("ranknet", sigma=10.0)
        loss = criterion(scores, oks, groups=image_ids)

    Targets may be float32 (what a float32 training loop holds; on Apple MPS, which has no
    float64, targets are compared in float32 there).

    Example:
        >>> crit = ConfidenceRankingLoss("laplacian")
        >>> round(crit(torch.tensor([0.9, 0.2]), torch.tensor([0.8, 0.3])).item(), 4)
        0.39
    """

    def __init__(self, name: str = "laplacian", **params):
        super().__init__()
        if name not in CONFIDENCE_RANKING_LOSSES:
            raise ValueError(f"unknown confidence-ranking loss {name!r}; choose one of "
                             f"{sorted(CONFIDENCE_RANKING_LOSSES)}")
        self.name, self.params = name, dict(params)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                groups: torch.Tensor | None = None) -> torch.Tensor:
        return CONFIDENCE_RANKING_LOSSES[self.name](pred, target, groups=groups, **self.params)

    def extra_repr(self) -> str:
        return ", ".join([repr(self.name)] + [f"{k}={v!r}" for k, v in self.params.items()])


class LaplacianRankLoss(ConfidenceRankingLoss):
    """``nn.Module`` of :func:`laplacian_rank_loss` (RCNet Def. 1, Eq. 8–9)."""

    def __init__(self, b_prime: float = 2.0, c: float = 1.0, margin: float | None = None):
        super().__init__("laplacian", b_prime=b_prime, c=c, margin=margin)
