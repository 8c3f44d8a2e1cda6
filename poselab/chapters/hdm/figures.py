"""Plotly figures for the HDM chapter (static ``go.Figure`` builders over analysis arrays)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["heatmaps_figure", "displacement_figure", "transport_plan_figure", "bars_figure", "minimiser_bias_figure",
           "validation_curves_figure", "theorem1_training_figure"]


def heatmaps_figure(maps, titles, keypoint=None, height=300):
    """Side-by-side heatmaps (list of (H, W) arrays) with the keypoint marked."""
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=list(titles))
    for c, m in enumerate(maps, start=1):
        fig.add_trace(go.Heatmap(z=np.asarray(m), colorscale="Viridis", showscale=False), 1, c)
        if keypoint is not None:
            fig.add_trace(go.Scatter(x=[keypoint[0]], y=[keypoint[1]], mode="markers",
                                     marker=dict(symbol="x", size=10, color="red"),
                                     showlegend=False), 1, c)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c}", row=1, col=c)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def displacement_figure(curves):
    """Each loss (normalised to its maximum) and the localisation error vs peak displacement."""
    d = curves["displacement"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for name in ("mse", "emd"):
        y = np.asarray(curves[name])
        fig.add_trace(go.Scatter(x=d, y=y / y.max(), name=f"{name.upper()} / max"))
    fig.add_trace(go.Scatter(x=d, y=curves["err_argmax"], name="localisation error (px)",
                             line=dict(dash="dot")), secondary_y=True)
    fig.update_layout(xaxis_title="peak displacement (heatmap px)", height=350,
                      yaxis_title="loss / max", margin=dict(l=10, r=10, t=30, b=10))
    fig.update_yaxes(title_text="error (px)", secondary_y=True)
    return fig


def transport_plan_figure(suppliers, plan, positions, masses):
    """Where each pixel's mass goes: the suppliers, then each demander's share of the plan."""
    titles = ["suppliers S (Eq. 3)"] + [f"to demander {j}: d={float(masses[j]):.2f}" for j in range(4)]
    fig = make_subplots(rows=1, cols=5, subplot_titles=titles)
    maps = [suppliers] + [plan[..., j] for j in range(4)]
    for c, m in enumerate(maps, start=1):
        fig.add_trace(go.Heatmap(z=np.asarray(m), colorscale="Magma", showscale=False), 1, c)
        fig.add_trace(go.Scatter(x=np.asarray(positions)[:, 0], y=np.asarray(positions)[:, 1],
                                 mode="markers", marker=dict(size=6, color="cyan"),
                                 showlegend=False), 1, c)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c}", row=1, col=c)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def bars_figure(groups: dict, title: str, yaxis: str):
    """Grouped bars: ``{group: {series: value}}``."""
    series = sorted({s for g in groups.values() for s in g})
    fig = go.Figure([go.Bar(name=s, x=list(groups), y=[groups[g].get(s, np.nan) for g in groups])
                     for s in series])
    fig.update_layout(barmode="group", title=title, yaxis_title=yaxis, height=320,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def minimiser_bias_figure(curve, paper_reg: float = 1.0):
    """Where the HDM loss's minimiser decodes, against reg (a
    :func:`poselab.chapters.hdm.minimiser.minimiser_bias_curve`): mean and largest offset from
    the dot (px), the naive demander's rounding error for scale, the paper's reg marked."""
    reg = np.asarray(curve["reg"], dtype=float)
    fig = go.Figure([go.Scatter(x=reg, y=curve["mean_offset"], mode="lines+markers", name="mean offset"),
                     go.Scatter(x=reg, y=curve["max_offset"], mode="lines+markers", name="largest offset",
                                line=dict(dash="dot"))])
    fig.add_hline(y=float(curve["rounding_error"]), line=dict(color="grey", dash="dash"),
                  annotation_text="rounding error (naive demander)", annotation_position="top left")
    fig.add_vline(x=paper_reg, line=dict(color="firebrick", dash="dash"),
                  annotation_text=f"paper: reg = {paper_reg:g}", annotation_position="top right")
    fig.update_layout(title=f"Minimiser of the HDM loss: decoded offset from the dot ({curve['n_keypoints']} keypoints)",
                      xaxis_title="entropic regularisation reg (heatmap px)", yaxis_title="offset (px)",
                      xaxis_type="log", height=340, width=760, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def validation_curves_figure(curves, metric: str = "AP", title: str = "", width: int = 760):
    """Validation curves of several recipes over training: each recipe's mean over seeds (line)
    and its seeds' range (band, min to max), with every seed's curve faint underneath.

    ``curves``: ``{recipe: [(steps, values) per seed]}`` (e.g.
    :func:`poselab.chapters.hdm.training.consistency_curves`); seeds are interpolated onto the
    first seed's steps for the mean and band."""
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    fig = go.Figure()
    for i, (recipe, runs) in enumerate(curves.items()):
        runs = [(np.asarray(s, dtype=float), np.asarray(v, dtype=float)) for s, v in runs if len(s)]
        if not runs:
            continue
        colour = colours[i % len(colours)]
        grid = runs[0][0]
        stack = np.array([np.interp(grid, s, v) for s, v in runs])
        for s, v in runs:
            fig.add_trace(go.Scatter(x=s, y=v, mode="lines", line=dict(color=colour, width=0.6),
                                     opacity=0.35, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=np.concatenate([grid, grid[::-1]]),
                                 y=np.concatenate([stack.max(0), stack.min(0)[::-1]]), fill="toself",
                                 fillcolor=colour, opacity=0.15, line=dict(width=0), showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=grid, y=stack.mean(0), mode="lines+markers", line=dict(color=colour),
                                 name=f"{recipe} (mean of {len(runs)} seeds; band: range)"))
    fig.update_layout(title=title, xaxis_title="training step", yaxis_title=f"validation {metric}",
                      height=360, width=width, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def theorem1_training_figure(tracked, width: int = 760):
    """HDM Theorem 1's terms along a run (a
    :func:`poselab.chapters.hdm.training.theorem1_along_training` result): R_Gau (what MSE
    training lowers), R_dot, 2E⟨H_pred, H_Gau⟩, 2E⟨H_pred, H_dot⟩ and the constant C against the
    step, with the run's validation AP on a second axis when it validated."""
    rows = sorted(tracked["rows"], key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, name, dash in (("R_gau", "R_Gau (MSE to the Gaussian)", None), ("R_dot", "R_dot (MSE to the dot)", None),
                            ("E_pred_gau", "2E⟨H_pred, H_Gau⟩", "dot"),
                            ("E_pred_dot", "2E⟨H_pred, H_dot⟩", "dot"),
                            ("C", "C = E‖H_Gau − H_dot‖²", "dash")):
        scale = 2.0 if key.startswith("E_") else 1.0
        fig.add_trace(go.Scatter(x=steps, y=[scale * r[key] for r in rows], mode="lines+markers", name=name,
                                 line=dict(dash=dash)), secondary_y=False)
    if tracked.get("validation"):
        s, v = zip(*tracked["validation"])
        fig.add_trace(go.Scatter(x=s, y=v, mode="lines+markers", name="validation AP",
                                 line=dict(color="black", width=3)), secondary_y=True)
        fig.update_yaxes(title_text="validation AP", secondary_y=True)
    fig.update_layout(title=f"Theorem 1 along the {tracked['recipe']} run (seed {tracked['seed']}, "
                            f"{tracked['n_crops']} validation crops; per crop, summed over joints)",
                      xaxis_title="training step", yaxis_title="risk / term", height=380, width=width,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig
