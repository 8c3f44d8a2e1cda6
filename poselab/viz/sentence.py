"""Closing sentences printed by a chapter's run.

Every chapter section ends with one sentence on what its figure or table shows; where that
depends on the run, the sentence comes from a library function named ``*_sentence`` (the chapter
style test looks for that suffix on the last line of a section's last code cell) that returns a
:class:`Sentence`, which a notebook renders as Markdown text rather than a quoted string.
"""
from __future__ import annotations

import math

__all__ = ["Sentence", "number"]


class Sentence(str):
    """A string that renders as Markdown in a notebook (``str`` everywhere else).

    Example:
        >>> s = Sentence("The table shows **3** claims.")
        >>> s._repr_markdown_(), s.upper()
        ('The table shows **3** claims.', 'THE TABLE SHOWS **3** CLAIMS.')
    """

    def _repr_markdown_(self) -> str:
        return str(self)


def number(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits (``"—"`` for a missing or non-finite value).

    Example:
        >>> number(0.123456), number(2.2e-16), number(float("nan"))
        ('0.123', '2.2e-16', '—')
    """
    if value is None or isinstance(value, bool):
        return "—"
    value = float(value)
    return f"{value:.{digits}g}" if math.isfinite(value) else "—"
