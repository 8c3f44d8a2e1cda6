"""zoo.rcnet: verdict helpers (with counter-cases) and fit_rcnet end to end on a fast run."""
import numpy as np
import pytest

from poselab.chapters.rcnet import recipes as rcnet_zoo


class _Run:
    preset, data = "default", "synth"

    def __init__(self, seed):
        self.seed = seed

    def geometry(self):
        from poselab.experiments import Geometry
        return Geometry((64, 48), (16, 12))


def _fits(before, after, metric="AR"):
    return [rcnet_zoo.RCNetResult(sets={"generated val": {"before": {metric: b, "AP": 0.5},
                                                          "after": {metric: a, "AP": 0.5}}},
                                  history={}, scores={}) for b, a in zip(before, after)]


def test_unchanged_verdict_three_ways():
    runs = [_Run(s) for s in range(3)]
    # exactly unchanged at every seed: tied differences get the sign-flip test, which three
    # pairs cannot decide (1/8 > 0.025); six pairs can (1/64)
    same = rcnet_zoo.unchanged_verdict(_fits([0.3, 0.31, 0.32], [0.3, 0.31, 0.32]), runs, tolerance=0.005)
    assert same.verdict == "inconclusive"
    six = [_Run(s) for s in range(6)]
    values = [0.3, 0.31, 0.32, 0.33, 0.34, 0.35]
    assert rcnet_zoo.unchanged_verdict(_fits(values, values), six, tolerance=0.005).verdict == "reproduced"
    close = rcnet_zoo.unchanged_verdict(_fits([0.3, 0.31, 0.32], [0.3001, 0.3098, 0.3202]), runs,
                                        tolerance=0.005)
    assert close.verdict == "reproduced"
    moved = rcnet_zoo.unchanged_verdict(_fits([0.30, 0.31, 0.32], [0.35, 0.361, 0.372]), runs,
                                        tolerance=0.005)
    assert moved.verdict == "not reproduced"
    noisy = rcnet_zoo.unchanged_verdict(_fits([0.30, 0.31, 0.32], [0.29, 0.33, 0.31]), runs,
                                        tolerance=0.005)
    assert noisy.verdict == "inconclusive"
    one = rcnet_zoo.unchanged_verdict(_fits([0.3], [0.3]), runs[:1], tolerance=0.005)
    assert one.verdict == "inconclusive"  # one seed is never a finding


def test_gain_verdict_and_floor():
    runs = [_Run(s) for s in range(3)]
    fits = _fits([0.40, 0.41, 0.42], [0.45, 0.462, 0.468], metric="AP")
    for f, (b, a) in zip(fits, [(0.40, 0.45), (0.41, 0.462), (0.42, 0.468)]):
        f.sets["generated val"]["before"]["AP"], f.sets["generated val"]["after"]["AP"] = b, a
    assert rcnet_zoo.gain_verdict(fits, runs, "AP", min_effect=0.003, floor=0.3).verdict == "reproduced"
    weak = rcnet_zoo.gain_verdict(fits, runs, "AP", min_effect=0.003, floor=0.5)
    assert weak.verdict == "inconclusive" and "baseline too weak" in weak.reason
    assert rcnet_zoo.gain_verdict(fits, runs, "AP", min_effect=0.1).verdict == "not reproduced"
    # paired: a consistent small gain on top of large between-seed differences is found
    spread = _fits([0.2, 0.4, 0.6], [0.21, 0.412, 0.608], metric="AP")
    for f, (b, a) in zip(spread, [(0.2, 0.21), (0.4, 0.412), (0.6, 0.608)]):
        f.sets["generated val"]["before"]["AP"], f.sets["generated val"]["after"]["AP"] = b, a
    assert rcnet_zoo.gain_verdict(spread, runs, "AP", min_effect=0.003).verdict == "reproduced"


@pytest.fixture(scope="module")
def fast_run():
    from poselab.experiments import run_recipe
    return run_recipe("mse", preset="fast", seed=0, device="cpu")


