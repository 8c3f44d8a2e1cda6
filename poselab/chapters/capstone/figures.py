"""Figure of the heatmap playground: the heatmap and every loss's gradient map, one grid."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["playground_figure", "values_html"]

_COLS = 3


def playground_figure(heatmap: np.ndarray, maps: Mapping[str, Mapping], keypoint: Sequence[float],
                      width: int = 820, height: int = 760) -> go.Figure:
    """Grid: the heatmap, then ``-∂loss/∂heatmap`` of each loss (the direction gradient descent
    moves each pixel; red = raised, blue = lowered, each map on its own symmetric scale), with
    the ground truth marked. ``maps`` is :func:`poselab.chapters.capstone.playground.loss_maps`' output."""
    names = list(maps)
    rows = (len(names) + 1 + _COLS - 1) // _COLS
    titles = ["heatmap"] + [f"{n}: {maps[n]['value']:.4g}" for n in names]
    fig = make_subplots(rows=rows, cols=_COLS, subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=0.08)
    fig.add_trace(go.Heatmap(z=np.asarray(heatmap), colorscale="Viridis", showscale=False), 1, 1)
    for i, name in enumerate(names, start=1):
        step = -np.asarray(maps[name]["grad"])
        m = float(np.abs(step).max()) or 1.0
        fig.add_trace(go.Heatmap(z=step, colorscale="RdBu", reversescale=True, zmin=-m, zmax=m,
                                 showscale=False, name=name,
                                 hovertemplate="x %{x} y %{y}: %{z:.3g}<extra>" + name + "</extra>"),
                      i // _COLS + 1, i % _COLS + 1)
    for i in range(len(names) + 1):
        fig.add_trace(go.Scatter(x=[keypoint[0]], y=[keypoint[1]], mode="markers", showlegend=False,
                                 marker=dict(symbol="x", size=9, color="black"), hoverinfo="skip"),
                      i // _COLS + 1, i % _COLS + 1)
    fig.update_yaxes(autorange="reversed", scaleanchor=None, showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(width=width, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      title="the heatmap and −gradient of every loss (red: raise, blue: lower)")
    return fig


def values_html(maps: Mapping[str, Mapping]) -> str:
    """One HTML table row of loss values."""
    heads = "".join(f"<th>{n}</th>" for n in maps)
    cells = "".join(f"<td>{v['value']:.4g}</td>" for v in maps.values())
    return f"<table><tr>{heads}</tr><tr>{cells}</tr></table>"
