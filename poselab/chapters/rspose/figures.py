"""Plotly figures of the RSPose chapter (static ``go.Figure`` builders over
:mod:`poselab.chapters.rspose.analysis` arrays)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from poselab.viz.sentence import Sentence

__all__ = ["imbalance_figure", "positives_figure", "updates_figure", "gradient_balance_figure",
           "theorem1_figure", "plateau_figure", "step_cost_sentence", "table7_figure", "table7_sentence",
           "extra_claims_sentence"]


def imbalance_figure(rows: Sequence[Mapping], width: int = 820, height: int = 380) -> go.Figure:
    """|N|/|P| per label type (log scale): ours from the codecs beside RSPose Table 1."""
    names = [r["labels"] for r in rows]
    fig = go.Figure()
    fig.add_bar(x=names, y=[r["ratio"] for r in rows], name="ours (codecs)",
                text=[f"{r['ratio']:.4g}" for r in rows], textposition="outside")
    fig.add_bar(x=names, y=[np.nan if r["paper"] is None else r["paper"] for r in rows],
                name="RSPose Table 1")
    fig.update_layout(barmode="group", yaxis_type="log", yaxis_title="negatives / positives",
                      width=width, height=height, margin=dict(l=60, r=20, t=40, b=150),
                      title="Positive-negative imbalance (RSPose §4, Table 1)")
    return fig


def positives_figure(labels, title: str = "", width: int = 420, height: int = 420) -> go.Figure:
    """A target map with its positive pixels (label > 0) outlined by a contour."""
    z = np.asarray(labels, dtype=np.float64)
    fig = go.Figure(go.Heatmap(z=z, colorscale="Viridis", colorbar=dict(thickness=10)))
    fig.add_contour(z=(z > 0).astype(float), contours=dict(start=0.5, end=0.5, coloring="lines"),
                    line=dict(color="red", width=2), showscale=False, hoverinfo="skip")
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(title=title, width=width, height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def updates_figure(maps: Mapping[str, np.ndarray], keypoint=None, width: int = 820,
                   height: int = 300) -> go.Figure:
    """Side-by-side maps: the prediction, then each loss's update (red: pushed down by gradient
    descent, blue: pushed up), each on its own symmetric colour range."""
    names = list(maps)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.02)
    for c, name in enumerate(names, start=1):
        z = np.asarray(maps[name], dtype=np.float64)
        if c == 1:
            fig.add_trace(go.Heatmap(z=z, colorscale="Viridis", showscale=False), 1, c)
        else:
            m = float(np.abs(z).max()) or 1.0
            fig.add_trace(go.Heatmap(z=z, colorscale="RdBu_r", zmin=-m, zmax=m, zmid=0,
                                     showscale=False), 1, c)
        if keypoint is not None:
            fig.add_trace(go.Scatter(x=[keypoint[0]], y=[keypoint[1]], mode="markers",
                                     marker=dict(symbol="x", size=9, color="black"),
                                     showlegend=False), 1, c)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c}", showticklabels=False, row=1, col=c)
        fig.update_xaxes(showticklabels=False, row=1, col=c)
    fig.update_layout(width=width, height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def gradient_balance_figure(records: Sequence[Mapping], losses: Sequence[str] = ("mse", "spatial_rank"),
                            width: int = 820, height: int = 340) -> go.Figure:
    """RSPose Fig. 3: total |gradient| on negatives and on positives per probe step, per loss
    (left), and the signed balance Σ_P g + Σ_N g relative to Σ_P |g| (right)."""
    steps = [r["step"] for r in records]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Σ|g| on negatives / Σ|g| on positives",
                                                       "|Σ_P g + Σ_N g| / Σ_P |g|"])
    for name in losses:
        ratio = [r[name]["neg_abs"] / r[name]["pos_abs"] if r[name]["pos_abs"] else np.nan for r in records]
        fig.add_scatter(x=steps, y=ratio, mode="lines+markers", name=name, row=1, col=1)
        fig.add_scatter(x=steps, y=[max(r[name]["balance_error"], 1e-17) for r in records],
                        mode="lines+markers", name=f"{name} (balance)", row=1, col=2,
                        line=dict(dash="dot"))
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="training step")
    fig.update_layout(width=width, height=height, margin=dict(l=50, r=20, t=40, b=50))
    return fig


def theorem1_figure(checks: Mapping[str, Mapping], width: int = 700, height: int = 330) -> go.Figure:
    """Cov(OKS, Conf) beside the diagonal term (1/K²)ΣCov(L_k, C_k) and Eq. B.5 as printed, per
    model / case."""
    names = list(checks)
    fig = go.Figure()
    for key, label in (("cov", "Cov(OKS, Conf)"), ("diagonal", "(1/K²) Σ_k Cov(L_k, C_k)"),
                       ("paper_b5", "Eq. B.5 as printed: (1/K) Σ_k Cov")):
        fig.add_bar(x=names, y=[checks[n][key] for n in names], name=label)
    fig.update_layout(barmode="group", width=width, height=height, yaxis_title="covariance",
                      margin=dict(l=60, r=20, t=40, b=60), title="Theorem 1 (App. B)")
    return fig


def plateau_figure(maps: Mapping[str, np.ndarray], labels, keypoint=None, half: int | None = 9,
                   width: int = 820, height: int = 300) -> go.Figure:
    """Predicted maps side by side, each on its own colour range, cropped to ``half`` px around
    the joint (None: whole map), with the positive window (labels > 0) outlined in red, the joint
    (×) and each map's argmax (○) marked — a flat top shows as a wide bright square whose ○ can
    sit anywhere inside the outline."""
    names = list(maps)
    lab = np.asarray(labels, dtype=np.float64)
    H, W = lab.shape
    kx, ky = (np.unravel_index(int(lab.argmax()), lab.shape)[::-1] if keypoint is None else keypoint)
    if half is None:
        y0, y1, x0, x1 = 0, H, 0, W
    else:
        y0, y1 = max(0, int(round(ky)) - half), min(H, int(round(ky)) + half + 1)
        x0, x1 = max(0, int(round(kx)) - half), min(W, int(round(kx)) + half + 1)
    xs, ys = np.arange(x0, x1), np.arange(y0, y1)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.03)
    for c, name in enumerate(names, start=1):
        z = np.asarray(maps[name], dtype=np.float64)
        if z.shape != lab.shape:
            raise ValueError(f"map {name!r} has shape {z.shape}, labels {lab.shape}")
        crop = z[y0:y1, x0:x1]
        fig.add_trace(go.Heatmap(z=crop, x=xs, y=ys, colorscale="Viridis", showscale=False,
                                 hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>"), 1, c)
        fig.add_trace(go.Contour(z=(lab[y0:y1, x0:x1] > 0).astype(float), x=xs, y=ys, showscale=False,
                                 contours=dict(start=0.5, end=0.5, coloring="lines"),
                                 line=dict(color="red", width=2), hoverinfo="skip"), 1, c)
        ay, ax = np.unravel_index(int(z.argmax()), z.shape)
        fig.add_trace(go.Scatter(x=[kx, ax], y=[ky, ay], mode="markers", showlegend=False,
                                 marker=dict(symbol=["x", "circle-open"], size=[10, 12],
                                             color=["black", "white"], line=dict(width=2))), 1, c)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c}", showticklabels=False, row=1, col=c)
        fig.update_xaxes(showticklabels=False, row=1, col=c)
    fig.update_layout(width=width, height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def step_cost_sentence(verdict) -> str:
    """One sentence on the verdict of ``analysis.step_cost`` (App. D): our step-time ratio and its
    interval beside the paper's ×1.065, and the verdict."""
    s = verdict.summary
    if s.get("ratio") is None:
        return Sentence(f"The step-time claim has no ratio to show: {verdict.reason}.")
    spread = (f"interval {s['interval'][0]:.2f}–{s['interval'][1]:.2f}× over {s['n']} seeds"
              if s.get("interval") else f"{len(s['ratios'])} seed, no interval")
    return Sentence(f"A Spatial RS + Instance-Sort step took **{s['ratio']:.2f}×** an MSE step here "
                    f"({spread}) against the paper's "
                    f"{s['paper_ratio']:.3f}× on GPUs, so the claim that the overhead stays within "
                    f"{s['margin']:g}× is **{verdict.verdict}** at this scale.")


