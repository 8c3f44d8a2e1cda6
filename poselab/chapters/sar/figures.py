"""Figures of the SAR chapter (static ``go.Figure`` builders over :mod:`poselab.chapters.sar.analysis` arrays).

Images and grids are drawn in pixel-centre coordinates with the y axis pointing down.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from poselab.viz.poses import image_trace

__all__ = ["cell_field_traces", "three_ways_figure", "toy_cases_figure", "toy_loss_figure",
           "normalization_figure", "quantization_floor_figure", "sweep_figure", "detections_figure"]

_SCALE = "Viridis"


def _segments(a: np.ndarray, b: np.ndarray) -> tuple[list, list]:
    """x/y lists drawing a segment from every a[t] to b[t] in one trace (None separators)."""
    xs, ys = [], []
    for (x0, y0), (x1, y1) in zip(a, b):
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return xs, ys


def cell_field_traces(field: Mapping, target=None, min_weight: float = 0.0, showscale: bool = True,
                      colorbar_x: float | None = None) -> list:
    """Traces of one SAR grid (:func:`poselab.chapters.sar.analysis.cell_field`): a thin line from every
    cell centre to its regressed point, the points coloured by ``c_t = σ(s_t)`` and sized by the
    weight ``w_t``; the selected (max-c) point as a red cross, the target as a star."""
    c, w = np.asarray(field["c"]), np.asarray(field["w"])
    keep = w >= min_weight
    centres, points = np.asarray(field["centres"])[keep], np.asarray(field["points"])[keep]
    xs, ys = _segments(centres, points)
    size = 5 + 25 * np.sqrt(w[keep])  # area ~ w_t (w sums to 1 over the grid)
    traces = [go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(255,255,255,0.35)", width=1),
                         hoverinfo="skip", showlegend=False),
              go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers", name="K_t (cell points)",
                         marker=dict(size=size, color=c[keep], colorscale=_SCALE, cmin=0, cmax=1,
                                     showscale=showscale, line=dict(width=0.5, color="black"),
                                     colorbar=dict(title="c_t", len=0.8,
                                                   **({} if colorbar_x is None else {"x": colorbar_x}))),
                         customdata=np.stack([c[keep], w[keep]], -1),
                         hovertemplate="K_t=(%{x:.1f}, %{y:.1f})<br>c=%{customdata[0]:.3f}"
                                       " w=%{customdata[1]:.4f}<extra></extra>")]
    best = np.asarray(field["points"])[field["best"]]
    traces.append(go.Scatter(x=[best[0]], y=[best[1]], mode="markers", name="selected (top-1)",
                             marker=dict(symbol="x", size=13, color="red", line=dict(width=2))))
    if target is not None:
        traces.append(go.Scatter(x=[target[0]], y=[target[1]], mode="markers", name="ground truth",
                                 marker=dict(symbol="star", size=15, color="gold",
                                             line=dict(width=1, color="black"))))
    return traces


def three_ways_figure(image, target, regression_point, heatmap, heatmap_point, field,
                      input_size: Sequence[int], titles: Sequence[str] | None = None,
                      width: int = 820, height: int = 380) -> go.Figure:
    """SAR Fig. 1 on one crop: global regression (one point), a heatmap (the map + its decoded
    point) and SAR (every cell's point and weight). Coordinates in input px; ``heatmap`` (h, w)
    is drawn stretched over the crop."""
    titles = list(titles or ["regression: one point from f^g", "heatmap: a map, argmax",
                             "SAR: a point per cell + selector"])
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.03)
    H, W = int(input_size[0]), int(input_size[1])
    hm = np.asarray(heatmap, dtype=np.float64)
    sy, sx = H / hm.shape[0], W / hm.shape[1]
    gt = dict(mode="markers", marker=dict(symbol="star", size=14, color="gold", line=dict(width=1, color="black")))
    for col in (1, 2, 3):
        fig.add_trace(image_trace(image), 1, col)
    fig.add_trace(go.Scatter(x=[regression_point[0]], y=[regression_point[1]], mode="markers",
                             name="regression", marker=dict(symbol="x", size=13, color="red")), 1, 1)
    fig.add_trace(go.Heatmap(z=hm, x0=(sx - 1) / 2, dx=sx, y0=(sy - 1) / 2, dy=sy, colorscale="Hot",
                             opacity=0.55, showscale=False, hoverinfo="skip"), 1, 2)
    fig.add_trace(go.Scatter(x=[heatmap_point[0]], y=[heatmap_point[1]], mode="markers",
                             name="heatmap decode", marker=dict(symbol="x", size=13, color="red")), 1, 2)
    for t in cell_field_traces(field, None, colorbar_x=1.01):
        fig.add_trace(t, 1, 3)
    for col in (1, 2, 3):
        fig.add_trace(go.Scatter(x=[target[0]], y=[target[1]], name="ground truth", showlegend=col == 1, **gt), 1, col)
        fig.update_xaxes(range=[-0.5, W - 0.5], showticklabels=False, row=1, col=col)
        fig.update_yaxes(range=[H - 0.5, -0.5], showticklabels=False, scaleanchor=f"x{col}", row=1, col=col)
    fig.update_layout(width=width, height=height, margin=dict(l=10, r=60, t=40, b=10),
                      legend=dict(orientation="h", y=-0.02), plot_bgcolor="black")
    return fig


def toy_cases_figure(cases: Mapping, width: int = 820, height: int = 340) -> go.Figure:
    """The optimum cases of :func:`poselab.chapters.sar.analysis.optimum_cases` after training: each cell's
    point (coloured by w_t) and the line from its centre."""
    names = [k for k in ("all", "few", "few_frozen") if k in cases]
    label = {"all": "every cell can reach (selector frozen)", "few": "only a few can reach",
             "few_frozen": "only a few can reach, selector frozen"}
    fig = make_subplots(rows=1, cols=len(names), horizontal_spacing=0.04,
                        subplot_titles=[f"{label[k]}<br>loss {cases[k]['final_loss']:.4f}" for k in names])
    for col, k in enumerate(names, start=1):
        res = cases[k]
        h, w = res["grid"]
        centres = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2).astype(float)
        field = {"centres": centres, "points": res["points"], "c": res["w"] / res["w"].max(),
                 "w": res["w"], "best": int(np.argmax(res["w"]))}
        for t in cell_field_traces(field, res["targets"][0], showscale=False):
            if t.mode == "lines":
                t.line.color = "rgba(80,80,80,0.5)"
            t.showlegend = col == 1 and t.name is not None and t.mode != "lines"
            fig.add_trace(t, 1, col)
        fig.update_xaxes(range=[-0.8, w - 0.2], row=1, col=col)
        fig.update_yaxes(range=[h - 0.2, -0.8], scaleanchor=f"x{col}", row=1, col=col)
    fig.update_layout(width=width, height=height, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", y=-0.05))
    return fig


def toy_loss_figure(cases: Mapping, width: int = 700, height: int = 320) -> go.Figure:
    """Training curves of the toy cases (log scale) with the frozen selector's closed-form floor."""
    fig = go.Figure()
    for k in ("all", "few", "few_frozen"):
        if k in cases:
            y = np.maximum(np.asarray(cases[k]["loss"]), 1e-6)
            fig.add_scatter(y=y, mode="lines", name=k)
    if "floor" in cases:
        fig.add_hline(y=cases["floor"], line_dash="dot", annotation_text="closed-form floor, frozen selector")
    fig.update_layout(yaxis_type="log", xaxis_title="Adam step", yaxis_title="SAR loss (Eq. 7)",
                      width=width, height=height, margin=dict(l=60, r=20, t=30, b=50))
    return fig


def normalization_figure(study: Mapping, width: int = 820, height: int = 340) -> go.Figure:
    """:func:`poselab.chapters.sar.analysis.normalization_study`: the score a fixed γ sees per target, and
    the recall of Eq. 11 with that γ, as the number of targets grows."""
    n = np.asarray(study["counts"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=["score at each target's cell",
                                                        f"recall with fixed γ = {study['gamma']:.2f}"])
    two, soft = study["two_step"], study["softmax"]
    fig.add_scatter(x=n, y=two["score"], mode="lines+markers", name="two-step c = σ(s)", row=1, col=1)
    fig.add_scatter(x=n, y=two["weight"], mode="lines+markers", name="two-step w = c/Σc",
                    line=dict(dash="dot"), row=1, col=1)
    fig.add_scatter(x=n, y=soft["score"], mode="lines+markers", name="one-step softmax w", row=1, col=1)
    fig.add_scatter(x=n, y=1.0 / n, mode="lines", name="1/n", line=dict(color="grey", dash="dash"), row=1, col=1)
    fig.add_hline(y=study["gamma"], line_dash="dot", line_color="red", row=1, col=1)
    fig.add_scatter(x=n, y=two["recall"], mode="lines+markers", name="recall, two-step (c ≥ γ)", row=1, col=2)
    fig.add_scatter(x=n, y=soft["recall"], mode="lines+markers", name="recall, softmax (w ≥ γ)", row=1, col=2)
    fig.update_xaxes(title_text="targets on the map", dtick=1)
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(width=width, height=height, margin=dict(l=50, r=10, t=40, b=50))
    return fig


def quantization_floor_figure(floor: Mapping, width: int = 640, height: int = 320) -> go.Figure:
    """Decoding error of exact targets per output stride (:func:`poselab.chapters.sar.analysis.quantization_floor`)."""
    s = np.asarray(floor["strides"])
    fig = go.Figure()
    fig.add_scatter(x=s, y=floor["heatmap_epe"], mode="lines+markers", name="heatmap, argmax + quarter (mean)")
    fig.add_scatter(x=s, y=floor["heatmap_max"], mode="lines+markers", name="heatmap (max)", line=dict(dash="dot"))
    fig.add_scatter(x=s, y=np.maximum(floor["sar_max"], 1e-7), mode="lines+markers", name="SAR (max)")
    fig.update_layout(xaxis=dict(title="output stride (input px per cell)", type="log", tickvals=list(s)),
                      yaxis=dict(title="error of exact targets (input px)", type="log"),
                      width=width, height=height, margin=dict(l=60, r=20, t=30, b=50))
    return fig


def sweep_figure(values: Mapping[str, Mapping], xlabel: str, metric: str, width: int = 720,
                 height: int = 360) -> go.Figure:
    """``{method: {x label: [per-seed values]}}`` → per-seed points and mean ± std lines."""
    palette = plotly.colors.qualitative.Plotly
    fig = go.Figure()
    for i, (method, by_x) in enumerate(values.items()):
        colour = palette[i % len(palette)]
        xs = list(by_x)
        means, stds = [], []
        for x in xs:
            v = np.asarray(by_x[x], dtype=np.float64)
            v = v[np.isfinite(v)]
            means.append(v.mean() if v.size else np.nan)
            stds.append(v.std(ddof=1) if v.size > 1 else 0.0)
            fig.add_scatter(x=[str(x)] * v.size, y=v, mode="markers", showlegend=False,
                            marker=dict(size=7, opacity=0.5, color=colour), legendgroup=method,
                            name=method, hovertemplate=f"{method}: %{{y:.3f}}<extra>one seed</extra>")
        fig.add_scatter(x=[str(x) for x in xs], y=means, error_y=dict(type="data", array=stds),
                        mode="lines+markers", name=f"{method} (mean ± std)", legendgroup=method,
                        line=dict(color=colour), marker=dict(color=colour))
    fig.update_layout(xaxis_title=xlabel, yaxis_title=metric, width=width, height=height,
                      margin=dict(l=60, r=20, t=30, b=50))
    return fig


def detections_figure(image, truths, detections: Mapping[str, np.ndarray], title: str = "",
                      width: int = 640, height: int = 420) -> go.Figure:
    """An image with the true joint positions (stars) and each method's detections (markers)."""
    fig = go.Figure([image_trace(image)])
    t = np.asarray(truths, dtype=np.float64).reshape(-1, 2)
    fig.add_scatter(x=t[:, 0], y=t[:, 1], mode="markers", name="ground truth",
                    marker=dict(symbol="star", size=14, color="gold", line=dict(width=1, color="black")))
    symbols = ("x", "circle-open", "diamond-open", "square-open")
    for i, (name, pts) in enumerate(detections.items()):
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        fig.add_scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=name,
                        marker=dict(symbol=symbols[i % len(symbols)], size=12, line=dict(width=2)))
    H, W = np.asarray(image).shape[:2]
    fig.update_xaxes(range=[-0.5, W - 0.5], showticklabels=False)
    fig.update_yaxes(range=[H - 0.5, -0.5], showticklabels=False, scaleanchor="x")
    fig.update_layout(title=title, width=width, height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig
