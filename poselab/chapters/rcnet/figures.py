"""Plotly figures for the RCNet chapter (static ``go.Figure`` builders over analysis arrays)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from poselab.losses.confidence_ranking import rank_pair_term, rank_pair_term_eq9
from poselab.viz.html import fitted_table

__all__ = ["pr_curve_figure", "rank_loss_figure", "rescorer_history_figure",
           "score_scatter_figure", "before_after_figure", "table_html", "descent_figure"]

_KIND_NAMES = ("true box", "duplicate", "background box")


def _pr_traces(curve: dict):
    recall = np.r_[0.0, curve["recall"]]
    precision = np.r_[1.0, curve["precision"]]
    tp = np.asarray(curve["is_tp"], dtype=bool)
    yield go.Scatter(x=recall, y=precision, mode="lines", line=dict(shape="hv", color="grey"),
                     name="precision after each detection (Eq. 3)")
    yield go.Scatter(x=curve["recall"][tp], y=curve["precision"][tp], mode="markers",
                     marker=dict(size=11, color="seagreen"), name="true positive")
    yield go.Scatter(x=curve["recall"][~tp], y=curve["precision"][~tp], mode="markers",
                     marker=dict(size=11, color="crimson", symbol="x"), name="false positive")
    if "coco_precision" in curve:
        yield go.Scatter(x=curve["coco_recall"], y=curve["coco_precision"], mode="lines",
                         line=dict(dash="dot", color="royalblue"),
                         name="pycocotools: interpolated, 101 recall points")


def pr_curve_figure(curve: dict, title: str = "Precision–recall at OKS 0.5", width: int = 640,
                    height: int = 380) -> go.Figure:
    """PR curve of :func:`poselab.chapters.rcnet.analysis.precision_recall_curve` / ``toy_evaluate``."""
    fig = go.Figure(list(_pr_traces(curve)))
    fig.update_layout(title=title, xaxis_title="recall", yaxis_title="precision", width=width,
                      height=height, xaxis=dict(range=[0, 1.02]), yaxis=dict(range=[0, 1.05]),
                      margin=dict(l=60, r=20, t=50, b=50), legend=dict(x=0.01, y=0.02))
    return fig


def rank_loss_figure(c: float = 1.0, margins: Sequence[float] = (), width: int = 820,
                     height: int = 340) -> go.Figure:
    """g(δ) of Eq. 9 for a pair whose target says i above j (left) and j above i (right),
    the four cases coloured; dashed: the Eq. 38 form with other margins (Table 7)."""
    d = torch.linspace(-c, c, 401, dtype=torch.float64)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("s*ᵢ > s*ⱼ (δ > 0 is right)",
                                                        "s*ᵢ < s*ⱼ (δ < 0 is right)"))
    for col, order in ((1, 1.0), (2, -1.0)):
        g = rank_pair_term_eq9(d, torch.full_like(d, order), c).numpy()
        x = d.numpy()
        right = order * x > 0
        fig.add_scatter(x=x[right], y=g[right], mode="lines", line=dict(color="seagreen", width=3),
                        name="ordered: (|δ| − c/2)² + c²/4", showlegend=col == 1, row=1, col=col)
        fig.add_scatter(x=x[~right], y=g[~right], mode="lines", line=dict(color="crimson", width=3),
                        name="misordered: c|δ| + c²/2", showlegend=col == 1, row=1, col=col)
        for m in margins:
            gm = rank_pair_term(d, torch.full_like(d, order), c, m).numpy()
            fig.add_scatter(x=x, y=gm, mode="lines", line=dict(dash="dot", width=1),
                            name=f"margin {m:g}", showlegend=col == 1, row=1, col=col)
        fig.update_xaxes(title_text="δ = μᵢ − μⱼ", row=1, col=col)
    fig.update_yaxes(title_text="g(δ)", row=1, col=1)
    fig.update_layout(width=width, height=height, margin=dict(l=60, r=20, t=50, b=50))
    return fig


def rescorer_history_figure(history: Mapping[str, Sequence[float]], title: str = "",
                            width: int = 820, height: int = 360) -> go.Figure:
    """Rank loss (left axis) and pairwise ranking accuracy (right axis) per epoch, train and
    val (RCNet Fig. 3 analogue)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    ep = list(history["epoch"])
    for name, colour in (("train", "firebrick"), ("val", "royalblue")):
        fig.add_scatter(x=ep, y=history[f"{name}_rank_loss"], name=f"{name} rank loss",
                        line=dict(color=colour), secondary_y=False)
        fig.add_scatter(x=ep, y=history[f"{name}_accuracy"], name=f"{name} ranking accuracy",
                        line=dict(color=colour, dash="dot"), secondary_y=True)
    fig.update_layout(title=title or "Rank loss and ranking accuracy per epoch",
                      xaxis_title="epoch", width=width, height=height,
                      margin=dict(l=60, r=60, t=50, b=50), legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text="rank loss (Eq. 8)", secondary_y=False)
    fig.update_yaxes(title_text="ranking accuracy", secondary_y=True)
    return fig


