"""The lab's one table renderer (poselab.viz.html.fitted_table) and its users (claims table,
scorecard, viz.tables.table): issue 31's "results a student can read" — verdicts coloured with the
word and a symbol kept, long values folded behind a details toggle, numbers rounded, "—" with a
reason instead of None / NaN, no raw dicts."""
from __future__ import annotations

import html as html_lib
import re

import numpy as np
import pytest

from poselab import claims, scorecard
from poselab.viz import html as render
from poselab.viz.tables import table


def visible(page: str) -> str:
    """The text a reader sees (tags dropped, entities decoded; folded text included)."""
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", page))


def cells(page: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", page, flags=re.S)


def _luminance(colour: str) -> float:
    rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# --- verdicts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("verdict", list(render.VERDICT_STYLES))
def test_each_verdict_is_coloured_with_its_symbol_and_word(verdict):
    symbol, colour, background = render.VERDICT_STYLES[verdict]
    page = render.fitted_table(["claim", "verdict"], [["x.y", f"{verdict} — because the seeds say so"]])
    cell = cells(page)[1]
    assert f"background:{background}" in cell and f"color:{colour}" in cell
    assert f"{symbol} {verdict}" in visible(cell) and "because the seeds say so" in visible(cell)
    assert "—" not in visible(cell)  # the badge replaces the dash between verdict and reason


def test_not_reproduced_is_not_coloured_as_reproduced():
    """The counter-case of prefix matching: "not reproduced" contains "reproduced"."""
    page = render.fitted_table(["verdict"], [["not reproduced"], ["reproduced"]])
    bad, good = cells(page)
    assert render.VERDICT_STYLES["not reproduced"][2] in bad and render.VERDICT_STYLES["reproduced"][2] not in bad
    assert render.VERDICT_STYLES["reproduced"][2] in good
    assert render.verdict_of("reproducedness") is None and render.verdict_of("holdsX") is None


def test_verdict_colours_are_readable_and_tell_outcomes_apart():
    for verdict, (_, colour, background) in render.VERDICT_STYLES.items():
        assert contrast(colour, background) >= 4.5, verdict  # WCAG AA for normal text
    backgrounds = {v: s[2] for v, s in render.VERDICT_STYLES.items()}
    assert len({backgrounds["reproduced"], backgrounds["not reproduced"], backgrounds["inconclusive"],
                backgrounds["fails"]}) == 4
    symbols = {v: s[0] for v, s in render.VERDICT_STYLES.items()}
    assert symbols["reproduced"] != symbols["not reproduced"] != symbols["inconclusive"]  # not colour alone


def test_only_verdict_columns_are_coloured():
    page = render.fitted_table(["reason", "verdict (live)"], [["fails to learn: AP 0.1", "holds"]])
    reason, verdict = cells(page)
    assert "background" not in reason and "✗" not in reason
    assert render.VERDICT_STYLES["holds"][2] in verdict


# --- folding, rounding, missing values ---------------------------------------------------------

def test_long_values_fold_behind_a_details_toggle_and_keep_their_text():
    long = "the baseline has not learnt: " + " ".join(f"seed {i} AP 0.{i}1" for i in range(30))
    page = render.fitted_table(["reason", "note"], [[long, "short text"]])
    folded, short = cells(page)
    assert "<details>" in folded and "<summary>" in folded
    summary = re.search(r"<summary>(.*?)</summary>", folded).group(1)
    assert len(html_lib.unescape(summary)) < 80 and long in html_lib.unescape(folded)
    assert "<details>" not in short
    # a verdict with a long reason keeps its badge outside the fold
    page = render.fitted_table(["verdict"], [[f"inconclusive — {long}"]])
    assert page.index("? inconclusive") < page.index("<details>")


def test_numbers_are_rounded_and_containers_are_text_not_python():
    row = [0.123456789012, np.float32(2.2e-16), 7, {"emd": 0.41234567890123, "mse": [0.7391234567, 0.74]},
           (1 / 3, 2 / 3)]
    text = visible(render.fitted_table(["a", "b", "c", "d", "e"], [row]))
    assert "0.1235" in text and "2.2e-16" in text and " 7 " in text
    assert "emd: 0.4123; mse: [0.7391, 0.74]" in text and "[0.3333, 0.6667]" in text
    nested = visible(render.fitted_table(["v"], [[{"summary": {"ours": 0.5, "theirs": 0.25}, "seeds": 3}]]))
    assert "summary: (ours: 0.5; theirs: 0.25); seeds: 3" in nested
    assert not re.search(r"\d{6,}", text), text  # no 16-digit floats
    assert "{" not in text and "'" not in text  # no raw dict / repr
    assert "0.12346" in visible(render.fitted_table(["a"], [[0.123456789]], digits=5))
    with pytest.raises(ValueError, match="digits"):
        render.fitted_table(["a"], [[1.0]], digits=0)


def test_missing_values_show_a_dash_and_the_reason():
    page = render.fitted_table(["AP", "spearman", "recorded", "detail"],
                               [[None, float("nan"), render.Missing("no recorded replication yet"),
                                 {"seed 0": float("nan"), "seed 1": 0.5}],
                                ["nan", "None", "—", 0.25]])
    text = visible(page)
    assert not re.search(r"\b(None|nan|NaN|null)\b", text), text
    assert text.count("—") >= 8
    for reason in ("no value (not measured here)", "undefined (not a number",
                   "no recorded replication yet", "no value: not measured here, or undefined"):
        assert reason in text
    # an empty string is a blank cell (nothing applies), not a missing value
    assert cells(render.fitted_table(["reason"], [[""]])) == [""]
    assert "seed 0: —; seed 1: 0.5" in text
    with pytest.raises(ValueError, match="reason"):
        render.Missing("  ")


def test_text_is_escaped_and_wraps_between_words():
    page = render.fitted_table(["claim"], [["<script>alert(1)</script> and more words"]])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "word-break:normal" in page and "break-all" not in page


# --- the renderer's users ----------------------------------------------------------------------

def test_table_dataframes_render_through_the_same_renderer():
    frame = table({"mse": {"AP": 0.73912345, "verdict": "reproduced", "spearman": float("nan"), "note": None},
                   "emd": {"AP": 0.41, "verdict": "not reproduced — other way", "spearman": 0.2, "note": "x"}},
                  index="recipe")
    page = frame._repr_html_()
    text = visible(page)
    assert "recipe" in text and "mse" in text and "0.739" in text
    assert render.VERDICT_STYLES["not reproduced"][2] in page and "✓ reproduced" in text
    assert not re.search(r"\b(None|nan|NaN)\b", text) and "no value: not measured here, or undefined" in text
    assert frame.iloc[0]["AP"] == "0.739"  # the frame's own values are unchanged (digits=3)
    plain = table([{"a": 1.5}])._repr_html_()
    assert "<th" in plain and visible(plain).split() == ["a", "1.5"]  # no index column for 0, 1, ...


def test_claims_table_shows_coloured_verdicts_and_a_readable_value():
    recs = [{"id": "x.math", "kind": "math", "verdict": "holds", "value": 1 / 3, "paper": "p"},
            {"id": "x.emp", "kind": "empirical", "verdict": "not reproduced", "reason": "the other way",
             "value": {"mean_ours": 0.4123456789, "mean_theirs": 0.7391234, "per_seed": list(np.linspace(0, 1, 40))},
             "paper": "p"}]
    page = claims.table(recs)._repr_html_()
    text = visible(page)
    assert "✓ holds" in text and "✗ not reproduced" in text and "0.3333" in text
    assert "mean_ours: 0.4123" in text and "<details>" in page  # the long value folded, not cut off
    assert "{" not in text and not re.search(r"\d{6,}", text)


def test_scorecard_shows_coloured_verdicts_and_no_raw_values():
    recs = [{"id": "hdm.training.emd_vs_mse", "kind": "empirical", "verdict": "inconclusive",
             "reason": "only one seed", "value": {"emd": float("nan"), "mse": 0.73912345}, "paper": "p",
             "chapter": "04_hdm"},
            {"id": "basics.oks.matches_pycocotools", "kind": "math", "verdict": "fails", "value": 0.01,
             "paper": "p", "chapter": "00_basics"}]
    page = scorecard.ScorecardView(recs)._repr_html_()
    text = visible(page)
    assert "? inconclusive" in text and "✗ fails" in text
    assert "emd: —; mse: 0.7391" in text and not re.search(r"\b(NaN|nan|None)\b", text)
    assert "— : no recorded replication of this claim" in text  # the empirical claim has none
