"""Tables for notebooks: rows of dicts → a pandas DataFrame (renders as HTML in JupyterLab).

    from poselab.viz.tables import table
    table([{"codec": "dark", "max error": 2.8e-6}], digits=3)

Floats are shown with ``digits`` significant digits; a ``(mean, std)`` pair as ``"mean ± std"``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from poselab.viz.html import Missing, fitted_table

__all__ = ["table", "mean_std"]


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``"mean ± std"`` of per-seed values (std with ddof = 1; just the mean for one value).

    Example:
        >>> mean_std([5.0, 5.2, 5.4])
        '5.2 ± 0.2'
        >>> mean_std([5.0, 5.2, float("nan")])
        '5.1 ± 0.141 (1 of 3 not finite)'
    """
    given = [float(v) for v in values]
    vals = [v for v in given if math.isfinite(v)]
    if not vals:
        return "—"
    # a diverged seed (NaN / inf) is named, not silently left out of the mean
    dropped = f" ({len(given) - len(vals)} of {len(given)} not finite)" if len(vals) < len(given) else ""
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{mean:.{digits}g}{dropped}"
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return f"{mean:.{digits}g} ± {std:.{digits}g}{dropped}"


def _cell(value: Any, digits: int) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]:.{digits}g} ± {value[1]:.{digits}g}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return value


def table(rows: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]], digits: int = 3,
          index: str | None = None):
    """A pandas DataFrame of ``rows`` (a list of dicts, or ``{row name: dict}`` → an index).

    Example:
        >>> table([{"a": 1 / 3, "b": (1.0, 0.25)}]).iloc[0].tolist()
        ['0.333', '1 ± 0.25']
    """
    frame_type = _fitted_frame_type()
    if isinstance(rows, Mapping):
        frame = frame_type([{k: _cell(v, digits) for k, v in r.items()} for r in rows.values()],
                           index=list(rows))
        frame.index.name = index
        return frame
    frame = frame_type([{k: _cell(v, digits) for k, v in r.items()} for r in rows])
    if index is not None and index in frame:
        frame = frame.set_index(index)
    return frame


_FITTED = None


def _fitted_frame_type():
    """A DataFrame whose notebook HTML sits in a box that scrolls on its own (never wider than
    the notebook)."""
    global _FITTED
    if _FITTED is None:
        import pandas as pd  # deferred: pandas is slow to import; the class is built on first use

        class FittedFrame(pd.DataFrame):
            @property
            def _constructor(self):
                return FittedFrame

            def _repr_html_(self):
                # through the lab's one table renderer (poselab.viz.html.fitted_table): rounded
                # numbers, "—" with a reason for a missing value, coloured verdicts, long text folded
                plain_index = isinstance(self.index, pd.RangeIndex) and self.index.name is None
                heads = [str(c) for c in self.columns]
                # pandas stores a None of a text column as NaN: the two cannot be told apart here
                gap = Missing("no value: not measured here, or undefined (not a number)")
                rows = [[gap if v is None or isinstance(v, float) and v != v else v for v in r]
                        for r in self.itertuples(index=False, name=None)]
                if not plain_index:
                    heads = [str(self.index.name or "")] + heads
                    rows = [[i, *r] for i, r in zip(self.index, rows)]
                return fitted_table(heads, rows)

        _FITTED = FittedFrame
    return _FITTED
