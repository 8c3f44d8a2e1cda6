"""EPE, PCK, Spearman and ranking accuracy against naive loops and scipy."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from poselab.metrics import average_ranks, end_point_error, pck, ranking_accuracy, spearman


def _case(seed, b=4, k=17):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 100, (b, k, 2))
    pred = gt + rng.normal(0, 5, (b, k, 2))
    vis = rng.integers(0, 3, (b, k))
    vis[0, 0] = 2
    size = rng.uniform(20, 80, b)
    return pred, gt, vis, size


def test_epe_naive_loop():
    pred, gt, vis, _ = _case(0)
    dists = [math.hypot(*(pred[i, j] - gt[i, j])) for i in range(4) for j in range(17) if vis[i, j] > 0]
    assert end_point_error(pred, gt, vis) == pytest.approx(sum(dists) / len(dists), rel=1e-14)


def test_epe_closed_form_and_bool_mask():
    pred = np.array([[[3.0, 4.0], [0.0, 0.0], [100.0, 0.0]]])
    gt = np.zeros((1, 3, 2))
    assert end_point_error(pred, gt, [[True, True, False]]) == 2.5


def test_pck_naive_loop():
    pred, gt, vis, size = _case(1)
    for alpha in (0.05, 0.1, 0.2):
        hits = [math.hypot(*(pred[i, j] - gt[i, j])) < alpha * size[i]
                for i in range(4) for j in range(17) if vis[i, j] > 0]
        assert pck(pred, gt, vis, size, alpha) == pytest.approx(sum(hits) / len(hits), abs=1e-15)


def test_pck_threshold_is_strict_and_scalar_size():
    pred = np.array([[2.0, 0.0], [1.999, 0.0]])
    assert pck(pred, np.zeros((2, 2)), [1, 1], 10.0, alpha=0.2) == 0.5


@pytest.mark.parametrize("fn", [end_point_error, lambda p, g, v: pck(p, g, v, 10.0)])
def test_all_invisible_raises(fn):
    with pytest.raises(ValueError, match="no visible joint"):
        fn(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)), np.zeros((2, 17)))


@pytest.mark.parametrize("call, match", [
    (lambda: end_point_error(np.zeros((2, 17, 2)), np.zeros((2, 16, 2)), np.ones((2, 17))), "same shape"),
    (lambda: end_point_error(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)), np.ones((2, 16))), "visible"),
    (lambda: end_point_error(np.zeros((2, 17, 3)), np.zeros((2, 17, 3)), np.ones((2, 17))), r"\(\.\.\., K, 2\)"),
    (lambda: end_point_error(np.full((1, 2, 2), np.nan), np.zeros((1, 2, 2)), np.ones((1, 2))), "NaN"),
    (lambda: pck(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((2, 3)), [1.0, 0.0]), "bbox_size"),
    (lambda: pck(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((2, 3)), [1.0, 2, 3]), "bbox_size"),
    (lambda: pck(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((2, 3)), 1.0, alpha=0), "alpha"),
])
def test_error_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_average_ranks_example():
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.floats(-3, 3, allow_nan=False)), min_size=2,
                max_size=40))
def test_spearman_matches_scipy(pairs):
    a = np.array([p[0] for p in pairs], dtype=float)  # many ties
    b = np.array([p[1] for p in pairs])
    ours = spearman(a, b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert ours == 0.0
    else:
        assert ours == pytest.approx(scipy.stats.spearmanr(a, b).statistic, abs=1e-12)
    np.testing.assert_allclose(average_ranks(b), scipy.stats.rankdata(b), atol=0)


def test_spearman_constant_and_errors():
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0
    assert spearman([1, 2, 3], [30, 20, 10]) == -1.0
    with pytest.raises(ValueError, match="at least 2"):
        spearman([1.0], [2.0])
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        spearman(np.ones((2, 2)), np.ones((2, 2)))


def naive_ranking_accuracy(s, q):
    good = total = 0.0
    for i, j in itertools.combinations(range(len(s)), 2):
        if q[i] == q[j]:
            continue
        total += 1
        hi, lo = (i, j) if q[i] > q[j] else (j, i)
        good += 1.0 if s[hi] > s[lo] else (0.5 if s[hi] == s[lo] else 0.0)
    return good / total


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=30),
       st.integers(1, 7))
def test_ranking_accuracy_matches_naive(pairs, chunk):
    s = np.array([p[0] for p in pairs], dtype=float)
    q = np.array([p[1] for p in pairs], dtype=float)
    if np.ptp(q) == 0:
        with pytest.raises(ValueError, match="different"):
            ranking_accuracy(s, q, chunk=chunk)
    else:
        assert ranking_accuracy(s, q, chunk=chunk) == pytest.approx(naive_ranking_accuracy(s, q),
                                                                    abs=1e-12)


def test_ranking_accuracy_closed_forms():
    q = np.arange(10.0)
    assert ranking_accuracy(q * 2, q) == 1.0
    assert ranking_accuracy(-q, q) == 0.0
    assert ranking_accuracy(np.zeros(10), q) == 0.5
    # two quality levels: ROC AUC (Mann–Whitney U / (n1 n0))
    rng = np.random.default_rng(0)
    s = rng.normal(size=50)
    y = rng.integers(0, 2, 50).astype(float)
    u = scipy.stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert ranking_accuracy(s, y) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), abs=1e-12)
    with pytest.raises(ValueError, match="same length"):
        ranking_accuracy([1, 2], [1, 2, 3])