def descent_figure(runs: Mapping[str, Mapping], title: str = "", width: int = 820,
                   height: int = 380) -> go.Figure:
    """Loss (left) and pairwise accuracy (right) per gradient-descent step of each run of
    :func:`poselab.chapters.rcnet.theory.cor6_gradient_descent` (``{label: result}``); crosses
    mark the steps where the loss rose and where the accuracy fell while the loss fell."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("rank loss (Eq. 8)", "pairwise ranking accuracy"))
    palette = ("firebrick", "royalblue", "seagreen", "darkorange", "purple")
    for k, (label, run) in enumerate(runs.items()):
        colour = palette[k % len(palette)]
        loss, acc = np.asarray(run["losses"]), np.asarray(run["accuracies"])
        step = np.arange(loss.size)
        fig.add_scatter(x=step, y=loss, name=label, line=dict(color=colour), legendgroup=label, row=1, col=1)
        fig.add_scatter(x=step, y=acc, name=label, line=dict(color=colour), legendgroup=label,
                        showlegend=False, row=1, col=2)
        rise = np.nonzero(np.diff(loss) > 0)[0] + 1
        drop = np.nonzero((np.diff(loss) < 0) & (np.diff(acc) < 0))[0] + 1
        fig.add_scatter(x=rise, y=loss[rise], mode="markers", marker=dict(symbol="x", size=5, color=colour),
                        name=f"{label}: loss rose", legendgroup=label, row=1, col=1)
        fig.add_scatter(x=drop, y=acc[drop], mode="markers", marker=dict(symbol="x", size=7, color=colour),
                        name=f"{label}: accuracy fell as the loss fell", legendgroup=label, row=1, col=2)
    fig.update_layout(title=title or "Full-batch gradient descent on RCNet (Corollary 6's setting)",
                      width=width, height=height, margin=dict(l=60, r=30, t=60, b=50),
                      legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="gradient-descent step")
    return fig


def score_scatter_figure(scores: Mapping[str, np.ndarray], title: str = "", width: int = 820,
                         height: int = 360, max_points: int = 1500, seed: int = 0) -> go.Figure:
    """Score against matched OKS before and after rescoring, coloured by detection kind."""
    oks, kind = np.asarray(scores["oks"]), np.asarray(scores["kind"])
    keep = np.random.default_rng(seed).permutation(oks.size)[:max_points]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("original score", "RCNet score"),
                        shared_yaxes=True)
    for col, key in ((1, "before"), (2, "after")):
        s = np.asarray(scores[key])
        for k, name in enumerate(_KIND_NAMES):
            sel = keep[kind[keep] == k]
            fig.add_scatter(x=s[sel], y=oks[sel], mode="markers", name=name, showlegend=col == 1,
                            marker=dict(size=4, opacity=0.5, color=("seagreen", "orange", "crimson")[k]),
                            row=1, col=col)
        fig.update_xaxes(title_text="score", row=1, col=col)
    fig.update_yaxes(title_text="matched OKS", row=1, col=1)
    fig.update_layout(title=title, width=width, height=height, margin=dict(l=60, r=20, t=60, b=50))
    return fig


def before_after_figure(values: Mapping[str, Mapping[str, Sequence[float]]], metric: str = "AP",
                        title: str = "", width: int = 820, height: int = 360) -> go.Figure:
    """Per-seed points and mean ± std, grouped: ``{group: {"before": [...], "after": [...]}}``."""
    fig = go.Figure()
    for series, colour in (("before", "rgba(150,150,150,0.5)"), ("after", "rgba(99,110,250,0.5)")):
        xs, means, stds, px, py = [], [], [], [], []
        for group, d in values.items():
            v = np.asarray(d.get(series, []), dtype=np.float64)
            v = v[np.isfinite(v)]
            xs.append(group)
            means.append(float(v.mean()) if v.size else np.nan)
            stds.append(float(v.std(ddof=1)) if v.size > 1 else 0.0)
            px += [group] * v.size
            py += list(v)
        fig.add_bar(x=xs, y=means, name=f"{series} (mean ± std)", marker_color=colour,
                    error_y=dict(type="data", array=stds, visible=True), offsetgroup=series)
        fig.add_scatter(x=px, y=py, mode="markers", name=f"{series}, one seed", offsetgroup=series,
                        marker=dict(color="black", size=7), showlegend=series == "after")
    fig.update_layout(barmode="group", title=title or metric, yaxis_title=metric, width=width,
                      height=height, margin=dict(l=60, r=20, t=50, b=60), scattermode="group")
    return fig


def table_html(rows: Sequence[Mapping], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A list of dicts as an HTML table (numbers rounded), for ``IPython.display.HTML``."""
    rows = list(rows)
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(columns or rows[0].keys())

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if not np.isfinite(v) else f"{v:.{digits}f}"
        return str(v)
    return fitted_table(cols, [[cell(r.get(c, "")) for c in cols] for r in rows])
