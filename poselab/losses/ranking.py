"""Ranking-based heatmap losses of RSPose (Keles et al., 2025): Spatial Rank, Spatial Sort,
Instance-Sort, and their weighted sum (Eq. 14).

Every loss is a set of independent *ranking problems*. For the spatial losses one problem is one
visible ``(b, k)`` heatmap (2-D, ``H·W`` pixels) or one SimCC axis vector (1-D, ``L`` bins); for
Instance-Sort one problem is one keypoint type, ranking the heatmap maxima of the ``B`` persons in
the batch. Within a problem, positives are ``P = {label > positive_threshold}`` and negatives the
rest. Scores are compared through the smoothed step (RS loss, Oksuz et al. 2021)

    H(x) = clamp(x / (2δ) + 0.5, 0, 1),      x_ij = s_j − s_i,

and a positive counts itself with ``H(0) = 0.5`` (as the RS reference does).

Hyper-parameters are checked: every δ > 0 (below :data:`DELTA_MIN` = 1e-6 it is computed as 1e-6,
so that δ = 1e-300 cannot overflow 1/(2δ)); coefficients finite and ≥ 0; ``positive_threshold``
in [0, 1); the sort losses' labels in [0, 1] (Eq. 8–9 weigh by ``1 − y``). Finite scores give
finite losses and updates in float64, float32, float16 and bfloat16 (a score of 1e8 among unit
scores, or float16 scores spanning ±6e4, included).

Optimisation — the error-driven update (RSPose App. A; AP-Loss, Chen et al.; RS loss)
--------------------------------------------------------------------------------------
The exact derivative of a ranking error is zero almost everywhere, so each loss is a
``torch.autograd.Function`` whose backward returns the *error-driven update* instead:

* ranking (Eq. 5–6): positive ``i`` gets ``−ℓ_R(i)``, each negative ``j`` gets
  ``+ℓ_R(i)·H(s_j − s_i)/FP(i)`` (only when ``FP(i) > 1e-10``);
* sorting (Eq. 7–9, 10–13): positive ``i`` gets ``−(ℓ_S − ℓ*_S)(i)``, each positive ``j`` with a
  lower label gets its share ``H(s_j − s_i)·(ℓ_S − ℓ*_S)(i)/Σ_{y_m<y_i} H(s_m − s_i)`` (only when
  that sum exceeds 1e-10);
* every problem's update is divided by its number of positives ``|P|``.

Each Function returns one loss *per problem*; the reduction (mean over the problems that have
positives, by default) is plain autograd, and the backward multiplies the stored update by the
incoming gradient — so a coefficient on a loss scales its update. (In the RS reference the
rank and sort gradients are stored together and the incoming gradient of the sort loss is
dropped: a weight on the sort loss does nothing. Here rank and sort are separate outputs with
separate updates, and decoupled δ's, RSPose §6.2.) Problems without positives give loss 0 and
update 0, never an error.

Vectorisation
-------------
``H`` is piecewise linear, so a sum ``Σ_m w_m H(k_m − q)`` over keys ``k`` is, after one sort of the
keys, two binary searches (``q ± δ``) and prefix sums of ``w`` and ``w·k`` — ``O((N + Q) log N)``
for ``Q`` queries instead of ``O(N·Q)``. That gives ``FP(i)`` (positives against the sorted
negatives), ``rank⁺(i) + FP(i)`` (the same window over all pixels), and the update of every negative (pixels against the sorted
positives). Only the sorting *target* (Eq. 9) needs the label comparison ``[y_j ≥ y_i]``, done
densely on the ``|P|×|P|`` positive pairs. Everything is batched over all problems (chunked to
bound memory) in float64 (float32 on MPS, which has no float64); no Python loop over positives,
pixels or channels.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ._checks import (check_pair_memory, check_reduction, check_tensor, check_weights, finite_number,
                      has_nonfinite, mask_unlabelled_targets)
from ..skeleton import OKS_SIGMAS

__all__ = ["spatial_rank_loss", "spatial_sort_loss", "spatial_rank_sort_loss",
           "instance_sort_loss", "simcc_instance_sort_loss", "instance_keypoint_similarity", "rspose_loss", "smoothed_step",
           "RSPOSE_VITPOSE_B", "RSPOSE_SIMCC_R50", "SpatialRankSortLoss", "InstanceSortLoss", "SimCCInstanceSortLoss",
           "RSPoseLoss"]

EPS = 1e-10  # the RS reference's threshold on FP(i) and on the mis-sorted mass
DELTA_MIN = 1e-6  # δ's below it are computed with it: H is already a step at float32's resolution of
# unit scores (~1e-7), and 1/(2δ) stays far from overflow (δ = 1e-300 gave inf·0 = NaN)
_RANK_CHUNK = 1 << 17  # pixels per chunk of the rank part (rows · N)
_SORT_TABLES = 4  # |P|×|P| tables of the sort part alive at once (differences, steps, masks, terms)
_SORT_CHUNK = 1 << 20  # positive pairs per chunk of the sort part (rows · |P|²) in float32, half in
# float64: one 4 MiB dense tensor (re-measured after the |P|-ordered chunks; 2^22 pairs 2.8x slower)

# RSPose Table E.8 (COCO): δ and coefficient per loss.
RSPOSE_VITPOSE_B = dict(rank_delta=0.4, sort_delta=1.5, instance_delta=3.0,
                        rank_weight=1.0, sort_weight=2.0, instance_weight=0.25)
RSPOSE_SIMCC_R50 = dict(rank_delta=0.4, sort_delta=0.2, rank_weight=1.0, sort_weight=0.25,
                        instance_weight=0.0)


def smoothed_step(x: torch.Tensor, delta: float) -> torch.Tensor:
    """The smoothed step ``H(x) = clamp(x/(2δ) + 0.5, 0, 1)`` of the RS loss (RSPose Eq. 6's H).

    Example:
        >>> smoothed_step(torch.tensor([-1.0, 0.0, 0.2, 1.0]), delta=0.4)
        tensor([0.0000, 0.5000, 0.7500, 1.0000])
    """
    return torch.clamp(x / (2.0 * delta) + 0.5, 0.0, 1.0)


# ----------------------------------------------------------------------------- checks
def _check_delta(delta, name: str) -> float:
    try:
        d = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {delta!r}") from None
    if not math.isfinite(d) or d <= 0:
        raise ValueError(f"{name} must be a positive finite number (the half-width of the "
                         f"smoothed step, in score units), got {delta!r}")
    return max(d, DELTA_MIN)


def _check_weight(value, name: str) -> float:
    """A loss coefficient: finite and ≥ 0 (a negative one would train the term the wrong way)."""
    v = finite_number(value, name)
    if v < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (a loss coefficient; negative "
                         f"ascends the loss), got {value!r}")
    return v


def _check_threshold(value) -> float:
    v = finite_number(value, "positive_threshold")
    if not 0.0 <= v < 1.0:
        raise ValueError(f"positive_threshold must be in [0, 1) (labels are peak-1 Gaussians in "
                         f"[0, 1]; outside it every pixel, or none, is a positive), got {value!r}")
    return v


def _check_unit_labels(labels: torch.Tensor) -> None:
    """Spatial Sort's Eq. 8–9 weigh by ``1 − y``: labels must lie in [0, 1] (0–255 images or
    percents would flip the sort target's sign)."""
    if labels.numel():
        lo, hi = float(labels.detach().amin()), float(labels.detach().amax())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"labels must lie in [0, 1] for the sort loss (Eq. 8-9 weigh by "
                             f"1 - y), got values in [{lo:g}, {hi:g}]; rescale them (e.g. / 255)")


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _check_maps(scores, labels, visible, name_scores: str = "scores"):
    check_tensor(scores, name_scores)
    if scores.dim() < 3:
        raise ValueError(f"{name_scores} must have shape (B, K, *S) with at least one spatial dim "
                         f"(2-D heatmaps (B, K, H, W) or SimCC vectors (B, K, L)), got "
                         f"{tuple(scores.shape)}")
    check_tensor(labels, "labels")
    if labels.shape != scores.shape:
        raise ValueError(f"labels must have the shape of {name_scores} {tuple(scores.shape)}, got "
                         f"{tuple(labels.shape)}")
    B, K = scores.shape[:2]
    vis = check_weights(visible, (B, K), scores)
    return vis