def _grid_missing(grid: Sequence[Mapping]) -> list[str]:
    return [f"δ {r['sort_delta']:g} / λ₁ {r['sort_weight']:g}" for r in grid if r["AP"] is None]


def table7_figure(grid: Sequence[Mapping], width: int = 820, height: int = 330) -> go.Figure:
    """Table 7's Spatial Sort grid (rows δ_sort, columns λ₁) as two annotated heat grids: our AP
    where the cell was trained, "not trained" where not, beside the paper's AP (ViTPose-B); the
    title names the missing cells."""
    deltas = sorted({r["sort_delta"] for r in grid})
    weights = sorted({r["sort_weight"] for r in grid})
    at = {(r["sort_delta"], r["sort_weight"]): r for r in grid}

    def z_text(key):
        z = [[np.nan if at.get((d, w)) is None or at[(d, w)][key] is None else at[(d, w)][key]
              for w in weights] for d in deltas]
        text = [["not trained" if np.isnan(v) else f"{v:.3f}" for v in row] for row in z]
        return z, text

    fig = make_subplots(rows=1, cols=2, subplot_titles=("ours (AP, generated val)", "RSPose Table 7 (AP, COCO)"),
                        horizontal_spacing=0.14)
    for col, key in ((1, "AP"), (2, "paper_AP")):
        z, text = z_text(key)
        fig.add_trace(go.Heatmap(z=z, x=[f"λ₁ {w:g}" for w in weights], y=[f"δ {d:g}" for d in deltas],
                                 text=text, texttemplate="%{text}", colorscale="Blues", showscale=False,
                                 hoverongaps=False), 1, col)
    missing = _grid_missing(grid)
    title = "Spatial Sort δ and coefficient (Table 7)" + (f" — not trained: {', '.join(missing)}" if missing else "")
    fig.update_layout(title=dict(text=title, font=dict(size=13)), width=width, height=height,
                      margin=dict(l=60, r=20, t=70, b=40))
    return fig


