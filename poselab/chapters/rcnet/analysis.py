"""Pure functions behind the RCNet chapter ("On the ranking of human pose confidence").

- AP by Eq. 3 and AR by Eq. 4 from scores and OKS; the toy of Fig. 1 (three true positives, one
  false positive with the same pose) as a tiny COCO-format set scored by pycocotools too;
- ranking statistics: pairwise accuracy of random scores (Eq. 5–6), false positives ranked
  above true positives (App. C, Table 6), the single-TP toy (+0.5 / +0.8 AP);
- the rank loss's theory: the expected optimal margin c/2 (Prop. 2), the upper bound of
  Theorem 1 by Monte Carlo under its Laplace assumptions, Lemma 5's accuracy bound, Theorem 3's
  "loss down ⇒ accuracy up" read off a training history;
- calibration (App. H, Table 12): Pearson correlation and AUSE-OKS.

Arrays in, numbers out (float64 numpy).
"""
from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import torch

from poselab._numbers import positive_number, whole_number
from poselab.losses.confidence_ranking import laplacian_rank_loss, rank_pair_term
from poselab.metrics import coco_keypoint_eval, oks_matrix, ranking_accuracy
from poselab.skeleton import NUM_KEYPOINTS, PERSON_CATEGORY

__all__ = [
    "OKS_THRESHOLDS", "average_precision_eq3", "average_recall_eq4", "precision_recall_curve",
    "toy_dataset", "toy_evaluate", "toy_permutation_table", "random_ranking_accuracy",
    "fp_above_tp", "single_tp_gain", "expected_optimal_margin", "optimal_margin_of_g",
    "theorem1_monte_carlo", "lemma5_bound", "theorem3_agreement", "pearson", "ause_oks",
    "ranking_accuracies", "two_person_toy", "two_person_ar", "random_ranking_check",
    "prop2_margin_check", "theorem1_in_range", "swapped_rank_pair_term", "theorem1_pair_bound_gap",
    "ap_definitions", "theorem3_search", "pair_term_point",
]

OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _vec(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per detection), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf; give every detection a finite value")
    return a


def _oks(oks) -> np.ndarray:
    q = _vec(oks, "oks")
    if np.any((q < 0) | (q > 1)):
        raise ValueError(f"oks must lie in [0, 1] (0 for a false positive), got values from {q.min():g} to {q.max():g}")
    return q


def _scores_oks(scores, oks) -> tuple[np.ndarray, np.ndarray]:
    s, q = _vec(scores, "scores"), _oks(oks)
    if s.shape != q.shape:
        raise ValueError(f"scores and oks must have the same length, got {s.size} and {q.size}")
    return s, q


def _at_most_n_gt(q: np.ndarray, n: int, thresholds: np.ndarray) -> None:
    """One-to-one matching gives at most ``n`` true positives at any threshold: more means the
    OKS were not taken from a matching (or ``n_gt`` is wrong), and AP / AR would exceed 1."""
    most = int((q > thresholds.min()).sum())
    if most > n:
        raise ValueError(f"{most} detections have OKS > {thresholds.min():g} but n_gt = {n}: each "
                         "ground-truth person matches at most one detection (0 OKS for the others)")


def _n_gt(n_gt) -> int:
    if isinstance(n_gt, bool) or int(n_gt) != n_gt or n_gt < 1:
        raise ValueError(f"n_gt must be an int >= 1 (the number of ground-truth persons), got {n_gt!r}")
    return int(n_gt)


def _oks_thresholds(thresholds, name: str = "thresholds") -> np.ndarray:
    """OKS thresholds as a float64 array, each a finite number in [0, 1] (a NaN threshold made
    every detection a false positive: AP 0 instead of an error)."""
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any((t < 0) | (t > 1)):
        raise ValueError(f"{name} must be OKS values in [0, 1], got {thresholds!r}")
    return t


# ----------------------------------------------------------------------------- Eq. 3 and Eq. 4

def average_precision_eq3(scores, oks, n_gt: int, thresholds=OKS_THRESHOLDS) -> float:
    """mAP by RCNet Eq. 3: mean over OKS thresholds τ of Σ_{i'} 1(OKS_{i'} > τ)/N · prec@i'.

    Detections are sorted by descending score (stable: ties keep their input order, as
    pycocotools' mergesort); prec@i' is the fraction of the first i' detections with OKS > τ.
    N is the number of **ground-truth persons** (``n_gt``): Eq. 3 prints N, and only with
    N = #GT does the correct order of Fig. 1 give 1.0. Non-interpolated, unlike pycocotools'
    101-point interpolated precision (see :func:`toy_evaluate`). ``oks`` is each detection's OKS
    with the person it is matched to (0 for a false positive).

    Example:
        >>> average_precision_eq3([0.9, 0.8, 0.7], [0.99, 0.0, 0.99], n_gt=2)  # TP, FP, TP
        0.8333333333333333
    """
    s, q = _scores_oks(scores, oks)
    n = _n_gt(n_gt)
    ts = _oks_thresholds(thresholds)
    _at_most_n_gt(q, n, ts)
    if s.size == 0:
        return 0.0
    q = q[np.argsort(-s, kind="mergesort")]
    rank = np.arange(1, q.size + 1)
    aps = []
    for t in ts:
        tp = (q > t).astype(np.float64)
        aps.append(float((tp * np.cumsum(tp) / rank).sum() / n))
    return float(np.mean(aps))