# ----------------------------------------------------------------------------- the core
def _row_order(x: torch.Tensor) -> torch.Tensor:
    """Ascending order of every row of ``x (R, N)`` (ties in any order: every use below sums
    over windows of *values*, so the order among equal values only changes rounding).

    CPU rows: numpy's ``argsort`` (its SIMD quicksort; 3–4× faster than ``torch.sort`` on
    float32 and float64 rows, measured at 272 × 3072); half precision is sorted as float32 (exact).
    Other devices: ``torch.sort``.
    """
    if x.device.type != "cpu" or x.shape[0] * x.shape[1] == 0:
        return torch.sort(x, 1)[1]
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return torch.from_numpy(np.argsort(x.numpy(), axis=1))


def _positives(raw, pos, pad_below: float, work: torch.dtype):
    """Column index of every positive, left-aligned and padded to ``P = max |P|`` per row, and
    their scores shifted by the row maximum (padding: a score so low that every smoothed step
    against it is 0). Returns ``(count, pidx, pvalid, top, sp)``."""
    R = raw.shape[0]
    dev = raw.device
    count = pos.sum(1)
    P = int(count.max())
    nz = pos.nonzero()
    first = count.cumsum(0) - count
    slot = torch.arange(nz.shape[0], device=dev) - first[nz[:, 0]]
    pidx = torch.zeros(R, P, dtype=torch.long, device=dev)
    pidx[nz[:, 0], slot] = nz[:, 1]
    pvalid = torch.arange(P, device=dev)[None, :] < count[:, None]
    top = raw.amax(1, keepdim=True).to(work)
    sp = raw.gather(1, pidx).to(work) - top
    # the span in ``work`` (in float16 a span of ±6e4 overflows to −inf), floored at a finite value
    low = (raw.amin().to(work) - raw.amax().to(work) - pad_below).clamp_min(torch.finfo(work).min / 4)
    return count, pidx, pvalid, top, torch.where(pvalid, sp, low.expand_as(sp))


def _window_sums(cw, cws, lo, hi, q, delta: float) -> torch.Tensor:
    """``Σ_m w_m H(k_m − q)`` per query from prefix sums ``cw, cws (R, M+1)`` of ``w`` and ``w·k``
    over sorted keys, given the window ``[lo, hi)`` of keys in ``(q − δ, q + δ)``: keys above the
    window count 1, keys inside ``(k − q + δ)/(2δ)``."""
    w_hi = cw.gather(1, hi)
    mid_w = w_hi - cw.gather(1, lo)
    mid_ws = cws.gather(1, hi) - cws.gather(1, lo)
    return (cw[:, -1:] - w_hi) + (mid_ws - (q - delta) * mid_w) / (2 * delta)


def _prefix(x: torch.Tensor) -> torch.Tensor:
    """Prefix sums of the rows of ``x (R, N)`` with a leading 0 column, ``(R, N + 1)``: the cumsum
    written into its slot of the result (no concatenation pass); bool rows give int64 counts."""
    out = torch.empty(x.shape[0], x.shape[1] + 1, device=x.device,
                      dtype=torch.int64 if x.dtype == torch.bool else x.dtype)
    out[:, 0] = 0
    torch.cumsum(x, 1, out=out[:, 1:])
    return out


def _rank_part(raw, pos, top, pidx, pvalid, sp, inv_count, delta: float, need_grad: bool):
    """Spatial Rank (Eq. 5–6) of rows with ≥ 1 positive: losses ``(R,)`` and the error-driven
    update ``(R, N)`` (or None), in the dtype of ``sp``."""
    R, N = raw.shape
    P = pidx.shape[1]
    work = sp.dtype
    # all pixels sorted once; prefix sums of the negatives' indicator and score
    order = _row_order(raw if raw.dtype in (torch.float32, torch.float64) else raw.float())
    s_sorted = torch.sub(raw.gather(1, order), top)      # promoted to ``work`` (exactly) in the sub
    neg_sorted = ~pos.gather(1, order)
    cw = _prefix(neg_sorted)                             # counts (int64: exact, converted on use)
    cws = _prefix(torch.where(neg_sorted, s_sorted, 0.0))
    # the window of every positive: sorted pixels in (s_i − δ, s_i + δ) are [lo_i, hi_i)
    if N <= 4 * P:
        # positives are most of the pixels (small maps): search the windows of *all* sorted
        # pixels (ascending queries: ~2x faster per query than scattered ones) and pick each
        # positive's at its sorted position (its score there is sp exactly; padded slots get a
        # real pixel's window, masked by pvalid below)
        inv = torch.empty_like(order).scatter_(
            1, order, torch.arange(N, device=order.device).expand(R, N))
        at = inv.gather(1, pidx)
        lo = torch.searchsorted(s_sorted, s_sorted - delta, right=True).gather(1, at)
        hi = torch.searchsorted(s_sorted, s_sorted + delta, right=False).gather(1, at)
    else:
        lo = torch.searchsorted(s_sorted, sp - delta, right=True)
        hi = torch.searchsorted(s_sorted, sp + delta, right=False)
    fp = _window_sums(cw, cws, lo, hi, sp, delta) * pvalid                   # FP(i)
    # rank⁺(i) + FP(i) = Σ over *all* pixels of H(s_j − s_i) (self included): the same window
    # over the same sorted pixels, with weight 1 (prefix counts = indices) — no second sort
    pcws = _prefix(s_sorted)
    hi_w, lo_w = hi.to(work), lo.to(work)
    total = (N - hi_w) + (pcws.gather(1, hi) - pcws.gather(1, lo)
                          - (sp - delta) * (hi_w - lo_w)) / (2 * delta)
    err = torch.where(pvalid, fp / torch.where(pvalid, total, torch.ones_like(total)),
                      torch.zeros_like(fp))                                      # ℓ_R(i), Eq. 6
    rank = err.sum(1) * inv_count                                                # Eq. 5
    if not need_grad:
        return rank, None
    act = (fp > EPS) & pvalid
    c = torch.where(act, err / torch.where(act, fp, torch.ones_like(fp)), torch.zeros_like(fp))
    # each negative j gets Σ_i c_i H(s_j − s_i): 1 above the window of i, linear inside;
    # difference arrays over the sorted pixels (a constant and a slope channel), prefix sums
    slope = c / (2 * delta)
    off = slope * (delta - sp)
    diff = s_sorted.new_zeros(R, 2, N + 1)
    diff[:, 0].scatter_add_(1, hi, c - off).scatter_add_(1, lo, off)
    diff[:, 1].scatter_add_(1, lo, slope).scatter_add_(1, hi, -slope)
    acc = diff[:, :, :N].cumsum(2)
    share = torch.where(neg_sorted, acc[:, 0] + acc[:, 1] * s_sorted, 0.0)
    grad = torch.empty_like(share).scatter_(1, order, share)
    grad.scatter_add_(1, pidx, torch.where(act, -err, torch.zeros_like(err)))
    return rank, grad.mul_(inv_count[:, None])


