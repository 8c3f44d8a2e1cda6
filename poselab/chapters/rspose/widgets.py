"""RSPose widgets.

- ``imbalance_explorer``: how many pixels are positive? (§4, Table 1, Fig. 2). Sliders for the
  heatmap size, σ and the label type; the callback calls
  :func:`poselab.chapters.rspose.analysis.heatmap_imbalance` (≈ 1–5 ms up to 128×96) and updates one
  FigureWidget.
- ``update_explorer``: one predicted map and MSE's, Spatial Rank's and Spatial Sort's updates
  side by side; sliders for δ_rank, δ_sort, the prediction's offset and sharpness
  (:func:`poselab.chapters.rspose.analysis.single_map_updates`).
"""
from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go

from poselab.chapters.rspose.analysis import heatmap_imbalance, single_map_updates
from poselab.chapters.rspose.figures import positives_figure, updates_figure

__all__ = ["imbalance_explorer", "update_explorer"]


def imbalance_explorer(height: int = 64, width: int = 48, sigma: float = 2.0):
    """Heatmap height/width, σ and dot/Gaussian → the target with its positives outlined and
    |P|, |N|, |N|/|P|. Returns the widget; ``widget.update()`` re-renders (used by the tests)."""
    s = dict(continuous_update=False, style={"description_width": "90px"})
    sl = {"h": W.IntSlider(value=height, min=8, max=128, step=4, description="height", **s),
          "w": W.IntSlider(value=width, min=6, max=96, step=3, description="width", **s),
          "sigma": W.FloatSlider(value=sigma, min=0.5, max=6.0, step=0.25, description="σ", **s),
          "target": W.ToggleButtons(options=["gaussian", "dot"], value="gaussian",
                                    description="labels")}
    fig = go.FigureWidget(positives_figure(heatmap_imbalance((height, width), sigma)["labels"]))
    out = W.HTML()

    def update(_=None):
        r = heatmap_imbalance((sl["h"].value, sl["w"].value), sl["sigma"].value, sl["target"].value)
        with fig.batch_update():
            fig.data[0].z = r["labels"]
            fig.data[1].z = (r["labels"] > 0).astype(float)
        out.value = (f"<b>|P| = {r['positives']}</b>, |N| = {r['negatives']}, "
                     f"<b>|N|/|P| = {r['ratio']:.4g}</b>")

    for w in sl.values():
        w.observe(update, "value")
    update()
    box = W.HBox([W.VBox(list(sl.values()) + [out]), fig])
    box.update = update
    box.sliders = sl
    box.readout = out
    return box


def update_explorer(height: int = 32, width: int = 24, sigma: float = 2.0):
    """One predicted map and the update each loss gives it, side by side (RSPose §5, App. A):
    sliders for δ_rank, δ_sort, the prediction's offset (dx, dy) and its sharpness; the callback
    calls :func:`poselab.chapters.rspose.analysis.single_map_updates` (a few ms at 32×24) and rewrites the
    four panels of one FigureWidget. Returns the widget; ``widget.update()`` re-renders,
    ``widget.sliders`` and ``widget.figure`` are exposed for the tests."""
    s = dict(continuous_update=False, style={"description_width": "90px"})
    sl = {"rank_delta": W.FloatLogSlider(value=0.4, base=10, min=-2, max=1, step=0.05, description="δ rank", **s),
          "sort_delta": W.FloatLogSlider(value=1.5, base=10, min=-2, max=1, step=0.05, description="δ sort", **s),
          "dx": W.FloatSlider(value=2.0, min=-6.0, max=6.0, step=0.5, description="offset x", **s),
          "dy": W.FloatSlider(value=1.0, min=-6.0, max=6.0, step=0.5, description="offset y", **s),
          "sharpness": W.FloatLogSlider(value=1.0, base=10, min=-0.5, max=0.7, step=0.05, description="sharpness", **s)}
    names = {"prediction": "prediction", "mse": "MSE", "spatial_rank": "Spatial Rank", "spatial_sort": "Spatial Sort"}

    def compute():
        return single_map_updates((height, width), sigma, (sl["dx"].value, sl["dy"].value), sl["sharpness"].value,
                                  sl["rank_delta"].value, sl["sort_delta"].value)

    first = compute()
    fig = go.FigureWidget(updates_figure({names[k]: first[k] for k in names}, first["keypoint"], height=280))
    out = W.HTML()

    def update(_=None):
        r = compute()
        with fig.batch_update():
            for c, key in enumerate(names):
                z = r[key]
                trace = fig.data[2 * c]
                trace.z = z
                if c:
                    m = float(abs(z).max()) or 1.0
                    trace.zmin, trace.zmax = -m, m
        out.value = ("losses: " + ", ".join(f"{names[k]} <b>{v:.4g}</b>" for k, v in r["loss"].items())
                     + " — red: gradient descent pushes the pixel down, blue: up")
        box.result = r

    box = W.VBox([W.HBox([W.VBox([sl["rank_delta"], sl["sort_delta"], sl["sharpness"]]),
                          W.VBox([sl["dx"], sl["dy"]])]), out, fig])
    for w in sl.values():
        w.observe(update, "value")
    box.update, box.sliders, box.figure, box.readout = update, sl, fig, out
    update()
    return box