def average_recall_eq4(oks, n_gt: int, thresholds=OKS_THRESHOLDS) -> float:
    """mAR by RCNet Eq. 4: mean over τ of Σ_i 1(OKS_i > τ)/N — no sorting, so scores play no role.

    Example:
        >>> average_recall_eq4([0.99, 0.0, 0.6], n_gt=2)
        0.6
    """
    q = _oks(oks)
    n = _n_gt(n_gt)
    ts = _oks_thresholds(thresholds)
    _at_most_n_gt(q, n, ts)
    return float(np.mean([(q > t).sum() / n for t in ts]))


def precision_recall_curve(scores, oks, n_gt: int, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Precision and recall after each detection in score order (one OKS threshold).

    Returns ``{"recall", "precision", "is_tp", "order"}`` (``order``: detection indices by
    descending score), plus ``"interpolated"``: COCO's envelope max_{k ≥ i} precision_k.
    """
    s, q = _scores_oks(scores, oks)
    n = _n_gt(n_gt)
    threshold = float(_oks_thresholds(threshold, "threshold")[0])
    order = np.argsort(-s, kind="mergesort")
    tp = (q[order] > threshold).astype(np.float64)
    rank = np.arange(1, tp.size + 1)
    precision = np.cumsum(tp) / np.maximum(rank, 1)
    interp = np.maximum.accumulate(precision[::-1])[::-1] if tp.size else precision
    return {"recall": np.cumsum(tp) / n, "precision": precision, "interpolated": interp,
            "is_tp": tp.astype(bool), "order": order}


# ----------------------------------------------------------------------------- the Fig. 1 toy

_TOY_POSE = np.array([[50, 20], [47, 17], [53, 17], [44, 19], [56, 19], [40, 32], [60, 32],
                      [35, 46], [65, 46], [33, 60], [67, 60], [44, 62], [56, 62], [43, 80],
                      [57, 80], [42, 96], [58, 96]], dtype=np.float64)


def toy_dataset(n_tp: int = 3, n_fp: int = 1, offset_px: float = 0.7) -> dict:
    """Fig. 1's toy as a COCO-format set: ``n_tp`` images with one person each, predicted with
    the same small error (``offset_px`` on every joint, so every TP has the same OKS, > 0.95),
    and ``n_fp`` person-free images each holding one detection of the same pose — a false
    positive whose localisation is identical to the true positives'.

    Returns ``{"gt": COCO dict, "keypoints": (n_tp + n_fp, 17, 2), "image_id": (n,),
    "oks": (n,) OKS with the image's person (0 for the FPs), "is_tp": (n,), "n_gt": n_tp}``.
    """
    if n_tp < 1 or n_fp < 0:
        raise ValueError(f"n_tp must be >= 1 and n_fp >= 0, got {n_tp}, {n_fp}")
    images, anns = [], []
    for i in range(n_tp + n_fp):
        images.append({"id": i + 1, "file_name": f"toy_{i + 1}.png", "height": 120, "width": 100})
    for i in range(n_tp):
        kp = np.concatenate([_TOY_POSE, np.full((NUM_KEYPOINTS, 1), 2.0)], axis=1)
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "keypoints": kp.ravel().tolist(), "num_keypoints": NUM_KEYPOINTS,
                     "bbox": [30.0, 12.0, 40.0, 90.0], "area": 2400.0})
    gt = {"images": images, "annotations": anns, "categories": [dict(PERSON_CATEGORY)]}
    pred = np.repeat((_TOY_POSE + offset_px)[None], n_tp + n_fp, axis=0)
    image_id = np.arange(1, n_tp + n_fp + 1)
    oks = np.zeros(n_tp + n_fp)
    oks[:n_tp] = oks_matrix(pred[:1], _TOY_POSE[None], np.full((1, NUM_KEYPOINTS), 2.0),
                            np.array([2400.0]))[0, 0]
    return {"gt": gt, "keypoints": pred, "image_id": image_id, "oks": oks,
            "is_tp": np.arange(n_tp + n_fp) < n_tp, "n_gt": n_tp}


def toy_evaluate(scores, toy: dict | None = None) -> dict:
    """AP and AR of the toy under ``scores``, by Eq. 3/4 and by pycocotools.

    Returns ``{"ap_eq3", "ap_coco", "ar_eq4", "ar_coco", "curve"}`` where ``curve`` is
    :func:`precision_recall_curve` at OKS 0.5 (plus ``"coco_precision"`` (101,) and
    ``"coco_recall"``: pycocotools' interpolated precision at OKS 0.5).
    """
    toy = toy_dataset() if toy is None else toy
    s = _vec(scores, "scores")
    if s.size != toy["oks"].size:
        raise ValueError(f"scores must have one value per toy detection ({toy['oks'].size}), got {s.size}")
    results = [{"image_id": int(i), "category_id": 1, "score": float(v),
                "keypoints": np.concatenate([kp, np.ones((NUM_KEYPOINTS, 1))], 1).ravel().tolist()}
               for i, v, kp in zip(toy["image_id"], s, toy["keypoints"])]
    coco = coco_keypoint_eval(toy["gt"], results)
    curve = precision_recall_curve(s, toy["oks"], toy["n_gt"])
    curve["coco_precision"] = np.asarray(coco["precision"][0])
    curve["coco_recall"] = np.asarray(coco["recall_thresholds"])
    return {"ap_eq3": average_precision_eq3(s, toy["oks"], toy["n_gt"]), "ap_coco": float(coco["AP"]),
            "ar_eq4": average_recall_eq4(toy["oks"], toy["n_gt"]), "ar_coco": float(coco["AR"]),
            "curve": curve}


def toy_permutation_table(toy: dict | None = None) -> list[dict]:
    """AP/AR of the toy for every distinct ranking position of its false positives.

    Each row: ``{"order": "TP TP FP TP" (top first), "ap_eq3", "ap_coco", "ar_eq4", "ar_coco"}``
    over all permutations of the scores 1..n (rows with the same TP/FP pattern are identical
    and listed once, but every permutation is evaluated — see ``"n_permutations"``).
    """
    toy = toy_dataset() if toy is None else toy
    n = toy["oks"].size
    rows: dict[str, dict] = {}
    for perm in permutations(range(n)):
        scores = np.empty(n)
        scores[list(perm)] = np.arange(n, 0, -1, dtype=np.float64)  # perm[0] ranked first
        r = toy_evaluate(scores, toy)
        pattern = " ".join("TP" if toy["is_tp"][i] else "FP" for i in perm)
        row = rows.setdefault(pattern, {"order": pattern, "n_permutations": 0, "ap_eq3": r["ap_eq3"],
                                        "ap_coco": r["ap_coco"], "ar_eq4": r["ar_eq4"],
                                        "ar_coco": r["ar_coco"], "ap_values": set(), "ar_values": set()})
        row["n_permutations"] += 1
        row["ap_values"].add(round(r["ap_coco"], 12))
        row["ar_values"].add((round(r["ar_eq4"], 12), round(r["ar_coco"], 12)))
    out = []
    for row in rows.values():
        row["ap_values"], row["ar_values"] = sorted(row["ap_values"]), sorted(row["ar_values"])
        out.append(row)
    return sorted(out, key=lambda r: -r["ap_coco"])


# ----------------------------------------------------------------------------- ranking statistics

def random_ranking_accuracy(n_pairs: int = 200_000, seed: int = 0, correlation: float = 0.0) -> dict:
    """Pairwise ranking accuracy of scores drawn independently of quality (RCNet Eq. 5–6).

    Draws ``n_pairs`` pairs (s_i, s*_i), (s_j, s*_j) i.i.d.; quality s* ~ U(0, 1), score
    s = correlation·s* + (1 − correlation)·U(0, 1) (``correlation = 0``: the random case, where
    Eq. 6 gives 0.5). Returns ``{"accuracy", "n_pairs", "standard_error"}``.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if isinstance(correlation, bool) or not (isinstance(correlation, (int, float, np.integer, np.floating))
                                             and 0 <= correlation <= 1):
        raise ValueError(f"correlation must be a number in [0, 1] (the weight of quality in the score), got {correlation!r}")
    rng = np.random.default_rng(seed)
    q = rng.random((2, int(n_pairs)))
    s = correlation * q + (1.0 - correlation) * rng.random((2, int(n_pairs)))
    correct = (s[0] > s[1]) == (q[0] > q[1])
    acc = float(correct.mean())
    return {"accuracy": acc, "n_pairs": int(n_pairs),
            "standard_error": math.sqrt(max(acc * (1 - acc), 1e-12) / n_pairs)}


def fp_above_tp(scores, oks, threshold: float = 0.5) -> dict:
    """False positives ranked above true positives (RCNet App. C, Table 6 analogue).

    A detection is a TP when its matched OKS ≥ ``threshold`` (COCO's loosest), else a FP.
    Returns ``{"n_tp", "n_fp", "wrong_fp"`` (FPs scored above at least one TP — Table 6's
    "# of wrongly ranked FP"), ``"wrong_fp_per_tp"``, ``"fp_above_mean_tp"`` (mean over TPs of
    the number of FPs above it), ``"misordered_pair_fraction"`` (FP–TP pairs with the FP above)}``.
    Ties count as half above.
    """
    s, q = _scores_oks(scores, oks)
    threshold = float(_oks_thresholds(threshold, "threshold")[0])
    tp, fp = s[q >= threshold], s[q < threshold]
    if tp.size == 0 or fp.size == 0:
        return {"n_tp": int(tp.size), "n_fp": int(fp.size), "wrong_fp": 0, "wrong_fp_per_tp": 0.0,
                "fp_above_mean_tp": 0.0, "misordered_pair_fraction": 0.0}
    fp_sorted = np.sort(fp)
    above = fp.size - np.searchsorted(fp_sorted, tp, side="right")  # FPs strictly above each TP
    ties = np.searchsorted(fp_sorted, tp, side="right") - np.searchsorted(fp_sorted, tp, side="left")
    above_each = above + 0.5 * ties
    wrong = int((fp > tp.min()).sum())
    return {"n_tp": int(tp.size), "n_fp": int(fp.size), "wrong_fp": wrong,
            "wrong_fp_per_tp": wrong / tp.size, "fp_above_mean_tp": float(above_each.mean()),
            "misordered_pair_fraction": float(above_each.sum() / (tp.size * fp.size))}


def single_tp_gain(n_fp_above: int) -> dict:
    """App. C's toy: one TP below ``n_fp_above`` FPs, then ranked first. AP by Eq. 3 before/after.

    AP before = 1/(k + 1) (precision at the TP), after = 1: the gain is k/(k + 1) (+0.5 for one
    FP above, +0.8 for four).
    """
    k = int(n_fp_above)
    if k < 0:
        raise ValueError(f"n_fp_above must be >= 0, got {n_fp_above}")
    oks = np.r_[np.zeros(k), 1.0]
    before = average_precision_eq3(np.arange(k + 1, 0, -1.0), oks, 1)
    after = average_precision_eq3(np.r_[np.zeros(k), 1.0], oks, 1)
    return {"ap_before": before, "ap_after": after, "gain": after - before}


# ----------------------------------------------------------------------------- Prop. 2, Theorem 1

def expected_optimal_margin(c: float = 1.0, prior: str = "uniform", nodes: int = 16,
                            beta: tuple[float, float] = (2.0, 5.0)) -> float:
    """E[m*] with m* = c − s₁ for the lower score s₁ of a pair (RCNet Prop. 2, App. J.2).

    ``prior="uniform"``: s₁ ~ U(0, c) — Prop. 2's assumption, E[m*] = c/2. ``prior="beta"``:
    s₁ = c·Beta(a, b) (a counter-case: then E[m*] = c·b/(a + b) ≠ c/2). Computed by
    Gauss–Legendre quadrature of ∫₀ᶜ (c − x) p(x) dx with ``nodes`` points (exact for the
    uniform prior's linear integrand).
    """
    c = float(c)
    if not c > 0:
        raise ValueError(f"c must be > 0, got {c}")
    x, w = np.polynomial.legendre.leggauss(int(nodes))
    s1 = 0.5 * c * (x + 1.0)  # nodes mapped to [0, c]
    if prior == "uniform":
        density = np.full_like(s1, 1.0 / c)
    elif prior == "beta":
        a, b = beta
        u = s1 / c
        density = u ** (a - 1) * (1 - u) ** (b - 1) / (math.gamma(a) * math.gamma(b) / math.gamma(a + b)) / c
    else:
        raise ValueError(f"prior must be 'uniform' or 'beta', got {prior!r}")
    return float((0.5 * c * w * (c - s1) * density).sum())


def optimal_margin_of_g(c: float = 1.0, margin: float | None = None, grid: int = 200_001) -> float:
    """argmin over δ ∈ [0, c] of g for a correctly ordered pair (Eq. 9 case 1; with ``margin``,
    the Eq. 38 form with that m) on a fine grid — c/2 for the paper's loss."""
    c = positive_number(c, "c")
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid must be a whole number >= 2, got {grid!r}")
    d = torch.linspace(0.0, c, int(grid), dtype=torch.float64)
    g = rank_pair_term(d, torch.ones_like(d), c, margin)
    return float(d[int(torch.argmin(g))])


def _g_abs(delta: np.ndarray, order: np.ndarray, c: float) -> np.ndarray:
    a = np.abs(delta)
    correct = order * delta > 0
    return np.where(correct, (a - c / 2) ** 2 + c * c / 4, c * a + c * c / 2)


def _neg_log_p_correct(u: np.ndarray, b: float) -> np.ndarray:
    """−log P(z·order > 0) when z − δ is a difference of two Laplace(0, b) and u = order·δ."""
    a = np.abs(u)
    tail = 0.5 * np.exp(-a / b) * (1.0 + a / (2 * b))  # P(W > |u|)
    right = -np.log1p(-tail)
    wrong = math.log(2.0) + a / b - np.log1p(a / (2 * b))
    return np.where(u > 0, right, wrong)


def theorem1_monte_carlo(n: int = 1_000_000, b: float = 1.0, b_prime: float = 2.0, c: float = 1.0,
                         seed: int = 0) -> dict:
    """Theorem 1 (L ≤ l) checked per sampled configuration under the Laplace assumptions.

    Sample s*_i, s*_j ~ U(0, 1) (distinct), μ ~ Laplace(s*, b′) and, for the refined scores,
    s′ ~ Laplace(μ, b). Per configuration the exact negative log-likelihood inside Eq. 16 is

        L = −log P(s′_i ≺ s′_j | μ) − log p(μ_i | s*_i) − log p(μ_j | s*_j)

    (P from the difference-of-Laplace law, Eq. 19), and the loss of Def. 1 for that pair is
    l = (|s*_i − μ_i| + |s*_j − μ_j|)/b′ + g(δ). The proof (App. J.1) drops additive
    constants ("∝"); kept, its steps give

        L ≤ (|e_i| + |e_j|)/b′ + g(δ)/(b·c) + K,   K = 2·log(2b′) + log(4b/c),

    i.e. L ≤ l + K whenever b·c = 1 (the paper's c = 1 with b = 1). Returns
    ``{"min_gap"`` (min over samples of the bound above minus L: ≥ 0 iff it holds everywhere),
    ``"min_gap_l"`` (min of l + K − L: Def. 1's loss itself, g with weight 1 — fails when
    b·c ≠ 1 is far from 1), ``"K", "fraction_literal"`` (fraction with l ≥ L *without* K —
    the constant-free reading of "L ≤ l"), ``"mean_L", "mean_l", "n"}``.
    """
    for name, v in (("b", b), ("b_prime", b_prime), ("c", c)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be > 0, got {v}")
    n = whole_number(n, "n", 1)
    rng = np.random.default_rng(seed)
    star = rng.random((2, int(n)))
    keep = star[0] != star[1]
    star = star[:, keep]
    mu = star + rng.laplace(0.0, b_prime, star.shape)
    delta = mu[0] - mu[1]
    order = np.sign(star[0] - star[1])
    err = np.abs(mu - star).sum(axis=0)
    L = _neg_log_p_correct(order * delta, b) + err / b_prime + 2 * math.log(2 * b_prime)
    g = _g_abs(delta, order, c)
    K = 2 * math.log(2 * b_prime) + math.log(4 * b / c)
    l_paper = err / b_prime + g
    bound = err / b_prime + g / (b * c) + K
    return {"min_gap": float((bound - L).min()), "min_gap_l": float((l_paper + K - L).min()), "K": K,
            "fraction_literal": float((l_paper >= L).mean()), "mean_L": float(L.mean()),
            "mean_l": float(l_paper.mean()), "n": int(L.size)}


# ----------------------------------------------------------------------------- Lemma 5, Theorem 3

def lemma5_bound(pred, target) -> dict:
    """Lemma 5 (App. J.3): accuracy ≥ 1 − (2 / min_{s*_i≠s*_j} |s*_i − s*_j|) · mean_i |μ_i − s*_i|.

    Returns ``{"accuracy"`` (pairs tied in μ count as misordered, as in the proof), ``"bound"``,
    ``"holds"}``. The bound is vacuous (negative) unless the scores are within a fraction of the
    smallest target gap of their targets.
    """
    mu, star = _scores_oks(pred, target)
    diff_t = star[:, None] - star[None, :]
    pairs = diff_t > 0
    if not pairs.any():
        raise ValueError("lemma5_bound needs at least two distinct target values")
    correct = (mu[:, None] - mu[None, :]) > 0
    acc = float((pairs & correct).sum() / pairs.sum())
    min_gap = float(diff_t[pairs].min())
    bound = 1.0 - 2.0 / min_gap * float(np.abs(mu - star).mean())
    return {"accuracy": acc, "bound": bound, "holds": acc >= bound - 1e-12}


def theorem3_agreement(losses, accuracies) -> dict:
    """Theorem 3 read off a training history: of the epochs where the rank loss went down, the
    fraction where pairwise accuracy went up (or stayed). Returns ``{"loss_down_epochs",
    "accuracy_up_given_loss_down", "accuracy_change", "loss_change"}``."""
    l, a = _vec(losses, "losses"), _vec(accuracies, "accuracies")
    if l.size != a.size or l.size < 2:
        raise ValueError("losses and accuracies need the same length >= 2 (one value per epoch)")
    down = np.diff(l) < 0
    up = np.diff(a) >= 0
    n = int(down.sum())
    return {"loss_down_epochs": n,
            "accuracy_up_given_loss_down": float((down & up).sum() / n) if n else float("nan"),
            "accuracy_change": float(a[-1] - a[0]), "loss_change": float(l[-1] - l[0])}


# ----------------------------------------------------------------------------- calibration

def pearson(scores, oks) -> float:
    """Pearson correlation of scores with OKS (Table 12); 0.0 when either is constant."""
    s, q = _scores_oks(scores, oks)
    if s.size < 2:
        raise ValueError("pearson needs at least 2 detections")
    s, q = s - s.mean(), q - q.mean()
    den = math.sqrt((s * s).sum() * (q * q).sum())
    return float((s * q).sum() / den) if den > 0 else 0.0


def ause_oks(scores, oks, steps: int = 100) -> float:
    """Area under the sparsification error of 1 − OKS ranked by the scores (Table 12, lower is better).

    Remove the fraction f ∈ {0, 1/steps, …} of detections with the lowest scores and take the
    mean error 1 − OKS of the rest; do the same removing by true error (the oracle); AUSE is the
    mean over f of the difference (0 for a perfect ranking). Returned in OKS units (×100 for %).
    """
    s, q = _scores_oks(scores, oks)
    if s.size < 2:
        raise ValueError("ause_oks needs at least 2 detections")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    err = 1.0 - q
    by_score = err[np.argsort(-s, kind="mergesort")]  # most confident first
    oracle = np.sort(err)
    n = err.size
    fractions = np.arange(steps) / steps
    keep = np.maximum(1, np.round((1 - fractions) * n).astype(int))
    mean_prefix = lambda e: np.cumsum(e)[keep - 1] / keep  # noqa: E731
    return float(np.mean(mean_prefix(by_score) - mean_prefix(oracle)))


# ----------------------------------------------------------------------------- issue-25 checks

def ranking_accuracies(scores, matched_oks) -> dict:
    """Pairwise ranking accuracy two ways (RCNet §3.3, Table 1/5).

    - ``"matched"`` — **the paper's way**: only the predictions matched to a ground-truth person
      (``matched_oks > 0``: COCO's greedy match at OKS 0.5), pairs ordered by their OKS;
    - ``"all"`` — every detection, false positives (target 0) included.

    Ties in OKS are excluded and ties in score count one half
    (:func:`poselab.metrics.ranking_accuracy`). A way with no pair of distinct OKS gives NaN.
    Returns ``{"matched", "all", "n_matched", "n_all"}``.

    Example:
        >>> ranking_accuracies([0.9, 0.8, 0.1], [0.6, 0.9, 0.0])["matched"]  # the 2 TPs misordered
        0.0
    """
    s, q = _scores_oks(scores, matched_oks)

    def acc(mask):
        qq = q[mask]
        return float(ranking_accuracy(s[mask], qq)) if qq.size > 1 and np.ptp(qq) > 0 else float("nan")

    matched = q > 0
    return {"matched": acc(matched), "all": acc(np.ones_like(matched)),
            "n_matched": int(matched.sum()), "n_all": int(q.size)}


def two_person_toy(partner_shift: float = 5.0, first_shift: float = 1.5,
                   second_shift: float = -2.5) -> dict:
    """One image, two overlapping persons A and B (B = A shifted ``partner_shift`` px right),
    two detections: d1 between them (A + ``first_shift``) and d2 on A's far side (A +
    ``second_shift``). d1 is close enough to B to match it, d2 only matches A, so which person
    each detection gets in COCO's greedy matching depends on which one is scored first.

    Returns the COCO-format ``"gt"``, ``"keypoints"`` (2, 17, 2), ``"oks"`` (2, 2: detection ×
    person) and ``"n_gt"`` = 2.
    """
    images = [{"id": 1, "file_name": "two.png", "height": 120, "width": 140}]
    anns = []
    poses = [_TOY_POSE, _TOY_POSE + [partner_shift, 0.0]]
    for k, pose in enumerate(poses):
        kp = np.concatenate([pose, np.full((NUM_KEYPOINTS, 1), 2.0)], axis=1)
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                     "keypoints": kp.ravel().tolist(), "num_keypoints": NUM_KEYPOINTS,
                     "bbox": [30.0 + k * partner_shift, 12.0, 40.0, 90.0], "area": 2400.0})
    gt = {"images": images, "annotations": anns, "categories": [dict(PERSON_CATEGORY)]}
    pred = np.stack([_TOY_POSE + [first_shift, 0.0], _TOY_POSE + [second_shift, 0.0]])
    oks = oks_matrix(pred, np.stack(poses), np.full((2, NUM_KEYPOINTS), 2.0), np.array([2400.0, 2400.0]))
    return {"gt": gt, "keypoints": pred, "oks": oks, "n_gt": 2}


def two_person_ar(toy: dict | None = None) -> list[dict]:
    """AR of :func:`two_person_toy` for both score orders: Eq. 4 (each detection's OKS with its
    best person, no matching, no sorting) and pycocotools (greedy matching in score order).

    Rows ``{"order", "ar_eq4", "ar_coco", "ap_coco"}``. Eq. 4 cannot move; COCO's AR moves
    whenever one detection can match either of two persons — Table 2's "mAR unchanged" is then
    an empirical statement about the data, not a consequence of Eq. 4.
    """
    toy = two_person_toy() if toy is None else toy
    rows = []
    best = toy["oks"].max(axis=1)
    for name, scores in (("d1 above d2", (0.9, 0.8)), ("d2 above d1", (0.8, 0.9))):
        results = [{"image_id": 1, "category_id": 1, "score": float(v),
                    "keypoints": np.concatenate([kp, np.ones((NUM_KEYPOINTS, 1))], 1).ravel().tolist()}
                   for v, kp in zip(scores, toy["keypoints"])]
        coco = coco_keypoint_eval(toy["gt"], results)
        rows.append({"order": name, "ar_eq4": average_recall_eq4(best, toy["n_gt"]),
                     "ar_coco": float(coco["AR"]), "ap_coco": float(coco["AP"])})
    return rows


def random_ranking_check(quality, *, seed: int = 0, levels: int = 4, repeats: int = 200,
                         metric=None) -> dict:
    """Eq. 5–6 as a check of **our ranking-accuracy metric**, not of a coin.

    That i.i.d. scores order a pair correctly with probability ½ is an identity; what can be
    wrong is the code that measures ranking accuracy. So: score the given ``quality`` (e.g. the
    chapter's own matched OKS, with its ties) ``repeats`` times with scores drawn i.i.d. from
    ``levels`` values (many tied scores) and average ``metric(scores, quality)``. A metric that
    counts tied scores as half-correct and skips tied qualities has expectation exactly ½; one
    that scores tied scores as wrong gives ≈ ½(1 − 1/levels), one that counts tied qualities
    gives less than ½, and both are rejected at 4 standard errors.

    Returns ``{"accuracy", "standard_error", "z", "repeats", "n", "holds"}`` (``holds``:
    |accuracy − ½| ≤ 4 standard errors).
    """
    metric = ranking_accuracy if metric is None else metric
    q = _vec(quality, "quality")
    if q.size < 2 or np.ptp(q) == 0:
        raise ValueError("random_ranking_check needs at least two distinct quality values")
    if int(levels) < 2 or int(repeats) < 2:
        raise ValueError(f"levels and repeats must be >= 2, got {levels}, {repeats}")
    rng = np.random.default_rng(seed)
    values = np.array([float(metric(rng.integers(0, int(levels), q.size).astype(np.float64), q))
                       for _ in range(int(repeats))])
    mean, se = float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))
    z = (mean - 0.5) / se if se > 0 else (0.0 if mean == 0.5 else math.inf)
    return {"accuracy": mean, "standard_error": se, "z": z, "repeats": int(repeats),
            "n": int(q.size), "holds": bool(abs(z) <= 4.0)}


