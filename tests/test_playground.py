"""Heatmap playground: every loss's value and gradient, against independent checks."""
from __future__ import annotations

import time

import numpy as np
import pytest

from poselab.chapters.capstone.playground import PLAYGROUND_LOSSES, blob_heatmap, gaussian_labels, loss_maps

SIZE = (16, 12)
KP = (5.3, 7.6)


def test_every_loss_gives_a_finite_value_and_gradient():
    hm = blob_heatmap(SIZE, [(6.0, 8.0, 1.5, 1.0), (2.0, 3.0, 1.0, 0.4)], 0.05)
    out = loss_maps(hm, KP)
    assert list(out) == list(PLAYGROUND_LOSSES)
    for name, v in out.items():
        assert np.isfinite(v["value"]), name
        assert v["grad"].shape == SIZE and np.all(np.isfinite(v["grad"])), name
        assert np.abs(v["grad"]).max() > 0, f"{name} has no gradient"


@pytest.mark.parametrize("name", ["MSE", "KL", "EMD", "integral L1", "integral L1, compensated", "SAR"])
def test_gradient_matches_central_differences(name):
    hm = blob_heatmap(SIZE, [(6.2, 8.4, 1.7, 1.0)], 0.1)
    grad = loss_maps(hm, KP, losses=[name])[name]["grad"]
    rng = np.random.default_rng(0)
    for i, j in zip(rng.integers(0, SIZE[0], 5), rng.integers(0, SIZE[1], 5)):
        e = np.zeros(SIZE)
        e[i, j] = 1e-6
        up = loss_maps(hm + e, KP, losses=[name])[name]["value"]
        down = loss_maps(hm - e, KP, losses=[name])[name]["value"]
        assert abs((up - down) / 2e-6 - grad[i, j]) <= 1e-5 + 1e-4 * abs(grad[i, j]), (name, i, j)


def test_a_map_equal_to_the_target_zeroes_mse_and_the_compensated_integral_loss():
    g = gaussian_labels(SIZE, KP, 2.0, None)
    out = loss_maps(g, KP, losses=["MSE"])
    assert out["MSE"]["value"] == pytest.approx(0.0, abs=1e-15)
    # a compact blob on a pixel centre far from the map centre: plain soft-argmax is pulled to
    # the centre (BCIR §5.1, 0.064 px here); the compensation (Eq. 38) removes all but 4e-5 px
    corner = (2.0, 3.0)
    sharp = blob_heatmap(SIZE, [(corner[0], corner[1], 1.0, 1.0)])
    comp = loss_maps(sharp, corner, losses=["integral L1", "integral L1, compensated"])
    assert comp["integral L1, compensated"]["value"] < 1e-4 < 0.05 < comp["integral L1"]["value"]


def test_kl_is_the_2d_kl_divergence():
    hm = blob_heatmap(SIZE, [(4.0, 9.0, 2.0, 2.0)], 0.0)
    t = gaussian_labels(SIZE, KP, 2.0, None)
    t = t / t.sum()
    p = np.exp(hm - hm.max())
    p = p / p.sum()
    expected = float(np.sum(t * (np.log(t) - np.log(p))))
    assert loss_maps(hm, KP, losses=["KL"])["KL"]["value"] == pytest.approx(expected, rel=1e-10)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="inside"):
        loss_maps(np.zeros(SIZE), (20.0, 3.0))
    with pytest.raises(ValueError, match="finite"):
        loss_maps(np.full(SIZE, np.nan), KP)
    with pytest.raises(ValueError, match="unknown"):
        loss_maps(np.zeros(SIZE), KP, losses=["L7"])
    with pytest.raises(ValueError, match="sigma"):
        blob_heatmap(SIZE, [(1, 1, 0.0, 1.0)])


def test_widget_callback_answers_within_a_second():
    from poselab.chapters.capstone.widgets import heatmap_playground
    box = heatmap_playground()
    state = box.state
    before = np.array(state.figure.data[1].z, dtype=float)
    t0 = time.process_time()
    state.sliders["x"].value = state.sliders["x"].value + 3.0
    assert time.process_time() - t0 < 1.0
    after = np.array(state.figure.data[1].z, dtype=float)
    assert not np.allclose(before, after)
    assert state.figure.layout.width <= 900
