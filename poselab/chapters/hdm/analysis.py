"""Pure functions behind the Heatmap Distribution Matching chapter (Qu et al., NeurIPS 2022).

Arrays in, numbers out: the Fig. 1 counterexample, Theorem 1's risk decomposition, loss curves
against peak displacement, the free-heatmap ablations (sub-pixel vs naive demanders, Sinkhorn
iteration caps, argmax vs four-pixel decoding), heatmap compactness (Fig. 3) and an independent
float64 numpy Sinkhorn used when POT is absent.

Coordinates: ``(x, y)`` in heatmap pixels, pixel centres at integers (see DEVELOPERS.md).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from poselab import claims
from poselab._numbers import positive_number, whole_number
from poselab.codecs.hdm import decode_four_pixel, subpixel_demanders
from poselab.codecs.heatmap import decode_argmax
from poselab.losses.transport import emd_loss, hdm_transport

__all__ = [
    "gaussian_map", "dot_map", "blob_map", "heatmap_metrics", "counterexample",
    "theorem1_terms", "theorem1_check", "loss_vs_displacement", "displacement_tracking",
    "reference_sinkhorn_cost", "reference_emd_cost", "emd_reference_agreement", "peaked_maps",
    "argmax_xy", "fit_free_heatmaps", "demander_mechanism", "iteration_cap_study",
    "iterations_needed", "decoding_study", "heatmap_compactness", "pixels_above_truth", "demander_reconstruction",
    "transport_example", "theorem1_claims",
]


# ----------------------------------------------------------------------------- checks
def _finite_points(points, name: str) -> np.ndarray:
    a = np.asarray(points, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != 2 or not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite (x, y) points, shape (..., 2), got shape {a.shape}"
                         + ("" if a.ndim == 0 or np.isfinite(a).all() else " with NaN/Inf"))
    return a


# ----------------------------------------------------------------------------- heatmaps
def gaussian_map(center, size, sigma, peak=1.0):
    """Unnormalised Gaussian ``peak·exp(-‖p − c‖²/2σ²)`` on an (H, W) grid, float64 numpy.

    ``center (..., 2)`` as (x, y) → ``(..., H, W)``.
    """
    H, W = size
    c = _finite_points(center, "center")
    sigma = positive_number(sigma, "sigma")
    xs = np.arange(W, dtype=np.float64)
    ys = np.arange(H, dtype=np.float64)
    gx = np.exp(-(xs - c[..., 0, None]) ** 2 / (2 * sigma ** 2))
    gy = np.exp(-(ys - c[..., 1, None]) ** 2 / (2 * sigma ** 2))
    return peak * gy[..., :, None] * gx[..., None, :]


def dot_map(center, size):
    """One-hot heatmap at the pixel containing ``center`` (``round``), float64; ``(..., H, W)``.

    Raises ValueError if the pixel is outside the map.
    """
    H, W = size
    c = np.asarray(center, dtype=np.float64)
    j = np.floor(c[..., 0] + 0.5).astype(int)
    i = np.floor(c[..., 1] + 0.5).astype(int)
    if np.any((j < 0) | (j >= W) | (i < 0) | (i >= H)):
        raise ValueError("dot annotation outside the heatmap; keep centres inside [-0.5, W-0.5)")
    out = np.zeros(c.shape[:-1] + (H, W))
    idx = np.indices(c.shape[:-1])
    out[(*idx, i, j)] = 1.0
    return out


def blob_map(size, center, amplitude=1.0, sigma=2.0, distractor=None, d_amplitude=0.0,
             d_sigma=1.0):
    """A predicted heatmap: a Gaussian blob plus an optional distractor blob (widget model)."""
    out = gaussian_map(center, size, sigma, peak=amplitude)
    if distractor is not None and d_amplitude:
        out = out + gaussian_map(distractor, size, d_sigma, peak=d_amplitude)
    return out


def argmax_xy(heatmaps) -> np.ndarray:
    """Integer argmax pixel ``(..., H, W) -> (..., 2)`` (x, y) float64 numpy.

    :func:`poselab.codecs.decode_argmax` with ``refine=None`` (the library's one argmax decoder).
    """
    coords, _ = decode_argmax(torch.as_tensor(np.asarray(heatmaps, dtype=np.float64)), refine=None)
    return coords.double().numpy()


def _emd(maps, keypoints, reg=1.0, n_iters=1000, tol=1e-9, demanders="subpixel"):
    """EMD loss per map for numpy maps (..., H, W) and keypoints (..., 2), float64."""
    m = torch.as_tensor(np.asarray(maps, dtype=np.float64))
    k = torch.as_tensor(np.array(keypoints, dtype=np.float64))
    lead = m.shape[:-2]
    m = m.reshape(-1, 1, *m.shape[-2:])
    k = k.reshape(-1, 1, 2)
    out = emd_loss(m, k, torch.ones(m.shape[0], 1), reg=reg, n_iters=n_iters, tol=tol,
                   demanders=demanders, reduction="none")
    return out.reshape(lead).numpy()


def heatmap_metrics(pred, target_gaussian, keypoint, reg=1.0):
    """MSE (mean over pixels), EMD (HDM loss) and localisation errors of one predicted map.

    Returns a dict: ``mse``, ``emd``, ``err_argmax`` (px), ``err_four_pixel`` (px).
    """
    pred = np.asarray(pred, dtype=np.float64)
    kp = _finite_points(keypoint, "keypoint")
    four = decode_four_pixel(torch.as_tensor(pred)).numpy()
    return {"mse": float(np.mean((pred - target_gaussian) ** 2)),
            "emd": float(_emd(pred, kp, reg=reg)),
            "err_argmax": float(np.linalg.norm(argmax_xy(pred) - kp)),
            "err_four_pixel": float(np.linalg.norm(four - kp))}


# ----------------------------------------------------------------------------- Fig. 1
def counterexample(size=(16, 12), sigma=2.0, keypoint=(5.0, 7.0), distractor=(9.0, 12.0),
                   amplitude1=0.5, sigma1=1.0, distractor_amplitude=0.9, distractor_sigma=1.0):
    """HDM Fig. 1 / RSPose P1: two predictions; #2 has the lower MSE but the wrong peak.

    #1: a sharp, under-confident blob at the right place (``amplitude1`` 0.5, ``sigma1`` 1).
    #2: the target's shape at 0.8 amplitude plus a sharp distractor of height 0.9 elsewhere.
    Returns a dict with the target, both predictions, their :func:`heatmap_metrics`, and
    ``holds`` = (mse #2 < mse #1) and (argmax error #2 > argmax error #1 + 1 px) and
    (EMD #1 < EMD #2): MSE prefers the wrong peak, EMD the right one (both halves of Fig. 1).
    """
    target = gaussian_map(keypoint, size, sigma)
    pred1 = gaussian_map(keypoint, size, sigma1, peak=amplitude1)
    pred2 = gaussian_map(keypoint, size, sigma, peak=0.8) + gaussian_map(
        distractor, size, distractor_sigma, peak=distractor_amplitude)
    m1 = heatmap_metrics(pred1, target, keypoint)
    m2 = heatmap_metrics(pred2, target, keypoint)
    holds = ((m2["mse"] < m1["mse"]) and (m2["err_argmax"] > m1["err_argmax"] + 1.0)
             and (m1["emd"] < m2["emd"]))
    return {"target": target, "pred1": pred1, "pred2": pred2, "metrics1": m1, "metrics2": m2,
            "keypoint": np.asarray(keypoint, float), "holds": bool(holds)}


# ----------------------------------------------------------------------------- Theorem 1
def theorem1_terms(pred, gau, dot):
    """Both sides of HDM Theorem 1 (Eq. 6) as sample means over the leading axis.

    ``pred, gau, dot``: ``(N, ..., H, W)`` float64; per-sample sums over all other axes.
    R_dot = E‖p − d‖², R_gau = E‖p − g‖², C = E‖g − d‖²;
    rhs = R_gau + 2E⟨p, g⟩ − 2E⟨p, d⟩ − C. Returns a dict with all terms, ``residual`` =
    R_dot − rhs (the paper's Eq. 6 as printed), ``predicted_residual`` = 2E[‖d‖² − ⟨g, d⟩] (zero
    iff the Gaussian has value 1 on the dot pixel) and ``corrected_residual`` = R_dot − (rhs +
    predicted_residual), the residual of our corrected form, which holds for any Gaussian.
    """
    p, g, d = (np.asarray(x, dtype=np.float64) for x in (pred, gau, dot))
    axes = tuple(range(1, p.ndim))
    r_dot = np.sum((p - d) ** 2, axis=axes).mean()
    r_gau = np.sum((p - g) ** 2, axis=axes).mean()
    pg = np.sum(p * g, axis=axes).mean()
    pd = np.sum(p * d, axis=axes).mean()
    const = np.sum((g - d) ** 2, axis=axes).mean()
    rhs = r_gau + 2 * pg - 2 * pd - const
    predicted = 2 * (np.sum(d * d, axis=axes) - np.sum(g * d, axis=axes)).mean()
    return {"R_dot": r_dot, "R_gau": r_gau, "E_pred_gau": pg, "E_pred_dot": pd, "C": const,
            "rhs": rhs, "residual": r_dot - rhs, "predicted_residual": predicted,
            "corrected_residual": r_dot - (rhs + predicted)}


def theorem1_check(n=64, size=(16, 12), sigma=2.0, subpixel=False, seed=0, joints=17, shift=0.0):
    """Theorem 1 on random predictions and random keypoints.

    ``subpixel=False`` puts keypoints on pixel centres (Gaussian peak value 1 on the dot pixel);
    ``True`` draws continuous keypoints (Gaussian centred sub-pixel, dot at the rounded pixel).
    ``shift`` moves the Gaussians (not the dots) by that many px in x: a constructed wrong target
    for the tests. Returns :func:`theorem1_terms` plus ``peak_on_dot`` (mean Gaussian value on the
    dot pixel) and ``residual_zero_prediction`` (the paper form's residual for an all-zero
    prediction: equal to ``residual`` iff the correction is a constant, independent of the model).
    """
    rng = np.random.default_rng(seed)
    H, W = size
    n, joints = whole_number(n, "n", 1), whole_number(joints, "joints", 1)
    kp = rng.uniform([0, 0], [W - 1, H - 1], size=(n, joints, 2))
    if not subpixel:
        kp = np.round(kp)
    g = gaussian_map(kp + np.array([shift, 0.0]), size, sigma)
    d = dot_map(kp, size)
    p = rng.normal(0.0, 0.3, size=(n, joints, H, W)) + 0.5 * g
    out = theorem1_terms(p, g, d)
    out["peak_on_dot"] = float(np.sum(g * d, axis=(-2, -1)).mean())
    out["residual_zero_prediction"] = theorem1_terms(np.zeros_like(p), g, d)["residual"]
    return out


# ----------------------------------------------------------------------------- loss curves
def loss_vs_displacement(displacements, size=(64, 48), sigma=2.0, pred_sigma=1.0, reg=1.0):
    """MSE, EMD and localisation error of a blob moved away from the keypoint along x.

    The target is a Gaussian (σ = ``sigma``) at the map centre; the prediction a Gaussian
    (σ = ``pred_sigma``, peak 1) at ``centre + (d, 0)``. Returns float64 arrays ``mse``, ``emd``,
    ``err_argmax`` and ``err_four_pixel`` over ``displacements``.
    """
    H, W = size
    kp = np.array([(W - 1) / 2.0 - 10.0, (H - 1) / 2.0])
    disp = np.asarray(displacements, dtype=np.float64)
    centers = kp + np.stack([disp, np.zeros_like(disp)], 1)
    target = gaussian_map(kp, size, sigma)
    preds = gaussian_map(centers, size, pred_sigma)
    kps = np.broadcast_to(kp, centers.shape)
    four = decode_four_pixel(torch.as_tensor(preds)).numpy()
    return {"displacement": disp, "mse": np.mean((preds - target) ** 2, axis=(1, 2)),
            "emd": _emd(preds, kps, reg=reg),
            "err_argmax": np.linalg.norm(argmax_xy(preds) - kps, axis=1),
            "err_four_pixel": np.linalg.norm(four - kps, axis=1)}


def displacement_tracking(curves, far_from: float = 12.0, max_mse_change: float = 0.01,
                          min_emd_growth: float = 0.25) -> dict:
    """Does each loss track how far the peak is? (HDM §4, measured on :func:`loss_vs_displacement`.)

    Beyond ``far_from`` px the blobs no longer overlap. There a loss that tracks localisation
    keeps growing; a loss that does not is flat. Returns ``emd_increasing`` (every step up by more
    than 1e-9 of its range, i.e. not a round-off wobble), ``emd_far_growth`` and
    ``mse_far_change`` (relative change (max − min)/max over the far displacements) and
    ``holds`` = EMD increasing, growing ≥ ``min_emd_growth`` far out, and MSE changing ≤
    ``max_mse_change`` there. It fails if MSE tracked localisation (grew far out) or if EMD did not.
    """
    d = np.asarray(curves["displacement"], dtype=np.float64)
    emd = np.asarray(curves["emd"], dtype=np.float64)
    mse = np.asarray(curves["mse"], dtype=np.float64)
    far = d >= far_from
    if far.sum() < 2:
        raise ValueError(f"need at least two displacements >= far_from={far_from}; extend the range")

    def change(y):
        return float((y.max() - y.min()) / max(abs(y.max()), 1e-300))

    steps = np.diff(emd)
    increasing = bool(np.all(steps > 1e-9 * max(np.ptp(emd), 1e-300)))
    out = {"emd_increasing": increasing, "emd_far_growth": change(emd[far]),
           "mse_far_change": change(mse[far]), "far_from_px": float(far_from),
           "max_mse_change": float(max_mse_change), "min_emd_growth": float(min_emd_growth)}
    out["holds"] = bool(increasing and out["emd_far_growth"] >= min_emd_growth
                        and out["mse_far_change"] <= max_mse_change)
    return out


# ----------------------------------------------------------------------------- reference OT
def reference_sinkhorn_cost(heatmap, keypoint, reg=1.0, tol=1e-12, max_iter=100000):
    """Independent float64 numpy log-domain Sinkhorn for one map: ``⟨C, P_reg⟩`` (HDM Eq. 2).

    Builds suppliers (Eq. 3), four demanders (Eq. 4, written out here from the formula) and the
    dense Euclidean cost matrix, then alternates the two log-domain marginal projections until
    the demander-marginal L1 error is below ``tol``. Used when POT is not installed.
    """
    h = np.maximum(np.asarray(heatmap, dtype=np.float64), 0.0)
    H, W = h.shape
    reg = positive_number(reg, "reg")
    if not np.isfinite(h).all():
        raise ValueError("heatmap contains NaN or Inf")
    a = h.ravel() / h.sum() if h.sum() > 0 else np.full(H * W, 1.0 / (H * W))
    x, y = (float(v) for v in _finite_points(keypoint, "keypoint").reshape(2))
    corners = np.array([[math.floor(x) + dx, math.floor(y) + dy] for dx, dy in
                        ((0, 0), (1, 0), (0, 1), (1, 1))], dtype=np.float64)
    b = (1 - np.abs(x - corners[:, 0])) * (1 - np.abs(y - corners[:, 1]))
    yy, xx = np.mgrid[0:H, 0:W]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
    cost = np.sqrt(((pix[:, None, :] - corners[None]) ** 2).sum(-1))  # (HW, 4)
    with np.errstate(divide="ignore"):
        log_a, log_b = np.log(a), np.log(b)
    f = np.zeros(H * W)
    g = np.zeros(4)
    for _ in range(max_iter):
        z = g[None, :] - cost / reg
        zmax = z.max(1, keepdims=True)
        f = log_a - (zmax[:, 0] + np.log(np.exp(z - zmax).sum(1)))
        zz = f[:, None] - cost / reg
        zzmax = np.where(np.isfinite(zz), zz, -np.inf).max(0)
        col_log = zzmax + np.log(np.exp(zz - zzmax).sum(0))
        if np.abs(np.exp(g + col_log) - b).sum() <= tol:
            break
        g = log_b - col_log
    plan = np.exp(f[:, None] + g[None, :] - cost / reg)
    return float((plan * cost).sum())


def reference_emd_cost(heatmap, keypoint, reg: float = 1.0, backend: str = "auto") -> float:
    """HDM Eq. 2 cost ``⟨C, P_reg⟩`` of one map, computed without any poselab code (float64).

    Suppliers (Eq. 3), demanders (Eq. 4: the four pixel centres around the dot, masses
    ``(1 − |x − x_i|)(1 − |y − y_i|)``, g = 1 px) and the Euclidean cost are written out here from
    the paper's formulas. ``backend="pot"`` solves with POT's ``ot.sinkhorn2`` (log domain);
    ``"numpy"`` with :func:`reference_sinkhorn_cost`; ``"auto"``: POT if installed.
    """
    if backend == "auto":
        try:
            import ot  # noqa: F401  # deferred: POT is optional, not on Binder
            backend = "pot"
        except ImportError:
            backend = "numpy"
    if backend == "numpy":
        return reference_sinkhorn_cost(heatmap, keypoint, reg=reg)
    if backend != "pot":
        raise ValueError(f"backend must be 'auto', 'pot' or 'numpy', got {backend!r}")
    try:
        import ot  # deferred on purpose: POT is optional (the [test] extra), not on Binder
    except ImportError:
        raise ImportError("backend='pot' needs POT (pip install pot; it is in poselab's [test] extra, "
                          "not on Binder); backend='numpy' or 'auto' works without it") from None
    h = np.maximum(np.asarray(heatmap, dtype=np.float64), 0.0)
    H, W = h.shape
    reg = positive_number(reg, "reg")
    if not np.isfinite(h).all():
        raise ValueError("heatmap contains NaN or Inf")
    a = h.ravel() / h.sum() if h.sum() > 0 else np.full(H * W, 1.0 / (H * W))
    x, y = (float(v) for v in _finite_points(keypoint, "keypoint").reshape(2))
    x0, y0 = math.floor(x), math.floor(y)
    corners = np.array([[x0, y0], [x0 + 1, y0], [x0, y0 + 1], [x0 + 1, y0 + 1]], dtype=np.float64)
    b = (1 - np.abs(x - corners[:, 0])) * (1 - np.abs(y - corners[:, 1]))
    keep = b > 0  # a demander (or supplier) with no mass takes no part in the plan
    yy, xx = np.mgrid[0:H, 0:W]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)[a > 0]
    cost = np.sqrt(((pix[:, None, :] - corners[None, keep]) ** 2).sum(-1))
    return float(ot.sinkhorn2(a[a > 0], b[keep] / b[keep].sum(), cost, reg, method="sinkhorn_log",
                              numItermax=20000, stopThr=1e-14))


def peaked_maps(n: int, size=(16, 12), seed: int = 0, sigma_range=(0.6, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    """``n`` peaked test maps (a Gaussian of σ in ``sigma_range`` at a random sub-pixel point, a
    weak background in [−0.05, 0.05], about half its pixels ≤ 0) and keypoints near each peak
    (within 3 px; the first two at the map's corners). Float64 ``(n, H, W)``, ``(n, 2)``."""
    rng = np.random.default_rng(seed)
    H, W = size
    n = whole_number(n, "n", 1)
    lo, hi = (positive_number(v, "sigma_range") for v in sigma_range)
    if lo > hi:
        raise ValueError(f"sigma_range must be (lo, hi) with 0 < lo <= hi, got {tuple(sigma_range)}")
    centres = rng.uniform([0, 0], [W - 1, H - 1], size=(n, 2))
    sig = rng.uniform(*sigma_range, size=n)
    maps = np.stack([gaussian_map(c, size, s_) for c, s_ in zip(centres, sig)])
    maps = maps + rng.uniform(-0.05, 0.05, size=maps.shape)
    kps = np.clip(centres + rng.uniform(-3, 3, size=(n, 2)), 0, [W - 1, H - 1])
    kps[0], kps[1 % n] = (0.0, 0.0), (W - 1.0, H - 1.0)
    return maps, kps


def emd_reference_agreement(maps, keypoints, reg: float = 1.0, backend: str = "auto",
                            reference_reg: float | None = None) -> dict:
    """Largest relative difference between :func:`emd_loss` (float64, tol 1e-13) and
    :func:`reference_emd_cost` on each map. ``reference_reg`` lets a test give the reference a
    different entropy weight (a constructed mismatch). Returns ``max_relative_difference``,
    ``ours``, ``reference`` and ``backend``."""
    m = np.asarray(maps, dtype=np.float64)
    k = np.asarray(keypoints, dtype=np.float64)
    ours = emd_loss(torch.as_tensor(m)[:, None], torch.as_tensor(k)[:, None], torch.ones(len(m), 1),
                    reg=reg, tol=1e-13, reduction="none")[:, 0].numpy()
    rr = reg if reference_reg is None else reference_reg
    ref = np.array([reference_emd_cost(m[i], k[i], reg=rr, backend=backend) for i in range(len(m))])
    rel = np.abs(ours - ref) / np.abs(ref)
    if backend == "auto":
        try:
            import ot  # noqa: F401  # deferred: POT is optional, not on Binder
            backend = "pot"
        except ImportError:
            backend = "numpy"
    return {"max_relative_difference": float(rel.max()), "ours": ours, "reference": ref,
            "backend": backend}


# ----------------------------------------------------------------------------- ablations
def fit_free_heatmaps(keypoints, size=(16, 12), demanders="subpixel", steps=150, lr=0.05,
                      n_iters=1000, tol=1e-6, seed=0):
    """Optimise free heatmaps (no network) with the EMD loss toward given keypoints.

    The heatmap logits are parameters, ``heatmap = softplus(logits)``-free: the raw values are
    the heatmaps (Eq. 3 applies ReLU). Adam, ``steps`` steps. Returns (heatmaps (N, H, W) numpy,
    EPE of four-pixel decoding (N,), EPE of argmax decoding (N,), final losses (N,)).
    """
    g = torch.Generator().manual_seed(seed)
    kp = torch.as_tensor(_finite_points(keypoints, "keypoints").astype(np.float32)).reshape(-1, 1, 2)
    n = kp.shape[0]
    H, W = size
    maps = (0.1 * torch.rand(n, 1, H, W, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([maps], lr=lr)
    vis = torch.ones(n, 1)
    for _ in range(steps):
        opt.zero_grad()
        loss = emd_loss(maps, kp, vis, n_iters=n_iters, tol=tol, demanders=demanders,
                        reduction="sum")
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = emd_loss(maps, kp, vis, n_iters=n_iters, tol=tol, demanders=demanders,
                         reduction="none")[:, 0]
        h = maps[:, 0].detach()
        four = decode_four_pixel(h)
    k = kp[:, 0].numpy()
    return (h.numpy(), np.linalg.norm(four.numpy() - k, axis=1),
            np.linalg.norm(argmax_xy(h.numpy()) - k, axis=1), final.numpy())


def demander_mechanism(keypoints, size=(16, 12), steps: int = 150, seed: int = 0,
                       max_naive_gap: float = 0.05, max_subpixel_share: float = 0.25) -> dict:
    """The mechanism behind HDM Table 4, on free heatmaps (no network): what each demander teaches.

    Fits free heatmaps to ``keypoints`` with sub-pixel (Eq. 4) and naive (one demander at the
    rounded pixel) demanders (:func:`fit_free_heatmaps`) and decodes them with the four-pixel
    rule. Returns per-keypoint EPEs, their means, ``rounding_error`` (mean distance from each
    keypoint to its rounded pixel: what the naive demander is expected to teach) and ``holds`` =
    naive EPE within ``max_naive_gap`` px of the rounding error **and** sub-pixel EPE below
    ``max_subpixel_share`` of the naive EPE. On keypoints that sit on pixel centres (rounding error
    0) the two demanders teach the same thing and ``holds`` is False: the mechanism needs sub-pixel
    keypoints. Not the paper's AP claim (that needs COCO-scale training).
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    sub = fit_free_heatmaps(kp, size=size, demanders="subpixel", steps=steps, seed=seed)[1]
    naive = fit_free_heatmaps(kp, size=size, demanders="naive", steps=steps, seed=seed)[1]
    rounding = np.linalg.norm(kp - np.floor(kp + 0.5), axis=1)
    out = {"subpixel_epe": sub, "naive_epe": naive, "subpixel_mean": float(sub.mean()),
           "naive_mean": float(naive.mean()), "rounding_error": float(rounding.mean()),
           "n_keypoints": int(len(kp))}
    out["holds"] = bool(abs(out["naive_mean"] - out["rounding_error"]) <= max_naive_gap
                        and out["subpixel_mean"] < max_subpixel_share * out["naive_mean"])
    return out


def iteration_cap_study(heatmaps, keypoints, caps=(500, 1000), reg: float = 1.0,
                        binding_cap: int = 1) -> dict:
    """Does the Sinkhorn iteration cap (HDM Table 5) change anything at ``reg``? Float64.

    ``heatmaps (B, K, H, W)`` with ``keypoints (B, K, 2)``, or ``(N, H, W)`` with ``(N, 2)``.

    Runs Sinkhorn (``solver="sinkhorn"``, ``tol = 0``: no early stop) for exactly each cap and
    for ``binding_cap`` (a cap small enough to bind). Returns ``iterations`` per cap as the
    solver reports them, ``losses`` / ``grads`` per cap, ``max_loss_difference`` and
    ``max_grad_difference`` between the caps, ``binding_difference`` (loss at ``binding_cap`` vs
    the largest cap) and ``holds`` = every cap ran exactly its iterations, the caps agree to 1e-10
    in loss and gradient, and the binding cap differs by > 1e-6 (so the cap is really applied).
    A solver that ignored the cap, or one still moving at 500 iterations, fails.
    """
    h = torch.as_tensor(np.asarray(heatmaps, dtype=np.float64))
    k = torch.as_tensor(np.asarray(keypoints, dtype=np.float64))
    if h.ndim == 3:  # (N, H, W) maps with (N, 2) keypoints: one batch of N joints
        h, k = h[None], k[None]
    vis = torch.ones(h.shape[:2], dtype=torch.float64)
    losses, grads, iters = {}, {}, {}
    for cap in tuple(caps) + (int(binding_cap),):
        x = h.clone().requires_grad_(True)
        val = emd_loss(x, k, vis, reg=reg, n_iters=cap, tol=0.0, reduction="none", solver="sinkhorn")
        val.sum().backward()
        losses[cap], grads[cap] = val.detach().numpy(), x.grad.numpy()
        iters[cap] = int(hdm_transport(h, k, vis, reg=reg, n_iters=cap, tol=0.0)["iterations"])
    top = max(caps)
    d_loss = max(float(np.abs(losses[c] - losses[top]).max()) for c in caps)
    d_grad = max(float(np.abs(grads[c] - grads[top]).max()) for c in caps)
    binding = float(np.abs(losses[int(binding_cap)] - losses[top]).max())
    ran = all(iters[c] == c for c in iters)
    return {"iterations": iters, "losses": losses, "grads": grads, "max_loss_difference": d_loss,
            "max_grad_difference": d_grad, "binding_difference": binding, "caps_honoured": ran,
            "holds": bool(ran and d_loss <= 1e-10 and d_grad <= 1e-10 and binding > 1e-6)}


def iterations_needed(heatmaps, keypoints, tol: float = 1e-6, reg: float = 1.0,
                      dtype=torch.float32) -> int:
    """Sinkhorn iterations (``hdm_transport``, ``solver="sinkhorn"``) to reach marginal error
    ``tol`` on ``(B, K, H, W)`` maps in ``dtype`` (float32: the training dtype); the max over
    problems. Compare with the paper's caps 500/1000/1500 (Table 5)."""
    h = torch.as_tensor(np.asarray(heatmaps)).to(dtype)
    k = torch.as_tensor(np.asarray(keypoints)).to(dtype)
    if h.ndim == 3:  # (N, H, W) maps with (N, 2) keypoints: one batch of N joints
        h, k = h[None], k[None]
    out = hdm_transport(h, k, None, reg=reg, n_iters=100000, tol=tol)
    return int(out["iterations"])


def decoding_study(n=2000, size=(16, 12), seed=0):
    """Argmax vs four-pixel decoding EPE (px) on sub-pixel keypoints for heatmap families:
    Gaussians σ = 2 and σ = 1 centred at the keypoint, and the bilinear 4-pixel map of Eq. 4
    (what EMD training aims at). Returns {family: {"argmax": mean, "four_pixel": mean}}."""
    rng = np.random.default_rng(seed)
    H, W = size
    n = whole_number(n, "n", 1)
    kp = rng.uniform([1, 1], [W - 2, H - 2], size=(n, 2))
    families = {"gaussian σ=2": gaussian_map(kp, size, 2.0), "gaussian σ=1": gaussian_map(kp, size, 1.0)}
    pos, m = subpixel_demanders(torch.as_tensor(kp))
    bil = np.zeros((n, H, W))
    p = pos.numpy().astype(int)
    for c in range(4):
        bil[np.arange(n), p[:, c, 1], p[:, c, 0]] += m[:, c].numpy()
    families["bilinear (Eq. 4)"] = bil
    out = {}
    for name, maps in families.items():
        four = decode_four_pixel(torch.as_tensor(maps)).numpy()
        out[name] = {"argmax": float(np.linalg.norm(argmax_xy(maps) - kp, axis=1).mean()),
                     "four_pixel": float(np.linalg.norm(four - kp, axis=1).mean())}
    return out


# ----------------------------------------------------------------------------- Fig. 3
def heatmap_compactness(heatmaps, keypoints, visible=None, radius: float = 1.5):
    """How compact predicted heatmaps are around the **ground truth** (HDM Fig. 3, measured).

    With ``s`` the ReLU-normalised map (the suppliers of Eq. 3), for each labelled joint with
    positive mass: ``mass_near_gt`` = Σ s over pixels within ``radius`` px of the keypoint (1 only
    if the mass sits at the joint: a compact map in the wrong place scores 0);
    ``rms_radius_to_gt`` = sqrt(Σ s ‖p − kp‖²), px; ``half_max_area`` = pixels ≥ half the map's
    maximum. Returns a dict of 1-D float64 arrays over those joints. (Compactness around the
    map's own peak, which needs no ground truth, is
    :func:`poselab.chapters.hdm.training.peak_compactness`.)
    """
    h = np.asarray(heatmaps, dtype=np.float64)
    if not np.isfinite(h).all():
        raise ValueError("heatmaps contain NaN or Inf (a diverged model): no compactness to measure")
    h = np.maximum(h, 0.0)
    kp = np.asarray(keypoints, dtype=np.float64)
    radius = positive_number(radius, "radius")
    H, W = h.shape[-2:]
    h = h.reshape(-1, H, W)
    kp = kp.reshape(-1, 2)
    keep = np.ones(len(h), bool) if visible is None else (np.asarray(visible).reshape(-1) > 0)
    total = h.sum((1, 2))
    keep &= total > 0
    h, kp, total = h[keep], kp[keep], total[keep]
    s = h / total[:, None, None]
    yy, xx = np.mgrid[0:H, 0:W]
    d2 = (xx[None] - kp[:, 0, None, None]) ** 2 + (yy[None] - kp[:, 1, None, None]) ** 2
    return {"rms_radius_to_gt": np.sqrt((s * d2).sum((1, 2))),
            "half_max_area": (h >= 0.5 * h.max((1, 2), keepdims=True)).sum((1, 2)).astype(float),
            "mass_near_gt": (s * (d2 <= radius ** 2)).sum((1, 2))}


def pixels_above_truth(heatmaps, keypoints, visible=None) -> np.ndarray:
    """How many pixels a map ranks above the ground truth: a compactness around the truth that
    a monotone sharpening of the same prediction cannot change (HDM Fig. 3, measured).

    With ``s = relu(h)`` (Eq. 3 before normalising): the number of pixels with ``s`` strictly
    greater than ``s`` at the pixel nearest the keypoint. 0 when the truth's pixel is the map's
    maximum, the map's whole support (plus ties above 0) when the truth gets no mass. Any
    strictly increasing ``f`` with ``f(0) = 0`` applied to ``s`` (``s²``, ``s⁸``, a softmax
    temperature) leaves it unchanged — unlike :func:`heatmap_compactness`'s ``mass_near_gt``,
    which a sharper copy of the same map raises with the same decoded keypoint. Over labelled
    joints whose keypoint lies inside the map (and, as ``mass_near_gt``, with positive mass).
    ``(..., H, W)``, ``(..., 2)`` → 1-D float64 array.
    """
    h = np.maximum(np.asarray(heatmaps, dtype=np.float64), 0.0)
    kp = np.asarray(keypoints, dtype=np.float64)
    if h.ndim < 2 or kp.shape[-1:] != (2,) or kp.shape[:-1] != h.shape[:-2]:
        raise ValueError(f"heatmaps (..., H, W) and keypoints (..., 2) must share their leading axes, "
                         f"got {h.shape} and {kp.shape}")
    H, W = h.shape[-2:]
    h = h.reshape(-1, H, W)
    kp = kp.reshape(-1, 2)
    keep = np.ones(len(h), bool) if visible is None else (np.asarray(visible).reshape(-1) > 0)
    j = np.floor(kp[:, 0] + 0.5)
    i = np.floor(kp[:, 1] + 0.5)
    keep &= np.isfinite(kp).all(1) & (j >= 0) & (j < W) & (i >= 0) & (i < H) & (h.sum((1, 2)) > 0)
    h, i, j = h[keep], i[keep].astype(int), j[keep].astype(int)
    at_truth = h[np.arange(len(h)), i, j]
    return (h > at_truth[:, None, None]).sum((1, 2)).astype(np.float64)


def theorem1_claims(n: int = 64, seed: int = 0, tol: float = 1e-9) -> dict:
    """HDM Theorem 1 as printed and corrected (:func:`theorem1_check` on both kinds of centres).

    ``paper``: Eq. 6 as printed — its residual on rounded (MSRA) centres, where the Gaussian is 1
    on the dot pixel, and on sub-pixel centres; ``holds`` = exact (≤ ``tol`` relative) on rounded
    centres. ``corrected``: Eq. 6 plus 2E[‖d‖² − ⟨g, d⟩] (= 2E[1 − G(dot)] per joint) on sub-pixel
    centres; ``holds`` = exact **and** the correction the same for an all-zero prediction (a
    constant, so Theorem 1's argument survives). Relative to R_dot.
    """
    exact = theorem1_check(n=n, subpixel=False, seed=seed)
    sub = theorem1_check(n=n, subpixel=True, seed=seed)
    scale = max(abs(sub["R_dot"]), 1.0)
    paper = {"residual_rounded_centres": float(exact["residual"]), "residual_subpixel_centres": float(sub["residual"]),
             "peak_on_dot_subpixel": float(sub["peak_on_dot"])}
    paper["holds"] = bool(abs(exact["residual"]) <= tol * max(abs(exact["R_dot"]), 1.0))
    corrected = {"corrected_residual": float(sub["corrected_residual"]),
                 "correction": float(sub["predicted_residual"]),
                 "correction_zero_prediction": float(sub["residual_zero_prediction"])}
    corrected["holds"] = bool(abs(sub["corrected_residual"]) <= tol * scale
                              and abs(sub["residual"] - sub["residual_zero_prediction"]) <= tol * scale)
    return {"paper": paper, "corrected": corrected}


def demander_reconstruction(n: int = 10000, seed: int = 0, demanders=subpixel_demanders) -> dict:
    """HDM Eq. 4's properties on ``n`` random keypoints (float64): Σ d_i p_i = the dot
    (``reconstruction`` = max error, px), Σ d_i = 1 (``mass_sum`` = max error) and d_i ≥ 0
    (``min_mass``: demanders *require* mass, §3.1 — an extrapolating scheme with negative masses
    also reconstructs the dot and sums to 1). ``reconstruction_holds`` and ``mass_holds`` (sum
    within 1e-12 **and** no negative mass) are the chapter's two claims. ``demanders`` can be
    replaced (the tests pass wrong ones)."""
    rng = np.random.default_rng(seed)
    kps = torch.as_tensor(rng.uniform(-0.4, 60.4, size=(whole_number(n, "n", 1), 2)))
    pos, mass = demanders(kps)
    rec = float(((mass[..., None] * pos).sum(-2) - kps).abs().max())
    out = {"reconstruction": rec, "mass_sum": float((mass.sum(-1) - 1).abs().max()),
           "min_mass": float(mass.min()), "n": int(n)}
    out["reconstruction_holds"] = bool(rec <= 1e-9)
    out["mass_holds"] = bool(out["mass_sum"] <= 1e-12 and out["min_mass"] >= 0.0)
    return out


def transport_example(size=(16, 12), centre=(5.2, 6.9), sigma: float = 1.5, keypoint=(4.3, 7.6)) -> dict:
    """The transport problem of one blurred, slightly offset prediction (for the plan figure):
    :func:`poselab.losses.transport.hdm_transport` of a Gaussian map, batch and joint axes removed."""
    hm = torch.as_tensor(gaussian_map(centre, size, sigma))[None, None]
    kp = torch.tensor([[list(keypoint)]], dtype=torch.float64)
    tp = hdm_transport(hm, kp)
    return {"suppliers": tp["suppliers"][0, 0], "plan": tp["plan"][0, 0], "positions": tp["positions"][0, 0],
            "masses": tp["masses"][0, 0], "iterations": int(tp["iterations"]), "cost": float(tp["cost"][0, 0])}


def iteration_cap_verdict(needed: int, evidence: dict, caps=(500, 1000)):
    """``hdm.ablation.iterations_1000_vs_500`` (HDM Table 5): testable only where the cap binds.

    ``needed``: Sinkhorn iterations to tol 1e-6 in the training dtype (:func:`iterations_needed`).
    Below the smallest cap both settings compute the same loss and gradient, so the reported
    0.5 AP difference cannot come from the cap: "inconclusive — not testable here". Where the
    cap binds, a training comparison would be needed (not run): also "inconclusive", saying so.
    """
    summary = {"iterations_needed": int(needed), "caps": list(caps)}
    if needed < min(caps):
        return claims.not_testable(f"at reg = 1 the solver needs {needed} iterations (< {min(caps)}), so caps "
                                   f"{' and '.join(map(str, caps))} give the same loss and gradient; the "
                                   "paper's 0.5 AP difference cannot come from the cap", summary, evidence)
    return claims.not_testable(f"the cap binds ({needed} iterations needed); a training comparison of the caps "
                               "was not run", summary, evidence)
