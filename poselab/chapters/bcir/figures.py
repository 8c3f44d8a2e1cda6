"""Plotly figures for the BCIR chapter (static ``go.Figure`` builders over
:mod:`poselab.chapters.bcir.analysis` arrays; widths ≤ 900 px so they fit a 1280-px notebook)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from poselab.viz.sentence import Sentence

__all__ = ["MARKERS", "heatmap_points_figure", "bias_figure", "spread_figure", "breakdown_figure",
           "epe_figure", "shrinkage_figure", "gradient_figure", "toy_frames_figure",
           "toy_error_figure", "activation_figure", "split_bars_figure", "curves_figure",
           "sigma_sweep_figure", "peak_sigma_figure", "collapse_rows", "collapse_sentence"]

#: marker style per point name (used by the figures and the widgets)
MARKERS = {
    "true": dict(symbol="circle", size=11, color="red"),
    "soft-argmax": dict(symbol="triangle-up", size=12, color="black"),
    "Eq. 37": dict(symbol="x", size=10, color="orange"),
    "compensated": dict(symbol="diamond-open", size=13, color="cyan", line=dict(width=2)),
    "centre": dict(symbol="cross-thin-open", size=14, color="white", line=dict(width=2)),
    "argmax": dict(symbol="square-open", size=11, color="magenta", line=dict(width=2)),
}


def heatmap_points_figure(heatmap, points: Mapping[str, Sequence[float]], title: str = "",
                          width: int = 420, height: int = 480, zmax: float | None = None) -> go.Figure:
    """One heatmap with named points (``MARKERS`` styles), y pointing down."""
    fig = go.Figure(go.Heatmap(z=np.asarray(heatmap), colorscale="Viridis", zmax=zmax,
                               colorbar=dict(thickness=10)))
    for name, (x, y) in points.items():
        fig.add_scatter(x=[x], y=[y], mode="markers", name=name,
                        marker=MARKERS.get(name, dict(size=10)))
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(title=title, width=width, height=height, margin=dict(l=30, r=10, t=40, b=30),
                      legend=dict(orientation="h", y=-0.08))
    return fig


def bias_figure(curve: Mapping, axis: int = 0, title: str = "") -> go.Figure:
    """Measured soft-argmax bias against the blob position, with Eq. 37 and the compensated
    point (:func:`poselab.chapters.bcir.analysis.bias_curve`)."""
    a = "xy"[axis]
    pos = np.asarray(curve["true"])[:, axis]
    fig = go.Figure()
    fig.add_scatter(x=pos, y=np.asarray(curve["measured"])[:, axis] - pos, mode="markers",
                    name="soft-argmax − true (measured)", marker=dict(size=8, color="black"))
    fig.add_scatter(x=pos, y=np.asarray(curve["eq37"])[:, axis] - pos, mode="lines",
                    name="Eq. 37", line=dict(color="orange", width=2))
    fig.add_scatter(x=pos, y=np.asarray(curve["compensated"])[:, axis] - pos, mode="lines",
                    name="compensated (Eq. 38) − true", line=dict(color="teal", dash="dash"))
    fig.update_layout(title=title or f"bias along {a}", xaxis_title=f"true {a} (heatmap px)",
                      yaxis_title=f"bias in {a} (px)", width=640, height=340,
                      margin=dict(l=60, r=10, t=40, b=50))
    return fig


def spread_figure(spread: Mapping, title: str = "") -> go.Figure:
    """Bias magnitude vs blob σ at fixed mass and fixed peak (:func:`bias_vs_spread`)."""
    fig = go.Figure()
    fig.add_scatter(x=spread["sigma"], y=spread["fixed_mass"], mode="lines+markers",
                    name="fixed mass (a density): flatter = more bias")
    fig.add_scatter(x=spread["sigma"], y=spread["fixed_peak"], mode="lines+markers",
                    name="fixed peak: wider = more mass = less bias")
    fig.update_layout(title=title, xaxis_title="blob σ (px)", yaxis_title="‖soft-argmax − true‖ (px)",
                      width=640, height=340, margin=dict(l=60, r=10, t=40, b=50),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def breakdown_figure(breakdown: Mapping) -> go.Figure:
    """Error of the raw and compensated soft-argmax in the three broken cases
    (:func:`compensation_breakdown`), log scale."""
    titles = {"border": "blob clipped by the border", "two_modes": "a second mode",
              "background": "non-zero background"}
    xlab = {"border": "distance of the centre to the border (px)",
            "two_modes": "second mode's relative height", "background": "background level b"}
    fig = make_subplots(rows=1, cols=3, subplot_titles=[titles[k] for k in titles])
    for c, key in enumerate(titles, start=1):
        d = breakdown[key]
        for name, dash in (("raw", "solid"), ("compensated", "dash")):
            y = np.maximum(np.asarray(d[name]), 1e-12)
            fig.add_scatter(x=d["x"], y=y, mode="lines", name=name, line=dict(dash=dash),
                            showlegend=c == 1, legendgroup=name,
                            line_color="black" if name == "raw" else "teal", row=1, col=c)
        fig.update_xaxes(title_text=xlab[key], row=1, col=c)
        fig.update_yaxes(type="log", row=1, col=c)
    fig.update_yaxes(title_text="error (px)", row=1, col=1)
    fig.update_layout(width=820, height=340, margin=dict(l=60, r=10, t=40, b=60))
    return fig


def epe_figure(configs: Mapping, gap: Mapping) -> go.Figure:
    """Left: E_de against E_re over random symmetric configurations (Eq. 7, 8) with the
    diagonal; right: E_de − E_re against the window size s (:func:`epe_gap_vs_spread`)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["random symmetric configurations",
                                                        "advantage of expectation vs spread"])
    e_re, e_de = np.asarray(configs["e_re"]), np.asarray(configs["e_de"])
    fig.add_scatter(x=e_re, y=e_de, mode="markers", marker=dict(size=4, color=configs["s"],
                    colorscale="Viridis", showscale=False), name="configurations", row=1, col=1)
    top = float(max(e_re.max(), e_de.max()))
    fig.add_scatter(x=[0, top], y=[0, top], mode="lines", line=dict(color="red", dash="dot"),
                    name="E_de = E_re", row=1, col=1)
    for i, off in enumerate(gap["offset"]):
        fig.add_scatter(x=gap["s"], y=gap["gap"][i], mode="lines+markers",
                        name=f"‖J − μ‖ = {off:g} px", row=1, col=2)
    fig.update_xaxes(title_text="E_re = ‖J − μ‖ (px)", row=1, col=1)
    fig.update_yaxes(title_text="E_de (px)", row=1, col=1)
    fig.update_xaxes(title_text="support half-width s (px)", row=1, col=2)
    fig.update_yaxes(title_text="E_de − E_re (px)", row=1, col=2)
    fig.update_layout(width=820, height=380, margin=dict(l=60, r=10, t=40, b=50))
    return fig


