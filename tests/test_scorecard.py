"""poselab.scorecard: grouping by paper, summaries, files, and ledgers that are not ledgers."""
from __future__ import annotations

import json

import pytest

from poselab import scorecard

RECORDS = [
    {"id": "hdm.emd.matches_reference", "chapter": "04_hdm", "kind": "math", "value": 3e-15,
     "paper": "HDM Eq. 2", "holds": True, "verdict": "holds"},
    {"id": "hdm.training.emd_vs_mse", "chapter": "04_hdm", "kind": "empirical", "value": {"a": 1},
     "paper": "HDM Table 1", "holds": False, "verdict": "not reproduced",
     "reason": "EMD behind by 0.5 px", "evidence": {"preset": "default", "seeds": [0, 1, 2]}},
    {"id": "rspose.imbalance.dot_2d_ratio", "chapter": "02_rspose", "kind": "math", "value": 3071,
     "paper": "RSPose Table 1", "holds": False, "verdict": "fails"},
    {"id": "weird.claim", "chapter": "x", "kind": "math", "value": 1, "paper": "", "holds": True,
     "verdict": "holds"},
]


def test_groups_by_paper_in_display_order():
    card = scorecard.scorecard(RECORDS)
    assert list(card) == ["rspose", "hdm", "other"]
    row = card["hdm"][1]
    assert row["id"] == "hdm.training.emd_vs_mse" and row["evidence"] == "preset default, seeds [0, 1, 2]"
    assert row["reason"] == "EMD behind by 0.5 px"


def test_summary_counts_and_lists_failing_math():
    s = scorecard.summary(RECORDS)
    assert s["claims"] == 4 and s["per_paper"] == {"rspose": 1, "hdm": 2, "other": 1}
    assert s["math_failing"] == ["rspose.imbalance.dot_2d_ratio"]


def test_a_repeated_claim_keeps_the_last_record():
    later = dict(RECORDS[2], holds=True, verdict="holds")
    assert scorecard.summary(RECORDS + [later])["math_failing"] == []


def test_files_and_rendering(tmp_path):
    md, js = scorecard.write_scorecard(RECORDS, tmp_path)
    text = md.read_text()
    assert "| hdm.training.emd_vs_mse |" in text and "HDM —" in text
    assert json.loads(js.read_text())["summary"]["claims"] == 4
    assert "<table" in scorecard.ScorecardView(RECORDS)._repr_html_()
    fig = scorecard.verdict_figure(RECORDS)
    fails = [t for t in fig.data if t.name == "fails"][0]
    assert list(fails.y) == [1, 0, 0]  # rspose, hdm, other
    nr = [t for t in fig.data if t.name == "not reproduced"][0]
    rep = [t for t in fig.data if t.name == "reproduced"][0]
    assert list(nr.y) == [0, 1, 0] and list(rep.y) == [0, 0, 0]
    # no red/green pair (colour-blind readers): holds/reproduced in blue hues, not reproduced orange
    hexes = {t.name: t.marker.color.lstrip("#") for t in fig.data}
    rgb = {k: tuple(int(v[i:i + 2], 16) for i in (0, 2, 4)) for k, v in hexes.items()}
    assert all(b > g and b > r for r, g, b in (rgb["holds"], rgb["reproduced"]))
    assert rgb["not reproduced"][0] > rgb["not reproduced"][2]


def test_load_ledger_from_folder_and_bad_files(tmp_path):
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "04_hdm.json").write_text(json.dumps(RECORDS[:2]))
    assert len(scorecard.load_ledger(tmp_path)) == 2
    (tmp_path / "claims.json").write_text(json.dumps(RECORDS))
    assert len(scorecard.load_ledger(tmp_path)) == 4
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": 1}')
    with pytest.raises(ValueError, match="not a claim ledger"):
        scorecard.load_ledger(bad)
    bad.write_text("{oops")
    with pytest.raises(ValueError, match="readable JSON"):
        scorecard.load_ledger(bad)
    with pytest.raises(FileNotFoundError, match="poselab run"):
        scorecard.load_ledger(tmp_path / "empty")  if (tmp_path / "empty").mkdir() is None else None


def test_ledger_source_prefers_this_runs_ledgers_then_the_recorded_run(tmp_path, monkeypatch):
    import json as _json
    from poselab import scorecard as sc
    real_recorded_dir = sc.recorded_ledger_dir
    rec = {"id": "hdm.x", "chapter": "04_hdm", "kind": "math", "holds": True, "verdict": "holds"}
    run = tmp_path / "run"
    (run / "claims").mkdir(parents=True)
    (run / "claims" / "04_hdm.json").write_text(_json.dumps([rec]))
    src = sc.ledger_source(run)
    assert "this run" in src.label and [r["id"] for r in src.records()] == ["hdm.x"]
    assert src.records(exclude_chapter="04_hdm") == []
    recorded = tmp_path / "recorded"
    (recorded / "claims").mkdir(parents=True)
    (recorded / "claims" / "02_rspose.json").write_text(_json.dumps([dict(rec, id="rspose.y", chapter="02_rspose")]))
    (recorded / "manifest.json").write_text(_json.dumps({"commit": "abcdef1234", "date": "2026-11-24T15:00"}))
    monkeypatch.setattr(sc, "recorded_ledger_dir", lambda name="default": recorded)
    for empty in ("", None, tmp_path / "no-ledgers-here"):
        src = sc.ledger_source(empty)
        assert "recorded" in src.label and "abcdef1" in src.label and "2026-11-24" in src.label
        assert [r["id"] for r in src.records()] == ["rspose.y"]
    monkeypatch.setattr(sc, "recorded_ledger_dir", lambda name="default": None)
    assert sc.ledger_source("").paths == [] and "poselab run --all" in sc.ledger_source("").label
    with pytest.raises(ValueError, match="folder"):
        sc.ledger_source(3)
    with pytest.raises(ValueError, match="name"):
        real_recorded_dir("../etc")
