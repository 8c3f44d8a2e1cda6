"""BCIR §6.2 / Fig. 6: does the soft-argmax's bias drive the heatmap collapse? The toy study
over the four start cases × {L1, L2} × {plain, compensated} at the paper's 64×48 maps, in
float64 and float32, and its counter-cases (a "compensation" that changes nothing must not pass
as keeping the spread)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from poselab.chapters.bcir import analysis as B
from poselab.chapters.bcir import figures as F
from poselab.codecs import soft_argmax

SIZE, GT, STEPS = (64, 48), (34.0, 46.0), 200


@pytest.fixture(scope="module")
def studies():
    return (B.collapse_study(SIZE, GT, steps=STEPS), B.collapse_study(SIZE, GT, steps=STEPS, dtype=torch.float32))


def _row(study, case, loss, compensated):
    return next(r for r in study["rows"] if (r["case"], r["loss"], r["compensated"]) == (case, loss, compensated))


def test_the_bias_drives_the_l2_collapse_from_the_blob_at_the_truth(studies):
    s64, s32 = studies
    assert len(s64["rows"]) == 20 and s64["size"] == [64, 48] and s32["dtype"] == "float32"
    held = B.collapse_checks(s64, s32)
    assert held["bias_drives_collapse"] and held["l1_collapses_either_way"]
    assert held["dtype_agrees"] and held["dtype_differs"] == []
    plain, comp = _row(s64, 4, "l2", False), _row(s64, 4, "l2", True)
    assert plain["start_px"] == comp["start_px"] == 10           # softmax(10 · σ = 2 blob): 90 % on 10 px
    assert plain["end_px"] <= 5 and comp["end_px"] == 10
    assert comp["start_error_px"] < 1e-9                          # Eq. 38 is exact on the blob: nothing to push
    assert plain["start_error_px"] > 1e-3                         # the bias: the plain point is off the truth
    # not a general cure: from the far blob (case 2) the compensated map collapses far from the truth
    assert (2, "l1") in held["exceptions"] and (2, "l2") in held["exceptions"]
    assert not held["compensation_never_narrower"]
    assert _row(s64, 2, "l2", True)["end_error_px"] > 30
    # float32 agrees row by row: the same label, end spreads within 2 px or 10 % of float64's
    for r in s64["rows"]:
        o = _row(s32, r["case"], r["loss"], r["compensated"])
        assert o["label"] == r["label"]
        assert abs(o["end_px"] - r["end_px"]) <= max(2, 0.1 * r["end_px"])
    text = F.collapse_sentence(s64, held)
    assert "keeps the compensated one's (10 → 10 px" in text and "float64 and float32 give the same label" in text
    assert "no general cure" in text and "case 2 L1" in text
    table = F.collapse_rows(s64, s32)
    assert len(table) == 20 and table[15]["float32: spread"] == "kept"
    # the fifth start, 0.5 px off the truth: compensated L2 collapses too (the error is not zero)
    assert held["near_collapses_anyway"] and _row(s64, B.NEAR_CASE, "l2", True)["start_error_px"] > 0.5
    assert "0.5 px off the truth the compensated L2 map collapses too" in text


def test_an_identity_compensation_does_not_pass_as_keeping_the_spread():
    """Counter-case: the plain soft-argmax posing as the compensation collapses the L2 map too,
    so the causal check must fail."""
    fake = B.collapse_study(SIZE, GT, steps=STEPS, compensator=lambda h, beta: soft_argmax(h, beta))
    held = B.collapse_checks(fake)
    assert not held["bias_drives_collapse"]
    assert _row(fake, 4, "l2", True)["label"] == "collapsed"
    assert held["compensation_never_narrower"]                    # identical rows: never narrower, trivially


def test_collapse_checks_fail_on_constructed_counter_cases(studies):
    s64, s32 = studies
    narrowed = copy.deepcopy(s64)                                  # compensated L2 ends on 6 of 10 px
    row = _row(narrowed, 4, "l2", True)
    row["end_px"], row["label"] = 6, B.spread_label(10, 6)
    assert row["label"] == "narrowed" and not B.collapse_checks(narrowed)["bias_drives_collapse"]
    kept_l1 = copy.deepcopy(s64)                                   # L1 compensated keeps: the L1 claim fails
    row = _row(kept_l1, 4, "l1", True)
    row["end_px"], row["label"] = 10, "kept"
    assert not B.collapse_checks(kept_l1)["l1_collapses_either_way"]
    other = copy.deepcopy(s32)                                     # float32 disagrees in one row
    _row(other, 4, "l2", True)["label"] = "collapsed"
    held = B.collapse_checks(s64, other)
    assert not held["dtype_agrees"] and held["dtype_differs"] == [(4, "l2", True)]
    assert "disagree in 1 row" in F.collapse_sentence(s64, held)
    spared = copy.deepcopy(s64)                                    # off the truth, compensated L2 keeps
    row = _row(spared, B.NEAR_CASE, "l2", True)
    row["end_px"], row["label"] = row["start_px"], "kept"
    assert B.collapse_checks(spared)["near_collapses_anyway"] is False
    assert "the compensated L2 map is kept" in F.collapse_sentence(spared, B.collapse_checks(spared))
    assert B.collapse_checks(B.collapse_study((16, 12), (9.0, 12.0), steps=2, near=0))["near_collapses_anyway"] is None


def test_spread_labels_and_bad_input():
    assert [B.spread_label(10, e) for e in (5, 6, 9, 11, 12)] == ["collapsed", "narrowed", "kept", "kept", "widened"]
    for bad in ((0, 3), (10, float("nan")), (10, 0)):
        with pytest.raises(ValueError, match="pixel counts"):
            B.spread_label(*bad)
    h0 = B.toy_initial_heatmap(4, SIZE, GT)
    with pytest.raises(TypeError, match="float64 or torch.float32"):
        B.integral_toy_run(h0, GT, steps=1, dtype=torch.float16)
    with pytest.raises(TypeError, match="callable"):
        B.integral_toy_run(h0, GT, steps=1, compensated=True, compensator="identity")
    run = B.integral_toy_run(h0, GT, loss="l2", steps=3, every=1, dtype=torch.float32)
    assert run["frames"].dtype == np.float64 and run["frames"].shape == (4, 64, 48)
    with pytest.raises(ValueError, match="near"):
        B.collapse_study(SIZE, GT, steps=1, near=-1.0)
    with pytest.raises(ValueError, match="no row"):
        B.collapse_checks({"rows": [], "dtype": "float64"})


def test_collapse_study_takes_numpy_numbers_for_near():
    rows = B.collapse_study(steps=1, near=np.float32(0.5))["rows"]   # was "near must be a finite number"
    assert any(r["case"] == B.NEAR_CASE for r in rows)
    with pytest.raises(ValueError, match="near"):
        B.collapse_study(steps=1, near=True)