def shrinkage_figure(curves: Mapping, sigma_true: float = 2.0) -> go.Figure:
    """D_B (Eq. 12) against σ̂ for several offsets, with its numerical minimum σ* (stars)
    (:func:`shrinkage_curves`)."""
    palette = plotly.colors.DEFAULT_PLOTLY_COLORS
    fig = go.Figure()
    s = np.asarray(curves["sigma"])
    for i, off in enumerate(curves["offsets"]):
        color = palette[i % len(palette)]
        fig.add_scatter(x=s, y=curves["distance"][i], mode="lines", name=f"μ − μ_true = {off:g}",
                        legendgroup=str(i), line=dict(color=color))
        star = float(curves["sigma_star"][i])
        fig.add_scatter(x=[star], y=[float(np.interp(star, s, curves["distance"][i]))], mode="markers",
                        marker=dict(size=12, symbol="star", color=color), showlegend=False,
                        legendgroup=str(i), hovertemplate="σ* = %{x:.3f}<extra></extra>")
    fig.add_scatter(x=[sigma_true, sigma_true], y=[0, 1.5], mode="lines", name="σ_true",
                    line=dict(color="grey", dash="dot"))
    fig.update_layout(xaxis_title="predicted σ̂ (px, log scale)", yaxis_title="Bhattacharyya distance (Eq. 12)",
                      xaxis=dict(type="log", range=[np.log10(s.min()), np.log10(s.max())]),
                      yaxis_range=[0, 1.5], width=640, height=360, margin=dict(l=60, r=10, t=30, b=50))
    return fig


