"""BCIR widgets: the soft-argmax bias explorer (§5.1, Fig. 2, Eq. 37–38), the Fig. 6 toy
dynamics player and gradient-case explorer (§6.2, Eq. 24) and the density-shrinkage explorer
(§4.3, Eq. 12–14). Callbacks only call :mod:`poselab.chapters.bcir.analysis` and update
FigureWidgets (≈ 10–50 ms at 64×48)."""
from __future__ import annotations

from typing import Mapping

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from poselab.chapters.bcir.analysis import (TOY_CASES, bhattacharyya_distance, bias_curve, integral_toy_run,
                                            mass_spread, sigma_star, sigma_star_eq14_as_printed,
                                            symmetric_blob, toy_drawn_heatmap, toy_dynamics, toy_initial_heatmap,
                                            toy_shrinkage)
from poselab.chapters.bcir.figures import MARKERS, bias_figure

__all__ = ["bias_explorer", "toy_player", "gradient_case_explorer", "density_shrinkage_explorer"]

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


def _regression_and_detection_figure(z, gt, left_title: str, width: int):
    """Two heatmaps side by side (regression, detection), each with the prediction's path
    (traces 1 and 4) over the map (traces 0 and 3) and the ground truth."""
    fig = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=[left_title, "detection (Eq. 22)"]))
    for c in (1, 2):
        fig.add_trace(go.Heatmap(z=z, colorscale="Viridis", showscale=False), 1, c)
        fig.add_scatter(x=[], y=[], mode="lines+markers", line=dict(color="white", width=1),
                        marker=dict(size=4, color="white"), name="prediction", showlegend=c == 1, row=1, col=c)
        fig.add_scatter(x=[gt[0]], y=[gt[1]], mode="markers", marker=MARKERS["true"], name="truth",
                        showlegend=c == 1, row=1, col=c)
        fig.update_yaxes(autorange="reversed", row=1, col=c)
    fig.update_layout(width=width, height=470, margin=dict(l=30, r=10, t=40, b=30),
                      legend=dict(orientation="h", y=-0.08))
    return fig


def toy_player(dynamics: Mapping, gt=(34.0, 46.0)):
    """Play the Fig. 6 toy dynamics (:func:`poselab.chapters.bcir.analysis.fig6_dynamics`): a case
    selector and a frame slider; regression and detection side by side, with the prediction's
    path and the ground truth. Frames are precomputed, so a callback only swaps arrays."""
    cases = list(dynamics)
    first = dynamics[cases[0]]["regression"]
    n = len(first["steps"])
    fig = _regression_and_detection_figure(first["frames"][0], gt, "integral regression (Eq. 23)", 760)
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


