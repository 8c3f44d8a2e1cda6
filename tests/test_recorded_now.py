"""poselab.chapters.recorded and scorecard.with_current_recorded: every chapter's recorded verdicts
judged now on the committed replication records, with the notebooks' own parameters and claims."""
import ast
import json
import re
from pathlib import Path

import pytest

from poselab import scorecard
from poselab.chapters import recorded as rec
from poselab.chapters.registry import get_chapter

LABS = Path(__file__).resolve().parent.parent / "labs"


def _cells(stem: str) -> list[dict]:
    return json.loads((LABS / f"{stem}.ipynb").read_text())["cells"]


def _parameters(stem: str) -> dict:
    cell = next(c for c in _cells(stem) if "parameters" in c.get("metadata", {}).get("tags", []))
    out = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def _recorded_claim_ids(stem: str) -> set[str]:
    """Claim ids the notebook records with a literal id and a ``recorded=`` argument."""
    ids = set()
    for cell in _cells(stem):
        src = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
        for m in re.finditer(r'claims\.record\(\s*"([^"]+)"', src):
            call = src[m.end():]
            depth, end = 1, 0
            for end, ch in enumerate(call):   # the call's own argument text, up to its closing bracket
                depth += {"(": 1, ")": -1}.get(ch, 0)
                if depth == 0:
                    break
            if re.search(r"\brecorded\s*=", call[:end]):
                ids.add(m.group(1))
    return ids


@pytest.fixture(scope="module")
def now():
    return rec.recorded_verdicts()


def test_defaults_are_the_notebooks_parameters():
    for stem, defaults in rec.CHAPTER_DEFAULTS.items():
        params = _parameters(stem)
        for name, value in defaults.items():
            assert params[name] == value, f"{stem}: {name} is {params[name]!r} in the notebook, {value!r} here"


def test_every_notebook_recorded_claim_is_judged_and_belongs_to_its_chapter(now):
    for stem in rec.CHAPTERS:
        expected = get_chapter(stem).expected_claims
        literal = _recorded_claim_ids(stem)
        assert literal - set(now) == set(), f"{stem}: recorded in the notebook but not judged now"
        mine = {cid for cid in now if cid in expected}
        assert mine, f"{stem}: no recorded verdict judged"
    every = set().union(*(get_chapter(s).expected_claims for s in rec.CHAPTERS))
    assert set(now) <= every, f"claims judged that no chapter expects: {set(now) - every}"
    for cid, v in now.items():
        assert {"recorded", "verdict", "reason", "preset"} <= set(v), cid
        assert v["verdict"] in ("reproduced", "not reproduced", "inconclusive", "—"), (cid, v["verdict"])
        assert v["recorded"] == (v["verdict"] != "—"), cid


def test_the_overlay_replaces_empirical_recorded_verdicts_only():
    ledger = [{"id": "hdm.training.emd_vs_mse", "kind": "empirical", "verdict": "inconclusive",
               "recorded": {"recorded": False, "verdict": "—", "reason": "old"}},
              {"id": "hdm.emd.closed_form", "kind": "math", "verdict": "holds", "holds": True},
              {"id": "sar.not_in_the_table", "kind": "empirical", "verdict": "inconclusive",
               "recorded": {"recorded": True, "verdict": "reproduced", "reason": "kept"}}]
    new = {"hdm.training.emd_vs_mse": {"recorded": True, "verdict": "not reproduced", "reason": "now",
                                       "preset": "full", "seeds": [0, 1, 2, 3, 4]},
           "hdm.emd.closed_form": {"recorded": True, "verdict": "reproduced", "reason": "never on math"}}
    out = scorecard.with_current_recorded(ledger, new)
    assert out[0]["recorded"]["verdict"] == "not reproduced" and out[0]["recorded"]["judged"] == "now"
    assert "recorded" not in out[1]                                  # a math claim is never given one
    assert out[2]["recorded"]["reason"] == "kept"                    # no rule now: the ledger's stays
    assert ledger[0]["recorded"]["reason"] == "old"                  # the input is not changed
    rows = {r["id"]: r for rows in scorecard.scorecard(out).values() for r in rows}
    assert rows["hdm.training.emd_vs_mse"]["recorded"].startswith("not reproduced (full, seeds 0-4)")
    with pytest.raises(ValueError, match="list of claim records"):
        scorecard.with_current_recorded({"id": "x"}, new)


def test_a_chapter_whose_records_cannot_be_judged_reads_dash_with_the_reason(monkeypatch):
    def broken(preset):
        raise ValueError("results/replications/04_hdm/emd__full__seed0.json is not a run record")
    monkeypatch.setitem(rec.CHAPTERS, "04_hdm", broken)
    out = rec.recorded_verdicts(["04_hdm"])
    assert set(out) == set(get_chapter("04_hdm").expected_claims)
    assert all(v["verdict"] == "—" and "emd__full__seed0.json" in v["reason"] for v in out.values())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="no recorded verdicts for chapter"):
        rec.recorded_verdicts(["99_nothing"])
    with pytest.raises(ValueError, match="preset"):
        rec.recorded_verdicts(["01_train_in_a_minute"], preset="")


def test_the_overlay_judges_only_the_chapters_the_records_hold(monkeypatch):
    judged = []

    def spy(name):
        def rule(preset):
            judged.append(name)
            return {cid: {"recorded": True, "verdict": "inconclusive", "reason": name, "preset": preset}
                    for cid in get_chapter(name).expected_claims}
        return rule
    for name in list(rec.CHAPTERS):
        monkeypatch.setitem(rec.CHAPTERS, name, spy(name))
    ledger = [{"id": "hdm.training.emd_vs_mse", "kind": "empirical", "verdict": "inconclusive"},
              {"id": "engine.codecs.roundtrip_max_error_px", "kind": "math", "verdict": "holds"}]
    out = scorecard.with_current_recorded(ledger)
    assert judged == ["04_hdm"]                      # 01's math claim is no reason to judge chapter 01
    assert out[0]["recorded"]["reason"] == "04_hdm" and "recorded" not in out[1]
    judged.clear()
    assert scorecard.with_current_recorded([]) == [] and judged == []
