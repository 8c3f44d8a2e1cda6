"""BCIR figures and widgets build, respond to their controls within 1 s, and show what the
analysis functions computed."""

import numpy as np

from poselab.analysis import bcir as B
from poselab.viz import bcir as V
from poselab.widgets import bcir as WB


def test_static_figures_build_and_fit_the_notebook():
    figs = [
        V.bias_figure(B.bias_curve((64, 48), [[x, 31.0] for x in range(7, 40)], 2.0, 3.0)),
        V.spread_figure(B.bias_vs_spread((64, 48), (8.0, 50.0), [1, 2, 3], mass=40.0)),
        V.breakdown_figure(B.compensation_breakdown()),
        V.epe_figure(B.random_epe_configurations(50), B.epe_gap_vs_spread([0, 2, 4], [0, 2])),
        V.shrinkage_figure(B.shrinkage_curves()),
        V.toy_error_figure(B.fig6_dynamics(steps=40, every=20)),
        V.toy_frames_figure(B.fig6_dynamics(steps=40, every=20)),
        V.activation_figure([0, 1, 2], {"a": [0.1, 0.5, 0.9]}),
        V.split_bars_figure({"ipr": B.split_means([1.0, 2.0], np.array(["easy", "hard"], dtype=object))}, "EPE"),
    ]
    h = B.symmetric_blob((64, 48), (20.0, 30.0), 3.0)
    f = B.ipr_gradient_factors(h, (30.0, 40.0), 10.0)
    figs.append(V.gradient_figure(f, B.ipr_gradient_autograd(h, (30.0, 40.0), 10.0), (30.0, 40.0)))
    figs.append(V.heatmap_points_figure(h, {"true": (20, 30)}))
    for fig in figs:
        assert fig.layout.width is not None and fig.layout.width <= 900
        assert len(fig.data) > 0


def test_bias_explorer_responds_and_shows_the_analysis():
    w = WB.bias_explorer(mode="peak", amount=1.0)
    heat, curve = w.figures
    w.sliders["x"].value = 12.0
    w.sliders["beta"].value = 2.0
    w.sliders["sigma"].value = 3.0
    want = B.bias_curve((64, 48), [[12.0, 50.0]], 3.0, 2.0)
    soft = [d for d in heat.data if d.name == "soft-argmax"][0]
    assert abs(soft.x[0] - want["measured"][0, 0]) < 1e-9
    comp = [d for d in heat.data if d.name == "compensated"][0]
    assert abs(comp.x[0] - 12.0) < 1e-6          # support inside the map: exact
    w.sliders["mode"].value = "mass"
    assert "bias" in w.children[0].children[-1].value


def test_toy_player_swaps_frames():
    dyn = B.fig6_dynamics(steps=60, every=20)
    w = WB.toy_player(dyn)
    w.case.value = 3
    w.frame.value = 2
    assert np.array_equal(np.asarray(w.figure.data[0].z), dyn[3]["regression"]["frames"][2])
    assert np.array_equal(np.asarray(w.figure.data[3].z), dyn[3]["detection"]["frames"][2])
