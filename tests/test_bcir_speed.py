"""BCIR Fig. 8a, ``bcir.training.ipr_slower_than_detection``, judged on recorded replications:
epochs to 80 % of the final AP from a record's compact validation history, the ratio IPR /
detection against the paper's 6×, and validation too sparse to resolve it."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from fake_tables import FakeTable

from poselab.chapters.bcir import analysis as B
from poselab.chapters.bcir import figures as F
from poselab.experiments.replicate import recorded_table, recorded_verdict

RECORD = Path(__file__).resolve().parents[1] / "results" / "replications" / "06_bcir" / "mse__full__seed0.json"
PER_EPOCH = 125  # the full preset: 2000 persons / 16 a batch
EPOCHS = 40


def _curve(final, tau, every):
    """A saturating AP curve ``a(e) = A (1 − exp(−e/τ))`` validated every ``every`` epochs
    (rows as the training loop writes them: 0-based ``epoch`` of the epoch that just ended)."""
    scale = final / (1 - math.exp(-EPOCHS / tau))
    return [{"epoch": e - 1, "step": float(e * PER_EPOCH), "AP": scale * (1 - math.exp(-e / tau))}
            for e in range(every, EPOCHS + 1, every)]


def _write(root, taus, every=1, finals=None):
    """Records made from the committed ``mse`` record with constructed validation histories:
    ``taus = {recipe: [τ per seed]}``."""
    base = json.loads(RECORD.read_text())
    folder = root / "06_bcir"
    folder.mkdir(parents=True, exist_ok=True)
    finals = finals or {"mse": 0.74, "ipr": 0.48}
    for recipe, values in taus.items():
        for seed, tau in enumerate(values):
            rec = copy.deepcopy(base)
            rec["recipe"] = rec["run"]["recipe"] = recipe
            rec["seed"] = rec["run"]["seed"] = seed
            val = _curve(finals[recipe] * (1 + 0.002 * seed), tau, every)
            rec["run"]["history"]["val"] = val
            rec["run"]["metrics"]["generated val"]["AP"] = val[-1]["AP"]
            (folder / f"{recipe}__full__seed{seed}.json").write_text(json.dumps(rec))
    return root


def test_learning_curve_reads_epochs_from_a_compact_record_history():
    """A recorded run keeps only its validations: epochs come from their 0-based ``epoch``, not
    the step count (which made a record's "epochs" 125× too large)."""
    val = _curve(0.7, 3.0, 4)
    e, v = B.learning_curve({"val": val, "steps": 5000})
    assert e.tolist() == [4.0 * k for k in range(1, 11)]
    assert v[-1] == pytest.approx(0.7)
    # the committed records: validation every 4 of 40 epochs
    rec = json.loads(RECORD.read_text())
    e, _ = B.learning_curve(rec["run"]["history"])
    assert e[0] == 4.0 and e[-1] == 40.0
    # the bracket around the crossing, and a crossing before the first validation
    assert B.fraction_bracket([4, 8, 12], [0.2, 0.5, 0.6]) == (4.0, 8.0)
    assert B.fraction_bracket([4, 8, 12], [0.55, 0.58, 0.6]) == (0.0, 4.0)
    assert all(math.isnan(x) for x in B.fraction_bracket([], []))


def test_recorded_speed_verdict_both_ways(tmp_path):
    """Validated every epoch: IPR at ≈ 6× detection's epochs is reproduced; at ≈ 1.2× the data
    rule out even the minimum (√6): not reproduced."""
    yes = _write(tmp_path / "yes", {"mse": [2.0, 2.05, 1.95], "ipr": [12.0, 12.3, 11.8]})
    no = _write(tmp_path / "no", {"mse": [2.0, 2.05, 1.95], "ipr": [2.4, 2.5, 2.35]})
    y = B.ipr_slower_verdict(recorded_table("06_bcir", root=yes))
    assert y.verdict == "reproduced", y.reason
    assert y.summary["resolved"] and all(5 < r < 7 for r in y.summary["ratio"])
    assert "6× lies within every seed's range" in y.reason
    rv = recorded_verdict("06_bcir", B.ipr_slower_verdict, root=no)
    assert rv["recorded"] and rv["verdict"] == "not reproduced", rv["reason"]
    assert "6× lies outside the range of every seed" in rv["reason"]


def test_sparse_validation_cannot_resolve_the_ratio(tmp_path):
    """Validated every 8 epochs, detection is at 80 % by its first validation: it may have got
    there at any epoch before, so the ratio has no upper bound. The interpolated crossings alone
    would decide; the verdict must be inconclusive and say why (not "reproduced")."""
    root = _write(tmp_path, {"mse": [2.0, 2.05, 1.95], "ipr": [12.0, 12.3, 11.8]}, every=8)
    v = B.ipr_slower_verdict(recorded_table("06_bcir", root=root))
    assert v.verdict == "inconclusive"
    assert "validation too sparse to resolve the ratio" in v.reason
    assert "the interpolated crossings alone said: reproduced" in v.reason
    assert v.summary["at_bracket_ends"]["largest"] == "inconclusive"      # no upper bound: not finite
    assert all(np.isinf(r) for r in v.summary["ratio_hi"])
    # the same runs validated every epoch decide it
    dense = _write(tmp_path / "dense", {"mse": [2.0, 2.05, 1.95], "ipr": [12.0, 12.3, 11.8]}, every=1)
    assert B.ipr_slower_verdict(recorded_table("06_bcir", root=dense)).verdict == "reproduced"


def test_speed_verdict_needs_both_sides_learnt_and_one_seed_is_not_enough(tmp_path):
    weak = _write(tmp_path / "weak", {"mse": [2.0, 2.05, 1.95], "ipr": [12.0, 12.3, 11.8]},
                  finals={"mse": 0.74, "ipr": 0.13})
    v = B.ipr_slower_verdict(recorded_table("06_bcir", root=weak))
    assert v.verdict == "inconclusive" and "ipr has not learnt" in v.reason
    one = _write(tmp_path / "one", {"mse": [2.0], "ipr": [12.0]})
    v = B.ipr_slower_verdict(recorded_table("06_bcir", root=one))
    assert v.verdict == "inconclusive" and "fewer than 3" in v.reason
    # runs that never validated (the fast preset): no ratio, no bracket, and the reason says so
    flat = _write(tmp_path / "flat", {"mse": [2.0, 2.05, 1.95], "ipr": [12.0, 12.3, 11.8]})
    table = recorded_table("06_bcir", root=flat)
    for run in table.results:
        run.history["val"] = []
    v = B.ipr_slower_verdict(table)
    assert v.verdict == "inconclusive" and "no seed has the validations to bracket both crossings" in v.reason
    with pytest.raises(ValueError, match="same seed"):
        B.ipr_slower_verdict(recorded_table("06_bcir", root=_write(tmp_path / "none", {"mse": [2.0]})))


def test_the_committed_records_are_judged_and_say_what_validation_resolves():
    """The committed full-preset records (seed 0 so far): IPR learnt and reached 80 % of its final
    AP well before its last validation; validation every 4 epochs brackets the ratio but cannot
    place it against √6; one seed is never a finding."""
    rv = recorded_verdict("06_bcir", B.ipr_slower_verdict)
    assert rv["recorded"] and rv["verdict"] == "inconclusive"
    assert "every 4 / 4 epochs" in rv["reason"]


# ----------------------------------------------------------------------------- hostile inputs (QA)
def test_speed_measures_reject_a_fraction_outside_0_1_and_mismatched_curves():
    for f in (0, 2, float("nan")):                             # 2 and NaN were an IndexError deep inside
        with pytest.raises(ValueError, match="fraction"):
            B.epochs_to_fraction([1, 2, 3], [0.1, 0.2, 0.3], f)
    with pytest.raises(ValueError, match="one length"):        # was silently 1.6
        B.epochs_to_fraction([1, 2, 3], [0.1, 0.2])


def test_speed_verdict_without_validations_says_so_without_dashes():
    v = B.ipr_slower_verdict(FakeTable({"mse": [0.5], "ipr": [0.4]}, preset="full"))
    assert v.verdict == "inconclusive" and "—×" not in v.reason and "nothing to read a ratio from" in v.reason


def test_curves_figure_without_validations_says_so():
    empty = F.curves_figure({"mse": (np.zeros(0), np.zeros(0)), "ipr": (np.zeros(0), np.zeros(0))})
    assert any("no validation" in a.text for a in empty.layout.annotations)   # was blank axes
    drawn = F.curves_figure({"mse": (np.array([1.0, 2.0]), np.array([0.1, 0.2]))})
    assert not drawn.layout.annotations


def test_speed_verdict_names_seeds_without_python_lists():
    v = B.ipr_slower_verdict(FakeTable({"mse": [0.5], "ipr": [0.4]}, preset="full",
                                       curve=lambda r, ap: [(100, ap * 0.1), (200, ap * 0.2), (300, ap)]))
    assert "last validation or never (seed(s) 0)" in v.reason and "[" not in v.reason   # was 'seed(s) [0]'
