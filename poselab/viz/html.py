"""HTML tables that fit a notebook: wrapped cells, small type, and a box that scrolls on its own
rather than pushing the output wider than the notebook (checked at a 1280-px window by
tests/test_browser.py)."""
from __future__ import annotations

import html
from typing import Iterable, Sequence

__all__ = ["fitted_table"]

_BOX = "max-width:100%;overflow-x:auto"
_TABLE = "font-size:12px;border-collapse:collapse"
# words wrap between words; a single over-long token (a path, a long id) may break anywhere, but a
# word never splits mid-way ("empiri|cal") because its column was squeezed: short one-word cells
# (verdicts, kinds, numbers) do not wrap at all
_CELL = ("text-align:left;vertical-align:top;word-break:normal;overflow-wrap:break-word;"
         "max-width:340px;padding:2px 6px")
_SHORT = _CELL + ";white-space:nowrap"


def _style(text: str) -> str:
    return _SHORT if len(text) <= 28 and " " not in text.strip() else _CELL


def fitted_table(heads: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "") -> str:
    """An escaped HTML table of ``rows`` under ``heads`` (values shown with ``str``).

    Example:
        >>> "<td" in fitted_table(["a"], [[1]]) and "overflow-x:auto" in fitted_table(["a"], [])
        True
    """
    head = "".join(f"<th style='{_style(str(h))}'>{html.escape(str(h))}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td style='{_style(str(v))}'>{html.escape(str(v))}</td>" for v in row)
                   + "</tr>" for row in rows)
    cap = f"<p><b>{html.escape(caption)}</b></p>" if caption else ""
    return (f"{cap}<div style='{_BOX}'><table style='{_TABLE}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")
