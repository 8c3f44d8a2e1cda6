"""RCNet analysis: AP Eq. 3 / AR Eq. 4 against loops and pycocotools, the Fig. 1 toy, ranking
statistics, Prop. 2, Theorem 1 (with counter-cases), Lemma 5, calibration, simulated detector."""
import math
from itertools import permutations

import numpy as np
import pytest

from poselab.chapters.rcnet import analysis as R
from poselab.chapters.rcnet.person_detector import simulate_detections


def ap_loop(scores, oks, n_gt, thresholds=R.OKS_THRESHOLDS):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    total = 0.0
    for t in thresholds:
        hits, ap = 0, 0.0
        for rank, i in enumerate(order, start=1):
            if oks[i] > t:
                hits += 1
                ap += hits / rank
        total += ap / n_gt
    return total / len(thresholds)


def test_eq3_matches_loop_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(40), 1)  # many ties
    oks = rng.random(40)
    assert abs(R.average_precision_eq3(scores, oks, 25) - ap_loop(scores, oks, 25)) < 1e-12
    assert R.average_recall_eq4(oks, 25) == pytest.approx(
        np.mean([(oks > t).sum() / 25 for t in R.OKS_THRESHOLDS]), abs=1e-15)


def test_toy_correct_order_is_one_and_fp_first_is_not():
    right = R.toy_evaluate([4, 3, 2, 1])
    assert right["ap_eq3"] == 1.0 and right["ap_coco"] == pytest.approx(1.0, abs=1e-12)
    wrong = R.toy_evaluate([1, 3, 2, 4])  # the FP (4th detection) ranked first
    assert wrong["ap_eq3"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    assert wrong["ap_coco"] == pytest.approx(0.75, abs=1e-12)  # interpolated envelope: 0.75 everywhere
    # the counter-case: Eq. 3 with N = #predictions would not give 1.0 for the right order
    toy = R.toy_dataset()
    assert ap_loop([4, 3, 2, 1], toy["oks"], 4) == pytest.approx(0.75)


def test_toy_ar_is_rank_invariant_and_ap_is_not():
    rows = R.toy_permutation_table()
    assert sum(r["n_permutations"] for r in rows) == 24
    ars = {v for r in rows for v in r["ar_values"]}
    assert ars == {(1.0, 1.0)}
    aps = [r["ap_coco"] for r in rows]
    assert max(aps) == pytest.approx(1.0) and min(aps) < 0.8
    # every permutation with the same TP/FP pattern gives one AP
    assert all(len(r["ap_values"]) == 1 for r in rows)


def test_toy_oks_from_pycocotools_matches():
    toy = R.toy_dataset()
    from poselab.metrics import coco_keypoint_eval
    results = [{"image_id": int(i), "category_id": 1, "score": 1.0 - 0.1 * k,
                "keypoints": np.concatenate([kp, np.ones((17, 1))], 1).ravel().tolist()}
               for k, (i, kp) in enumerate(zip(toy["image_id"], toy["keypoints"]))]
    coco = coco_keypoint_eval(toy["gt"], results)
    assert np.allclose(coco["matched_oks"], toy["oks"], atol=1e-12)
    assert toy["oks"][0] > 0.95  # every TP counts at every threshold


def test_random_ranking_accuracy_is_a_coin_flip_and_correlation_is_not():
    r = R.random_ranking_accuracy(200_000, seed=0)
    assert abs(r["accuracy"] - 0.5) <= 0.01
    assert R.random_ranking_accuracy(200_000, seed=0, correlation=0.3)["accuracy"] > 0.6


def test_fp_above_tp_matches_a_loop():
    rng = np.random.default_rng(1)
    scores, oks = np.round(rng.random(60), 2), np.where(rng.random(60) < 0.6, rng.random(60), 0.0)
    st = R.fp_above_tp(scores, oks)
    tp = [i for i in range(60) if oks[i] >= 0.5]
    fp = [i for i in range(60) if oks[i] < 0.5]
    above = [sum(1.0 if scores[f] > scores[t] else 0.5 if scores[f] == scores[t] else 0.0 for f in fp)
             for t in tp]
    assert st["n_tp"] == len(tp) and st["n_fp"] == len(fp)
    assert st["fp_above_mean_tp"] == pytest.approx(np.mean(above))
    assert st["misordered_pair_fraction"] == pytest.approx(sum(above) / (len(tp) * len(fp)))
    assert st["wrong_fp"] == sum(any(scores[f] > scores[t] for t in tp) for f in fp)


def test_single_tp_toy():
    assert R.single_tp_gain(1)["gain"] == pytest.approx(0.5)
    assert R.single_tp_gain(4)["gain"] == pytest.approx(0.8)
    assert R.single_tp_gain(0)["gain"] == 0.0


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_prop2_margin(c):
    assert abs(R.expected_optimal_margin(c) - c / 2) <= 1e-12
    assert abs(R.optimal_margin_of_g(c) - c / 2) <= 1e-5
    # counter-case: a non-uniform prior moves the expected margin away from c/2
    assert abs(R.expected_optimal_margin(c, prior="beta", nodes=64) - c * 5 / 7) < 1e-9
    assert abs(R.optimal_margin_of_g(c, margin=0.3 * c) - 0.3 * c) <= 1e-5


def test_difference_of_laplace_probability_against_sampling():
    rng = np.random.default_rng(0)
    b = 0.7
    for u in (-1.0, -0.2, 0.3, 1.5):
        z = u + rng.laplace(0, b, 400_000) - rng.laplace(0, b, 400_000)
        p = (z > 0).mean()
        assert math.exp(-R._neg_log_p_correct(np.array([u]), b)[0]) == pytest.approx(p, abs=4e-3)


def test_theorem1_bound_and_its_counter_cases():
    ok = R.theorem1_monte_carlo(200_000, b=1.0, c=1.0, seed=0)
    assert ok["min_gap"] >= 0 and ok["min_gap_l"] >= 0
    assert ok["fraction_literal"] < 0.5  # "L <= l" without the dropped constants fails often
    bad = R.theorem1_monte_carlo(200_000, b=0.1, c=1.0, seed=0)
    assert bad["min_gap"] >= 0 > bad["min_gap_l"]  # Def. 1's l needs b*c = 1
    with pytest.raises(ValueError, match="b_prime"):
        R.theorem1_monte_carlo(10, b_prime=0)


def test_lemma5_holds_and_is_tight_enough_to_fail_a_wrong_version():
    rng = np.random.default_rng(0)
    target = rng.permutation(np.linspace(0, 1, 50))
    for noise in (0.001, 0.005, 0.02):
        pred = target + rng.normal(0, noise, 50)
        r = R.lemma5_bound(pred, target)
        assert r["holds"]
    # with errors far below the target gap the bound is informative and accuracy is 1
    r = R.lemma5_bound(target + 1e-4, target)
    assert r["bound"] > 0.9 and r["accuracy"] == 1.0


def test_theorem3_agreement():
    out = R.theorem3_agreement([3, 2, 1.5, 1.6, 1.0], [0.5, 0.6, 0.7, 0.65, 0.66])
    assert out["loss_down_epochs"] == 3 and out["accuracy_up_given_loss_down"] == 1.0
    with pytest.raises(ValueError):
        R.theorem3_agreement([1.0], [0.5])


def test_calibration_metrics():
    rng = np.random.default_rng(0)
    s, q = rng.random(100), rng.random(100)
    assert R.pearson(s, q) == pytest.approx(np.corrcoef(s, q)[0, 1])
    assert R.pearson(np.ones(5), q[:5]) == 0.0
    assert R.ause_oks(q, q) == pytest.approx(0.0, abs=1e-15)
    assert R.ause_oks(-q, q) > R.ause_oks(s, q) > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="scores"):
        R.average_precision_eq3([np.nan, 1], [0.5, 0.5], 1)
    with pytest.raises(ValueError, match="n_gt"):
        R.average_precision_eq3([1, 2], [0.5, 0.5], 0)
    with pytest.raises(ValueError, match="same length"):
        R.fp_above_tp([1, 2], [0.5])
    assert R.average_precision_eq3([], [], 3) == 0.0
    with pytest.raises(ValueError, match="distinct"):
        R.lemma5_bound([0.1, 0.2], [0.5, 0.5])


