"""Interactive pieces of chapter 00 "pose basics".

:class:`OKSExplorer` — move one predicted joint (dropdown + dx/dy sliders), change the object
scale, and watch every joint's keypoint similarity and the OKS. The callbacks are a few lines
over ``poselab.chapters.basics.analysis.oks_breakdown`` and the ``poselab.viz.poses`` builders.
"""
from __future__ import annotations

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go

from poselab.chapters.basics.analysis import oks_breakdown
from poselab.skeleton import KEYPOINT_NAMES
from poselab.viz.poses import _oks_title, ks_bars_figure, pose_figure, skeleton_traces


POSE_SIZE = (380, 400)   # (height, width) px of the photo panel
BARS_SIZE = (380, 420)   # of the KS bars: together ≤ 820 px, inside the 848 px of a notebook output at a 1280-px window


class OKSExplorer:
    """Drag a predicted joint and see KS per joint and OKS (COCO).

    Args:
        gt_keypoints: (K, 3) COCO ground truth (x, y, v) in image pixels.
        area: ground-truth area s² (pixels²); the scale slider starts at s = sqrt(area).
        image: optional (H, W, 3) uint8 photo drawn under the skeletons.
        prediction: optional (K, 2) starting prediction (default: the ground truth itself).
        bbox: optional [x, y, w, h]; the view zooms to it.

    Attributes: ``joint`` (Dropdown), ``dx``, ``dy``, ``scale`` (FloatSliders), ``pose_fig`` and
    ``ks_fig`` (FigureWidgets), ``offsets`` ((K, 2) per-joint displacement), ``widget`` (VBox).
    """

    def __init__(self, gt_keypoints, area: float, image=None, prediction=None, bbox=None):
        self.gt = np.asarray(gt_keypoints, dtype=np.float64)
        if self.gt.ndim != 2 or self.gt.shape[1] != 3:
            raise ValueError(f"gt_keypoints must be (K, 3) (x, y, v), got {self.gt.shape}")
        if not (np.isfinite(area) and area > 0):
            raise ValueError(f"area must be > 0, got {area}")
        k = self.gt.shape[0]
        self.base = (self.gt[:, :2].copy() if prediction is None
                     else np.asarray(prediction, dtype=np.float64).reshape(k, 2))
        self.offsets = np.zeros((k, 2))
        s = float(np.sqrt(area))
        # KS of the most tolerant joint (hip, κ = 0.214) is 0.01 at d ≈ 0.65·s: drags past that
        # change nothing, so the sliders stop there (at least 5 px).
        reach = float(max(5.0, round(0.65 * s)))
        labelled = np.flatnonzero(self.gt[:, 2] > 0)
        start = int(labelled[0]) if labelled.size else 0
        self.joint = w.Dropdown(options=[(KEYPOINT_NAMES[j], j) for j in range(k)], value=start,
                                description="joint")
        self.dx = w.FloatSlider(value=0.0, min=-reach, max=reach, step=0.5, description="dx (px)",
                                continuous_update=True)
        self.dy = w.FloatSlider(value=0.0, min=-reach, max=reach, step=0.5, description="dy (px)",
                                continuous_update=True)
        self.scale = w.FloatSlider(value=round(s, 1), min=round(s / 4, 1), max=round(4 * s, 1),
                                   step=0.5, description="scale s (px)")
        self.pose_fig = go.FigureWidget(pose_figure(
            image, [self.gt, self._drawn_prediction()], names=["ground truth", "prediction"],
            colors=["#00c853", "#ff1744"], dashes=["solid", "dash"], zoom_to=bbox,
            title="ground truth (green), prediction (red)", height=POSE_SIZE[0], width=POSE_SIZE[1]))
        self._pred_traces = (len(self.pose_fig.data) - 2, len(self.pose_fig.data) - 1)
        info = self.state()
        self.ks_fig = go.FigureWidget(ks_bars_figure(info["ks"], info["visible"], info["oks"],
                                                     height=BARS_SIZE[0], width=BARS_SIZE[1]))
        self.status = w.HTML(self.describe(info))
        self._syncing = False
        self.joint.observe(self._on_joint, names="value")
        for slider in (self.dx, self.dy, self.scale):
            slider.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.joint, self.scale]), w.HBox([self.dx, self.dy]),
                              w.HBox([self.pose_fig, self.ks_fig]), self.status])

    def prediction(self) -> np.ndarray:
        """(K, 2) current prediction = starting prediction + per-joint offsets."""
        return self.base + self.offsets

    def _drawn_prediction(self) -> np.ndarray:
        # (K, 3): only joints labelled in the ground truth are drawn (the others do not count,
        # and an unlabelled COCO joint sits at (0, 0)).
        return np.concatenate([self.prediction(), 2.0 * (self.gt[:, 2:] > 0)], axis=1)

    def state(self) -> dict:
        """KS per joint, visibility and OKS of the current prediction at the slider's scale."""
        return oks_breakdown(self.prediction(), self.gt, self.scale.value ** 2)

    def describe(self, info: dict | None = None) -> str:
        """One line: the moved joint, its offset, its KS and the OKS (shown under the figures)."""
        info = self.state() if info is None else info
        j = int(self.joint.value)
        dx, dy = (float(v) for v in self.offsets[j])
        ks = f"KS {info['ks'][j]:.3f}" if info["visible"][j] else "unlabelled, does not count"
        return (f"{KEYPOINT_NAMES[j]} moved by ({dx:+.1f}, {dy:+.1f}) px = {np.hypot(dx, dy):.1f} px "
                f"({ks}); OKS {info['oks']:.3f} at s = {self.scale.value:.1f} px")

    def _on_joint(self, change) -> None:
        # Show the chosen joint's own offset without treating it as a new drag.
        self._syncing = True
        try:
            self.dx.value, self.dy.value = (float(v) for v in self.offsets[change["new"]])
        finally:
            self._syncing = False
        self.status.value = self.describe()

    def _on_change(self, change=None) -> None:
        if self._syncing:
            return
        self.offsets[self.joint.value] = (self.dx.value, self.dy.value)
        self.refresh()

    def refresh(self) -> dict:
        """Redraw the prediction and the KS bars; returns :meth:`state`."""
        info = self.state()
        limbs, joints = skeleton_traces(self._drawn_prediction())
        with self.pose_fig.batch_update():
            self.pose_fig.data[self._pred_traces[0]].update(x=limbs.x, y=limbs.y)
            self.pose_fig.data[self._pred_traces[1]].update(x=joints.x, y=joints.y)
        with self.ks_fig.batch_update():
            self.ks_fig.data[0].y = info["ks"]
            self.ks_fig.layout.title.text = _oks_title(info["oks"])
        self.status.value = self.describe(info)
        return info
