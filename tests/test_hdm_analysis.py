"""HDM analysis functions: Theorem 1, the Fig. 1 counterexample, displacement curves."""
import numpy as np

from poselab.analysis import hdm as A


def test_theorem1_identity_holds_with_peak_one_on_dot():
    out = A.theorem1_check(n=8, subpixel=False, seed=1)
    assert out["peak_on_dot"] == 1.0
    assert abs(out["residual"]) <= 1e-9


def test_theorem1_residual_for_subpixel_gaussian_is_two_one_minus_peak():
    out = A.theorem1_check(n=8, subpixel=True, seed=2)
    assert out["residual"] > 1e-3
    # independent derivation: residual = 2 E[1 - G(dot pixel)] summed over joints
    joints = 17
    assert abs(out["residual"] - 2 * joints * (1 - out["peak_on_dot"])) < 1e-9


def test_theorem1_terms_by_direct_sums():
    rng = np.random.default_rng(0)
    p, g, d = rng.normal(size=(3, 5, 4, 3))
    out = A.theorem1_terms(p, g, d)
    r_dot = np.mean([((p[i] - d[i]) ** 2).sum() for i in range(5)])
    assert abs(out["R_dot"] - r_dot) < 1e-12


def test_counterexample_lower_mse_wrong_peak():
    c = A.counterexample()
    m1, m2 = c["metrics1"], c["metrics2"]
    mse1 = ((c["pred1"] - c["target"]) ** 2).mean()
    mse2 = ((c["pred2"] - c["target"]) ** 2).mean()
    assert mse2 < mse1 and abs(m1["mse"] - mse1) < 1e-15
    peak2 = np.unravel_index(c["pred2"].argmax(), c["pred2"].shape)
    assert np.hypot(peak2[1] - c["keypoint"][0], peak2[0] - c["keypoint"][1]) > 1.0
    assert c["holds"] and m2["emd"] > m1["emd"]


def test_emd_tracks_displacement_mse_saturates():
    r = A.loss_vs_displacement(np.arange(0, 16.5, 1.0), size=(32, 40))
    assert np.all(np.diff(r["emd"]) > 0)
    far = r["mse"][-5:]
    assert (far.max() - far.min()) / far.max() < 1e-2
