"""Hostile inputs to chapter 06's analysis functions (the density-shrinkage theory, the Fig. 6
toys, the App. G fits): a clear ValueError naming the argument, or a defined result. Each case
below gave a silent NaN / a wrong number or a traceback from inside numpy before."""
from __future__ import annotations

import numpy as np
import pytest

from poselab.chapters.bcir import analysis as A

NAN = float("nan")


@pytest.mark.parametrize("call, match", [
    # σ_true = 0 gave σ* = 11.0 (the search's upper end), σ_true = −1 gave 1.0, NaN gave NaN
    (lambda: A.sigma_star(0.0, 1.0), "sigma_true must be finite and > 0"),
    (lambda: A.sigma_star(-1.0, 1.0), "sigma_true must be finite and > 0"),
    (lambda: A.sigma_star(NAN, 1.0), "sigma_true must be finite and > 0"),
    (lambda: A.sigma_star(2.0, NAN), "offset must be finite"),
    (lambda: A.sigma_star(2.0, 1.0, lo=0.0), "0 < lo < hi"),
    (lambda: A.bhattacharyya_distance(0.0, 2.0, 0.0), "sigma_hat must be finite and > 0"),
    (lambda: A.sigma_star_closed_form(np.array([2.0, 0.0]), 1.0), "sigma_true must be finite and > 0"),
    (lambda: A.sigma_star_eq14_as_printed(2.0, [0.0, NAN]), "offset must be finite"),
    # 1200 of 1516 numbers NaN at σ_true = 0; no offsets: numpy's "need at least one array to stack"
    (lambda: A.shrinkage_curves(sigma_true=0.0), "sigma_true must be finite and > 0"),
    (lambda: A.shrinkage_curves(offsets=()), "offsets must be finite numbers"),
    (lambda: A.shrinkage_curves(sigmas=[1.0, -2.0]), "sigmas must be finite and > 0"),
    # a NaN centre drew an all-NaN map
    (lambda: A.symmetric_blob((64, 48), (NAN, 30.0)), "center must be finite"),
    # β = 0: ZeroDivisionError; β NaN or a NaN ground truth: NaN frames; γ < 0 climbed the loss
    (lambda: A.toy_dynamics(A.toy_initial_heatmap(1), (34.0, 46.0), beta=0.0), "beta must be finite and > 0"),
    (lambda: A.toy_dynamics(A.toy_initial_heatmap(1), (34.0, 46.0), beta=NAN), "beta must be finite and > 0"),
    (lambda: A.toy_dynamics(A.toy_initial_heatmap(1), (NAN, 46.0)), "gt must be finite"),
    (lambda: A.toy_dynamics(A.toy_initial_heatmap(1), (34.0, 46.0), gamma=-1.0), "gamma must be finite and > 0"),
    # share 0 counted 1 pixel, share 2 counted H·W + 1; NaN maps counted 1
    (lambda: A.mass_spread(np.full((2, 64, 48), 1 / 3072), share=0), r"share must be a number in \(0, 1\]"),
    (lambda: A.mass_spread(np.full((2, 64, 48), 1 / 3072), share=2), r"share must be a number in \(0, 1\]"),
    (lambda: A.mass_spread(np.full((2, 64, 48), NAN)), r"probabilities must be finite numbers, got an array of shape \(2, 64, 48\)"),
    # a negative window gave A(s) = 0; no template σ: numpy's argmin of an empty sequence
    (lambda: A.activation_sum(np.random.rand(3, 64, 48), np.zeros((3, 2)), s=-1), "s must be a whole number"),
    (lambda: A.best_fit_sigma(np.random.rand(3, 64, 48), np.zeros((3, 2)), sigmas=()), "sigmas must be finite and > 0"),
    # mismatched lengths: numpy's broadcasting errors
    (lambda: A.split_means([1.0, 2.0, 3.0], ["easy", "hard"]), "one entry each per item"),
    (lambda: A.difficulty_split([1, 2], [0.1], [3, 4, 5]), "one value each per person"),
])
def test_bad_inputs_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_valid_edges_keep_their_defined_results():
    # no map at all (a split with no joint): empty counts, not numpy's reshape error
    assert A.mass_spread(np.zeros((0, 64, 48))).shape == (0,)
    assert int(A.mass_spread(np.full((64, 48), 1 / 3072))) == 2765     # a flat map, as documented
    assert A.sigma_star(2.0, 0.0) == pytest.approx(2.0, abs=1e-6)       # no offset: no widening
    assert A.sigma_star(2.0, -1.0) == pytest.approx(A.sigma_star(2.0, 1.0))
    assert float(A.activation_sum(np.full((1, 64, 48), 1 / 3072), np.array([[20.0, 30.0]]), s=0)[0]) == pytest.approx(1 / 3072)