def prop2_margin_check(c_values=(0.5, 1.0, 2.0), margin: float | None = None) -> dict:
    """Prop. 2 checked on **the loss**: the margin the rank loss's g settles an ordered pair at
    (argmin of its ordered branch, :func:`optimal_margin_of_g`) equals the expected optimal
    margin E[m*] = c/2 under a uniform prior (:func:`expected_optimal_margin`), for each c.

    ``margin``: the loss's margin (``None``: the paper's c/2 at every c; a number: that margin at
    every c — e.g. 0.3, which the check must reject). Returns ``{"max_error", "rows"}`` with rows
    ``{"c", "expected_margin", "loss_margin", "error"}``.
    """
    rows = []
    for c in c_values:
        expected = expected_optimal_margin(c)
        settled = optimal_margin_of_g(c, margin)
        rows.append({"c": float(c), "expected_margin": expected, "loss_margin": settled,
                     "error": abs(settled - expected)})
    return {"max_error": max(r["error"] for r in rows), "rows": rows}


def swapped_rank_pair_term(delta, order, c: float = 1.0):
    """An **anti-ranking** counterfeit of g: Eq. 38's branches swapped (a correctly ordered pair
    pays c|δ| + c²/2, a misordered one is pulled to the margin). The counter-case that
    :func:`theorem1_in_range` must reject."""
    return rank_pair_term(delta, -order, c)