def test_simulated_detector():
    boxes = np.array([[10, 10, 30, 60], [50, 20, 25, 50], [5, 5, 40, 80]], dtype=float)
    ids = np.array([1, 1, 2])
    sizes = {1: (120, 100), 2: (100, 100)}
    a = simulate_detections(boxes, ids, sizes, seed=3)
    b = simulate_detections(boxes, ids, sizes, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (a["kind"] == 0).sum() == 3 and np.all(a["bbox"][:, 2:] > 0)
    assert np.all((a["det_score"] > 0) & (a["det_score"] < 1))
    assert np.array_equal(a["source"][a["kind"] == 0], [0, 1, 2])
    assert np.all(a["source"][a["kind"] == 2] == -1)
    many = simulate_detections(np.repeat(boxes, 50, 0), np.repeat(ids, 50), sizes, seed=0,
                               duplicate_prob=0.5)
    assert 0.4 < (many["kind"] == 1).sum() / 150 < 0.6
    with pytest.raises(ValueError, match="image_sizes"):
        simulate_detections(boxes, [1, 1, 9], sizes)


# ------------------------------------------------------------------------- issue 25: the counter-cases

def test_ranking_accuracy_the_papers_way_ignores_false_positives():
    """§3.3 ranks predictions matched to a person. Counter-case: every FP below every TP but the
    TPs in reverse order — all-detections accuracy is high (FP-TP pairs are right), the paper's
    matched-only accuracy is 0."""
    oks = np.r_[np.linspace(0.6, 0.95, 8), np.zeros(30)]
    scores = np.r_[np.linspace(0.9, 0.5, 8), np.linspace(0.1, 0.4, 30)]  # TPs reversed, FPs low
    got = R.ranking_accuracies(scores, oks)
    assert got["matched"] == 0.0 and got["n_matched"] == 8
    assert got["all"] > 0.8 and got["n_all"] == 38
    # against a loop over the matched pairs
    m = oks > 0
    pairs = [(i, j) for i in np.flatnonzero(m) for j in np.flatnonzero(m) if oks[i] > oks[j]]
    correct = sum(1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0 for i, j in pairs)
    rng = np.random.default_rng(1)
    s2 = rng.random(38)
    pairs_ok = sum(1.0 if s2[i] > s2[j] else 0.0 for i, j in pairs) / len(pairs)
    assert abs(R.ranking_accuracies(s2, oks)["matched"] - pairs_ok) < 1e-12
    assert correct == 0.0
    assert math.isnan(R.ranking_accuracies([0.3, 0.2], [0.0, 0.0])["matched"])  # nothing matched


def test_two_persons_make_cocos_ar_depend_on_the_order():
    rows = {r["order"]: r for r in R.two_person_ar()}
    a, b = rows["d1 above d2"], rows["d2 above d1"]
    assert math.isclose(a["ar_coco"], 0.45) and math.isclose(b["ar_coco"], 0.75)
    assert a["ar_eq4"] == b["ar_eq4"]  # Eq. 4 involves no order
    # one person per image (the Fig. 1 toy): COCO's AR cannot move either
    assert {row["ar_coco"] for row in R.toy_permutation_table()} == {1.0}


def test_random_ranking_check_tests_the_metric_not_a_coin():
    from poselab.metrics import ranking_accuracy
    rng = np.random.default_rng(3)
    quality = np.r_[np.zeros(150), np.round(rng.random(250), 2)]  # ties, as matched OKS has
    assert R.random_ranking_check(quality, seed=0, repeats=100)["holds"]

    def ties_are_wrong(s, q):  # counter-case: a tied score counted as misordered
        better = q[:, None] > q[None, :]
        return float((better & (s[:, None] > s[None, :])).sum() / better.sum())

    def ties_are_right(s, q):  # counter-case: a tied score counted as correctly ordered
        better = q[:, None] > q[None, :]
        return float((better & (s[:, None] >= s[None, :])).sum() / better.sum())

    assert not R.random_ranking_check(quality, seed=0, repeats=100, metric=ties_are_wrong)["holds"]
    assert not R.random_ranking_check(quality, seed=0, repeats=100, metric=ties_are_right)["holds"]
    assert R.random_ranking_check(quality, seed=1, repeats=100, metric=ranking_accuracy)["holds"]
    with pytest.raises(ValueError, match="distinct"):
        R.random_ranking_check(np.zeros(10))


def test_prop2_is_checked_on_the_loss_margin():
    assert R.prop2_margin_check()["max_error"] < 1e-4
    assert R.prop2_margin_check(margin=0.3)["max_error"] > 0.1  # the counter-case
    assert R.prop2_margin_check(c_values=(1.0,), margin=0.5)["max_error"] < 1e-4


def test_theorem1_in_range_rejects_the_anti_ranking_loss():
    ok = R.theorem1_in_range(100_000, seed=0)
    assert ok["min_gap"] >= 0 and ok["fraction_holds"] == 1.0
    swapped = R.theorem1_in_range(100_000, seed=0, pair_term=R.swapped_rank_pair_term)
    assert swapped["min_gap"] < 0 and swapped["fraction_holds"] < 0.95
    # the samples lie in RCNet's output range: |delta| <= c
    d = np.linspace(-1, 1, 2001)
    for o in (1.0, -1.0):
        assert R.theorem1_pair_bound_gap(d, np.full_like(d, o)).min() >= 0
        assert R.theorem1_pair_bound_gap(d, np.full_like(d, o), pair_term=R.swapped_rank_pair_term).min() < 0
    # the proof's g-bar against numerical integration of Eq. 19 over the correct half
    from scipy import integrate
    for delta, o in ((0.3, 1.0), (-0.7, 1.0), (0.4, -1.0)):
        dens = lambda z: (1 + abs(z - delta)) * math.exp(-abs(z - delta)) / 4  # noqa: E731
        p, _ = integrate.quad(dens, 0, 1) if o > 0 else integrate.quad(dens, -1, 0)
        gap = R.theorem1_pair_bound_gap(np.array([delta]), np.array([o]))[0]
        import torch
        from poselab.losses.confidence_ranking import rank_pair_term
        g = rank_pair_term(torch.tensor([delta], dtype=torch.float64), torch.tensor([o])).item()
        assert abs(gap - (g + math.log(4) + math.log(p))) < 1e-9


def test_fig1_ap_three_definitions():
    toy = R.toy_dataset()
    got = R.ap_definitions([4, 2, 1, 3], toy["oks"], toy["n_gt"])  # P1, P4 (FP), P2, P3
    assert math.isclose(got["trapezoid"], 55 / 72)  # the paper's 0.76
    assert math.isclose(got["eq3"], 29 / 36)
    assert math.isclose(got["coco_101"], R.toy_evaluate([4, 2, 1, 3])["curve"]["coco_precision"].mean())


def test_theorem3_search_finds_loss_down_accuracy_down_within_assumption4():
    out = R.theorem3_search(n_items=6, trials=400, seed=0)
    assert 0 < out["accuracy_down"] < out["loss_down"] <= 400
    assert out["accuracy_down_with_assumption4"] >= 1
    ex = out["example"]
    assert ex["loss"][1] < ex["loss"][0] and ex["accuracy"][1] < ex["accuracy"][0]
    assert ex["mean_sq_delta"][1] >= ex["mean_sq_delta"][0]
    with pytest.raises(ValueError):
        R.theorem3_search(n_items=2)
