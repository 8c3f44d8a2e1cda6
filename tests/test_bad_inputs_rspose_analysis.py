"""Hostile inputs to chapter 02's analysis functions: a clear ValueError naming the argument, or
the documented result. Each case below gave a wrong number, a silent NaN or a traceback from
inside torch before."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from poselab.chapters.rspose import analysis as A

NAN = float("nan")


@pytest.mark.parametrize("call, match", [
    # split 0 gave 0 bins, −1 negatives and a ratio of −1; a negative σ was taken as given
    (lambda: A.simcc_imbalance(split_ratio=0), "split_ratio must be a finite number > 0"),
    (lambda: A.simcc_imbalance(sigma=-1.0), "sigma must be a finite number > 0"),
    (lambda: A.simcc_imbalance(input_size=(1, 1), split_ratio=1.0), "fewer than 2 bins"),
    # a NaN gradient gave a NaN share, as if it were a measurement
    (lambda: A.gradient_split(torch.full((2, 3, 8, 6), NAN), torch.zeros(2, 3, 8, 6, dtype=torch.bool)),
     "grad contains NaN or Inf"),
    # records without a step: KeyError('step') from inside
    (lambda: A.share_over_training([{"mse": {"neg_share": 0.5}}]), "each with 'step'"),
    # a NaN offset / shift drew a target-less prediction and returned finite-looking updates
    (lambda: A.single_map_updates(offset=(NAN, 0.0)), "offset must be two finite numbers"),
    (lambda: A.updates_on_one_heatmap(shift=(NAN, 0.0)), "shift must be two finite numbers"),
    # lo > hi mapped every score to 0.5 silently
    (lambda: A.minmax_apply(np.random.rand(4, 2), np.ones(2), np.zeros(2)), "lo <= hi"),
    # δ = 0 counted ties only; no map at all: torch's reshape error
    (lambda: A.plateau_statistics(torch.randn(2, 3, 64, 48), torch.rand(2, 3, 64, 48), delta=0), "delta must be"),
    (lambda: A.plateau_statistics(torch.randn(0, 3, 64, 48), torch.rand(0, 3, 64, 48)), "no map to measure"),
])
def test_bad_inputs_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_documented_edges_keep_their_results():
    # a keypoint with hi = lo maps to 0.5 (documented); no positive: balance_error NaN (documented)
    assert np.all(A.minmax_apply(np.ones((3, 1)), np.ones(1), np.ones(1)) == 0.5)
    split = A.gradient_split(torch.randn(2, 3, 8, 6), torch.zeros(2, 3, 8, 6, dtype=torch.bool))
    assert np.isnan(split["balance_error"]) and split["neg_share"] == 1.0
    assert A.simcc_imbalance()["x"]["bins"] == 384
