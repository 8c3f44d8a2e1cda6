"""Hostile inputs to chapter 04's analysis functions: a clear ValueError naming the argument.
Each case below drew NaN maps, returned a NaN measurement, dropped NaN maps silently or raised
from inside numpy / torch before."""
from __future__ import annotations

import numpy as np
import pytest

from poselab.chapters.hdm import analysis as A

NAN = float("nan")


@pytest.mark.parametrize("call, match", [
    (lambda: A.gaussian_map((5.0, 7.0), (16, 12), 0.0), "sigma must be a finite number > 0"),
    (lambda: A.gaussian_map((5.0, 7.0), (16, 12), NAN), "sigma must be a finite number > 0"),
    (lambda: A.gaussian_map((NAN, 7.0), (16, 12), 2.0), "center must be finite"),
    (lambda: A.blob_map((16, 12), (5.0, 7.0), sigma=0.0), "sigma must be a finite number > 0"),
    (lambda: A.heatmap_metrics(np.random.rand(16, 12), A.gaussian_map((5, 7), (16, 12), 2.0), (NAN, 7.0)),
     "keypoint must be finite"),
    (lambda: A.theorem1_check(n=0), "n must be a whole number >= 1"),
    (lambda: A.reference_sinkhorn_cost(np.random.rand(16, 12), (5.0, 7.0), reg=0.0), "reg must be a finite number > 0"),
    (lambda: A.reference_sinkhorn_cost(np.full((16, 12), NAN), (5.0, 7.0)), "heatmap contains NaN"),
    (lambda: A.peaked_maps(0), "n must be a whole number >= 1"),
    (lambda: A.peaked_maps(3, sigma_range=(2.0, 0.1)), "0 < lo <= hi"),
    (lambda: A.fit_free_heatmaps(np.full((2, 2), NAN), steps=1), "keypoints must be finite"),
    (lambda: A.decoding_study(n=0), "n must be a whole number >= 1"),
    (lambda: A.heatmap_compactness(np.random.rand(2, 17, 16, 12), np.random.rand(2, 17, 2) * 8, radius=0.0),
     "radius must be a finite number > 0"),
    (lambda: A.heatmap_compactness(np.full((2, 17, 16, 12), NAN), np.random.rand(2, 17, 2) * 8),
     "heatmaps contain NaN or Inf"),
    (lambda: A.demander_reconstruction(n=0), "n must be a whole number >= 1"),
])
def test_bad_inputs_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_valid_edges_keep_their_results():
    # no visible joint: empty measurements (documented); an all-zero map: uniform suppliers
    out = A.heatmap_compactness(np.random.rand(2, 17, 16, 12), np.random.rand(2, 17, 2) * 8,
                                visible=np.zeros((2, 17)))
    assert all(v.shape == (0,) for v in out.values())
    assert np.isfinite(A.reference_sinkhorn_cost(np.zeros((16, 12)), (5.0, 7.0)))
    assert A.gaussian_map((5.0, 7.0), (16, 12), 2.0)[7, 5] == 1.0
