"""viz.sar figures build from analysis outputs, fit a 1280-px notebook, and show what they claim."""
import numpy as np

from poselab.chapters.sar import analysis as A
from poselab.chapters.sar import figures as V


def test_figures_build_and_fit():
    rng = np.random.default_rng(0)
    img = (rng.random((64, 48, 3)) * 255).astype(np.uint8)
    field = A.cell_field(rng.normal(size=(16, 12)), rng.normal(size=(2, 16, 12)), (64, 48))
    figs = [V.three_ways_figure(img, (10, 20), (12, 22), rng.random((16, 12)), (11, 21), field, (64, 48)),
            V.toy_cases_figure(A.optimum_cases(steps=20)), V.toy_loss_figure(A.optimum_cases(steps=20)),
            V.normalization_figure(A.normalization_study(counts=(1, 2), steps=20)),
            V.quantization_floor_figure(A.quantization_floor(strides=(1, 4), n=20)),
            V.sweep_figure({"mse": {4: [0.1, 0.2], 16: [0.0, 0.1]}}, "stride", "AP"),
            V.detections_figure(img, [(3, 4)], {"sar": [(3, 5)], "heatmap": np.zeros((0, 2))})]
    for f in figs:
        f.to_json()
        assert f.layout.width is None or f.layout.width <= 900


def test_cell_field_traces_mark_the_selected_cell():
    s = np.full((4, 5), -5.0)
    s[2, 3] = 5.0
    off = np.zeros((2, 4, 5))
    off[:, 2, 3] = (0.25, -0.5)
    traces = V.cell_field_traces(A.cell_field(s, off), target=(3.25, 1.5))
    selected = [t for t in traces if t.name == "selected (top-1)"][0]
    assert (selected.x[0], selected.y[0]) == (3.25, 1.5)
    points = [t for t in traces if t.name == "K_t (cell points)"][0]
    assert len(points.x) == 20 and max(points.marker.size) > 5 * min(points.marker.size) / 2
    # min_weight hides cells the selector switched off
    few = [t for t in V.cell_field_traces(A.cell_field(s, off), min_weight=0.5) if t.name == "K_t (cell points)"][0]
    assert len(few.x) == 1
