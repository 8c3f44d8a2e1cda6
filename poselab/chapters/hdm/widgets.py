"""HDM counterexample widget: move/scale/sharpen a predicted blob and a distractor, watch MSE,
EMD and localisation error side by side (HDM Fig. 1, RSPose P1)."""
from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go

from poselab.chapters.hdm.analysis import blob_map, gaussian_map, heatmap_metrics

__all__ = ["blob_explorer"]


def blob_explorer(size=(16, 12), sigma=2.0, keypoint=(5.0, 7.0)):
    """Sliders for the blob (x, y, amplitude, σ) and the distractor; returns an ipywidget."""
    H, Wd = size
    target = gaussian_map(keypoint, size, sigma)
    s = dict(continuous_update=False)
    sl = {"x": W.FloatSlider(value=keypoint[0], min=0, max=Wd - 1, step=0.25, description="blob x", **s),
          "y": W.FloatSlider(value=keypoint[1], min=0, max=H - 1, step=0.25, description="blob y", **s),
          "amp": W.FloatSlider(value=0.5, min=0, max=1.5, step=0.05, description="blob amp", **s),
          "sig": W.FloatSlider(value=1.0, min=0.5, max=4, step=0.1, description="blob σ", **s),
          "dx": W.FloatSlider(value=9, min=0, max=Wd - 1, step=0.25, description="distr. x", **s),
          "dy": W.FloatSlider(value=12, min=0, max=H - 1, step=0.25, description="distr. y", **s),
          "damp": W.FloatSlider(value=0.0, min=0, max=1.5, step=0.05, description="distr. amp", **s)}
    fig = go.FigureWidget(go.Heatmap(z=target, colorscale="Viridis"))
    fig.add_scatter(x=[keypoint[0]], y=[keypoint[1]], mode="markers",
                    marker=dict(symbol="x", size=12, color="red"), name="GT")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=380, width=360, margin=dict(l=10, r=10, t=30, b=10))
    out = W.HTML()

    def update(_=None):
        v = {k: w.value for k, w in sl.items()}
        pred = blob_map(size, (v["x"], v["y"]), v["amp"], v["sig"], (v["dx"], v["dy"]), v["damp"])
        m = heatmap_metrics(pred, target, keypoint)
        fig.data[0].z = pred
        out.value = ("<table><tr><th>MSE</th><th>EMD</th><th>error argmax</th><th>error 4-pixel</th></tr>"
                     f"<tr><td>{m['mse']:.5f}</td><td>{m['emd']:.3f}</td><td>{m['err_argmax']:.2f} px</td>"
                     f"<td>{m['err_four_pixel']:.2f} px</td></tr></table>")

    for w in sl.values():
        w.observe(update, "value")
    update()
    return W.HBox([W.VBox(list(sl.values()) + [out]), fig])
