"""Figures of chapter 00 "pose basics" (plotly ``go.Figure`` builders, no state).

Images are drawn with ``go.Image`` in pixel-centre coordinates (pixel (i, j) at x=j, y=i, the
y axis pointing down), so keypoints in image pixels land on the right pixels.
"""
from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from poselab.data import load_persons, read_image
from poselab.skeleton import KEYPOINT_NAMES, LIMBS
from poselab.viz.sentence import Sentence, number

PALETTE = ("#00c853", "#ff1744", "#2979ff", "#ffab00", "#d500f9", "#00e5ff", "#ff6d00",
           "#76ff03")
_TRANSPARENT_HOT = [[0.0, "rgba(255,255,0,0)"], [0.15, "rgba(255,200,0,0.35)"],
                    [0.6, "rgba(255,80,0,0.75)"], [1.0, "rgba(255,0,0,0.95)"]]


def image_trace(image, name: str = "image") -> go.Image:
    """An RGB image as a ``go.Image`` trace, sent as an encoded picture (``source``), not as a
    JSON array of pixel values: PNG up to 256×256 pixels, JPEG (quality 90) above, which keeps
    saved notebooks and widget state small. Pixel (i, j) is centred at x = j, y = i.

    Args:
        image: (H, W, 3) uint8 array or a PIL image.
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got {arr.dtype}")
    small = arr.shape[0] * arr.shape[1] <= 256 * 256
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG" if small else "JPEG",
                                                     **({} if small else {"quality": 90}))
    mime = "png" if small else "jpeg"
    source = f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return go.Image(source=source, x0=0, dx=1, y0=0, dy=1, hoverinfo="skip", name=name)


def _keypoints(kp, name: str) -> np.ndarray:
    arr = np.asarray(kp, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"{name} must have shape (K, 2) or (K, 3) with COCO v, got {arr.shape}")
    if arr.shape[1] == 2:  # predictions: every joint drawn
        arr = np.concatenate([arr, np.full((arr.shape[0], 1), 2.0)], axis=1)
    return arr


def skeleton_traces(keypoints, name: str = "pose", color: str = PALETTE[0], dash: str = "solid",
                    marker_size: int = 7, names: Sequence[str] = KEYPOINT_NAMES) -> list[go.Scatter]:
    """Two traces for one person: limbs (lines between labelled joints) and joints (markers).

    Args:
        keypoints: (K, 2) prediction or (K, 3) COCO (x, y, v); joints with v = 0 are not drawn,
            v = 1 (occluded) are open circles, v = 2 filled.
    """
    kp = _keypoints(keypoints, "keypoints")
    xs, ys = [], []
    for a, b in LIMBS:
        if a < len(kp) and b < len(kp) and kp[a, 2] > 0 and kp[b, 2] > 0:
            xs += [kp[a, 0], kp[b, 0], None]
            ys += [kp[a, 1], kp[b, 1], None]
    shown = np.flatnonzero(kp[:, 2] > 0)
    symbols = ["circle" if kp[k, 2] >= 2 else "circle-open" for k in shown]
    limbs = go.Scatter(x=xs, y=ys, mode="lines", name=name, legendgroup=name,
                       line=dict(color=color, width=3, dash=dash), hoverinfo="skip")
    joints = go.Scatter(x=kp[shown, 0], y=kp[shown, 1], mode="markers", name=name,
                        legendgroup=name, showlegend=False,
                        marker=dict(color=color, size=marker_size, symbol=symbols,
                                    line=dict(color="black", width=1)),
                        text=[names[k] if k < len(names) else str(k) for k in shown],
                        hovertemplate="%{text}<br>x=%{x:.1f}, y=%{y:.1f}<extra>" + name + "</extra>")
    return [limbs, joints]


def _image_layout(fig: go.Figure, height: int, image_size=None, title: str = "",
                  width: int | None = None) -> go.Figure:
    # a fixed width: plotly's autosize measures the cell before the notebook's scrollbar appears
    # and ends up 12 px wider than the output at a 1280-px window (tests/test_browser.py)
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top"), height=height, width=width or 800,
                      margin=dict(l=10, r=10, t=60 if title else 40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))
    fig.update_xaxes(showgrid=False, zeroline=False, visible=False)
    fig.update_yaxes(showgrid=False, zeroline=False, visible=False, scaleanchor="x")
    if image_size is not None:
        h, w = image_size
        fig.update_xaxes(range=[-0.5, w - 0.5])
        fig.update_yaxes(range=[h - 0.5, -0.5])
    else:
        fig.update_yaxes(autorange="reversed")
    return fig


def pose_figure(image=None, poses: Sequence = (), names: Sequence[str] | None = None,
                colors: Sequence[str] | None = None, dashes: Sequence[str] | None = None,
                bboxes: Sequence | None = None, zoom_to=None, title: str = "",
                height: int = 480, width: int | None = None) -> go.Figure:
    """A photo with skeletons drawn on it.

    Args:
        image: (H, W, 3) uint8 array / PIL image, or None (poses on a blank, y-down canvas).
        poses: sequence of (K, 2) or (K, 3) keypoint arrays in image pixels.
        names, colors, dashes: one per pose (defaults "person 1", ..., palette, solid).
        bboxes: optional [x, y, w, h] per pose, drawn as dotted rectangles.
        zoom_to: optional [x, y, w, h]: show this box enlarged by 30 % instead of the whole image.
        height, width: pixels (width None: 800, which fits a notebook at a 1280-px window).
    Returns:
        go.Figure with traces [Image (if image)] + [limbs, joints] per pose (+ one box trace per
        bbox).
    """
    fig = go.Figure()
    size = None
    if image is not None:
        arr = np.asarray(image)
        fig.add_trace(image_trace(arr, "image"))
        size = arr.shape[:2]
    for i, kp in enumerate(poses):
        name = names[i] if names is not None else f"person {i + 1}"
        color = colors[i] if colors is not None else PALETTE[i % len(PALETTE)]
        dash = dashes[i] if dashes is not None else "solid"
        fig.add_traces(skeleton_traces(kp, name=name, color=color, dash=dash))
    for i, box in enumerate(bboxes or ()):
        x, y, w, h = (float(v) for v in box)
        color = colors[i] if colors is not None else PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=[x, x + w, x + w, x, x], y=[y, y, y + h, y + h, y],
                                 mode="lines", line=dict(color=color, dash="dot", width=1),
                                 name=f"box {i + 1}", showlegend=False, hoverinfo="skip"))
    _image_layout(fig, height, size, title, width)
    if len(poses) > 4:  # a legend of many persons hides the picture; hover names them instead
        fig.update_layout(showlegend=False)
    if zoom_to is not None:
        x, y, w, h = (float(v) for v in zoom_to)
        pad = 0.3 * max(w, h)
        fig.update_xaxes(range=[x - pad, x + w + pad])
        fig.update_yaxes(range=[y + h + pad, y - pad])
    return fig


def heatmap_overlay_figure(image, heatmaps, keypoints=None, title: str = "",
                           height: int = 420) -> go.Figure:
    """A crop with the maximum over its joints' heatmaps laid on top.

    The heatmaps (K, h, w) may be coarser than the image (H, W); heatmap pixel u is drawn
    centred on image x = (u + 0.5)·s − 0.5 with stride s = W / w (pixel-centre convention of
    ``poselab.codecs``).

    Returns:
        go.Figure with traces [Image, Heatmap] (+ [limbs, joints] when keypoints are given).
    """
    arr = np.asarray(image)
    heat = np.asarray(heatmaps, dtype=np.float64)
    if heat.ndim == 2:
        heat = heat[None]
    if heat.ndim != 3:
        raise ValueError(f"heatmaps must be (K, h, w) or (h, w), got {heat.shape}")
    sy, sx = arr.shape[0] / heat.shape[1], arr.shape[1] / heat.shape[2]
    fig = go.Figure(image_trace(arr, "crop"))
    fig.add_trace(go.Heatmap(z=heat.max(axis=0), x0=0.5 * sx - 0.5, dx=sx, y0=0.5 * sy - 0.5,
                             dy=sy, colorscale=_TRANSPARENT_HOT, zmin=0, zmax=1, showscale=False,
                             name="max over joints",
                             hovertemplate="x=%{x:.1f}, y=%{y:.1f}<br>%{z:.3f}<extra></extra>"))
    if keypoints is not None:
        fig.add_traces(skeleton_traces(keypoints, name="keypoints", color="#00e5ff", marker_size=5))
    return _image_layout(fig, height, arr.shape[:2], title)


def joint_heatmaps_figure(heatmaps, joints: Sequence[int], names: Sequence[str] = KEYPOINT_NAMES,
                          title: str = "", height: int = 300) -> go.Figure:
    """Selected joints' heatmaps side by side (one go.Heatmap subplot per joint)."""
    heat = np.asarray(heatmaps, dtype=np.float64)
    if heat.ndim != 3:
        raise ValueError(f"heatmaps must be (K, h, w), got {heat.shape}")
    joints = list(joints)
    if not joints or min(joints) < 0 or max(joints) >= heat.shape[0]:
        raise ValueError(f"joints must be indices in [0, {heat.shape[0]}), got {joints}")
    fig = make_subplots(rows=1, cols=len(joints), subplot_titles=[names[j] for j in joints],
                        horizontal_spacing=0.02)
    for c, j in enumerate(joints, start=1):
        fig.add_trace(go.Heatmap(z=heat[j], colorscale="Viridis", zmin=0, zmax=1,
                                 showscale=c == len(joints), name=names[j]), row=1, col=c)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c if c > 1 else ''}",
                         showticklabels=False, showgrid=False, constrain="domain", row=1, col=c)
        fig.update_xaxes(showticklabels=False, showgrid=False, constrain="domain", row=1, col=c)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def ks_bars_figure(ks, visible, oks_value: float, names: Sequence[str] = KEYPOINT_NAMES,
                   title: str = "", height: int = 320, width: int | None = None) -> go.Figure:
    """Per-joint keypoint similarity as bars; joints that do not count (v = 0) in grey.

    Returns:
        go.Figure with one go.Bar trace; the title carries the OKS.
    """
    ks = np.asarray(ks, dtype=np.float64)
    vis = np.asarray(visible, dtype=bool)
    if ks.shape != vis.shape or ks.ndim != 1:
        raise ValueError(f"ks and visible must both be (K,), got {ks.shape} and {vis.shape}")
    fig = go.Figure(go.Bar(x=list(names[:ks.size]), y=ks, name="KS",
                           marker_color=[PALETTE[2] if v else "#bdbdbd" for v in vis],
                           hovertemplate="%{x}: KS=%{y:.3f}<extra></extra>"))
    fig.update_layout(title=dict(text=title or _oks_title(oks_value), font=dict(size=13)),
                      height=height, width=width,
                      yaxis=dict(range=[0, 1.05], title="keypoint similarity"),
                      xaxis=dict(tickangle=-60, tickfont=dict(size=10)),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _oks_title(oks_value: float) -> str:
    return f"OKS = {oks_value:.3f}  (grey: unlabelled joints, not counted)"


def ks_curves_figure(distances, ks, joints: Sequence[int], names: Sequence[str] = KEYPOINT_NAMES,
                     title: str = "", height: int = 340) -> go.Figure:
    """KS against pixel distance for some joints (one go.Scatter line per joint).

    Args:
        distances: (D,). ks: (K, D) as from ``analysis.basics.ks_versus_distance``.
    """
    d = np.asarray(distances, dtype=np.float64)
    ks = np.asarray(ks, dtype=np.float64)
    if ks.ndim != 2 or ks.shape[1] != d.size:
        raise ValueError(f"ks must be (K, D) with D = len(distances) = {d.size}, got {ks.shape}")
    fig = go.Figure()
    for i, j in enumerate(joints):
        fig.add_trace(go.Scatter(x=d, y=ks[j], mode="lines", name=names[j],
                                 line=dict(color=PALETTE[i % len(PALETTE)])))
    fig.update_layout(title=title, height=height, xaxis_title="distance to the true joint (px)",
                      yaxis=dict(title="keypoint similarity", range=[0, 1.02]),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def precision_recall_figure(evals: dict, threshold_index: int = 0, title: str = "",
                            height: int = 360) -> go.Figure:
    """Precision–recall curves of several COCO evaluations (one line each, AP in the legend).

    Args:
        evals: ``{label: coco_keypoint_eval(...) dict}``.
        threshold_index: which OKS threshold's curve (0 → OKS 0.50, 5 → 0.75). The legend gives
            each run's AP and its AP at that threshold (mean of the curve's 101 points).
    """
    fig = go.Figure()
    thr = 0.5 + 0.05 * threshold_index
    for i, (label, ev) in enumerate(evals.items()):
        prec = np.asarray(ev["precision"])[threshold_index]
        # AP at this threshold is the mean of the 101 interpolated precisions
        fig.add_trace(go.Scatter(x=ev["recall_thresholds"], y=prec, mode="lines",
                                 name=f"{label} (AP={ev['AP']:.3f}, AP@{thr:.2f}={prec.mean():.3f})",
                                 line=dict(color=PALETTE[i % len(PALETTE)], shape="hv")))
    fig.update_layout(title=title or f"precision–recall at OKS {thr:.2f}", height=height,
                      xaxis=dict(title="recall", range=[0, 1]),
                      yaxis=dict(title="precision", range=[0, 1.02]),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def prediction_figures(predictions: dict, ann_json, indices, height: int = 360, width: int = 640):
    """One figure per person index: the photo zoomed to the box, the prediction (solid) and the
    ground truth (dashed). ``predictions``: a ``RunResult.predictions(...)`` dict (image px)."""
    by_ann = {p.ann_id: p for p in load_persons(ann_json)}
    figs = []
    for i in indices:
        person = by_ann[int(predictions["ann_id"][i])]
        gt = np.concatenate([predictions["keypoints"][i], (predictions["visible"][i] > 0)[:, None] * 2.0], 1)
        figs.append(pose_figure(read_image(person.image_path), [predictions["coords"][i], gt],
                                names=["prediction", "ground truth"], dashes=["solid", "dash"],
                                zoom_to=predictions["bbox"][i], height=height, width=width,
                                title=f"image {int(predictions['image_id'][i])}: instance score "
                                      f"{float(predictions['instance_scores'][i]):.2f}"))
    return figs


def oks_agreement_sentence(agreement: dict, tolerance: float = 1e-12):
    """The closing sentence of chapter 00's OKS section, from
    :func:`poselab.chapters.basics.analysis.max_oks_difference`'s result.

    Example:
        >>> oks_agreement_sentence({"max_abs_diff": 2.2e-16, "pairs": 90, "images": 12})[:40]
        'On 90 (prediction, ground truth) pairs o'
    """
    missing = [k for k in ("max_abs_diff", "pairs", "images") if k not in agreement]
    if missing:
        raise ValueError(f"agreement lacks {missing}; pass max_oks_difference(...)'s result")
    gap, pairs = float(agreement["max_abs_diff"]), int(agreement["pairs"])
    if pairs == 0:
        return Sentence("No OKS pair was compared (no image with both a prediction and a ground truth), "
                        "so the agreement with pycocotools is untested here.")
    verdict = (f"at most {number(gap, 2)} — float rounding (tolerance {tolerance:g})" if gap <= tolerance
               else f"up to {number(gap, 3)} — more than float rounding (tolerance {tolerance:g}): a bug in "
                    "our OKS or its visibility, area or box rule")
    return Sentence(f"On {pairs} (prediction, ground truth) pairs of {agreement['images']} images, our OKS "
                    f"and pycocotools' `computeOks` differ by {verdict}.")