def table7_sentence(grid: Sequence[Mapping]) -> Sentence:
    """One sentence on the Table 7 grid: how many cells were trained, the spread of our AP over
    them beside the paper's 76.1–76.4, and which cells are missing."""
    trained = [r for r in grid if r["AP"] is not None]
    paper = [r["paper_AP"] for r in grid if r["paper_AP"] is not None]
    paper_span = f"the paper's {min(paper):.3f}–{max(paper):.3f}" if paper else "no paper values"
    if not trained:
        return Sentence(f"The grid shows none of our {len(grid)} cells (none trained or cached: set "
                        f"`train_grid=True` to train them) beside {paper_span}.")
    best = max(trained, key=lambda r: r["AP"])
    span = f"AP {min(r['AP'] for r in trained):.3f}–{max(r['AP'] for r in trained):.3f}"
    seeds = sorted({r["seeds"] for r in trained})
    missing = _grid_missing(grid)
    tail = f"; not trained: {', '.join(missing)}" if missing else ""
    where = (f"best at δ {best['sort_delta']:g} / λ₁ {best['sort_weight']:g}" if len(trained) > 1 else
             f"at δ {best['sort_delta']:g} / λ₁ {best['sort_weight']:g}, nothing to compare it with")
    return Sentence(f"The grid shows {len(trained)} of {len(grid)} cells trained ({'/'.join(map(str, seeds))} "
                    f"seed(s) each): {span}, {where}, beside {paper_span}{tail}.")


def extra_claims_sentence(verdicts: Mapping[str, object], recorded: Mapping[str, Mapping]) -> Sentence:
    """One sentence on the claims judged beyond the default run: each claim's live verdict beside
    the recorded replication's (``recorded[claim]`` as :func:`poselab.experiments.recorded_verdict`
    returns it)."""
    parts = []
    for name, v in verdicts.items():
        rec = recorded.get(name) or {}
        source = f", chapter {rec['source']}'s records" if rec.get("source") else ""
        where = (f"recorded ({rec.get('preset')}, {len(rec.get('seeds') or [])} seeds{source}) **{rec['verdict']}**"
                 if rec.get("recorded") else "no recorded replication yet")
        parts.append(f"{name}: live **{getattr(v, 'verdict', v)}**, {where}")
    return Sentence("The table lists each claim beyond the default run with its live and recorded verdicts — "
                    + "; ".join(parts) + ".")
