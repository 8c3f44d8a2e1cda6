"""Hostile inputs to chapter 05's analysis functions: a clear ValueError naming the argument.
Each case below gave a wrong number, a silent NaN or a traceback from inside torch before."""
from __future__ import annotations

import numpy as np
import pytest

from poselab.chapters.sar import analysis as A

NAN = float("nan")


@pytest.mark.parametrize("call, match", [
    # λ = 0 gave a floor of −0.0, λ NaN a NaN floor
    (lambda: A.reach_floor((3.3, 4.2), lam=0), "lam must be a finite number > 0"),
    (lambda: A.reach_floor((3.3, 4.2), lam=NAN), "lam must be a finite number > 0"),
    (lambda: A.reach_floor((3.3, 4.2), reach=-1.0), "reach must be a finite number >= 0"),
    # n = 0: torch's "max(): Expected reduction dim" from inside
    (lambda: A.degenerate_check(n=0), "n must be a whole number >= 1"),
    # stride 0: ZeroDivisionError
    (lambda: A.quantization_floor(strides=(0,)), "stride must be a whole number >= 1"),
    # radius 0 / NaN and NaN detections counted as misses, silently
    (lambda: A.match_detections(np.random.rand(3, 2), np.random.rand(3, 2), radius=0), "radius must be"),
    (lambda: A.match_detections(np.random.rand(3, 2), np.random.rand(3, 2), radius=NAN), "radius must be"),
    (lambda: A.match_detections(np.full((3, 2), NAN), np.random.rand(3, 2), radius=1.0), "must be finite"),
    # no joint: a NaN error and a NaN value
    (lambda: A.direct_formula_check(n_joints=0), "n_joints must be a whole number >= 1"),
])
def test_bad_inputs_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_documented_conventions_stay():
    # nothing to find / nothing found: recall 1 / precision 1 by convention (documented)
    assert A.match_detections(np.zeros((0, 2)), np.random.rand(3, 2), radius=1.0)["precision"] == 1.0
    assert A.match_detections(np.random.rand(3, 2), np.zeros((0, 2)), radius=1.0)["recall"] == 1.0
    assert A.reach_floor((3.3, 4.2), reach=0.0) > 0
