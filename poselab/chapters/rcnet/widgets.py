"""Toy-AP widget (RCNet Fig. 1): reorder the confidences of three true positives and one false
positive with identical localisation; watch the PR curve, AP by Eq. 3 and by pycocotools, and AR
(Eq. 4) staying put."""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch

from poselab.chapters.rcnet.analysis import ap_definitions, pair_term_point, toy_dataset, toy_evaluate
from poselab.chapters.rcnet.figures import pr_curve_figure, rescorer_history_figure
from poselab.losses.confidence_ranking import rank_pair_term

__all__ = ["toy_ap_widget", "live_history", "loss_shape_widget"]


def toy_ap_widget(initial=(0.9, 0.6, 0.5, 0.8)):
    """Sliders for the confidences of P1, P2, P3 (true positives) and P4 (false positive)."""
    toy = toy_dataset()
    names = ["P1 (TP)", "P2 (TP)", "P3 (TP)", "P4 (FP)"]
    sliders = [widgets.FloatSlider(value=v, min=0.0, max=1.0, step=0.01, description=n,
                                   continuous_update=False) for v, n in zip(initial, names)]
    fig = go.FigureWidget(pr_curve_figure(toy_evaluate(list(initial), toy)["curve"], width=600))
    table = widgets.HTML()

    def update(_=None):
        scores = np.array([s.value for s in sliders])
        r = toy_evaluate(scores, toy)
        fresh = pr_curve_figure(r["curve"], width=600)
        with fig.batch_update():
            for trace, new in zip(fig.data, fresh.data):
                trace.x, trace.y = new.x, new.y
        order = " > ".join(names[i] for i in r["curve"]["order"])
        area = ap_definitions(scores, toy["oks"], toy["n_gt"])["trapezoid"]
        table.value = ("<table><tr><th>ranking</th><th>AP (Eq. 3)</th><th>AP (pycocotools)</th>"
                       "<th>AP (trapezoid, OKS 0.5)</th><th>AR (Eq. 4)</th><th>AR (pycocotools)</th></tr>"
                       f"<tr><td>{order}</td><td>{r['ap_eq3']:.3f}</td><td>{r['ap_coco']:.3f}</td>"
                       f"<td>{area:.3f}</td><td>{r['ar_eq4']:.3f}</td><td>{r['ar_coco']:.3f}</td></tr></table>")

    for s in sliders:
        s.observe(update, "value")
    update()
    box = widgets.VBox([widgets.HBox([widgets.VBox(sliders), fig]), table])
    box.sliders, box.figure, box.table = sliders, fig, table  # handles for tests and exercises
    return box


def live_history(title: str = "RCNet training: rank loss and ranking accuracy per epoch",
                 enabled: bool = True):
    """A live Fig. 3: returns ``(figure widget, callback)``; pass the callback to
    :func:`poselab.chapters.rcnet.recipes.fit_rcnet` (``callback=``) and every measured epoch
    appends its rank loss and ranking accuracy (train and val) — Theorem 3 watched live.
    ``enabled=False`` (CI runs) returns a note and ``None`` (no FigureWidget: its ~5 MB
    JavaScript bundle would be saved into the executed notebook)."""
    if not enabled:
        return widgets.HTML("(live figure off in this run; the history is plotted below)"), None
    empty = {k: [] for k in ("epoch", "train_rank_loss", "train_accuracy", "val_rank_loss",
                             "val_accuracy")}
    fig = go.FigureWidget(rescorer_history_figure(empty, title=title))
    keys = ("train_rank_loss", "train_accuracy", "val_rank_loss", "val_accuracy")

    def callback(epoch, record):
        with fig.batch_update():
            for trace, key in zip(fig.data, keys):
                trace.x = tuple(trace.x or ()) + (epoch,)
                value = float(record[key])  # NaN (nothing to rank) is not JSON: a gap instead
                trace.y = tuple(trace.y or ()) + (value if np.isfinite(value) else None,)

    return fig, callback


def loss_shape_widget(delta: float = 0.2, margin: float = 0.5, c: float = 1.0):
    """g(δ) of the rank loss (RCNet Eq. 9 / 38) with sliders for δ, the margin m and the range c:
    both target orders, the current point on each, its Eq. 9 case, g and the gradient dg/dδ
    (including at exactly tied predictions, where Eq. 9 gives −c·order)."""

    sliders = {"delta": widgets.FloatSlider(value=delta, min=-1.0, max=1.0, step=0.01, description="δ"),
               "margin": widgets.FloatSlider(value=margin, min=0.0, max=1.0, step=0.05, description="margin m"),
               "c": widgets.FloatSlider(value=c, min=0.5, max=2.0, step=0.25, description="c")}
    for s in sliders.values():
        s.continuous_update = False
    fig = go.FigureWidget(layout=dict(width=640, height=320, xaxis_title="δ = μᵢ − μⱼ", yaxis_title="g(δ)",
                                      margin=dict(l=60, r=20, t=30, b=50)))
    for name in ("s*ᵢ > s*ⱼ", "s*ᵢ < s*ⱼ"):
        fig.add_scatter(x=[], y=[], mode="lines", name=name)
    for name in ("point (s*ᵢ > s*ⱼ)", "point (s*ᵢ < s*ⱼ)"):
        fig.add_scatter(x=[], y=[], mode="markers", marker=dict(size=10), name=name)
    table = widgets.HTML()

    def update(_=None):
        cc, m, d = sliders["c"].value, sliders["margin"].value, sliders["delta"].value * sliders["c"].value
        grid = torch.linspace(-cc, cc, 401, dtype=torch.float64)
        rows = []
        with fig.batch_update():
            for k, order in enumerate((1.0, -1.0)):
                fig.data[k].x, fig.data[k].y = grid.numpy(), rank_pair_term(grid, torch.full_like(grid, order), cc, m).numpy()
                pt = pair_term_point(d, order, cc, m)
                fig.data[2 + k].x, fig.data[2 + k].y = [d], [pt["g"]]
                rows.append(f"<tr><td>{'s*ᵢ > s*ⱼ' if order > 0 else 's*ᵢ < s*ⱼ'}</td><td>{pt['case']}</td>"
                            f"<td>{'ordered' if pt['ordered'] else 'misordered'}</td>"
                            f"<td>{pt['g']:.4f}</td><td>{pt['gradient']:.4f}</td></tr>")
        table.value = ("<table><tr><th>target</th><th>Eq. 9 case</th><th>pair</th><th>g(δ)</th>"
                       "<th>dg/dδ</th></tr>" + "".join(rows) + "</table>")

    for s in sliders.values():
        s.observe(update, "value")
    update()
    box = widgets.VBox([widgets.HBox([widgets.VBox(list(sliders.values())), fig]), table])
    box.sliders, box.figure, box.table = sliders, fig, table
    return box