def gradient_figure(factors: Mapping, autograd, gt, title: str = "") -> go.Figure:
    """Eq. 23 side by side: value factor, location factor, their product, and autograd."""
    maps = [factors["value"], factors["location"], factors["gradient"], autograd]
    names = ["value factor β h̃", "location factor", "Eq. 23 = value × location", "autograd"]
    fig = make_subplots(rows=1, cols=4, subplot_titles=names, horizontal_spacing=0.03)
    for c, m in enumerate(maps, start=1):
        m = np.asarray(m)
        lim = float(np.abs(m).max()) or 1.0
        signed = c > 1
        fig.add_trace(go.Heatmap(z=m, colorscale="RdBu_r" if signed else "Viridis",
                                 zmin=-lim if signed else 0, zmax=lim, showscale=False), 1, c)
        fig.add_scatter(x=[gt[0]], y=[gt[1]], mode="markers", marker=MARKERS["true"],
                        showlegend=False, row=1, col=c)
        fig.add_scatter(x=[factors["prediction"][0]], y=[factors["prediction"][1]], mode="markers",
                        marker=MARKERS["soft-argmax"], showlegend=False, row=1, col=c)
        fig.update_yaxes(autorange="reversed", row=1, col=c, showticklabels=c == 1)
    fig.update_layout(title=title, width=820, height=330, margin=dict(l=30, r=10, t=60, b=20))
    return fig


def toy_frames_figure(dynamics: Mapping, frame: int = -1, gt=(34.0, 46.0),
                      cases: Sequence[int] = (1, 2, 3, 4)) -> go.Figure:
    """Fig. 6 as small multiples: rows regression / detection, one column per case, the heatmap
    at ``frame`` with the prediction's path and the ground truth."""
    fig = make_subplots(rows=2, cols=len(cases), horizontal_spacing=0.02, vertical_spacing=0.08,
                        subplot_titles=[f"case {c}" for c in cases],
                        row_titles=["regression", "detection"])
    for r, method in enumerate(("regression", "detection"), start=1):
        for c, case in enumerate(cases, start=1):
            d = dynamics[case][method]
            fig.add_trace(go.Heatmap(z=d["frames"][frame], colorscale="Viridis", showscale=False), r, c)
            path = d["predictions"][: (len(d["predictions"]) if frame == -1 else frame + 1)]
            fig.add_scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", showlegend=False,
                            line=dict(color="white", width=1), marker=dict(size=4, color="white"),
                            row=r, col=c)
            fig.add_scatter(x=[gt[0]], y=[gt[1]], mode="markers", marker=MARKERS["true"],
                            showlegend=False, row=r, col=c)
            fig.update_yaxes(autorange="reversed", showticklabels=False, row=r, col=c)
            fig.update_xaxes(showticklabels=False, row=r, col=c)
    step = int(dynamics[cases[0]]["regression"]["steps"][frame])
    fig.update_layout(title=f"h ← h − γ∇ after {step} steps (Eq. 24); white: prediction's path, "
                            "red: ground truth", width=820, height=560,
                      margin=dict(l=40, r=40, t=70, b=10))
    return fig


def toy_error_figure(dynamics: Mapping) -> go.Figure:
    """Distance of the prediction to the ground truth against the step, per case and method."""
    fig = go.Figure()
    colors = ["#636efa", "#ef553b", "#00cc96", "#ab63fa"]
    for i, case in enumerate(dynamics):
        for method, dash in (("regression", "solid"), ("detection", "dot")):
            d = dynamics[case][method]
            fig.add_scatter(x=d["steps"], y=d["errors"], mode="lines", name=f"case {case} {method}",
                            line=dict(color=colors[i % 4], dash=dash))
    fig.update_layout(xaxis_title="step", yaxis_title="‖prediction − truth‖ (px)", width=760,
                      height=360, margin=dict(l=60, r=10, t=30, b=50))
    return fig


def activation_figure(s_values, curves: Mapping[str, np.ndarray], title: str = "A(s), Eq. 26") -> go.Figure:
    """Mean activation sum A(s) against s for each named series (e.g. ``"ipr easy"``)."""
    fig = go.Figure()
    for name, c in curves.items():
        fig.add_scatter(x=list(s_values), y=np.asarray(c), mode="lines+markers", name=name)
    fig.update_layout(title=title, xaxis_title="s (window (2s+1)², heatmap px)",
                      yaxis_title="mean A(s)", yaxis_range=[0, 1.02], width=640, height=360,
                      margin=dict(l=60, r=10, t=40, b=50))
    return fig


