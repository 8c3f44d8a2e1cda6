"""Heatmap playground widget: drag two blobs and the ground truth, watch every loss respond."""
from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go

from poselab.chapters.capstone.playground import blob_heatmap, loss_maps
from poselab.chapters.capstone.figures import playground_figure, values_html

__all__ = ["heatmap_playground", "PlaygroundState"]


class PlaygroundState:
    """The playground's sliders and what one change recomputes (callable without a browser)."""

    def __init__(self, size=(32, 24), keypoint=(10.3, 12.7), sigma: float = 2.0, beta: float = 10.0):
        H, Wd = size
        self.size, self.sigma, self.beta = tuple(size), float(sigma), float(beta)
        s = dict(continuous_update=False, layout=W.Layout(width="300px"))
        f = W.FloatSlider
        self.sliders = {
            "gt_x": f(value=keypoint[0], min=0, max=Wd - 1, step=0.1, description="truth x", **s),
            "gt_y": f(value=keypoint[1], min=0, max=H - 1, step=0.1, description="truth y", **s),
            "x": f(value=keypoint[0] + 1.5, min=0, max=Wd - 1, step=0.25, description="blob x", **s),
            "y": f(value=keypoint[1] - 1.0, min=0, max=H - 1, step=0.25, description="blob y", **s),
            "sigma": f(value=1.5, min=0.5, max=5, step=0.1, description="blob σ", **s),
            "amp": f(value=1.0, min=0, max=3, step=0.05, description="blob amp", **s),
            "x2": f(value=min(Wd - 2.0, keypoint[0] + 8), min=0, max=Wd - 1, step=0.25, description="2nd x", **s),
            "y2": f(value=min(H - 2.0, keypoint[1] + 10), min=0, max=H - 1, step=0.25, description="2nd y", **s),
            "amp2": f(value=0.5, min=0, max=3, step=0.05, description="2nd amp", **s),
            "background": f(value=0.0, min=-0.5, max=0.5, step=0.05, description="background", **s),
        }
        self.values = W.HTML()
        self.heatmap, self.maps = self.compute()
        self.figure = go.FigureWidget(playground_figure(self.heatmap, self.maps, self.keypoint))
        self.values.value = values_html(self.maps)

    @property
    def keypoint(self) -> tuple[float, float]:
        return (self.sliders["gt_x"].value, self.sliders["gt_y"].value)

    def compute(self):
        v = {k: w.value for k, w in self.sliders.items()}
        hm = blob_heatmap(self.size, [(v["x"], v["y"], v["sigma"], v["amp"]),
                                      (v["x2"], v["y2"], 1.5, v["amp2"])], v["background"])
        return hm, loss_maps(hm, self.keypoint, sigma=self.sigma, beta=self.beta)

    def update(self, _=None) -> None:
        """Recompute every loss and redraw (the callback of every slider)."""
        self.heatmap, self.maps = self.compute()
        fresh = playground_figure(self.heatmap, self.maps, self.keypoint)
        with self.figure.batch_update():
            for old, new in zip(self.figure.data, fresh.data):
                if isinstance(new, go.Heatmap):
                    old.z, old.zmin, old.zmax = new.z, new.zmin, new.zmax
                else:
                    old.x, old.y = new.x, new.y
            for old, new in zip(self.figure.layout.annotations, fresh.layout.annotations):
                old.text = new.text
        self.values.value = values_html(self.maps)


def heatmap_playground(size=(32, 24), keypoint=(10.3, 12.7), sigma: float = 2.0,
                       beta: float = 10.0) -> W.Widget:
    """The playground as one widget (sliders left, values on top, the gradient grid below)."""
    state = PlaygroundState(size, keypoint, sigma, beta)
    for w in state.sliders.values():
        w.observe(state.update, "value")
    sliders = list(state.sliders.values())
    box = W.VBox([W.HBox([W.VBox(sliders[:5]), W.VBox(sliders[5:])]), state.values, state.figure])
    box.state = state
    return box
