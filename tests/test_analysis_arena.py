"""analysis.arena: per-joint errors and time-to-AP, against hand computations."""
import math

import numpy as np
import pytest

from poselab.analysis.arena import per_keypoint_error, time_to_metric


def test_per_keypoint_error_against_a_loop():
    rng = np.random.default_rng(0)
    c, g = rng.normal(size=(7, 4, 2)), rng.normal(size=(7, 4, 2))
    v = rng.random((7, 4)) > 0.4
    v[:, 3] = False
    got = per_keypoint_error(c, g, v)
    for k in range(3):
        want = np.mean([np.hypot(*(c[n, k] - g[n, k])) for n in range(7) if v[n, k]])
        assert got[k] == pytest.approx(want)
    assert math.isnan(got[3])
    with pytest.raises(ValueError, match="N, K, 2"):
        per_keypoint_error(c, g[:, :2], v)


def test_time_to_metric():
    hist = {"step_times": [1.0] * 10, "data_times": [0.5] * 10,
            "val": [{"step": 4, "AP": 0.2}, {"step": 8, "AP": 0.55}, {"step": 10, "AP": 0.5}]}
    assert time_to_metric(hist, 0.5) == pytest.approx(12.0)   # reached at step 8: 8 × 1.5 s
    assert time_to_metric(hist, 0.1) == pytest.approx(6.0)
    assert math.isnan(time_to_metric(hist, 0.9))
