"""Figures of the experiments engine: per-seed comparisons and learning curves."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from poselab.viz.sentence import Sentence

__all__ = ["seed_figure", "learning_curves_figure", "ap_vs_step_time_figure", "per_keypoint_figure",
           "rescoring_sentence"]


def seed_figure(values: Mapping[str, Sequence[float]], metric: str = "AP", title: str = "",
                width: int = 640, height: int = 360) -> go.Figure:
    """One column per recipe: every seed's value as a point, the mean as a bar with ± std.

    ``values``: recipe name → per-seed values (NaN values are left out of the mean).
    """
    fig = go.Figure()
    names = list(values)
    for i, name in enumerate(names):
        v = np.asarray(values[name], dtype=np.float64)
        ok = v[np.isfinite(v)]
        mean = float(ok.mean()) if ok.size else float("nan")
        std = float(ok.std(ddof=1)) if ok.size > 1 else 0.0
        fig.add_bar(x=[name], y=[mean], error_y=dict(type="data", array=[std], visible=True),
                    marker_color="rgba(99,110,250,0.35)", name=f"{name} mean ± std",
                    showlegend=False, hovertemplate=f"{name}: mean %{{y:.3f}} ± {std:.3f}<extra></extra>")
        fig.add_scatter(x=[name] * ok.size, y=ok, mode="markers", marker=dict(size=9, color="black"),
                        name=f"{name} seeds", showlegend=False,
                        hovertemplate=f"{name}: %{{y:.3f}}<extra>one seed</extra>")
    fig.update_layout(title=title or metric, yaxis_title=metric, width=width, height=height,
                      margin=dict(l=60, r=20, t=50, b=60), bargap=0.5)
    return fig


def learning_curves_figure(histories: Mapping[str, object], metric: str = "AP",
                           width: int = 820, height: int = 360) -> go.Figure:
    """Validation ``metric`` against training seconds for several runs (``name → History``)."""
    fig = go.Figure()
    for name, hist in histories.items():
        t = np.cumsum(np.asarray(hist.step_times) + np.asarray(hist.data_times))
        steps, vals = hist.val_metric(metric)
        if not steps:
            continue
        x = [float(t[min(s, len(t)) - 1]) if len(t) else 0.0 for s in steps]
        fig.add_scatter(x=x, y=vals, mode="lines+markers", name=name)
    if not fig.data:  # no run validated during training (e.g. the fast preset)
        fig.add_annotation(text=f"no run validated {metric} during training at this preset: no curve to draw",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_layout(title=f"validation {metric} against training seconds", xaxis_title="training seconds",
                      yaxis_title=metric, width=width,
                      height=height, margin=dict(l=60, r=20, t=40, b=50),
                      yaxis=dict(rangemode="tozero"))
    return fig


def ap_vs_step_time_figure(points: Mapping[str, tuple[float, float]], width: int = 640,
                           height: int = 380, metric: str = "AP") -> go.Figure:
    """Scatter of ``metric`` against milliseconds per training step, one labelled point per
    recipe (``name → (seconds_per_step, metric)``)."""
    names = list(points)
    fig = go.Figure(go.Scatter(x=[points[n][0] * 1000 for n in names], y=[points[n][1] for n in names],
                               mode="markers+text", text=names, textposition="top center",
                               marker=dict(size=10)))
    fig.update_layout(xaxis_title="ms per training step", yaxis_title=metric, width=width,
                      height=height, margin=dict(l=60, r=20, t=40, b=50),
                      title=f"{metric} against the cost of a step")
    return fig


def per_keypoint_figure(errors: Mapping[str, Sequence[float]], names: Sequence[str],
                        width: int = 820, height: int = 380, unit: str = "crop px") -> go.Figure:
    """Grouped bars: mean error per joint for each recipe (``recipe → (K,)``)."""
    fig = go.Figure()
    for recipe, err in errors.items():
        fig.add_bar(name=recipe, x=list(names), y=list(np.asarray(err, dtype=float)))
    fig.update_layout(barmode="group", yaxis_title=f"mean error ({unit})", width=width,
                      height=height, margin=dict(l=60, r=20, t=40, b=90), xaxis_tickangle=-45,
                      legend=dict(orientation="h", y=1.12))
    return fig


def rescoring_sentence(recipe: str, before: Sequence[float], after: Sequence[float], verdict=None):
    """Closing sentence of a post-hoc re-scoring table: AP before and after per seed (the mean
    change over the seeds) and the claim's verdict when given (a :class:`poselab.claims.Verdict`).

    Example:
        >>> str(rescoring_sentence("mse", [0.40, 0.42], [0.41, 0.44]))[:75]
        'Re-scoring the poses of `mse` with RCNet changed generated-val AP by +0.015'
    """
    before, after = [float(v) for v in before], [float(v) for v in after]
    if len(before) != len(after):
        raise ValueError(f"before and after need one AP per seed each, got {len(before)} and {len(after)}")
    if not before:
        return Sentence(f"No seed of `{recipe}` was re-scored, so the table is empty.")
    changes = [a - b for b, a in zip(before, after)]
    mean = sum(changes) / len(changes)
    seeds = f"mean over {len(changes)} seeds" if len(changes) > 1 else "one seed"
    text = (f"Re-scoring the poses of `{recipe}` with RCNet changed generated-val AP by {mean:+.3f} "
            f"({seeds}; from {sum(before) / len(before):.3f} to {sum(after) / len(after):.3f})")
    if verdict is not None:
        text += f"; the verdict is *{verdict.verdict}*: {verdict.reason}"
    return Sentence(text.rstrip(".") + ".")
