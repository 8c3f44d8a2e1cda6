"""SAR chapter widgets (ipywidgets + plotly FigureWidget over tested analysis/loss functions).

- :func:`objective_explorer` — move the target, sharpen the selector, make the regressor better
  or worse, switch one-step/two-step: the quality map r_t (Eq. 8), the weights w_t (Eq. 9) and
  the loss (Eq. 7) update together.
- :func:`cell_field_explorer` — a trained SAR model's grid on one crop, joint by joint.
- :func:`selector_regressor_explorer` — pick a joint and a grid cell: its weight, offset, regressed
  point and the decoded point (:func:`cell_readout`).
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from poselab.chapters.sar.analysis import cell_field
from poselab.codecs.sar import sar_cell_centres
from poselab.losses.sar import sar_log_weights, sar_loss, sar_quality
from poselab.skeleton import KEYPOINT_NAMES
from poselab.viz.poses import image_trace
from poselab.chapters.sar.figures import cell_field_traces

__all__ = ["objective_explorer", "toy_objective", "cell_field_explorer", "cell_readout", "selector_regressor_explorer"]


def toy_objective(target, grid=(8, 8), lam: float = 16.0, focus: float = 0.0, pull: float = 0.5,
                  normalization: str = "two_step") -> dict:
    """The numbers behind :func:`objective_explorer` (a pure function, tested).

    Cell points move the fraction ``pull`` of the way from their centre to the target
    (1: every cell regresses it exactly); selector logits are ``−4.6 + focus · r_t`` (the
    official prior, sharpened toward the cells that regress well). Returns ``{"r" (h, w),
    "w" (h, w), "c" (h, w) sigmoid scores, "loss"}``.
    """
    h, w = grid
    tg = torch.tensor([float(target[0]), float(target[1])], dtype=torch.float64)
    centres = sar_cell_centres((h, w), dtype=torch.float64).reshape(1, 1, h * w, 2)
    points = centres + float(pull) * (tg - centres)
    r = sar_quality(points, tg.reshape(1, 1, 2), lam, (w, h))
    logits = -4.6 + float(focus) * r
    lw = sar_log_weights(logits, normalization)
    loss = sar_loss(points, logits, tg.reshape(1, 1, 2), None, lam, (w, h), normalization=normalization)
    return {"r": r.reshape(h, w).numpy(), "w": lw.exp().reshape(h, w).numpy(),
            "c": torch.sigmoid(logits).reshape(h, w).numpy(), "loss": float(loss)}


def objective_explorer(grid=(8, 8), target=(3.3, 4.2)):
    """Sliders: target x/y, λ, selector focus, regressor pull, normalisation. Returns a widget."""
    h, w = grid
    s = dict(continuous_update=False)
    sl = {"x": W.FloatSlider(value=target[0], min=-2, max=w + 1, step=0.1, description="target x", **s),
          "y": W.FloatSlider(value=target[1], min=-2, max=h + 1, step=0.1, description="target y", **s),
          "lam": W.FloatSlider(value=16.0, min=1, max=64, step=1, description="λ", **s),
          "focus": W.FloatSlider(value=0.0, min=0, max=20, step=0.5, description="selector focus", **s),
          "pull": W.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="regressor pull", **s),
          "norm": W.Dropdown(options=["two_step", "softmax"], value="two_step", description="normalise")}
    fig = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=["r_t (Eq. 8)", "w_t (Eq. 9)"]))
    for col in (1, 2):
        fig.add_heatmap(z=np.zeros(grid), colorscale="Viridis", showscale=False, row=1, col=col)
        fig.add_scatter(x=[target[0]], y=[target[1]], mode="markers", showlegend=False,
                        marker=dict(symbol="star", size=14, color="gold", line=dict(width=1)), row=1, col=col)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{col}", row=1, col=col)
    fig.update_layout(width=620, height=330, margin=dict(l=10, r=10, t=40, b=10))
    out = W.HTML()

    def update(_=None):
        v = {k: c.value for k, c in sl.items()}
        res = toy_objective((v["x"], v["y"]), grid, v["lam"], v["focus"], v["pull"], v["norm"])
        with fig.batch_update():
            fig.data[0].z, fig.data[2].z = res["r"], res["w"]
            for i in (1, 3):
                fig.data[i].x, fig.data[i].y = [v["x"]], [v["y"]]
        out.value = (f"<b>loss −log Σ w r = {res['loss']:.4f}</b> &nbsp; Σ w r = {np.exp(-res['loss']):.4f}"
                     f" &nbsp; max c = {res['c'].max():.3f} &nbsp; max w = {res['w'].max():.3f}")

    for c in sl.values():
        c.observe(update, "value")
    update()
    return W.HBox([W.VBox(list(sl.values()) + [out]), fig])


def cell_field_explorer(image, selector_logits, offsets, keypoints=None, input_size=None,
                        names=KEYPOINT_NAMES):
    """A joint dropdown and a minimum-weight slider over one crop's SAR outputs.

    Args: image ``(H, W, 3)`` uint8; selector_logits ``(K, h, w)``; offsets ``(K, 2, h, w)``
    heatmap px; keypoints ``(K, 2)`` ground truth in input px (optional).
    """
    sel = np.asarray(selector_logits, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.float64)
    H, Wd = np.asarray(image).shape[:2]
    input_size = input_size or (H, Wd)
    joint = W.Dropdown(options=[(n, k) for k, n in enumerate(names[:sel.shape[0]])], value=0,
                       description="joint")
    floor = W.FloatLogSlider(value=1e-4, base=10, min=-6, max=-0.5, step=0.25,
                             description="min w", continuous_update=False)
    fig = go.FigureWidget([image_trace(image)])
    n_fixed = 1
    fig.update_xaxes(range=[-0.5, Wd - 0.5], showticklabels=False)
    fig.update_yaxes(range=[H - 0.5, -0.5], showticklabels=False, scaleanchor="x")
    fig.update_layout(width=520, height=560, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.02))
    out = W.HTML()

    def update(_=None):
        k = joint.value
        field = cell_field(sel[k], off[k], input_size)
        tgt = None if keypoints is None else np.asarray(keypoints, dtype=np.float64)[k]
        traces = cell_field_traces(field, tgt, min_weight=floor.value)
        with fig.batch_update():
            fig.data = fig.data[:n_fixed]
            for t in traces:
                fig.add_trace(t)
        best = field["points"][field["best"]]
        err = "" if tgt is None else f", error {np.linalg.norm(best - tgt):.2f} px"
        out.value = (f"{(field['w'] >= floor.value).sum()} of {field['w'].size} cells shown; "
                     f"top-1 c = {field['c'].max():.3f}{err}")

    joint.observe(update, "value")
    floor.observe(update, "value")
    update()
    return W.VBox([W.HBox([joint, floor]), out, fig])


def cell_readout(selector_logits, offsets, cell, input_size) -> dict:
    """One grid cell of one joint's SAR outputs (a pure function, tested): its score
    ``c = σ(s)`` and weight ``w = c / Σc`` (Eq. 9), its offset and regressed point
    ``K_t = p_t + offset`` (Eq. 5) in input px, and the decoded point (Eq. 11, m = 1: the point
    of the highest-c cell).

    Args: selector_logits ``(h, w)``; offsets ``(2, h, w)`` heatmap px; cell ``(row, col)``;
    input_size ``(H, W)``. Returns ``{"cell", "c", "w", "offset_px" (2,), "centre" (2,),
    "point" (2,), "decoded" (2,), "decoded_cell", "is_selected"}`` (input px).
    """
    field = cell_field(selector_logits, offsets, input_size)
    h, w = np.asarray(selector_logits).shape
    i, j = (int(cell[0]), int(cell[1]))
    if not (0 <= i < h and 0 <= j < w):
        raise ValueError(f"cell must lie in the {h}x{w} grid, got {cell!r}")
    t = i * w + j
    best = field["best"]
    return {"cell": (i, j), "c": float(field["c"][t]), "w": float(field["w"][t]),
            "offset_px": field["points"][t] - field["centres"][t], "centre": field["centres"][t],
            "point": field["points"][t], "decoded": field["points"][best],
            "decoded_cell": (best // w, best % w), "is_selected": t == best}


def selector_regressor_explorer(image, selector_logits, offsets, keypoints=None, input_size=None,
                                names=KEYPOINT_NAMES):
    """Pick a joint and a grid cell: the selector map ``c_t`` (left, the picked cell boxed) and
    the crop (right) with that cell's centre, its regressed point (the line is its offset), the
    decoded top-1 point and the ground truth; the line below prints :func:`cell_readout`.

    Args: image ``(H, W, 3)`` uint8; selector_logits ``(K, h, w)``; offsets ``(K, 2, h, w)``
    heatmap px; keypoints ``(K, 2)`` ground truth in input px (optional).
    """
    sel = np.asarray(selector_logits, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.float64)
    if sel.ndim != 3 or off.shape != (sel.shape[0], 2) + sel.shape[1:]:
        raise ValueError(f"selector_logits must be (K, h, w) and offsets (K, 2, h, w); got {sel.shape} and {off.shape}")
    K, h, w = sel.shape
    H, Wd = np.asarray(image).shape[:2]
    input_size = tuple(input_size or (H, Wd))
    joint = W.Dropdown(options=[(n, k) for k, n in enumerate(names[:K])], value=0, description="joint")
    row = W.IntSlider(value=h // 2, min=0, max=h - 1, description="cell row", continuous_update=False)
    col = W.IntSlider(value=w // 2, min=0, max=w - 1, description="cell col", continuous_update=False)
    fig = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=("selector c_t = σ(s_t)", "crop")))
    fig.add_heatmap(z=np.zeros((h, w)), colorscale="Viridis", zmin=0, zmax=1, showscale=False, row=1, col=1)
    fig.add_scatter(x=[0], y=[0], mode="markers", marker=dict(symbol="square-open", size=14, color="red",
                                                               line=dict(width=3)), name="picked cell", row=1, col=1)
    fig.add_trace(image_trace(image), row=1, col=2)
    fig.add_scatter(x=[0, 0], y=[0, 0], mode="lines+markers", name="cell centre → its point",
                    marker=dict(size=[6, 10], color="red"), line=dict(color="red"), row=1, col=2)
    fig.add_scatter(x=[0], y=[0], mode="markers", name="decoded (top-1)",
                    marker=dict(symbol="x", size=12, color="cyan"), row=1, col=2)
    fig.add_scatter(x=[], y=[], mode="markers", name="ground truth",  # no NaN: a widget message must be JSON
                    marker=dict(symbol="star", size=13, color="gold", line=dict(width=1, color="black")), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_xaxes(range=[-0.5, Wd - 0.5], showticklabels=False, row=1, col=2)
    fig.update_yaxes(range=[H - 0.5, -0.5], showticklabels=False, row=1, col=2)
    fig.update_layout(width=800, height=430, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.05))
    out = W.HTML()

    def update(_=None):
        k = joint.value
        r = cell_readout(sel[k], off[k], (row.value, col.value), input_size)
        gt = None if keypoints is None else np.asarray(keypoints, dtype=np.float64)[k]
        with fig.batch_update():
            fig.data[0].z = 1 / (1 + np.exp(-sel[k]))
            fig.data[1].x, fig.data[1].y = [col.value], [row.value]
            fig.data[3].x, fig.data[3].y = [r["centre"][0], r["point"][0]], [r["centre"][1], r["point"][1]]
            fig.data[4].x, fig.data[4].y = [r["decoded"][0]], [r["decoded"][1]]
            fig.data[5].x, fig.data[5].y = ([], []) if gt is None else ([gt[0]], [gt[1]])
        err = "" if gt is None else f"; decoded point {np.linalg.norm(r['decoded'] - gt):.2f} px from the truth"
        out.value = (f"cell {r['cell']}: c = {r['c']:.3f}, w = {r['w']:.4f}, offset ({r['offset_px'][0]:+.2f}, "
                     f"{r['offset_px'][1]:+.2f}) px, point ({r['point'][0]:.2f}, {r['point'][1]:.2f}); decoded "
                     f"({r['decoded'][0]:.2f}, {r['decoded'][1]:.2f}) from cell {r['decoded_cell']}"
                     f"{' (this cell)' if r['is_selected'] else ''}{err}")

    for control in (joint, row, col):
        control.observe(update, "value")
    update()
    return W.VBox([W.HBox([joint, row, col]), out, fig])