def test_fit_rcnet_end_to_end_on_a_fast_run(fast_run, tmp_path, monkeypatch):
    det = rcnet_zoo.detector_predictions(fast_run, rcnet_zoo.TRAIN_SET)
    n = det["kind"].size
    assert det["coords"].shape == (n, 17, 2) and det["matched_oks"].shape == (n,)
    assert set(np.unique(det["kind"])) <= {0, 1, 2} and (det["kind"] == 2).any()
    assert np.all(det["matched_oks"][det["kind"] == 2] == 0)  # background boxes match nobody
    assert np.allclose(det["instance_scores"] <= det["det_score"] * det["scores"].max(1) + 1e-12, True)
    with pytest.raises(ValueError, match="disjoint"):
        rcnet_zoo.fit_rcnet(fast_run, eval_sets=[rcnet_zoo.TRAIN_SET])
    res = rcnet_zoo.fit_rcnet(fast_run, epochs=2, track_every=0, eval_sets=["generated val"], cache=False)
    val = rcnet_zoo.detector_predictions(fast_run, "generated val", detector_seed=1)
    s = res.scores["generated val"]
    assert s["after"].shape == val["matched_oks"].shape and np.all((s["after"] > 0) & (s["after"] < 1))
    assert np.array_equal(s["before"], val["instance_scores"])
    assert res.history["epoch"] == [0, 2]
    assert 0.065e6 < res.n_parameters < 0.075e6
    rows = rcnet_zoo.summary_rows([res])
    assert {r["metric"] for r in rows} >= {"AP", "AR", "ranking_accuracy"}
    # the fits' own cache starts empty here: an entry left by an earlier run at another thread
    # count would make the thread-count check below pass or fail by the machine's history
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    again = rcnet_zoo.fit_rcnet(fast_run, epochs=2, track_every=0, eval_sets=["generated val"])
    cached = rcnet_zoo.fit_rcnet(fast_run, epochs=2, track_every=0, eval_sets=["generated val"])
    assert cached.cached
    for which in ("before", "after"):
        a, b = cached.sets["generated val"][which], again.sets["generated val"][which]
        assert a.keys() == b.keys() and all(np.isclose(a[k], b[k], equal_nan=True) for k in a)
    assert np.array_equal(cached.scores["generated val"]["after"], again.scores["generated val"]["after"])
    # the fit's numbers depend on the thread count, so another count is another cache entry
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1 if before != 1 else 2)
    try:
        other = rcnet_zoo.fit_rcnet(fast_run, epochs=2, track_every=0, eval_sets=["generated val"])
    finally:
        torch.set_num_threads(before)
    assert not other.cached and other.config["threads"] != cached.config["threads"]


def test_collapse_guard():
    from poselab import claims
    runs = [_Run(s) for s in range(3)]
    v = claims.Verdict("reproduced", "ours higher")
    healthy = _fits([0.80, 0.81, 0.79], [0.84, 0.85, 0.83], metric="ranking_accuracy")
    collapsed = _fits([0.80, 0.81, 0.79], [0.21, 0.30, 0.25], metric="ranking_accuracy")
    assert rcnet_zoo.collapse_guard(v, healthy).verdict == "reproduced"
    out = rcnet_zoo.collapse_guard(v, collapsed)
    assert out.verdict == "inconclusive" and "collapsed" in out.reason
    assert len(runs) == 3


def test_worse_than_nothing_is_never_a_win():
    from poselab import claims
    v = claims.Verdict("reproduced", "ours higher")
    worse = _fits([0.50, 0.51, 0.52], [0.45, 0.46, 0.47], metric="AP")  # the rival lost AP
    for f, (b, a) in zip(worse, [(0.50, 0.45), (0.51, 0.46), (0.52, 0.47)]):
        f.sets["generated val"]["before"]["AP"], f.sets["generated val"]["after"]["AP"] = b, a
    out = rcnet_zoo.worse_than_nothing_guard(v, worse)
    assert out.verdict == "inconclusive" and "no better than the original scores" in out.reason
    better = _fits([0.50, 0.51, 0.52], [0.51, 0.52, 0.53], metric="AP")
    for f, (b, a) in zip(better, [(0.50, 0.51), (0.51, 0.52), (0.52, 0.53)]):
        f.sets["generated val"]["before"]["AP"], f.sets["generated val"]["after"]["AP"] = b, a
    assert rcnet_zoo.worse_than_nothing_guard(v, better).verdict == "reproduced"
    lost = claims.Verdict("not reproduced", "the rival higher")
    assert rcnet_zoo.worse_than_nothing_guard(lost, worse).verdict == "not reproduced"


