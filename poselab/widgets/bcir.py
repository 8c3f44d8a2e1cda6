"""BCIR widgets: the soft-argmax bias explorer (§5.1, Fig. 2, Eq. 37–38) and the Fig. 6 toy
dynamics player (§6.2, Eq. 24). Callbacks only call :mod:`poselab.analysis.bcir` and update
FigureWidgets (≈ 10–50 ms at 64×48)."""
from __future__ import annotations

from typing import Mapping

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.bcir import bias_curve, symmetric_blob
from ..viz.bcir import MARKERS, bias_figure

__all__ = ["bias_explorer", "toy_player"]

_POINTS = ("true", "soft-argmax", "Eq. 37", "compensated", "centre")


def bias_explorer(size=(64, 48), x: float = 8.0, y: float = 50.0, sigma: float = 2.0,
                  beta: float = 10.0, amount: float = 20.0, mode: str = "mass"):
    """Sliders for the blob's position, spread σ, β and its peak (or mass); shows the blob with
    the true point, the soft-argmax, Eq. 37's prediction, the compensated point (Eq. 38) and
    the map centre, the bias along x for the current σ and β, and the numbers. ``mode="mass"``
    keeps the blob's sum at ``amount`` (a density: widening it flattens it, the paper's "more
    dispersed"), ``mode="peak"`` keeps its height.

    Returns the widget; ``widget.update()`` re-renders (used by the tests)."""
    H, Wd = int(size[0]), int(size[1])
    s = dict(continuous_update=False, style={"description_width": "90px"})
    sl = {"x": W.FloatSlider(value=x, min=0, max=Wd - 1, step=0.5, description="blob x", **s),
          "y": W.FloatSlider(value=y, min=0, max=H - 1, step=0.5, description="blob y", **s),
          "sigma": W.FloatSlider(value=sigma, min=0.5, max=6, step=0.25, description="spread σ", **s),
          "beta": W.FloatLogSlider(value=beta, base=10, min=-0.5, max=1.7, step=0.05, description="β", **s),
          "amount": W.FloatLogSlider(value=amount, base=10, min=-1.5, max=2.0, step=0.05,
                                     description="peak / mass", **s),
          "mode": W.ToggleButtons(options=["mass", "peak"], value=mode, description="fix")}
    heat = go.FigureWidget(go.Heatmap(z=np.zeros((H, Wd)), colorscale="Viridis", colorbar=dict(thickness=10)))
    for name in _POINTS:
        heat.add_scatter(x=[0], y=[0], mode="markers", name=name, marker=MARKERS[name])
    heat.update_yaxes(autorange="reversed", scaleanchor="x")
    heat.update_layout(width=400, height=470, margin=dict(l=30, r=10, t=30, b=30),
                       legend=dict(orientation="h", y=-0.08), title="blob H (logits)")
    curve = go.FigureWidget(bias_figure(bias_curve(size, [[x, y]], sigma, beta, **{mode: amount})))
    curve.update_layout(width=480, height=300)
    table = W.HTML()

    def update(_=None):
        v = {k: w.value for k, w in sl.items()}
        kw = {v["mode"]: v["amount"]}
        pos = np.array([[v["x"], v["y"]]])
        one = bias_curve(size, pos, v["sigma"], v["beta"], **kw)
        xs = np.arange(0, Wd, 1.0)
        line = bias_curve(size, np.stack([xs, np.full_like(xs, v["y"])], 1), v["sigma"], v["beta"], **kw)
        pts = {"true": pos[0], "soft-argmax": one["measured"][0], "Eq. 37": one["eq37"][0],
               "compensated": one["compensated"][0], "centre": ((Wd - 1) / 2, (H - 1) / 2)}
        with heat.batch_update():
            heat.data[0].z = symmetric_blob(size, pos[0], v["sigma"], **kw)
            for i, name in enumerate(_POINTS, start=1):
                heat.data[i].x, heat.data[i].y = [pts[name][0]], [pts[name][1]]
        fresh = bias_figure(line)
        with curve.batch_update():
            for i in range(3):
                curve.data[i].x, curve.data[i].y = fresh.data[i].x, fresh.data[i].y
            curve.layout.title.text = f"bias along x at y = {v['y']:g} (σ = {v['sigma']:g}, β = {v['beta']:.3g})"
        b = one["bias"][0]
        note = "" if one["valid"][0] else " (C ≤ n: no localized support, left uncompensated)"
        table.value = (
            "<table><tr><th></th><th>x</th><th>y</th></tr>"
            + "".join(f"<tr><td>{n}</td><td>{pts[n][0]:.3f}</td><td>{pts[n][1]:.3f}</td></tr>"
                      for n in _POINTS[:4])
            + f"</table><p>bias = ({b[0]:+.3f}, {b[1]:+.3f}) px; background share n/C = "
              f"{one['n_over_c'][0]:.4f}{note}</p>")

    for w in sl.values():
        w.observe(update, "value")
    update()
    box = W.HBox([W.VBox(list(sl.values()) + [table], layout=W.Layout(width="380px")), heat, curve])
    box.update = update
    box.sliders = sl
    box.figures = (heat, curve)
    return box


def toy_player(dynamics: Mapping, gt=(34.0, 46.0)):
    """Play the Fig. 6 toy dynamics (:func:`poselab.analysis.bcir.fig6_dynamics`): a case
    selector and a frame slider; regression and detection side by side, with the prediction's
    path and the ground truth. Frames are precomputed, so a callback only swaps arrays."""
    cases = list(dynamics)
    first = dynamics[cases[0]]["regression"]
    n = len(first["steps"])
    fig = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=["integral regression (Eq. 23)",
                                                                        "detection (Eq. 22)"]))
    for c in (1, 2):
        fig.add_trace(go.Heatmap(z=first["frames"][0], colorscale="Viridis", showscale=False), 1, c)
        fig.add_scatter(x=[], y=[], mode="lines+markers", line=dict(color="white", width=1),
                        marker=dict(size=4, color="white"), name="prediction", showlegend=c == 1, row=1, col=c)
        fig.add_scatter(x=[gt[0]], y=[gt[1]], mode="markers", marker=MARKERS["true"], name="truth",
                        showlegend=c == 1, row=1, col=c)
        fig.update_yaxes(autorange="reversed", row=1, col=c)
    fig.update_layout(width=760, height=470, margin=dict(l=30, r=10, t=40, b=30),
                      legend=dict(orientation="h", y=-0.08))
    case = W.Dropdown(options=[(f"case {c}", c) for c in cases], value=cases[0], description="case")
    frame = W.IntSlider(value=0, min=0, max=n - 1, description="frame")
    play = W.Play(value=0, min=0, max=n - 1, interval=400)
    W.jslink((play, "value"), (frame, "value"))
    label = W.HTML()

    def update(_=None):
        f = frame.value
        with fig.batch_update():
            for c, method in enumerate(("regression", "detection")):
                d = dynamics[case.value][method]
                fig.data[3 * c].z = d["frames"][f]
                fig.data[3 * c + 1].x = d["predictions"][: f + 1, 0]
                fig.data[3 * c + 1].y = d["predictions"][: f + 1, 1]
        r, d = dynamics[case.value]["regression"], dynamics[case.value]["detection"]
        label.value = (f"step {int(r['steps'][f])}: error regression {r['errors'][f]:.2f} px, "
                       f"detection {d['errors'][f]:.2f} px")

    case.observe(update, "value")
    frame.observe(update, "value")
    update()
    box = W.VBox([W.HBox([case, play, frame]), label, fig])
    box.update, box.frame, box.case, box.figure = update, frame, case, fig
    return box