def gradient_case_explorer(size=(64, 48), gt=(34.0, 46.0), steps: int = 200, every: int = 10):
    """Explore BCIR's integral-gradient cases (§6.2, Fig. 6) live: the starting map (the four
    cases), β, the step size γ (a multiple of the default), the loss (L1 or L2), with or without
    the bias compensation (Eq. 38); integral regression (:func:`poselab.chapters.bcir.analysis.integral_toy_run`)
    beside detection (:func:`poselab.chapters.bcir.analysis.toy_dynamics`), a step slider and play. A
    change of setting recomputes both runs (cached per setting); the step slider only swaps
    frames. The readout prints the error and how many pixels hold 90 % of the softmax mass.

    A start of one's own: click the regression map (or call ``box.add_point(x, y)``) to add a
    σ = 2 blob there (:func:`poselab.chapters.bcir.analysis.toy_drawn_heatmap`); the start
    switches to "drawn" and both runs start again from the drawn map; "clear" empties it."""
    n = steps // every + 1
    fig = _regression_and_detection_figure(np.zeros(tuple(size)), gt, "integral regression", 780)
    case = W.Dropdown(options=[(f"case {c}", c) for c in TOY_CASES] + [("drawn (click the map)", "drawn")],
                      value=2, description="start")
    clear = W.Button(description="clear the drawn map", layout=W.Layout(width="170px"))
    drawn: list = []
    loss = W.ToggleButtons(options=[("L1", "l1"), ("L2", "l2")], value="l1", description="loss")
    compensated = W.Checkbox(value=False, description="compensated (Eq. 38)")
    beta = W.SelectionSlider(options=[1.0, 2.0, 5.0, 10.0, 20.0], value=10.0, description="β")
    gamma = W.SelectionSlider(options=[0.1, 0.3, 1.0, 3.0], value=1.0, description="γ × default")
    frame = W.IntSlider(value=0, min=0, max=n - 1, description="step")
    play = W.Play(value=0, min=0, max=n - 1, interval=300)
    W.jslink((play, "value"), (frame, "value"))
    label = W.HTML()
    runs: dict = {}

    def current():
        key = (case.value, loss.value, compensated.value, beta.value, gamma.value,
               tuple(drawn) if case.value == "drawn" else ())
        if key not in runs:
            h0 = toy_drawn_heatmap(drawn, size) if case.value == "drawn" else toy_initial_heatmap(case.value, size, gt)
            default = 0.2 / beta.value if loss.value == "l1" else 0.02 / beta.value
            reg = integral_toy_run(h0, gt, loss=loss.value, compensated=compensated.value, beta=beta.value,
                                   gamma=gamma.value * default, steps=steps, every=every)
            det = toy_dynamics(h0, gt, "detection", steps=steps, every=every)
            runs[key] = (reg, det)
        return runs[key]

    def draw(_=None):
        reg, det = current()
        f = min(frame.value, len(reg["steps"]) - 1)
        with fig.batch_update():
            for c, d in enumerate((reg, det)):
                fig.data[3 * c].z = d["frames"][f]
                fig.data[3 * c + 1].x = d["predictions"][: f + 1, 0]
                fig.data[3 * c + 1].y = d["predictions"][: f + 1, 1]
        det_spread = int(mass_spread(np.exp(beta.value * (det["frames"][f] - det["frames"][f].max()))))
        start = ""
        if case.value == "drawn":
            start = (f"drawn start: {len(drawn)} blob(s) at " + ", ".join(f"({x:g}, {y:g})" for x, y in drawn)
                     if drawn else "drawn start: the flat map (click the regression map to add a blob)") + "<br>"
        label.value = (start + f"step {int(reg['steps'][f])}: regression error {reg['errors'][f]:.2f} px, "
                       f"90 % of its softmax mass on {int(reg['spread'][f])} px; detection error "
                       f"{det['errors'][f]:.2f} px ({det_spread} px at the same β)")

    def add_point(x: float, y: float) -> None:
        """A σ = 2 blob at pixel (x, y) of the drawn start (switching to it); the runs restart."""
        point = (float(round(x)), float(round(y)))
        toy_drawn_heatmap([point], size)  # refuses a point off the map before it is kept
        drawn.append(point)
        restart()

    def on_clear(_=None) -> None:
        drawn.clear()
        if case.value == "drawn":
            restart()

    def restart() -> None:
        """Show step 0 of the drawn start (the case and step controls are observed: each change redraws)."""
        switched = case.value != "drawn"
        if switched:
            case.value = "drawn"
        if frame.value != 0:
            frame.value = 0
        elif not switched:
            draw()

    def on_click(_trace, points, _state) -> None:
        if points.xs:
            add_point(points.xs[0], points.ys[0])

    for control in (case, loss, compensated, beta, gamma, frame):
        control.observe(draw, "value")
    clear.on_click(on_clear)
    fig.data[0].on_click(on_click)
    for trace in fig.data[1:3]:  # the path and the truth over the map would catch the clicks
        trace.hoverinfo = "skip"
    draw()
    box = W.VBox([W.HBox([case, loss, compensated]), W.HBox([beta, gamma, clear]), W.HBox([play, frame]),
                  label, fig])
    box.draw, box.frame, box.figure, box.label = draw, frame, fig, label
    box.add_point, box.clear, box.drawn = add_point, on_clear, drawn
    box.controls = dict(case=case, loss=loss, compensated=compensated, beta=beta, gamma=gamma)
    return box


