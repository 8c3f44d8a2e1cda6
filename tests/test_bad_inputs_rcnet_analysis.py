"""Hostile inputs to chapter 03's analysis functions and the pair term of RCNet's loss: a clear
ValueError naming the argument. Each case below returned an impossible number (AP 2.5, AP 1 from
OKS 2.9), a NaN, or raised from inside numpy / torch before."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from poselab.chapters.rcnet import analysis as A
from poselab.losses.confidence_ranking import rank_pair_term, rank_pair_term_eq9

NAN = float("nan")


@pytest.mark.parametrize("call, match", [
    # more true positives than ground-truth persons: AP 2.5
    (lambda: A.average_precision_eq3([0.9, 0.8, 0.7, 0.6, 0.5], np.ones(5), 2), "5 detections have OKS > 0.5 but n_gt = 2"),
    (lambda: A.average_recall_eq4(np.ones(3), 1), "3 detections have OKS > 0.5 but n_gt = 1"),
    # OKS above 1 counted as a true positive at every threshold
    (lambda: A.average_precision_eq3([0.9, 0.8], [2.5, 0.0], 2), r"oks must lie in \[0, 1\]"),
    (lambda: A.random_ranking_accuracy(n_pairs=10, correlation=2.0), r"correlation must be a number in \[0, 1\]"),
    (lambda: A.optimal_margin_of_g(c=NAN), "c must be a finite number > 0"),
    (lambda: A.optimal_margin_of_g(grid=1), "grid must be a whole number >= 2"),
    (lambda: A.theorem1_monte_carlo(n=0), "n must be a whole number >= 1"),
    (lambda: A.theorem1_in_range(n=0), "n must be a whole number >= 1"),
    (lambda: A.ause_oks(np.random.rand(5), np.random.rand(5), steps=0), "steps must be a whole number >= 1"),
    (lambda: A.theorem1_pair_bound_gap(np.random.rand(5), np.ones(5), b=0.0), "b must be a finite number > 0"),
    (lambda: A.pair_term_point(NAN), "delta must be a finite number"),
    # the loss's pair term: numpy input raised AttributeError, c = 0 and NaN went through
    (lambda: rank_pair_term(np.random.rand(5), torch.ones(5)), "delta must be a torch.Tensor"),
    (lambda: rank_pair_term(torch.tensor([0.5, NAN]), torch.ones(2)), "delta contains NaN or Inf"),
    (lambda: rank_pair_term(torch.rand(5), torch.ones(5), c=0.0), "c must be a finite number > 0"),
    (lambda: rank_pair_term(torch.rand(5), torch.ones(5), margin=-1.0), "margin must be a finite number >= 0"),
    (lambda: rank_pair_term(torch.rand(5), torch.ones(4)), "does not broadcast"),
    (lambda: rank_pair_term_eq9(torch.rand(5), torch.ones(5), c=NAN), "c must be a finite number > 0"),
])
def test_bad_inputs_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_valid_inputs_are_unchanged():
    assert A.average_precision_eq3([0.9, 0.8, 0.7], [0.99, 0.0, 0.99], n_gt=2) == pytest.approx(0.8333333333333333)
    assert rank_pair_term(torch.tensor([0.5, -0.5]), torch.tensor([1.0, 1.0])).tolist() == [0.25, 1.0]
    assert A.optimal_margin_of_g() == pytest.approx(0.5, abs=1e-5)
