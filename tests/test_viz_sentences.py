"""The closing sentences a chapter's run prints (``*_sentence`` functions): each says what the
run found, both ways, and renders as Markdown text."""
from __future__ import annotations

import pytest

from poselab import claims, scorecard
from poselab.viz.poses import oks_agreement_sentence
from poselab.viz.experiments import rescoring_sentence
from poselab.viz.sentence import Sentence, number


def test_sentence_renders_as_markdown_and_numbers_are_rounded():
    s = Sentence("**3** claims")
    assert s._repr_markdown_() == "**3** claims" and isinstance(s, str)
    assert number(0.123456) == "0.123" and number(None) == "—" and number(float("inf")) == "—"


def test_oks_agreement_sentence_comes_out_either_way():
    good = oks_agreement_sentence({"max_abs_diff": 2.2e-16, "pairs": 90, "images": 12})
    bad = oks_agreement_sentence({"max_abs_diff": 3e-4, "pairs": 90, "images": 12})
    assert isinstance(good, Sentence) and "float rounding" in good and "bug" not in good
    assert "more than float rounding" in bad and "bug" in bad and "0.0003" in bad
    assert "untested" in oks_agreement_sentence({"max_abs_diff": 0.0, "pairs": 0, "images": 0})
    with pytest.raises(ValueError, match="max_oks_difference"):
        oks_agreement_sentence({"pairs": 3})


def test_rescoring_sentence_reports_the_change_and_the_verdict():
    verdict = claims.Verdict("not reproduced", "AP fell by 0.02")
    s = rescoring_sentence("mse", [0.50, 0.52, 0.54], [0.48, 0.50, 0.52], verdict)
    assert "-0.020" in s and "mean over 3 seeds" in s and "*not reproduced*: AP fell by 0.02" in s
    up = rescoring_sentence("emd", [0.40], [0.45])
    assert "+0.050" in up and "one seed" in up and "verdict" not in up
    assert "No seed" in rescoring_sentence("mse", [], [])
    with pytest.raises(ValueError, match="one AP per seed"):
        rescoring_sentence("mse", [0.1, 0.2], [0.1])


RECS = [{"id": "basics.a", "kind": "math", "verdict": "holds", "chapter": "00_basics"},
        {"id": "hdm.b", "kind": "empirical", "verdict": "not reproduced", "reason": "other way",
         "chapter": "04_hdm"},
        {"id": "hdm.c", "kind": "empirical", "verdict": "reproduced", "chapter": "04_hdm"}]


def test_scorecard_sentences_count_verdicts_and_name_failing_math():
    s = scorecard.summary_sentence(RECS, source="recorded")
    assert "3 claims of 2 chapters" in s and "1 holds, 1 reproduced, 1 not reproduced" in s
    assert "every math claim holds" in s and "(the other chapters' claims are recorded)" in s
    failing = scorecard.summary_sentence([{**RECS[0], "verdict": "fails"}])
    assert "math claims failing (a bug): `basics.a`" in failing
    assert scorecard.misses(RECS) == [{"claim": "hdm.b", "verdict": "not reproduced", "reason": "other way"}]
    assert "Of 2 empirical claims, 1 did not" in scorecard.misses_sentence(RECS)
    assert "All 1 empirical claims came out as reproduced" in scorecard.misses_sentence([RECS[2]])
    assert "No empirical claim" in scorecard.misses_sentence([RECS[0]])
