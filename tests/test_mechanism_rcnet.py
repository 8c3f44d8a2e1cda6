"""Where RCNet's AP change comes from: the split into reordering true positives and moving false
positives (poselab.chapters.rcnet.mechanism), each move isolated by a constructed rescoring."""
import numpy as np
import pytest
import torch

from poselab.chapters.rcnet import mechanism as M


def test_ap_gain_decomposition_isolates_the_two_moves():
    oks = np.array([0.95, 0.6, 0.0, 0.7, 0.0, 0.9])  # TPs at 0, 1, 3, 5; FPs at 2, 4
    before = np.array([6, 5, 4, 3, 2, 1.0])  # TP(.95) TP(.6) FP TP(.7) FP TP(.9)
    # only the TPs reordered (by OKS), every FP in its slot: the whole gain is TP order
    tp_moves = np.array([6, 1, 4, 3, 2, 5.0])  # TP(.95) TP(.9) FP TP(.7) FP TP(.6)
    d = M.ap_gain_decomposition(before, tp_moves, oks, n_gt=5)
    assert d["gain"] > 0 and abs(d["from_tp_order"] - d["gain"]) < 1e-12
    assert d["from_fp_placement"] == 0.0 and abs(d["interaction"]) < 1e-12
    assert d["wrong_fp_before"] == d["wrong_fp_after"] == 2
    # only the FPs pushed to the bottom, the TPs in their original order: the whole gain is FP placement
    fp_moves = np.array([6, 5, 0.5, 3, 0.2, 1.0])
    d = M.ap_gain_decomposition(before, fp_moves, oks, n_gt=5)
    assert d["gain"] > 0 and d["from_tp_order"] == 0.0 and abs(d["from_fp_placement"] - d["gain"]) < 1e-12
    assert d["wrong_fp_after"] == 0
    # the parts always add up to the change
    rng = np.random.default_rng(0)
    q = np.where(rng.random(60) < 0.3, 0.0, rng.uniform(0.5, 1.0, 60))
    d = M.ap_gain_decomposition(rng.random(60), rng.random(60), q, n_gt=50)
    parts = d["from_tp_order"] + d["from_fp_placement"] + d["interaction"]
    assert abs(parts - d["gain"]) < 1e-12
    with pytest.raises(ValueError, match="same length"):
        M.ap_gain_decomposition([1, 2], [1, 2, 3], [0.6, 0.0], n_gt=1)


def test_decomposition_sentence_says_whether_it_agrees_with_app_c():
    row = lambda g, tp, fp: {"gain": g, "from_tp_order": tp, "from_fp_placement": fp,  # noqa: E731
                             "interaction": g - tp - fp, "wrong_fp_before": 404, "wrong_fp_after": 472}
    against = M.decomposition_sentence([row(0.01, 0.012, -0.002)] * 3)
    assert "ordering the true positives" in against and "404 -> 472" in against
    agrees = M.decomposition_sentence([row(0.01, 0.002, 0.008)] * 3)
    assert "as App. C says" in agrees and "not from" not in agrees
    assert "no AP gain" in M.decomposition_sentence([row(0.0, 0.0, 0.0)])
    assert "No rescoring" in M.decomposition_sentence([])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_ap_gain_decomposition_takes_gpu_tensors(dtype):
    """Scores as a GPU hands them back (bfloat16 / float16 torch tensors): the same split as float64
    numpy, not numpy's 'unsupported ScalarType BFloat16'."""
    t = getattr(torch, dtype)
    before, after, oks = [3.0, 2.0, 1.0], [2.0, 3.0, 1.0], [0.5, 0.75, 0.0]
    want = M.ap_gain_decomposition(before, after, oks, n_gt=2)
    got = M.ap_gain_decomposition(torch.tensor(before, dtype=t), torch.tensor(after, dtype=t),
                                  torch.tensor(oks, dtype=t), n_gt=2)
    assert got == pytest.approx(want)
