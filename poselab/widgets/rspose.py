"""RSPose widget: how many pixels are positive? (§4, Table 1, Fig. 2). Sliders for the heatmap
size, σ and the label type; the callback calls :func:`poselab.analysis.rspose.heatmap_imbalance`
(≈ 1–5 ms up to 128×96) and updates one FigureWidget."""
from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go

from ..analysis.rspose import heatmap_imbalance
from ..viz.rspose import positives_figure

__all__ = ["imbalance_explorer"]


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
