"""BCIR figures and widgets build, respond to their controls within 1 s, and show what the
analysis functions computed."""

import types

import numpy as np
import pytest

from poselab.chapters.bcir import analysis as B
from poselab.chapters.bcir import figures as V
from poselab.chapters.bcir import widgets as WB


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


def test_integral_toy_run_l1_is_eq23_and_compensation_removes_the_bias():
    """integral_toy_run differentiates by autograd; with the plain soft-argmax and the L1 loss it
    must retrace toy_dynamics' regression, which uses the paper's closed-form gradient (Eq. 23)."""
    h0 = B.toy_initial_heatmap(2, (32, 24), (16.0, 22.0))
    ours = B.integral_toy_run(h0, (16.0, 22.0), loss="l1", beta=10.0, gamma=0.02, steps=40, every=10)
    ref = B.toy_dynamics(h0, (16.0, 22.0), "regression", beta=10.0, gamma=0.02, steps=40, every=10)
    np.testing.assert_allclose(ours["frames"], ref["frames"], atol=1e-10)
    np.testing.assert_allclose(ours["predictions"], ref["predictions"], atol=1e-10)
    # a blob on the truth: the plain soft-argmax is pulled toward the centre, the compensated one is not
    blob = B.toy_initial_heatmap(4, (64, 48), (34.0, 46.0))
    plain = B.integral_toy_run(blob, (34.0, 46.0), beta=1.0, steps=0)
    comp = B.integral_toy_run(blob, (34.0, 46.0), beta=1.0, steps=0, compensated=True)
    assert plain["errors"][0] > 5.0 and comp["errors"][0] < 1e-6
    assert B.mass_spread(np.full((64, 48), 1.0)) == int(np.ceil(0.9 * 64 * 48))
    one = np.zeros((64, 48))
    one[3, 4] = 1.0
    assert B.mass_spread(one) == 1
    with pytest.raises(ValueError, match="loss"):
        B.integral_toy_run(blob, (34.0, 46.0), loss="huber")
    with pytest.raises(ValueError, match="h0"):
        B.integral_toy_run(np.full((4, 4), np.nan), (1.0, 1.0))


def test_gradient_case_explorer_recomputes_on_settings_and_swaps_frames():
    w = WB.gradient_case_explorer((32, 24), gt=(16.0, 22.0), steps=40, every=10)
    first = w.label.value
    w.controls["loss"].value = "l2"
    w.controls["compensated"].value = True
    assert w.label.value != first
    key_run = B.integral_toy_run(B.toy_initial_heatmap(2, (32, 24), (16.0, 22.0)), (16.0, 22.0), loss="l2",
                                 compensated=True, beta=10.0, gamma=0.02 / 10.0, steps=40, every=10)
    w.frame.value = 3
    assert np.array_equal(np.asarray(w.figure.data[0].z), key_run["frames"][3])
    assert f"{key_run['errors'][3]:.2f} px" in w.label.value
    w.controls["case"].value = 4
    w.controls["beta"].value = 1.0
    assert "step 30" in w.label.value


def test_epochs_to_fraction_is_continuous():
    """Validating at epochs 2, 4 and 5, the old measure could only answer 2, 4 or 5."""
    assert B.epochs_to_fraction([2, 4, 5], [0.1, 0.35, 0.5], interpolate=False) == 5.0
    got = B.epochs_to_fraction([2, 4, 5], [0.1, 0.35, 0.5])        # 80 % of 0.5 = 0.4
    assert abs(got - (4 + (0.4 - 0.35) / (0.5 - 0.35))) < 1e-12
    assert abs(B.epochs_to_fraction([2, 4, 5], [0.45, 0.48, 0.5]) - 2 * 0.4 / 0.45) < 1e-12
    assert np.isnan(B.epochs_to_fraction([1, 2], [0.0, 0.0]))


def test_toy_shrinkage_shrinks_only_where_the_bias_pulls():
    """§4.3 on the toy: from a σ = 2 blob at an off-centre truth, plain integral regression
    sharpens the map (σ̂ falls); at the map centre the soft-argmax has no bias, the loss starts at
    0 and σ̂ stays put — the counter-case a σ̂ measured without the run (or on the logits) fails."""
    off = (34.0, 46.0)
    run = B.toy_shrinkage(B.toy_initial_heatmap(4, (64, 48), off), off, beta=10.0, steps=100, every=50)
    p = np.exp(10.0 * (run["frames"][-1] - run["frames"][-1].max()))
    p /= p.sum()
    ref = B.best_fit_sigma(p[None], np.array([off]), 4, B.SHRINKAGE_SIGMAS)["sigma"][0]
    assert run["sigma"][-1] == ref
    assert run["sigma"][-1] < run["sigma"][0] - 0.1
    centre = (23.5, 31.5)
    still = B.toy_shrinkage(B.toy_initial_heatmap(4, (64, 48), centre), centre, beta=10.0, steps=100, every=50)
    assert np.ptp(still["sigma"]) < 1e-9