def _sort_part(labels, pidx, pvalid, sp, inv_count, delta: float, need_grad: bool,
               dense: torch.dtype):
    """Spatial Sort / Instance-Sort (Eq. 7–9, 10–13) of rows with ≥ 1 positive: losses ``(R,)``
    and the error-driven update of every positive slot ``(R, P)`` (0 on padded slots; only
    positives get a sort update, so the ``(R, N)`` row is never built), or None; in the dtype of
    ``sp``."""
    work = sp.dtype
    # dense |P|×|P| with rows j and columns i: G[j, i] = H(s_j − s_i), so that the per-positive
    # sums over j are batched row-vector products (the fast bmm orientation); no cancellation
    # here, so float32 unless the input is float64
    # t bounded so that every difference t_j − t_i stays finite in ``dense`` (scores beyond
    # ~1e37·δ from the row maximum tie with each other instead of giving inf − inf = NaN)
    big = torch.finfo(dense).max / 8
    t = (sp * (0.5 / delta)).clamp(-big, big).to(dense)  # H(s_j − s_i) = clamp(t_j + 1/2 − t_i, 0, 1)
    ypd = labels.gather(1, pidx).to(dense)
    g = ((t + 0.5)[:, :, None] - t[:, None, :]).clamp_(0.0, 1.0)
    # a positive against itself is H(0) = 1/2 exactly: (t + 1/2) − t rounds to 0 or 1 once |t| ≥ 2²³
    # in float32 (δ ≤ 1e-8, or one score of 1e8 in the map), which emptied the denominators of
    # Eq. 8–9 (0/0 = NaN); with the diagonal fixed both are ≥ 1/2. Exact already for |t| < 2²³.
    g.diagonal(dim1=1, dim2=2).fill_(0.5)
    # [y_j ≥ y_i] as 0/1 written straight into the dense dtype (one pass; a float mask
    # multiplies ~30× faster than a bool one on CPU)
    ge = torch.ge(ypd[:, :, None], ypd[:, None, :], out=torch.empty_like(g))
    vw = torch.stack([pvalid.to(dense), (1.0 - ypd) * pvalid], 1)                 # (R, 2, P)
    s_all = torch.bmm(vw, g).to(work)         # Σ_j H, Σ_j H (1 − y_j)
    a = ge.mul_(g)                             # A[j, i] = G[j, i] [y_j ≥ y_i]
    s_ge = torch.bmm(vw, a).to(work)
    cur = s_all[:, 1] / s_all[:, 0]                                                # Eq. 8
    target = s_ge[:, 1] / s_ge[:, 0]                                               # Eq. 9
    err = torch.where(pvalid, cur - target, torch.zeros_like(cur))
    sort = err.sum(1) * inv_count                                                  # Eq. 7
    if not need_grad:
        return sort, None
    # the mis-sorted pairs M[j, i] = H(s_j − s_i) [y_j < y_i] = G − A; update of j = (M f)_j
    m = g.sub_(a)
    denom = (s_all[:, 0] - s_ge[:, 0]).clamp_min(0.0)
    act = (denom > EPS) & pvalid
    f = torch.where(act, err / torch.where(act, denom, torch.ones_like(denom)), torch.zeros_like(err))
    gp = torch.bmm(f.to(dense)[:, None, :], m.transpose(1, 2))[:, 0].to(work) \
        - torch.where(act, err, torch.zeros_like(err))
    return sort, (gp * pvalid).mul_(inv_count[:, None])