def split_bars_figure(groups: Mapping[str, Mapping[str, Mapping]], metric: str,
                      title: str = "") -> go.Figure:
    """Grouped bars ``{series: {split: {"mean", "std", "n"}}}`` over easy / medium / hard, with
    ± std and the count in the hover."""
    fig = go.Figure()
    for series, splits in groups.items():
        names = list(splits)
        fig.add_bar(name=series, x=names, y=[splits[k]["mean"] for k in names],
                    error_y=dict(type="data", array=[splits[k]["std"] for k in names], visible=True),
                    customdata=[splits[k]["n"] for k in names],
                    hovertemplate="%{x}: %{y:.3f} (n = %{customdata})<extra>" + series + "</extra>")
    fig.update_layout(barmode="group", title=title, yaxis_title=metric, width=640, height=340,
                      margin=dict(l=60, r=10, t=40, b=40))
    return fig


def curves_figure(curves: Mapping[str, tuple], metric: str = "AP", title: str = "") -> go.Figure:
    """Validation ``metric`` against epochs trained, one line per run (Fig. 8): ``{name:
    (epochs, values)}`` from :func:`poselab.chapters.bcir.analysis.learning_curve`."""
    fig = go.Figure()
    for name, (e, v) in curves.items():
        fig.add_scatter(x=np.asarray(e), y=np.asarray(v), mode="lines+markers", name=name)
    if not any(np.asarray(e).size for e, _ in curves.values()):  # e.g. the fast preset: no validation at all
        fig.add_annotation(text="no validation during training at this preset: no curve to draw",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_layout(title=title, xaxis_title="epochs trained", yaxis_title=metric, width=640,
                      height=340, margin=dict(l=60, r=10, t=40, b=50))
    return fig


def sigma_sweep_figure(points: Mapping, title: str = "Fig. 5(d): detection AP against the training σ") -> go.Figure:
    """AP against the Gaussian target's σ (:func:`~poselab.chapters.bcir.analysis.sigma_sweep_points`):
    one dot per recorded seed, the mean of each σ joined by a line, and every missing (σ, seed)
    cell drawn as an open grey marker on the axis and named under the plot."""
    sig = [float(s) for s in points["sigma"]]
    fig = go.Figure()
    xs, ys = [], []
    for s in sig:
        for seed, v in sorted(points["values"][s].items()):
            xs.append(s)
            ys.append(v)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="one seed",
                             marker=dict(size=9, color="#0072B2")))
    means = [(s, float(np.nanmean(list(points["values"][s].values())))) for s in sig if points["values"][s]]
    if means:
        fig.add_trace(go.Scatter(x=[m[0] for m in means], y=[m[1] for m in means], mode="lines",
                                 name="mean over seeds", line=dict(color="#0072B2", dash="dot")))
    if points["missing"]:
        fig.add_trace(go.Scatter(x=[float(s) for s, _, _ in points["missing"]], y=[0.0] * len(points["missing"]),
                                 mode="markers", name="missing cell (no record)",
                                 marker=dict(symbol="x-open", size=11, color="grey")))
    gaps = sorted({(float(s), name) for s, name, _ in points["missing"]})
    note = ("missing: " + "; ".join(f"σ = {s:g} ({name}) seed "
                                    + ", ".join(str(seed) for t, _, seed in points["missing"] if float(t) == s)
                                    for s, name in gaps)) if gaps else "every cell recorded"
    fig.update_layout(title=title, width=760, height=420, xaxis_title="training target σ (heatmap px)",
                      yaxis_title=points.get("metric", "AP"), yaxis_range=[-0.03, 1.0],
                      margin=dict(b=110),
                      annotations=[dict(text=note, xref="paper", yref="paper", x=0, y=-0.3, showarrow=False,
                                        xanchor="left", font=dict(size=11))])
    fig.update_xaxes(tickvals=sig)
    return fig


def peak_sigma_figure(study: Mapping, rows: Mapping, title: str = "best-fit σ of the detector's maps") -> go.Figure:
    """Histograms of the best-fit σ per split (:func:`~poselab.chapters.bcir.analysis.peak_sigma_study`)
    with §4.3's predicted range per split (:func:`~poselab.chapters.bcir.analysis.peak_sigma_rows`):
    dashed at σ_eff (offset 0), dotted at σ* for the measured offset."""
    colours = {"easy": "#0072B2", "hard": "#D55E00"}
    fig = go.Figure()
    sig = np.asarray(study["sigma"], dtype=np.float64)
    split = np.asarray(study["split"])
    for name, colour in colours.items():
        values = sig[(split == name) & np.isfinite(sig)]
        if values.size:
            fig.add_trace(go.Histogram(x=values, name=f"{name} (n = {values.size})", histnorm="probability",
                                       xbins=dict(start=0.0, end=8.0, size=0.1), opacity=0.6,
                                       marker_color=colour))
        r = rows.get(name, {})
        for key, dash in (("σ_eff = √(σ_L² + σ_true²)", "dash"), ("Eq. 12–14 σ* at Δ", "dot")):
            if np.isfinite(r.get(key, np.nan)):
                fig.add_vline(x=r[key], line=dict(color=colour, dash=dash, width=2))
    fig.update_layout(title=title, barmode="overlay", width=760, height=380,
                      xaxis_title="best-fit σ (heatmap px); dashed σ_eff, dotted σ* at the measured offset",
                      yaxis_title="share of joints", xaxis_range=[0, 8])
    return fig