def _laplace_diff_cdf(x: np.ndarray, b: float) -> np.ndarray:
    """CDF of the difference of two independent Laplace(0, b) (density of Eq. 19)."""
    a = np.abs(x)
    tail = 0.5 * np.exp(-a / b) * (1.0 + a / (2 * b))
    return np.where(x >= 0, 1.0 - tail, tail)


def theorem1_pair_bound_gap(delta, order, *, b: float = 1.0, c: float = 1.0, pair_term=None) -> np.ndarray:
    """Per pair, the gap of Theorem 1's pair bound as its proof states it (App. J.1):

        ḡ(δ) = −log P(z on the correct side, z ∈ [−c, c])  ≤  g(δ)/(b·c) + log(4b/c)

    where z = s′_i − s′_j has the difference-of-Laplace density around δ (Eq. 19) and the
    refined scores live in [0, c] (so z in [−c, c], Eq. 20); the proof's Jensen step (Eq. 23)
    and −log(b + |z − δ|) ≤ −log b (Eq. 28) give the right-hand side, with g = ∫|z − δ| dz
    over the correct half (Eq. 29). Returns right-hand side − ḡ (≥ 0 where the bound holds).
    ``pair_term(delta, order, c)`` replaces g (default: the loss's ``rank_pair_term``).
    """
    pair_term = rank_pair_term if pair_term is None else pair_term
    b, c = positive_number(b, "b"), positive_number(c, "c")
    d = np.asarray(delta, dtype=np.float64)
    o = np.asarray(order, dtype=np.float64)
    hi = np.where(o > 0, c, 0.0)
    lo = np.where(o > 0, 0.0, -c)
    prob = _laplace_diff_cdf(hi - d, b) - _laplace_diff_cdf(lo - d, b)
    g_bar = -np.log(np.clip(prob, 1e-300, None))
    g = pair_term(torch.as_tensor(d), torch.as_tensor(o), c).numpy()
    return g / (b * c) + math.log(4 * b / c) - g_bar