def density_shrinkage_explorer(size=(64, 48), gt=(34.0, 46.0), steps: int = 300, every: int = 20,
                               sigma_true: float = 2.0, offset: float = 1.0):
    """§4.3 live: the theory and a map that shrinks.

    Left: the Bhattacharyya distance of Eq. 12 against the predicted σ̂ for the σ_true and offset
    μ − μ_true sliders, with its minimum σ* (:func:`poselab.chapters.bcir.analysis.sigma_star`), the root of
    Eq. 14 as printed and σ_true. Right: the Eq. 24 toy started from a σ = 2 blob at the truth and
    trained by integral regression (:func:`poselab.chapters.bcir.analysis.toy_shrinkage`; β and the
    compensation are controls), its normalised map at the step slider's step, and its best-fit σ̂
    against the step; the current σ̂ is marked on the left curve, so the slider shows the map
    sliding down to the collapsed end of Eq. 12. A β / compensation change reruns the toy (cached
    per setting); the step slider only swaps frames."""
    n = steps // every + 1
    s = dict(continuous_update=False, style={"description_width": "110px"})
    st = W.FloatSlider(value=sigma_true, min=0.5, max=5.0, step=0.1, description="σ_true (px)", **s)
    off = W.FloatSlider(value=offset, min=0.0, max=6.0, step=0.25, description="μ − μ_true (px)", **s)
    beta = W.SelectionSlider(options=[1.0, 2.0, 5.0, 10.0, 20.0], value=10.0, description="β", **s)
    compensated = W.Checkbox(value=False, description="compensated (Eq. 38)")
    frame = W.IntSlider(value=0, min=0, max=n - 1, description="step", **s)
    play = W.Play(value=0, min=0, max=n - 1, interval=300)
    W.jslink((play, "value"), (frame, "value"))
    grid = np.geomspace(0.2, 12.0, 200)
    theory = go.FigureWidget()
    theory.add_scatter(x=grid, y=grid * 0, mode="lines", name="D_B (Eq. 12)", line=dict(color="black"))
    theory.add_scatter(x=[1.0], y=[0.0], mode="markers", name="σ* (minimum)", marker=dict(symbol="star", size=14, color="gold"))
    theory.add_scatter(x=[1.0], y=[0.0], mode="markers", name="Eq. 14 as printed", marker=dict(symbol="x", size=10, color="orange"))
    theory.add_scatter(x=[1.0, 1.0], y=[0.0, 1.0], mode="lines", name="σ_true", line=dict(color="grey", dash="dot"))
    theory.add_scatter(x=[1.0], y=[0.0], mode="markers", name="toy map's σ̂", marker=dict(size=12, color="red"))
    theory.update_xaxes(type="log", title="predicted σ̂ (px)")
    theory.update_layout(width=400, height=360, margin=dict(l=50, r=10, t=40, b=40), yaxis_title="D_B",
                         legend=dict(orientation="h", y=-0.3), title="Eq. 12 against σ̂")
    picture = go.FigureWidget(make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                                            subplot_titles=["softmax(β h)", "best-fit σ̂ against step"]))
    picture.add_trace(go.Heatmap(z=np.zeros(tuple(size)), colorscale="Viridis", showscale=False), 1, 1)
    picture.add_scatter(x=[gt[0]], y=[gt[1]], mode="markers", marker=MARKERS["true"], name="truth", row=1, col=1)
    picture.add_scatter(x=[], y=[], mode="lines+markers", name="σ̂", line=dict(color="red"), row=1, col=2)
    picture.add_scatter(x=[0], y=[0], mode="markers", name="this step", marker=dict(size=12, color="black"), row=1, col=2)
    picture.update_yaxes(autorange="reversed", row=1, col=1)
    picture.update_yaxes(title="σ̂ (px)", row=1, col=2)
    picture.update_xaxes(title="step", row=1, col=2)
    picture.update_layout(width=420, height=360, margin=dict(l=30, r=10, t=40, b=40), showlegend=False)
    label = W.HTML()
    runs: dict = {}

    def current():
        key = (beta.value, compensated.value)
        if key not in runs:
            runs[key] = toy_shrinkage(toy_initial_heatmap(4, size, gt), gt, beta=beta.value,
                                      compensated=compensated.value, steps=steps, every=every)
        return runs[key]

    def draw(_=None):
        run = current()
        f = min(frame.value, len(run["steps"]) - 1)
        sig_hat = float(run["sigma"][f])
        d = bhattacharyya_distance(grid, st.value, off.value)
        star = sigma_star(st.value, off.value)
        printed = float(sigma_star_eq14_as_printed(st.value, off.value))
        with theory.batch_update():
            theory.data[0].y = d
            theory.data[1].x, theory.data[1].y = [star], [float(bhattacharyya_distance(star, st.value, off.value))]
            theory.data[2].x, theory.data[2].y = [printed], [float(bhattacharyya_distance(printed, st.value, off.value))]
            theory.data[3].x, theory.data[3].y = [st.value, st.value], [0.0, float(d.max())]
            theory.data[4].x, theory.data[4].y = [sig_hat], [float(bhattacharyya_distance(sig_hat, st.value, off.value))]
        with picture.batch_update():
            picture.data[0].z = run["probabilities"][f]
            picture.data[2].x, picture.data[2].y = run["steps"], run["sigma"]
            picture.data[3].x, picture.data[3].y = [int(run["steps"][f])], [sig_hat]
        label.value = (f"step {int(run['steps'][f])}: the toy map's best-fit σ̂ = {sig_hat:.2f} px "
                       f"(step 0: {float(run['sigma'][0]):.2f} px), 90 % of its mass on {int(run['spread'][f])} px, "
                       f"error {float(run['errors'][f]):.2f} px; for σ_true = {st.value:g} and an offset of "
                       f"{off.value:g} px, Eq. 12 is smallest at σ* = {star:.2f} px: "
                       f"D_B(σ̂) = {float(bhattacharyya_distance(sig_hat, st.value, off.value)):.3f} against "
                       f"D_B(σ*) = {float(bhattacharyya_distance(star, st.value, off.value)):.3f}")

    for control in (st, off, beta, compensated, frame):
        control.observe(draw, "value")
    draw()
    box = W.VBox([W.HBox([st, off]), W.HBox([beta, compensated]), W.HBox([play, frame]), label,
                  W.HBox([theory, picture])])
    box.draw, box.frame, box.label, box.figures = draw, frame, label, (theory, picture)
    box.controls = dict(sigma_true=st, offset=off, beta=beta, compensated=compensated)
    return box