def collapse_rows(study: Mapping, other: Mapping | None = None) -> list[dict]:
    """Table rows of :func:`poselab.chapters.bcir.analysis.collapse_study` (one per start × loss ×
    compensation), with ``other``'s (the float32 study's) end spread and label beside."""
    rows = []
    for i, r in enumerate(study["rows"]):
        row = {"start": f"case {r['case']}", "loss": r["loss"].upper(),
               "compensated": "yes" if r["compensated"] else "no",
               "90 % of mass on (px), step 0": r["start_px"], f"… step {study['steps']}": r["end_px"],
               "spread": r["label"], "error (px), step 0": r["start_error_px"],
               f"error (px), step {study['steps']}": r["end_error_px"]}
        if other is not None:
            o = other["rows"][i]
            row.update({f"{other['dtype']}: px": o["end_px"], f"{other['dtype']}: spread": o["label"]})
        rows.append(row)
    return rows


def collapse_sentence(study: Mapping, checks: Mapping) -> Sentence:
    """What the collapse table shows, from :func:`poselab.chapters.bcir.analysis.collapse_checks`:
    what holds of the paper's causal claim on the toy and what does not."""
    def row(case, loss, compensated):
        return next(r for r in study["rows"] if (r["case"], r["loss"], r["compensated"]) == (case, loss, compensated))

    l2p, l2c, l1p, l1c = row(4, "l2", False), row(4, "l2", True), row(4, "l1", False), row(4, "l1", True)
    verb = "collapses" if l2p["label"] == "collapsed" else "does not collapse"
    held = (f"from the σ = 2 blob at the truth (case 4), L2 {verb} "
            f"the plain soft-argmax's map ({l2p['start_px']} → {l2p['end_px']} px holding 90 % of the mass) and "
            f"{'keeps' if l2c['label'] == 'kept' else 'does not keep'} the compensated one's "
            f"({l2c['start_px']} → {l2c['end_px']} px"
            + (f"; its point is exact from step 0, error {l2c['start_error_px']:.1g} px, so L2 has nothing to push"
               if l2c["start_error_px"] < 1e-3 else "") + f"), while L1 ends on {l1p['end_px']} and "
            f"{l1c['end_px']} px without and with the compensation ({l1p['label']}, {l1c['label']})")
    if checks["exceptions"]:
        bad = ", ".join(f"case {c} {loss.upper()}" for c, loss in checks["exceptions"])
        others = (f"; but the compensation is no general cure: it ends on fewer pixels than the plain "
                  f"soft-argmax from {bad}")
        far = [r for r in study["rows"] if r["compensated"] and r["label"] == "collapsed" and r["end_error_px"] > 5]
        if far:
            others += (f" (from case {far[0]['case']} the compensated map collapses onto {far[0]['end_px']} px "
                       f"{far[0]['end_error_px']:.0f} px from the truth)")
    else:
        others = "; and the compensated run never ends on fewer pixels than the plain one, from any start"
    near = next((r for r in study["rows"] if r["case"] == "4 off" and r["loss"] == "l2" and r["compensated"]), None)
    if near is not None:
        others += (f"; and from the same blob {study['near']:g} px off the truth the compensated L2 map "
                   f"{'collapses too' if near['label'] == 'collapsed' else 'is ' + near['label']} "
                   f"({near['start_px']} → {near['end_px']} px)"
                   + (": the compensation spares the map only while it makes the error zero"
                      if near["label"] == "collapsed" and l2c["label"] == "kept" else ""))
    agree = (f"{' and '.join(checks['dtypes'])} give the same label in every row" if checks["dtype_agrees"] else
             f"{' and '.join(checks['dtypes'])} disagree in {len(checks['dtype_differs'])} row(s)")
    return Sentence(f"After {study['steps']} steps at β = {study['beta']:g}: {held}{others}; {agree}.")
