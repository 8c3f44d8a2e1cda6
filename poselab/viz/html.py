"""HTML tables that fit a notebook and read cleanly: the one table renderer of the lab (claims,
comparisons, arena, scorecard, and every :func:`poselab.viz.tables.table`).

* wrapped cells, small type, and a box that scrolls on its own rather than pushing the output wider
  than the notebook (checked at a 1280-px window by tests/test_browser.py); words wrap between
  words, never inside one;
* numbers rounded to ``digits`` significant digits; dicts and lists shown as ``key: value`` text
  with their numbers rounded, never as raw Python or JSON;
* a missing value (``None``, NaN, a bare ``"—"``, or :class:`Missing` with its reason) shown as
  "—", with the reason in a line under the table;
* verdicts (holds / reproduced / inconclusive / not reproduced / fails) in columns named
  "verdict…" coloured, each with a symbol and its word, so colour is never the only signal;
* a value longer than :data:`FOLD_CHARS` folded behind a ``<details>`` toggle that shows its
  beginning.
"""
from __future__ import annotations

import html
import math
import numbers
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["fitted_table", "plain_text", "Missing", "VERDICT_STYLES", "verdict_of", "FOLD_CHARS"]

_BOX = "max-width:100%;overflow-x:auto"
_TABLE = "font-size:12px;border-collapse:collapse"
# words wrap between words; a single over-long token (a path, a long id) may break anywhere, but a
# word never splits mid-way ("empiri|cal") because its column was squeezed: short one-word cells
# (verdicts, kinds, numbers) do not wrap at all
_CELL = ("text-align:left;vertical-align:top;word-break:normal;overflow-wrap:break-word;"
         "max-width:340px;padding:2px 6px")
_SHORT = _CELL + ";white-space:nowrap"

#: text longer than this is folded behind a "details" toggle showing its first words
FOLD_CHARS = 120
_SUMMARY_CHARS = 60

#: verdict → (symbol, text colour, background). Dark text on light backgrounds (contrast ≥ 7:1,
#: WCAG AAA); blue for a claim that holds or reproduced, orange for one that did not, red for a
#: math claim that fails (a bug), grey for inconclusive — and the symbol and the word always shown
VERDICT_STYLES: dict[str, tuple[str, str, str]] = {
    "holds": ("✓", "#0b3c61", "#d6e9f8"),
    "reproduced": ("✓", "#0b3c61", "#d6e9f8"),
    "inconclusive": ("?", "#333333", "#e8e8e8"),
    "not reproduced": ("✗", "#6b2f00", "#fde2c4"),
    "fails": ("✗", "#7a0010", "#f8d0d6"),
}
_MISSING_TEXTS = {"—", "none", "nan", "null", "n/a"}   # an empty string stays blank (nothing applies)
_REASON_NONE = "no value (not measured here)"
_REASON_NAN = "undefined (not a number: e.g. a statistic of constant or empty values)"
_REASON_TEXT = "no value: not measured here, or undefined (not a number)"


class Missing:
    """A missing cell with its reason: shown as "—", the reason listed under the table.

    Example:
        >>> "no recorded replication yet" in fitted_table(["verdict"], [[Missing("no recorded replication yet")]])
        True
    """

    def __init__(self, reason: str):
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"a missing value needs its reason (a non-empty str), got {reason!r}")
        self.reason = reason.strip()

    def __repr__(self) -> str:
        return f"Missing({self.reason!r})"


def verdict_of(text: object) -> str | None:
    """The verdict a cell's text starts with ("not reproduced — …" → "not reproduced"), else None.

    Example:
        >>> verdict_of("not reproduced — the other way"), verdict_of("reproduced (full)"), verdict_of("0.3")
        ('not reproduced', 'reproduced', None)
    """
    if not isinstance(text, str):
        return None
    low = text.strip().lower()
    for verdict in sorted(VERDICT_STYLES, key=len, reverse=True):  # "not reproduced" before "reproduced"
        if low == verdict or low.startswith(verdict) and not low[len(verdict)].isalnum():
            return verdict
    return None


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


