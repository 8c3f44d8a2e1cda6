import json

import numpy as np
import pytest

from poselab import claims


def test_record_writes_ledger_after_each_record(tmp_path):
    claims.start("99_demo", out_dir=tmp_path)
    err = 3e-13
    claims.record("demo.math.small", value=err, paper="x", kind="math", holds=err < 1e-12)
    ledger = json.loads((tmp_path / "claims" / "99_demo.json").read_text())
    assert ledger == [{"id": "demo.math.small", "chapter": "99_demo", "kind": "math", "value": 3e-13,
                       "paper": "x", "holds": True, "verdict": "holds", "note": ""}]
    claims.record("demo.emp", value={"a": np.float32(0.5), "b": np.array([1, 2])}, paper="y",
                  kind="empirical", holds=np.bool_(0.5 > 0.7))
    ledger = json.loads((tmp_path / "claims" / "99_demo.json").read_text())
    assert [r["id"] for r in ledger] == ["demo.math.small", "demo.emp"]
    assert ledger[1]["value"] == {"a": 0.5, "b": [1, 2]} and ledger[1]["verdict"] == "not reproduced"


def test_rerecording_replaces_and_nonfinite_values_stay_valid_json(tmp_path):
    claims.start("99_demo", out_dir=tmp_path)
    nan, inf = float("nan"), float("inf")
    claims.record("demo.a", value=nan, paper="", kind="math", holds=nan < 1)
    claims.record("demo.a", value=1.0, paper="", kind="math", holds=1.0 > 0)
    assert [r["value"] for r in claims.records()] == [1.0]
    claims.record("demo.b", value=inf, paper="", kind="math", holds=inf < 1)
    assert json.loads((tmp_path / "claims" / "99_demo.json").read_text())[1]["value"] == "inf"


@pytest.mark.parametrize("bad", [dict(kind="maths"), dict(holds="yes"), dict(holds=None),
                                 dict(claim_id="has space"), dict(claim_id="")])
def test_invalid_records_are_refused(bad):
    claims.start("99_demo")
    kw = dict(claim_id="demo.x", value=1, paper="", kind="math", holds=1 < 2)
    kw.update(bad)
    with pytest.raises(claims.ClaimError):
        claims.record(kw.pop("claim_id"), **kw)


def test_compare_runs_three_outcomes():
    holds, verdict, s = claims.compare_runs([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], lower_is_better=True)
    assert (holds, verdict) == (True, "reproduced") and s["advantage"] == pytest.approx(1.0)
    holds, verdict, _ = claims.compare_runs([2.0, 2.1, 1.9], [1.0, 1.1, 0.9], lower_is_better=True)
    assert (holds, verdict) == (False, "not reproduced")
    holds, verdict, _ = claims.compare_runs([1.0, 2.0, 3.0], [1.5, 2.5, 2.0], lower_is_better=True)
    assert (holds, verdict) == (False, "inconclusive")
    # one seed: no standard error, never a finding
    assert claims.compare_runs([0.1], [0.9], lower_is_better=True)[1] == "inconclusive"
    assert claims.compare_runs([0.9, 0.91], [0.1, 0.12], lower_is_better=False)[1] == "reproduced"
    with pytest.raises(claims.ClaimError):
        claims.compare_runs([], [1.0], lower_is_better=True)