def test_structural_ar_check_fails_on_any_change():
    same = _fits([0.3, 0.31, 0.32], [0.3, 0.31, 0.32])
    assert rcnet_zoo.structural_ar_check(same)["holds"]
    moved = _fits([0.3, 0.31, 0.32], [0.3, 0.31, 0.3200001])
    out = rcnet_zoo.structural_ar_check(moved)
    assert not out["holds"] and out["max_abs_change"] > 1e-8


def test_rival_params_map_the_slope():
    assert rcnet_zoo.rival_params("ranknet", 10.0) == {"sigma": 10.0}
    assert rcnet_zoo.rival_params("approx_ndcg", 3.0) == {"alpha": 3.0}
    assert rcnet_zoo.rival_params("neural_ndcg", 10.0) == {"temperature": 0.1}
    assert rcnet_zoo.rival_params("ap_loss", 10.0) == {} and rcnet_zoo.rival_params("ranknet", None) == {}


def test_tune_rival_and_labelled_accuracies_on_a_fast_run(fast_run):
    out = rcnet_zoo.tune_rival(fast_run, "ranknet", (1.0, 10.0), epochs=1, warmup_steps=5, cache=False)
    assert out["param"] == "sigma" and out["value"] in (1.0, 10.0) and set(out["scores"]) == {"1", "10"}
    assert rcnet_zoo.tune_rival(fast_run, "ap_loss", (1.0,))["value"] is None
    with pytest.raises(ValueError, match="holdout"):
        rcnet_zoo.tune_rival(fast_run, "ranknet", holdout=1.0)
    res = rcnet_zoo.fit_rcnet(fast_run, epochs=1, track_every=-1, eval_sets=["generated val"], cache=False)
    from poselab.chapters.rcnet.analysis import ranking_accuracies
    s = res.scores["generated val"]
    for which in ("before", "after"):
        want = ranking_accuracies(s[which], s["oks"])
        got = res.sets["generated val"][which]
        assert np.isclose(got["ranking_accuracy"], want["matched"], equal_nan=True)
        assert np.isclose(got["ranking_accuracy_all"], want["all"], equal_nan=True)
    assert all(np.isnan(v) for v in res.history["train_accuracy"])  # track_every=-1: nothing measured
    table = rcnet_zoo.rescorer_table({"x": [res]})
    assert any("matched" in k for k in table[0]) and any("all detections" in k for k in table[0])


def test_mechanism_sentence_says_which_way_fps_moved():
    def fits(fp_before, fp_after, ap_before, ap_after):
        out = _fits([ap_before] * 3, [ap_after] * 3, metric="AP")
        for f in out:
            f.sets["generated val"]["before"]["AP"], f.sets["generated val"]["after"]["AP"] = ap_before, ap_after
            f.sets["generated val"]["before"]["fp_wrong_fp"] = fp_before
            f.sets["generated val"]["after"]["fp_wrong_fp"] = fp_after
        return out
    more = rcnet_zoo.mechanism_sentence(fits(404, 472, 0.46, 0.475))
    assert "404 -> 472" in more and "ordering true positives" in more
    fewer = rcnet_zoo.mechanism_sentence(fits(472, 404, 0.46, 0.475))
    assert "as App. C describes" in fewer and "ordering true positives" not in fewer
    assert "nothing to attribute" in rcnet_zoo.mechanism_sentence(fits(float("nan"), 3, 0.4, 0.5))