def theorem1_in_range(n: int = 1_000_000, *, b: float = 1.0, b_prime: float = 2.0, c: float = 1.0,
                      seed: int = 0, pair_term=None) -> dict:
    """Theorem 1 checked where RCNet lives: μ inside its output range [0, c].

    Sample s*_i, s*_j ~ U(0, c) (distinct) and μ ~ Laplace(s*, b′) **truncated to [0, c]** (RCNet's
    sigmoid range; the untruncated law puts most μ outside it), then per configuration check the
    pair bound of :func:`theorem1_pair_bound_gap` (the proof's own ḡ over z ∈ [−c, c]). The L1
    term is the same on both sides of the bound, so the pair bound is the theorem's content.

    With the paper's g the bound holds on every sample; with g's branches swapped
    (:func:`swapped_rank_pair_term`) it fails on strongly misordered pairs — the check can fail.
    Returns ``{"min_gap", "fraction_holds", "tightest_delta", "tightest_order", "n",
    "mean_abs_delta"}``.
    """
    for name, v in (("b", b), ("b_prime", b_prime), ("c", c)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be > 0, got {v}")
    n = whole_number(n, "n", 1)
    rng = np.random.default_rng(seed)
    star = rng.random((2, int(n))) * c
    keep = star[0] != star[1]
    star = star[:, keep]
    # inverse-CDF sampling of Laplace(s*, b') truncated to [0, c]
    def cdf(x, m):
        return np.where(x < m, 0.5 * np.exp((x - m) / b_prime), 1.0 - 0.5 * np.exp(-(x - m) / b_prime))
    lo, hi = cdf(0.0, star), cdf(c, star)
    u = lo + rng.random(star.shape) * (hi - lo)
    mu = np.where(u < 0.5, star + b_prime * np.log(2 * u), star - b_prime * np.log(2 * (1 - u)))
    mu = np.clip(mu, 0.0, c)
    delta = mu[0] - mu[1]
    order = np.sign(star[0] - star[1])
    gap = theorem1_pair_bound_gap(delta, order, b=b, c=c, pair_term=pair_term)
    k = int(np.argmin(gap))
    return {"min_gap": float(gap[k]), "fraction_holds": float((gap >= 0).mean()),
            "tightest_delta": float(delta[k]), "tightest_order": float(order[k]), "n": int(gap.size),
            "mean_abs_delta": float(np.abs(delta).mean())}


def ap_definitions(scores, oks, n_gt: int, threshold: float = 0.5) -> dict:
    """Fig. 1's AP three ways at one OKS threshold: Eq. 3 (mean precision at each TP over #GT,
    non-interpolated), COCO's 101-point interpolated precision, and the trapezoidal area under
    the raw precision–recall curve starting at (recall 0, precision 1).

    Returns ``{"eq3", "coco_101", "trapezoid"}``.
    """
    s, q = _scores_oks(scores, oks)
    curve = precision_recall_curve(s, q, n_gt, threshold)
    eq3 = average_precision_eq3(s, q, n_gt, thresholds=[threshold])
    rec = np.r_[0.0, curve["recall"]]
    prec = np.r_[1.0, curve["precision"]]
    trapezoid = float(np.sum(np.diff(rec) * (prec[1:] + prec[:-1]) / 2))
    grid = np.linspace(0.0, 1.0, 101)
    interp = curve["interpolated"]
    idx = np.searchsorted(curve["recall"], grid, side="left")
    coco = float(np.mean([interp[i] if i < interp.size else 0.0 for i in idx]))
    return {"eq3": eq3, "coco_101": coco, "trapezoid": trapezoid}


def theorem3_search(n_items: int = 8, trials: int = 2000, step: float = 0.1, seed: int = 0) -> dict:
    """Theorem 3 ("if l decreases, P_correct increases") probed on finite sets of scores.

    Each trial draws targets s* ~ U(0, 1) and scores μ ~ U(0, 1) for ``n_items`` poses and a
    step μ' = clip(μ + N(0, step²), 0, 1); among the steps that lower the Laplacian rank loss
    (b′ = 2, c = 1) it counts those that *lower* the pairwise accuracy, and of these the ones
    that also meet Assumption 4 (E[δ²] over pairs does not decrease; E[δ] = 0 always, since
    both orders of a pair count). The proof (App. J.3) reaches "accuracy up" through limits
    N_A → ∞ in which D_{A3}'s and D_{A4}'s sign-balanced sums vanish; a finite set has no such
    limit, so a counterexample meeting Assumption 4 shows the theorem needs it.

    Returns ``{"trials", "loss_down", "accuracy_down", "accuracy_down_with_assumption4",
    "example"}`` (``example``: loss and accuracy before/after of the first counterexample meeting
    Assumption 4, or None).
    """
    if int(n_items) < 3 or int(trials) < 1 or not step > 0:
        raise ValueError(f"need n_items >= 3, trials >= 1, step > 0; got {n_items}, {trials}, {step}")
    rng = np.random.default_rng(seed)
    off = ~np.eye(int(n_items), dtype=bool)
    down = worse = with_a4 = 0
    example = None
    for _ in range(int(trials)):
        star, mu = rng.random(int(n_items)), rng.random(int(n_items))
        nxt = np.clip(mu + rng.normal(0.0, step, mu.size), 0.0, 1.0)
        t = torch.from_numpy(star)
        l0 = float(laplacian_rank_loss(torch.from_numpy(mu), t))
        l1 = float(laplacian_rank_loss(torch.from_numpy(nxt), t))
        if not l1 < l0:
            continue
        down += 1
        a0, a1 = ranking_accuracy(mu, star), ranking_accuracy(nxt, star)
        if not a1 < a0:
            continue
        worse += 1
        spread0 = float(((mu[:, None] - mu[None, :])[off] ** 2).mean())
        spread1 = float(((nxt[:, None] - nxt[None, :])[off] ** 2).mean())
        if spread1 >= spread0:
            with_a4 += 1
            if example is None:
                example = {"loss": [l0, l1], "accuracy": [a0, a1], "mean_sq_delta": [spread0, spread1]}
    return {"trials": int(trials), "loss_down": down, "accuracy_down": worse,
            "accuracy_down_with_assumption4": with_a4, "example": example}


def pair_term_point(delta: float, order: float = 1.0, c: float = 1.0, margin: float | None = None) -> dict:
    """g and dg/dδ of one pair at ``delta`` (the loss's :func:`rank_pair_term`, autograd), and
    which of Eq. 9's four cases the point falls in (1: s*_i > s*_j, δ ≥ 0; 2: s*_i < s*_j, δ ≥ 0;
    3: s*_i > s*_j, δ < 0; 4: s*_i < s*_j, δ < 0) and whether the pair is ordered.

    Returns ``{"case", "ordered", "g", "gradient"}`` — what the loss-shape widget shows.
    """
    if order not in (1, -1, 1.0, -1.0):
        raise ValueError(f"order must be +1 (s*_i > s*_j) or -1 (s*_i < s*_j), got {order!r}")
    if isinstance(delta, bool) or not (isinstance(delta, (int, float, np.integer, np.floating)) and math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number (μ_i − μ_j), got {delta!r}")
    d = torch.tensor([float(delta)], dtype=torch.float64, requires_grad=True)
    g = rank_pair_term(d, torch.tensor([float(order)], dtype=torch.float64), float(c), margin)
    g.sum().backward()
    case = (1 if order > 0 else 2) if delta >= 0 else (3 if order > 0 else 4)
    return {"case": case, "ordered": bool(order * delta > 0), "g": float(g.item()),
            "gradient": float(d.grad.item())}