def test_density_shrinkage_explorer_moves_with_every_control():
    w = WB.density_shrinkage_explorer((32, 24), gt=(17.0, 23.0), steps=40, every=20)
    theory, picture = w.figures
    w.controls["sigma_true"].value = 1.5
    w.controls["offset"].value = 3.0
    star = B.sigma_star(1.5, 3.0)
    assert abs(theory.data[1].x[0] - star) < 1e-12 and star > 1.5
    np.testing.assert_allclose(theory.data[0].y, B.bhattacharyya_distance(np.asarray(theory.data[0].x), 1.5, 3.0))
    w.controls["beta"].value = 1.0
    w.frame.value = 2
    run = B.toy_shrinkage(B.toy_initial_heatmap(4, (32, 24), (17.0, 23.0)), (17.0, 23.0), beta=1.0, steps=40, every=20)
    np.testing.assert_allclose(np.asarray(picture.data[0].z), run["probabilities"][2])
    assert theory.data[4].x[0] == run["sigma"][2] and picture.data[3].y[0] == run["sigma"][2]
    assert f"σ̂ = {run['sigma'][2]:.2f} px" in w.label.value and f"σ* = {star:.2f} px" in w.label.value
    before = w.label.value
    w.controls["compensated"].value = True
    assert w.label.value != before


def test_toy_drawn_heatmap_sums_sigma_two_blobs_and_refuses_points_off_the_map():
    h = B.toy_drawn_heatmap([(10, 12), (30.5, 40)], (64, 48))
    expected = (B.symmetric_blob((64, 48), (10, 12), 2.0, peak=1.0, radius=6.0)
                + B.symmetric_blob((64, 48), (30.5, 40), 2.0, peak=1.0, radius=6.0))
    assert h.shape == (64, 48) and np.array_equal(h, expected) and h[12, 10] == 1.0
    assert not B.toy_drawn_heatmap([], (64, 48)).any()           # no point: the flat map
    for bad in ([(48, 3)], [(-0.5, 3)], [(3, 64)], [(float("nan"), 3)], [(1, 2, 3)], [(1, 2), (3,)], ["ab"], 5):
        with pytest.raises(ValueError, match="points must be"):
            B.toy_drawn_heatmap(bad, (64, 48))


def test_gradient_case_explorer_draws_a_start_of_ones_own_by_clicking_the_map():
    w = WB.gradient_case_explorer((32, 24), gt=(16.0, 22.0), steps=40, every=10)
    w.frame.value = 2
    # a click on the regression map, as plotly's FigureWidget delivers it to the trace's handler
    points = types.SimpleNamespace(xs=[5.2], ys=[6.7], point_inds=[[7, 5]], trace_index=0)
    w.figure.data[0]._click_callbacks[0](w.figure.data[0], points, None)
    assert w.controls["case"].value == "drawn" and w.drawn == [(5.0, 7.0)]
    assert w.frame.value == 0 and "drawn start: 1 blob(s) at (5, 7)" in w.label.value
    assert np.array_equal(np.asarray(w.figure.data[0].z), B.toy_drawn_heatmap([(5.0, 7.0)], (32, 24)))
    w.add_point(20, 10)
    start = B.toy_drawn_heatmap([(5.0, 7.0), (20.0, 10.0)], (32, 24))
    run = B.integral_toy_run(start, (16.0, 22.0), loss="l1", compensated=False, beta=10.0, gamma=0.2 / 10.0,
                             steps=40, every=10)
    assert w.frame.value == 0
    assert np.array_equal(np.asarray(w.figure.data[0].z), run["frames"][0])   # the run starts from the drawing
    w.frame.value = 3
    assert np.array_equal(np.asarray(w.figure.data[0].z), run["frames"][3])
    assert "2 blob(s)" in w.label.value and f"{run['errors'][3]:.2f} px" in w.label.value
    w.clear()
    assert w.drawn == [] and "the flat map" in w.label.value and w.frame.value == 0
    assert not np.asarray(w.figure.data[0].z).any()
    w.controls["case"].value = 4                                   # the paper's cases are still there
    assert "drawn start" not in w.label.value