def _missing_reason(value: Any) -> str | None:
    if value is None:
        return _REASON_NONE
    if isinstance(value, Missing):
        return value.reason
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)) \
            and not math.isfinite(float(value)):
        return _REASON_NAN if math.isnan(float(value)) else None
    if isinstance(value, str) and value.strip().lower() in _MISSING_TEXTS:
        # text already formatted upstream: "—" may have been either, so say both
        return {"nan": _REASON_NAN, "none": _REASON_NONE, "null": _REASON_NONE}.get(value.strip().lower(),
                                                                                    _REASON_TEXT)
    return None


def plain_text(value: Any, digits: int = 4) -> str:
    """Plain text of a value for a table cell: numbers rounded to ``digits`` significant figures,
    containers as ``key: value; …`` text (never JSON), ``None``/NaN as "—"."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        return _number(v, digits) if math.isfinite(v) else ("—" if math.isnan(v) else str(v))
    if value is None or isinstance(value, Missing):
        return "—"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: ({plain_text(v, digits)})" if isinstance(v, Mapping) and v else f"{k}: {plain_text(v, digits)}"
                         for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(plain_text(v, digits) for v in value) + "]"
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return plain_text(value.tolist(), digits)
    return str(value)


def _folded(text: str) -> str:
    """Escaped ``text``, behind a details toggle when it is longer than :data:`FOLD_CHARS`."""
    if len(text) <= FOLD_CHARS:
        return html.escape(text)
    cut = text.rfind(" ", 0, _SUMMARY_CHARS)
    head = text[: cut if cut > _SUMMARY_CHARS // 2 else _SUMMARY_CHARS].rstrip(" ,;")
    return (f"<details><summary>{html.escape(head)} …</summary>"
            f"<div style='white-space:normal'>{html.escape(text)}</div></details>")


def _badge(verdict: str) -> str:
    symbol, colour, background = VERDICT_STYLES[verdict]
    return (f"<span style='color:{colour};background:{background};border-radius:3px;padding:0 4px;"
            f"white-space:nowrap;font-weight:600'>{symbol} {html.escape(verdict)}</span>")


def _cell(value: Any, head: str, digits: int, reasons: dict[str, None]) -> tuple[str, str]:
    """``(inner html, style)`` of one cell; a missing value's reason is added to ``reasons``."""
    reason = _missing_reason(value)
    if reason is not None:
        reasons[reason] = None
        return f"<span title='{html.escape(reason, quote=True)}'>—</span>", _SHORT
    text = plain_text(value, digits)
    verdict = verdict_of(text) if "verdict" in head.lower() else None
    if verdict is not None:
        rest = text.strip()[len(verdict):].lstrip(" —–-:")
        inner = _badge(verdict) + ((" " + _folded(rest)) if rest else "")
        return inner, (_SHORT if not rest else _CELL)
    short = len(text) <= 28 and " " not in text.strip()
    return _folded(text), (_SHORT if short else _CELL)


def _head_style(text: str) -> str:
    return _SHORT if len(text) <= 28 and " " not in text.strip() else _CELL


def fitted_table(heads: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "",
                 digits: int = 4) -> str:
    """An escaped HTML table of ``rows`` under ``heads`` (see the module docstring for how values
    are shown: numbers to ``digits`` significant digits, missing values as "—" with the reason
    under the table, verdicts coloured, long text folded).

    Example:
        >>> page = fitted_table(["claim", "verdict", "value"], [["a.b", "holds", 1 / 3], ["c.d", "fails", None]])
        >>> "✓ holds" in page and "0.3333" in page and "no value" in page and "None" not in page
        True
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ValueError(f"digits must be an int in [1, 17], got {digits!r}")
    heads = [str(h) for h in heads]
    reasons: dict[str, None] = {}
    body = []
    for row in rows:
        cells = []
        for k, value in enumerate(row):
            inner, style = _cell(value, heads[k] if k < len(heads) else "", digits, reasons)
            cells.append(f"<td style='{style}'>{inner}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th style='{_head_style(h)}'>{html.escape(h)}</th>" for h in heads)
    cap = f"<p><b>{html.escape(caption)}</b></p>" if caption else ""
    notes = "".join(f"<div style='font-size:11px;color:#444'>— : {html.escape(r)}</div>" for r in reasons)
    return (f"{cap}<div style='{_BOX}'><table style='{_TABLE}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{notes}</div>")
