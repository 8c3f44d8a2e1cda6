"""Where RCNet's AP change comes from (App. C, Table 6): the Eq. 3 AP change of a rescoring split
into reordering the true positives among themselves and moving the false positives relative to
them, by two hybrid rankings; and the sentence the run prints about it.

Kept out of :mod:`poselab.chapters.rcnet.analysis` on purpose: that module is imported by the
chapter's training code (``recipes.py``), so every edit to it changes the run cache's source
digest; nothing here can change a fit.
"""
from __future__ import annotations

import numpy as np
import torch

from poselab.chapters.rcnet.analysis import _n_gt, _oks_thresholds, _scores_oks, average_precision_eq3, fp_above_tp

__all__ = ["ap_gain_decomposition", "decomposition_sentence"]


def _host(x):
    """A torch tensor (any float dtype: bfloat16 / float16 as a GPU returns scores) as a float64
    numpy array; anything else unchanged."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return x


def _ranked(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="mergesort")  # stable: pycocotools' order for ties


def _hybrid_ap(slot_order: np.ndarray, tp_order: np.ndarray, fp_order: np.ndarray, is_tp: np.ndarray,
               oks: np.ndarray, n_gt: int) -> float:
    """Eq. 3 AP of the ranking whose TP/FP slots follow ``slot_order`` and whose TP slots are
    filled in ``tp_order``, FP slots in ``fp_order``."""
    kinds = is_tp[slot_order]
    ranking = np.empty(slot_order.size, dtype=np.int64)
    ranking[kinds] = tp_order[is_tp[tp_order]]
    ranking[~kinds] = fp_order[~is_tp[fp_order]]
    scores = np.empty(ranking.size)
    scores[ranking] = np.arange(ranking.size, 0, -1, dtype=np.float64)
    return average_precision_eq3(scores, oks, n_gt)


def ap_gain_decomposition(before, after, oks, n_gt: int, threshold: float = 0.5) -> dict:
    """Where a rescoring's AP change (Eq. 3, ten OKS thresholds) comes from (App. C's question).

    Detections with matched OKS ≥ ``threshold`` are true positives (TPs), the rest false
    positives (FPs), as in :func:`fp_above_tp`. Two hybrid rankings isolate the two moves:

    - **TP order only**: the TP/FP slots of the original ranking (every FP keeps its position
      relative to the TPs), the TPs in the new scores' order among themselves;
    - **FP placement only**: the TP/FP slots of the new ranking, the TPs in their original order.

    Returns ``{"ap_before", "ap_after", "gain", "from_tp_order"`` (TP order only − before),
    ``"from_fp_placement"`` (FP placement only − before), ``"interaction"`` (the rest),
    ``"wrong_fp_before", "wrong_fp_after"`` (FPs above some TP, Table 6), ``"fp_above_tp_pairs_before",
    "fp_above_tp_pairs_after"`` (FP–TP pairs with the FP above)}``. App. C credits the gain to FPs
    moving below TPs; ``from_tp_order`` is the part its account leaves out.

    Example:
        >>> d = ap_gain_decomposition([3, 2, 1], [2, 3, 1], [0.6, 0.9, 0.0], n_gt=2)  # two TPs swap
        >>> round(d["from_tp_order"], 4) == round(d["gain"], 4) and d["from_fp_placement"] == 0.0
        True
    """
    before, after, oks = (_host(x) for x in (before, after, oks))
    b, q = _scores_oks(before, oks)
    a, _ = _scores_oks(after, oks)
    n = _n_gt(n_gt)
    t = float(_oks_thresholds(threshold, "threshold")[0])
    is_tp = q >= t
    rb, ra = _ranked(b), _ranked(a)
    ap_b, ap_a = average_precision_eq3(b, q, n), average_precision_eq3(a, q, n)
    tp_only = _hybrid_ap(rb, ra, rb, is_tp, q, n)
    fp_only = _hybrid_ap(ra, rb, ra, is_tp, q, n)
    fb, fa = fp_above_tp(b, q, t), fp_above_tp(a, q, t)
    pairs = lambda f: f["misordered_pair_fraction"] * f["n_tp"] * f["n_fp"]  # noqa: E731
    return {"ap_before": ap_b, "ap_after": ap_a, "gain": ap_a - ap_b, "from_tp_order": tp_only - ap_b,
            "from_fp_placement": fp_only - ap_b, "interaction": (ap_a - ap_b) - (tp_only - ap_b) - (fp_only - ap_b),
            "wrong_fp_before": fb["wrong_fp"], "wrong_fp_after": fa["wrong_fp"],
            "fp_above_tp_pairs_before": pairs(fb), "fp_above_tp_pairs_after": pairs(fa)}


def decomposition_sentence(rows) -> str:
    """One sentence on :func:`ap_gain_decomposition` rows (one per seed), printed by the run:
    which move carries the mean AP gain, and whether that agrees with App. C."""
    rows = list(rows)
    if not rows:
        return "No rescoring to decompose."
    mean = {k: float(np.mean([r[k] for r in rows])) for k in
            ("gain", "from_tp_order", "from_fp_placement", "interaction", "wrong_fp_before", "wrong_fp_after")}
    head = (f"Eq. 3 AP change {mean['gain']:+.4f} (mean over {len(rows)} seeds): reordering only the true positives "
            f"gives {mean['from_tp_order']:+.4f}, moving only the false positives {mean['from_fp_placement']:+.4f} "
            f"(interaction {mean['interaction']:+.4f}); false positives above a true positive "
            f"{mean['wrong_fp_before']:.0f} -> {mean['wrong_fp_after']:.0f}")
    tiny = 1e-9  # AP changes below this are rounding, not a gain
    if mean["gain"] > tiny and mean["from_tp_order"] > max(mean["from_fp_placement"], 0.0):
        return head + (": the gain comes from ordering the true positives, not from pushing false positives "
                       "down as App. C says.")
    if mean["gain"] > tiny and mean["from_fp_placement"] >= mean["from_tp_order"]:
        return head + ": the gain comes mostly from false positives moving below true positives, as App. C says."
    return head + ": no AP gain to attribute."