def _rank_sort(raw, labels, pos, rank_delta, sort_delta, do_rank, do_sort, need_grad, work,
               dense, out_dtype=None):
    """Losses ``(R,)`` in ``work`` and updates of every row (zeros for rows without positives):
    the rank update ``(R, N)`` in ``out_dtype`` (default ``work``; each chunk's ``work`` result
    is rounded to it as it is stored), the sort update as ``(pidx (R, P), values (R, P))`` in
    ``out_dtype`` — it is non-zero on the positives only (padded slots: value 0). Rank part in
    chunks of ``_RANK_CHUNK`` pixels, sort part in chunks of ``_SORT_CHUNK`` positive pairs
    (half in float64; cache-sized)."""
    R, N = raw.shape
    dev = raw.device
    count = pos.sum(1)
    active = count > 0
    n_active = int(active.sum())
    every = n_active == R
    idx = None if every else torch.nonzero(active).flatten()
    out_dtype = work if out_dtype is None else out_dtype
    rank = torch.zeros(R, dtype=work, device=dev)
    sort = torch.zeros(R, dtype=work, device=dev)
    g_rank = g_sort = None
    if n_active == 0:
        if not need_grad:
            return rank, sort, None, None
        none = (torch.zeros(R, 1, dtype=torch.long, device=dev),
                torch.zeros(R, 1, dtype=out_dtype, device=dev))
        return (rank, sort, torch.zeros(R, N, dtype=out_dtype, device=dev) if do_rank else None,
                none if do_sort else None)
    raw_a, lab_a, pos_a = (raw, labels, pos) if every else (raw[idx], labels[idx], pos[idx])
    count, pidx, pvalid, top, sp = _positives(raw_a, pos_a, 2.0 * max(rank_delta, sort_delta) + 1.0,
                                              work)
    inv_count = 1.0 / count.to(work)
    out = {}
    if do_rank:
        per = max(1, _RANK_CHUNK // max(N, 1))
        loss_a = torch.empty(n_active, dtype=work, device=dev)
        grad_a = torch.empty(n_active, N, dtype=out_dtype, device=dev) if need_grad else None
        for a in range(0, n_active, per):
            sl = slice(a, a + per)
            lo, gr = _rank_part(raw_a[sl], pos_a[sl], top[sl], pidx[sl], pvalid[sl], sp[sl],
                                inv_count[sl], rank_delta, need_grad)
            loss_a[sl] = lo
            if need_grad:
                grad_a[sl] = gr
        out["rank"] = (loss_a, grad_a)
    if do_sort:
        # rows ordered by |P| so that each chunk pads only to its own largest |P| (the dense
        # |P|×|P| work is Σ|P|², not rows·max|P|²); chunk = as many rows as fit _SORT_CHUNK pairs
        perm = torch.argsort(count, stable=True)
        counts = count[perm].tolist()
        lab_p, pidx_p, pvalid_p = lab_a[perm], pidx[perm], pvalid[perm]
        sp_p, inv_p = sp[perm], inv_count[perm]
        loss_p = torch.empty(n_active, dtype=work, device=dev)
        grad_p = torch.zeros(n_active, pidx.shape[1], dtype=out_dtype, device=dev) if need_grad else None
        chunk = max(1, _SORT_CHUNK * 4 // (torch.finfo(dense).bits // 8))
        # one map's |P|×|P| table cannot be split by rows: refuse one of gigabytes up front
        check_pair_memory(counts[-1] ** 2 * (torch.finfo(dense).bits // 8) * _SORT_TABLES,
                          f"the sort part on a map with {counts[-1]:,} positive pixels: raise "
                          "positive_threshold (positives are labels above it) or use a smaller map;")
        a = 0
        while a < n_active:
            e = min(n_active, a + max(1, chunk // max(counts[a], 1) ** 2))
            while e - a > 1 and (e - a) * counts[e - 1] ** 2 > chunk:
                e = a + max(1, chunk // counts[e - 1] ** 2)
            pc = max(counts[e - 1], 1)
            lo, gr = _sort_part(lab_p[a:e], pidx_p[a:e, :pc], pvalid_p[a:e, :pc], sp_p[a:e, :pc],
                                inv_p[a:e], sort_delta, need_grad, dense)
            loss_p[a:e] = lo
            if need_grad:
                grad_p[a:e, :pc] = gr
            a = e
        loss_a = torch.empty_like(loss_p).index_copy_(0, perm, loss_p)
        grad_a = None if grad_p is None else (
            pidx, torch.empty_like(grad_p).index_copy_(0, perm, grad_p))
        out["sort"] = (loss_a, grad_a)
    for name, (loss_a, grad_a) in out.items():
        if every:
            full_loss, full_grad = loss_a, grad_a
        else:
            full_loss = torch.zeros(R, dtype=work, device=dev).index_copy_(0, idx, loss_a)
            if grad_a is None:
                full_grad = None
            elif name == "rank":
                full_grad = torch.zeros(R, N, dtype=out_dtype, device=dev).index_copy_(0, idx, grad_a)
            else:
                full_grad = tuple(torch.zeros(R, g.shape[1], dtype=g.dtype, device=dev).index_copy_(0, idx, g)
                                  for g in grad_a)
        if name == "rank":
            rank, g_rank = full_loss, full_grad
        else:
            sort, g_sort = full_loss, full_grad
    return rank, sort, g_rank, g_sort


class _RankSortFunction(torch.autograd.Function):
    """Per-row (rank, sort) losses ``(R,)`` of scores ``(R, N)`` with the error-driven backward."""

    @staticmethod
    def forward(ctx, scores, labels, pos, rank_delta, sort_delta, do_rank, do_sort):
        work = _work_dtype(scores.device)
        dense = torch.float64 if (scores.dtype == torch.float64 and work == torch.float64) \
            else torch.float32
        with torch.no_grad():
            rank, sort, g_rank, g_sort = _rank_sort(
                scores.detach(), labels.detach(), pos, rank_delta, sort_delta, do_rank, do_sort,
                bool(ctx.needs_input_grad[0]), work, dense, scores.dtype)
        ctx.g_rank, ctx.g_sort, ctx.shape = g_rank, g_sort, scores.shape
        return rank.to(scores.dtype), sort.to(scores.dtype)

    @staticmethod
    def backward(ctx, grad_rank, grad_sort):
        grad = None
        if ctx.g_rank is not None and grad_rank is not None:
            grad = ctx.g_rank * grad_rank[:, None]
        if ctx.g_sort is not None and grad_sort is not None:
            # the sort update lives on the positives: added where they are (the same sum
            # a + b per pixel as adding a dense row that is 0 elsewhere)
            pidx, values = ctx.g_sort
            if grad is None:
                grad = grad_sort.new_zeros(ctx.shape)
            grad.scatter_add_(1, pidx, values * grad_sort[:, None])
        ctx.g_rank = ctx.g_sort = None
        return grad, None, None, None, None, None, None


def _reduce(per_problem: torch.Tensor, active: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_problem
    total = per_problem.sum()
    if reduction == "sum":
        return total
    return total / active.sum().clamp_min(1).to(per_problem.dtype)


def _spatial(scores, labels, visible, rank_delta, sort_delta, positive_threshold, do_rank,
             do_sort, reduction):
    check_reduction(reduction)
    vis = _check_maps(scores, labels, visible)
    thr = _check_threshold(positive_threshold)
    if do_sort:
        _check_unit_labels(labels)
    B, K = scores.shape[:2]
    n = math.prod(scores.shape[2:])
    flat = scores.reshape(B * K, n)
    lab = labels.reshape(B * K, n)
    pos = (lab.detach() > thr) & (vis.detach().reshape(B * K, 1) > 0)
    rank, sort = _RankSortFunction.apply(flat, lab, pos, rank_delta, sort_delta, do_rank, do_sort)
    active = pos.any(1).reshape(B, K)
    return rank.reshape(B, K), sort.reshape(B, K), active


def spatial_rank_loss(scores: torch.Tensor, labels: torch.Tensor,
                      visible: torch.Tensor | None = None, delta: float = 0.4,
                      positive_threshold: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Spatial Rank loss (RSPose Eq. 5–6): rank every positive pixel above every negative one.

        ℓ_R(i) = FP(i) / (rank⁺(i) + FP(i)),   FP(i) = Σ_{j∈N} H(s_j − s_i),
        rank⁺(i) = Σ_{j∈P} H(s_j − s_i)  (self included, H(0) = 0.5),
        L_problem = 1/|P| Σ_{i∈P} ℓ_R(i)        (target ℓ*_R = 0),

    one problem per visible ``(b, k)`` map with positives; backward is the error-driven update
    (module docstring). Scores are raw network outputs (logits / heatmap values; δ is in their
    units).

    Args:
        scores: ``(B, K, *S)`` predicted heatmaps ``(B, K, H, W)`` or SimCC vectors ``(B, K, L)``.
        labels: ``(B, K, *S)`` target labels; positives are ``labels > positive_threshold``.
        visible: ``(B, K)``; a map is a problem only where ``visible > 0`` (None = all).
        delta: half-width δ of the smoothed step (Table E.8: 0.4); a δ below
            :data:`DELTA_MIN` (1e-6) is computed as DELTA_MIN (H is a step at that width already).
        positive_threshold: labels above it are positives (0: the whole truncated Gaussian window;
            SimCC labels are untruncated — pass e.g. ``codecs.POSITIVE_THRESHOLD_3SIGMA``).
        reduction: "mean" over problems with positives, "sum", or "none" → ``(B, K)`` (0 where a
            map has no positive).

    Example:
        >>> scores = torch.zeros(1, 1, 4, 4, requires_grad=True)
        >>> labels = torch.zeros(1, 1, 4, 4); labels[0, 0, 1, 2] = 1.0
        >>> loss = spatial_rank_loss(scores, labels)     # all tied: FP = 15·0.5, rank⁺ = 0.5
        >>> round(loss.item(), 4)
        0.9375
        >>> loss.backward(); round(scores.grad.sum().item(), 12)   # balanced: Σpos = −Σneg
        0.0
    """
    d = _check_delta(delta, "delta")
    rank, _, active = _spatial(scores, labels, visible, d, d, positive_threshold, True, False,
                               reduction)
    return _reduce(rank, active, reduction)


def spatial_sort_loss(scores: torch.Tensor, labels: torch.Tensor,
                      visible: torch.Tensor | None = None, delta: float = 1.5,
                      positive_threshold: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Spatial Sort loss (RSPose Eq. 7–9): order the positives by their (smoothed) labels.

        ℓ_S(i)  = Σ_{j∈P} H(s_j − s_i)(1 − y_j) / Σ_{j∈P} H(s_j − s_i)                 (Eq. 8)
        ℓ*_S(i) = Σ_{j∈P, y_j≥y_i} H(s_j − s_i)(1 − y_j) / Σ_{j∈P, y_j≥y_i} H(s_j − s_i) (Eq. 9)
        L_problem = 1/|P| Σ_{i∈P} (ℓ_S(i) − ℓ*_S(i))                                     (Eq. 7)

    Labels should lie in [0, 1] (peak-1 Gaussians). Backward: positive ``i`` gets
    ``−(ℓ_S − ℓ*_S)(i)``, the positives with a lower label above it share ``+(ℓ_S − ℓ*_S)(i)``
    in proportion to ``H(s_j − s_i)``. Arguments as :func:`spatial_rank_loss` (Table E.8: δ 1.5).

    Example:
        >>> scores = torch.tensor([[[0.0, 1.0, 2.0]]], requires_grad=True)
        >>> labels = torch.tensor([[[1.0, 0.5, 0.2]]])   # the best label has the lowest score
        >>> spatial_sort_loss(scores, labels, delta=0.1).item() > 0
        True
    """
    d = _check_delta(delta, "delta")
    _, sort, active = _spatial(scores, labels, visible, d, d, positive_threshold, False, True,
                               reduction)
    return _reduce(sort, active, reduction)


def spatial_rank_sort_loss(scores: torch.Tensor, labels: torch.Tensor,
                           visible: torch.Tensor | None = None, rank_delta: float = 0.4,
                           sort_delta: float = 1.5, sort_weight: float = 2.0,
                           positive_threshold: float = 0.0, reduction: str = "mean",
                           return_terms: bool = False):
    """Spatial RS loss ``L_S-Rank + λ₁ L_S-Sort`` (RSPose Eq. 14 without Instance-Sort), sharing
    one pass over the positives; decoupled δ's (§6.2). Defaults: ViTPose-B, Table E.8.

    ``return_terms=True`` returns ``{"loss", "spatial_rank", "spatial_sort"}``.

    Example:
        >>> scores = torch.randn(2, 3, 8, 6, requires_grad=True)
        >>> labels = torch.rand(2, 3, 8, 6) * (torch.rand(2, 3, 8, 6) > 0.8)
        >>> spatial_rank_sort_loss(scores, labels).backward()
        >>> bool(torch.isfinite(scores.grad).all())
        True
    """
    rd = _check_delta(rank_delta, "rank_delta")
    sd = _check_delta(sort_delta, "sort_delta")
    lam = _check_weight(sort_weight, "sort_weight")
    rank, sort, active = _spatial(scores, labels, visible, rd, sd, positive_threshold, True,
                                  lam != 0.0 or return_terms, reduction)
    r, s = _reduce(rank, active, reduction), _reduce(sort, active, reduction)
    total = r + lam * s
    if return_terms:
        return {"loss": total, "spatial_rank": r, "spatial_sort": s}
    return total


# ----------------------------------------------------------------------------- Instance-Sort
def _keypoint_sigmas(sigmas, K: int, device) -> torch.Tensor:
    """COCO keypoint σ's ``(K,)`` float64 (default :data:`poselab.skeleton.OKS_SIGMAS`, K = 17)."""
    if sigmas is None:
        if K != len(OKS_SIGMAS):
            raise ValueError(f"the outputs have K = {K} keypoints; pass sigmas (K,) for non-COCO joints")
        sigmas = OKS_SIGMAS
    sig = torch.tensor(np.array(sigmas, dtype=np.float64), device=device)
    if sig.shape != (K,) or not bool(torch.isfinite(sig).all()) or bool((sig <= 0).any()):
        raise ValueError(f"sigmas must be K = {K} positive finite numbers, got shape {tuple(sig.shape)}")
    return sig


def instance_keypoint_similarity(heatmaps: torch.Tensor, keypoints: torch.Tensor,
                                 areas: torch.Tensor, sigmas: Sequence[float] | None = None):
    """Confidence and localisation quality of every heatmap (RSPose Eq. 11).

    Confidence = the heatmap maximum; KS = ``exp(−d²/(2 s² κ²))`` with ``d`` the distance (heatmap
    px) from the highest-confidence pixel to the keypoint, ``s² = area`` (heatmap px²) and
    ``κ = 2σ_k`` (the COCO convention of :func:`poselab.metrics.keypoint_similarity`).

    Returns ``(confidence (B, K) with grad, ks (B, K) detached)``.
    """
    B, K, H, W = heatmaps.shape
    sig = _keypoint_sigmas(sigmas, K, heatmaps.device)
    conf, idx = heatmaps.reshape(B, K, H * W).max(-1)
    with torch.no_grad():
        px = torch.stack([idx % W, torch.div(idx, W, rounding_mode="floor")], -1).to(torch.float64)
        d2 = (px - keypoints.detach().to(torch.float64)).square().sum(-1)
        kappa2 = (2.0 * sig) ** 2
        ks = torch.exp(-d2 / (2.0 * areas.detach().to(torch.float64)[:, None] * kappa2[None, :]))
    return conf, ks.to(heatmaps.dtype)


def instance_sort_loss(heatmaps: torch.Tensor, keypoints: torch.Tensor,
                       visible: torch.Tensor | None, areas: torch.Tensor, delta: float = 3.0,
                       sigmas: Sequence[float] | None = None,
                       reduction: str = "mean") -> torch.Tensor:
    """Instance-Sort loss (RSPose Eq. 10–13): sort the persons of the batch, per keypoint type,
    so that a heatmap maximum (confidence) is higher where the keypoint is better localised.

        conf_b = max heatmap_bk,  KS_b = exp(−d_b²/(2 s_b² κ_k²))                      (Eq. 11)
        ℓ_IS(b)  = Σ_{c∈I} H(conf_c − conf_b)(1 − KS_c) / Σ_{c∈I} H(conf_c − conf_b)    (Eq. 12)
        ℓ*_IS(b) = same over {c : KS_c ≥ KS_b}                                          (Eq. 13)
        L_k = 1/|I_k| Σ_{b∈I_k} (ℓ_IS(b) − ℓ*_IS(b))                                    (Eq. 10)

    ``I_k`` = persons with ``visible[b, k] > 0``. The error-driven update of the sort loss is applied
    to ``conf``, i.e. to the arg-max pixel of each heatmap; KS is a (detached) target.

    Args:
        heatmaps: ``(B, K, H, W)`` predictions.
        keypoints: ``(B, K, 2)`` ground truth ``(x, y)`` in heatmap px (NaN allowed where
            ``visible`` is 0).
        visible: ``(B, K)`` (None = all).
        areas: ``(B,)`` person areas in heatmap px² (the COCO ``area`` / stride²).
        delta: δ of the smoothed step (Table E.8: 3.0 for ViTPose-B).
        sigmas: ``(K,)`` COCO keypoint σ's (default :data:`poselab.skeleton.OKS_SIGMAS`, K = 17).
        reduction: "mean" over keypoint types with ≥ 1 person, "sum", or "none" → ``(K,)``.

    Example:
        >>> hm = torch.zeros(3, 17, 8, 6); hm[:, :, 4, 3] = torch.tensor([3.0, 2.0, 1.0])[:, None]
        >>> kp = torch.full((3, 17, 2), 3.0); kp[0, :, 0] = 0.0   # person 0: worst KS, top score
        >>> loss = instance_sort_loss(hm.requires_grad_(), kp, None, torch.full((3,), 40.0))
        >>> loss.item() > 0
        True
    """
    check_reduction(reduction)
    _check_delta(delta, "delta")
    if isinstance(heatmaps, (tuple, list)):
        raise TypeError("instance_sort_loss takes 2-D heatmaps (B, K, H, W); for SimCC's "
                        "(simcc_x, simcc_y) pair use simcc_instance_sort_loss")
    check_tensor(heatmaps, "heatmaps", ndim=4)
    return _instance_sort(heatmaps, keypoints, visible, areas, delta, sigmas, reduction)


def _check_persons(keypoints, visible, areas, B: int, K: int, like: torch.Tensor, area_unit: str):
    """The per-person inputs of Instance-Sort: ``keypoints (B, K, 2)``, ``visible (B, K)`` (None =
    all) and ``areas (B,)`` > 0 for every person with a visible joint. Returns the visibility in
    ``like``'s dtype and the keypoints, a NaN/Inf keypoint of a joint with ``visible`` 0 set to 0
    (it is no positive, so its KS is never read; one with ``visible`` > 0 is refused)."""
    nonfinite = has_nonfinite(keypoints)
    check_tensor(torch.nan_to_num(keypoints) if nonfinite else keypoints, "keypoints", ndim=3, last=2)
    if tuple(keypoints.shape[:2]) != (B, K):
        raise ValueError(f"keypoints must have shape (B, K, 2) = ({B}, {K}, 2), got "
                         f"{tuple(keypoints.shape)}")
    vis = check_weights(visible, (B, K), like)
    if nonfinite:
        keypoints = mask_unlabelled_targets(keypoints, None if visible is None else vis, "visible", "keypoints")
    check_tensor(areas, "areas", ndim=1)
    if areas.shape[0] != B:
        raise ValueError(f"areas must have shape (B,) = ({B},), got {tuple(areas.shape)}")
    if B and K and bool((areas.detach()[vis.detach().amax(1) > 0] <= 0).any()):
        raise ValueError(f"areas must be > 0 ({area_unit}) for every person with a visible joint")
    return vis, keypoints


def _instance_sort(heatmaps, keypoints, visible, areas, delta, sigmas, reduction):
    """:func:`instance_sort_loss` after the checks of ``reduction`` and ``heatmaps`` (which
    :func:`rspose_loss` has already made on the same tensor: the finiteness check is a full pass)."""
    d = _check_delta(delta, "delta")
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must have 4 dims, got shape {tuple(heatmaps.shape)}")
    B, K = heatmaps.shape[:2]
    vis, keypoints = _check_persons(keypoints, visible, areas, B, K, heatmaps, "heatmap px²")
    if B == 0 or K == 0 or heatmaps.shape[2] * heatmaps.shape[3] == 0:
        zero = heatmaps.sum() * 0.0
        return zero.expand(K) if reduction == "none" else zero
    conf, ks = instance_keypoint_similarity(heatmaps, keypoints, areas.clamp_min(1e-12), sigmas)
    pos = (vis.detach() > 0).t().contiguous()                               # (K, B)
    _, sort = _RankSortFunction.apply(conf.t().contiguous(), ks.t().contiguous(), pos, d, d,
                                      False, True)
    return _reduce(sort, pos.any(1), reduction)


def simcc_instance_sort_loss(simcc_x: torch.Tensor, simcc_y: torch.Tensor, keypoints: torch.Tensor,
                             visible: torch.Tensor | None, areas: torch.Tensor, delta: float = 0.5,
                             split_ratio: float = 2.0, sigmas: Sequence[float] | None = None,
                             reduction: str = "mean") -> torch.Tensor:
    """Instance-Sort loss (RSPose Eq. 10–13) on SimCC's 1-D outputs (RSPose applies it to
    SimCC-HRNet48, Table 6 / E.8: δ 0.5, coefficient 0.1).

    Per keypoint type, the persons of the batch are sorted so that the higher confidence goes with
    the better localised keypoint, as :func:`instance_sort_loss` does for 2-D heatmaps. The paper
    does not say how a SimCC keypoint's confidence and location are read; we read them as SimCC's
    decoder does (:func:`poselab.codecs.decode_simcc`, MMPose's ``get_simcc_maximum``):

        conf_b = min(max_i simcc_x[b, k, i], max_j simcc_y[b, k, j])
        loc_b  = ((argmax_i + 0.5) / k_split − 0.5, (argmax_j + 0.5) / k_split − 0.5)  (input px)
        KS_b   = exp(−|loc_b − keypoint_b|² / (2 s_b² κ_k²))                          (Eq. 11)

    so the error-driven update on ``conf_b`` lands on the arg-max bin of the axis whose maximum is
    the smaller (half on each when the two maxima are equal); KS is a detached target. The scores
    are taken as given (logits or probabilities: pass what the decoder scores).

    Args:
        simcc_x: ``(B, K, L_x)``, simcc_y: ``(B, K, L_y)`` the head's outputs, same dtype.
        keypoints: ``(B, K, 2)`` ground truth ``(x, y)`` in **input px** (the SimCC codec's unit).
        visible: ``(B, K)`` (None = all). areas: ``(B,)`` person areas in input px².
        delta: δ of the smoothed step (Table E.8, SimCC-HRNet-W48: 0.5).
        split_ratio: SimCC's k, bins per input pixel (> 0).
        sigmas: ``(K,)`` COCO keypoint σ's (default :data:`poselab.skeleton.OKS_SIGMAS`, K = 17).
        reduction: "mean" over keypoint types with ≥ 1 person, "sum", or "none" → ``(K,)``.

    Example:
        >>> sx = torch.zeros(3, 17, 12); sy = torch.zeros(3, 17, 16)
        >>> sx[:, :, 6] = torch.tensor([3.0, 2.0, 1.0])[:, None]; sy[:, :, 8] = 5.0
        >>> kp = torch.full((3, 17, 2), 3.25); kp[0, :, 0] = 0.0   # person 0: worst KS, top score
        >>> loss = simcc_instance_sort_loss(sx.requires_grad_(), sy, kp, None, torch.full((3,), 40.0))
        >>> loss.item() > 0
        True
    """
    check_reduction(reduction)
    d = _check_delta(delta, "delta")
    k = finite_number(split_ratio, "split_ratio")
    if k <= 0:
        raise ValueError(f"split_ratio must be > 0 (bins per input pixel), got {split_ratio!r}")
    check_tensor(simcc_x, "simcc_x", ndim=3)
    check_tensor(simcc_y, "simcc_y", ndim=3)
    if simcc_x.shape[:2] != simcc_y.shape[:2]:
        raise ValueError(f"simcc_x {tuple(simcc_x.shape)} and simcc_y {tuple(simcc_y.shape)} must "
                         f"share their (B, K) dims")
    if simcc_x.dtype != simcc_y.dtype:
        raise TypeError(f"simcc_x ({simcc_x.dtype}) and simcc_y ({simcc_y.dtype}) must have one dtype")
    B, K = simcc_x.shape[:2]
    if B * K and (simcc_x.shape[2] == 0 or simcc_y.shape[2] == 0):
        raise ValueError(f"simcc_x {tuple(simcc_x.shape)} and simcc_y {tuple(simcc_y.shape)} need at "
                         f"least one bin per axis")
    vis, keypoints = _check_persons(keypoints, visible, areas, B, K, simcc_x, "input px²")
    if B == 0 or K == 0:
        zero = simcc_x.sum() * 0.0 + simcc_y.sum() * 0.0
        return zero.expand(K) if reduction == "none" else zero
    sig = _keypoint_sigmas(sigmas, K, simcc_x.device)
    conf_x, ix = simcc_x.max(-1)
    conf_y, iy = simcc_y.max(-1)
    conf = torch.minimum(conf_x, conf_y)
    with torch.no_grad():
        loc = (torch.stack([ix, iy], -1).to(torch.float64) + 0.5) / k - 0.5
        d2 = (loc - keypoints.detach().to(torch.float64)).square().sum(-1)
        area = areas.detach().to(torch.float64).clamp_min(1e-12)
        ks = torch.exp(-d2 / (2.0 * area[:, None] * ((2.0 * sig) ** 2)[None, :])).to(simcc_x.dtype)
    pos = (vis.detach() > 0).t().contiguous()                               # (K, B)
    _, sort = _RankSortFunction.apply(conf.t().contiguous(), ks.t().contiguous(), pos, d, d,
                                      False, True)
    return _reduce(sort, pos.any(1), reduction)


# ----------------------------------------------------------------------------- Eq. 14
def rspose_loss(scores: torch.Tensor, labels: torch.Tensor, visible: torch.Tensor | None = None,
                keypoints: torch.Tensor | None = None, areas: torch.Tensor | None = None,
                rank_delta: float = 0.4, sort_delta: float = 1.5, instance_delta: float = 3.0,
                rank_weight: float = 1.0, sort_weight: float = 2.0, instance_weight: float = 0.25,
                positive_threshold: float = 0.0, sigmas: Sequence[float] | None = None,
                return_terms: bool = False):
    """The total loss of RSPose Eq. 14: ``w_R L_S-Rank + λ₁ L_S-Sort + λ₂ L_I-Sort``.

    Defaults are the ViTPose-B row of Table E.8 (δ 0.4 / 1.5 / 3.0, coefficients 1 / 2 / 0.25).
    Instance-Sort needs 2-D heatmaps, ``keypoints (B, K, 2)`` in heatmap px and ``areas (B,)`` in
    heatmap px²; with ``instance_weight=0`` (or no keypoints) it is skipped. Each term has its own
    error-driven update, so each coefficient scales its own term's update.

    Returns a scalar, or with ``return_terms=True`` ``{"loss", "spatial_rank", "spatial_sort",
    "instance_sort"}``.

    Example:
        >>> hm = torch.randn(2, 17, 16, 12, requires_grad=True)
        >>> from poselab.codecs import encode_gaussian
        >>> kp = torch.rand(2, 17, 2) * 10 + 1
        >>> labels, vis = encode_gaussian(kp, None, (16, 12), sigma=2.0)
        >>> out = rspose_loss(hm, labels, vis, kp, torch.full((2,), 100.0), return_terms=True)
        >>> sorted(out)
        ['instance_sort', 'loss', 'spatial_rank', 'spatial_sort']
    """
    wr = _check_weight(rank_weight, "rank_weight")
    lam2 = _check_weight(instance_weight, "instance_weight")
    terms = spatial_rank_sort_loss(scores, labels, visible, rank_delta, sort_delta, sort_weight,
                                   positive_threshold, "mean", return_terms=True)
    total = wr * terms["spatial_rank"] + _check_weight(sort_weight, "sort_weight") * terms["spatial_sort"]
    use_is = lam2 != 0.0 and keypoints is not None
    if lam2 != 0.0 and keypoints is None:
        raise ValueError("instance_weight != 0 needs keypoints (B, K, 2) heatmap px and areas (B,); "
                         "pass them or set instance_weight=0")
    if use_is:
        if areas is None:
            raise ValueError("Instance-Sort needs areas (B,) in heatmap px² (COCO area / stride²)")
        inst = _instance_sort(scores, keypoints, visible, areas, instance_delta, sigmas, "mean")
        total = total + lam2 * inst
    else:
        inst = scores.sum() * 0.0
    if return_terms:
        return {"loss": total, "spatial_rank": terms["spatial_rank"],
                "spatial_sort": terms["spatial_sort"], "instance_sort": inst}
    return total


class SpatialRankSortLoss(torch.nn.Module):
    """Module wrapper of :func:`spatial_rank_sort_loss` (RSPose Eq. 5-9): the δ's, the sort
    weight, the positive threshold and the reduction fixed at construction (ViTPose-B defaults of
    Table E.8). ``forward(scores (B, K, H, W) or (B, K, L), labels (same), visible (B, K))``.

    Example:
        >>> loss_fn = SpatialRankSortLoss()
        >>> labels = torch.zeros(1, 2, 8, 6); labels[..., 3, 2] = 1.0
        >>> float(loss_fn(10 * labels, labels, torch.ones(1, 2))) < 1e-6
        True
    """

    def __init__(self, rank_delta: float = 0.4, sort_delta: float = 1.5, sort_weight: float = 2.0,
                 positive_threshold: float = 0.0, reduction: str = "mean"):
        super().__init__()
        _check_delta(rank_delta, "rank_delta"), _check_delta(sort_delta, "sort_delta")
        self.rank_delta, self.sort_delta = float(rank_delta), float(sort_delta)
        self.sort_weight = _check_weight(sort_weight, "sort_weight")
        self.positive_threshold, self.reduction = _check_threshold(positive_threshold), reduction

    def forward(self, scores, labels, visible=None, return_terms: bool = False):
        return spatial_rank_sort_loss(scores, labels, visible, rank_delta=self.rank_delta,
                                      sort_delta=self.sort_delta, sort_weight=self.sort_weight,
                                      positive_threshold=self.positive_threshold, reduction=self.reduction,
                                      return_terms=return_terms)


class InstanceSortLoss(torch.nn.Module):
    """Module wrapper of :func:`instance_sort_loss` (RSPose Eq. 10-13): δ and the OKS sigmas fixed;
    ``forward(heatmaps (B, K, H, W), keypoints (B, K, 2) heatmap px, visible (B, K), areas (B,)
    heatmap px²)`` — each person's own area (COCO area / stride²), never a constant."""

    def __init__(self, delta: float = 3.0, sigmas: Sequence[float] | None = None, reduction: str = "mean"):
        super().__init__()
        self.delta, self.sigmas, self.reduction = float(delta), sigmas, reduction

    def forward(self, heatmaps, keypoints, visible, areas):
        return instance_sort_loss(heatmaps, keypoints, visible, areas, delta=self.delta, sigmas=self.sigmas,
                                  reduction=self.reduction)


class SimCCInstanceSortLoss(torch.nn.Module):
    """Module wrapper of :func:`simcc_instance_sort_loss` (RSPose Eq. 10-13 on SimCC's outputs): δ,
    SimCC's split ratio and the OKS sigmas fixed; ``forward(outputs, keypoints (B, K, 2) input px,
    visible (B, K), areas (B,) input px²)`` with ``outputs`` the head's ``(simcc_x (B, K, L_x),
    simcc_y (B, K, L_y))`` pair."""

    def __init__(self, delta: float = 0.5, split_ratio: float = 2.0, sigmas: Sequence[float] | None = None,
                 reduction: str = "mean"):
        super().__init__()
        self.delta, self.split_ratio, self.sigmas, self.reduction = float(delta), float(split_ratio), sigmas, reduction

    def forward(self, outputs, keypoints, visible, areas):
        if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
            raise TypeError(f"outputs must be SimCC's (simcc_x, simcc_y) pair, got {type(outputs).__name__}")
        return simcc_instance_sort_loss(outputs[0], outputs[1], keypoints, visible, areas, delta=self.delta,
                                        split_ratio=self.split_ratio, sigmas=self.sigmas,
                                        reduction=self.reduction)


class RSPoseLoss(torch.nn.Module):
    """Module wrapper of :func:`rspose_loss` (RSPose Eq. 14, ``w_R L_S-Rank + λ₁ L_S-Sort + λ₂
    L_I-Sort``) with the ViTPose-B hyper-parameters of Table E.8 by default.
    ``forward(scores, labels, visible, keypoints=None, areas=None)``: Instance-Sort needs the
    keypoints (heatmap px) and each person's area (heatmap px²) when ``instance_weight`` > 0."""

    def __init__(self, rank_delta: float = 0.4, sort_delta: float = 1.5, instance_delta: float = 3.0,
                 rank_weight: float = 1.0, sort_weight: float = 2.0, instance_weight: float = 0.25,
                 positive_threshold: float = 0.0, sigmas: Sequence[float] | None = None):
        super().__init__()
        for name, w in (("rank_weight", rank_weight), ("sort_weight", sort_weight),
                        ("instance_weight", instance_weight)):
            _check_weight(w, name)
        for name, d in (("rank_delta", rank_delta), ("sort_delta", sort_delta),
                        ("instance_delta", instance_delta)):
            _check_delta(d, name)
        _check_threshold(positive_threshold)
        self.params = dict(rank_delta=float(rank_delta), sort_delta=float(sort_delta),
                           instance_delta=float(instance_delta), rank_weight=float(rank_weight),
                           sort_weight=float(sort_weight), instance_weight=float(instance_weight),
                           positive_threshold=float(positive_threshold), sigmas=sigmas)

    def forward(self, scores, labels, visible=None, keypoints=None, areas=None, return_terms: bool = False):
        return rspose_loss(scores, labels, visible, keypoints, areas, return_terms=return_terms, **self.params)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items() if k != "sigmas")
