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

from ..codecs.hdm import decode_four_pixel, subpixel_demanders
from ..losses.transport import emd_loss

__all__ = [
    "gaussian_map", "dot_map", "blob_map", "heatmap_metrics", "counterexample",
    "theorem1_terms", "theorem1_check", "loss_vs_displacement", "reference_sinkhorn_cost",
    "decode_argmax_simple", "fit_free_heatmaps", "iteration_cap_study", "decoding_study",
    "heatmap_compactness",
]


# ----------------------------------------------------------------------------- heatmaps
def gaussian_map(center, size, sigma, peak=1.0):
    """Unnormalised Gaussian ``peak·exp(-‖p − c‖²/2σ²)`` on an (H, W) grid, float64 numpy.

    ``center (..., 2)`` as (x, y) → ``(..., H, W)``.
    """
    H, W = size
    c = np.asarray(center, dtype=np.float64)
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


def decode_argmax_simple(heatmaps):
    """Integer argmax decoding ``(..., H, W) -> (..., 2)`` (x, y), float64 numpy (first max)."""
    h = np.asarray(heatmaps)
    H, W = h.shape[-2:]
    flat = h.reshape(-1, H * W).argmax(1)
    return np.stack([flat % W, flat // W], 1).reshape(h.shape[:-2] + (2,)).astype(np.float64)


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
    kp = np.asarray(keypoint, dtype=np.float64)
    four = decode_four_pixel(torch.as_tensor(pred)).numpy()
    return {"mse": float(np.mean((pred - target_gaussian) ** 2)),
            "emd": float(_emd(pred, kp, reg=reg)),
            "err_argmax": float(np.linalg.norm(decode_argmax_simple(pred) - kp)),
            "err_four_pixel": float(np.linalg.norm(four - kp))}


# ----------------------------------------------------------------------------- Fig. 1
def counterexample(size=(16, 12), sigma=2.0, keypoint=(5.0, 7.0), distractor=(9.0, 12.0)):
    """HDM Fig. 1 / RSPose P1: two predictions; #2 has the lower MSE but the wrong peak.

    #1: a sharp, under-confident blob at the right place (amplitude 0.5, σ = 1).
    #2: the target's shape at 0.8 amplitude plus a sharp distractor of height 0.9 elsewhere.
    Returns a dict with the target, both predictions, their :func:`heatmap_metrics`, and
    ``holds`` = (mse #2 < mse #1) and (argmax error #2 > argmax error #1 + 1 px).
    """
    target = gaussian_map(keypoint, size, sigma)
    pred1 = gaussian_map(keypoint, size, 1.0, peak=0.5)
    pred2 = gaussian_map(keypoint, size, sigma, peak=0.8) + gaussian_map(distractor, size, 1.0,
                                                                          peak=0.9)
    m1 = heatmap_metrics(pred1, target, keypoint)
    m2 = heatmap_metrics(pred2, target, keypoint)
    holds = (m2["mse"] < m1["mse"]) and (m2["err_argmax"] > m1["err_argmax"] + 1.0)
    return {"target": target, "pred1": pred1, "pred2": pred2, "metrics1": m1, "metrics2": m2,
            "keypoint": np.asarray(keypoint, float), "holds": bool(holds)}


# ----------------------------------------------------------------------------- Theorem 1
def theorem1_terms(pred, gau, dot):
    """Both sides of HDM Theorem 1 (Eq. 6) as sample means over the leading axis.

    ``pred, gau, dot``: ``(N, ..., H, W)`` float64; per-sample sums over all other axes.
    R_dot = E‖p − d‖², R_gau = E‖p − g‖², C = E‖g − d‖²;
    rhs = R_gau + 2E⟨p, g⟩ − 2E⟨p, d⟩ − C. Returns a dict with all terms, ``residual`` =
    R_dot − rhs, and ``predicted_residual`` = 2E[‖d‖² − ⟨g, d⟩] (zero iff the Gaussian has
    value 1 on the dot pixel): the identity holds in general only with that term.
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
            "rhs": rhs, "residual": r_dot - rhs, "predicted_residual": predicted}


def theorem1_check(n=64, size=(16, 12), sigma=2.0, subpixel=False, seed=0, joints=17):
    """Theorem 1 on random predictions and random keypoints.

    ``subpixel=False`` puts keypoints on pixel centres (Gaussian peak value 1 on the dot pixel);
    ``True`` draws continuous keypoints (Gaussian centred sub-pixel, dot at the rounded pixel).
    Returns :func:`theorem1_terms` plus ``peak_on_dot`` (mean Gaussian value on the dot pixel).
    """
    rng = np.random.default_rng(seed)
    H, W = size
    kp = rng.uniform([0, 0], [W - 1, H - 1], size=(n, joints, 2))
    if not subpixel:
        kp = np.round(kp)
    g = gaussian_map(kp, size, sigma)
    d = dot_map(kp, size)
    p = rng.normal(0.0, 0.3, size=(n, joints, H, W)) + 0.5 * g
    out = theorem1_terms(p, g, d)
    out["peak_on_dot"] = float(np.sum(g * d, axis=(-2, -1)).mean())
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
            "err_argmax": np.linalg.norm(decode_argmax_simple(preds) - kps, axis=1),
            "err_four_pixel": np.linalg.norm(four - kps, axis=1)}


# ----------------------------------------------------------------------------- reference OT
def reference_sinkhorn_cost(heatmap, keypoint, reg=1.0, tol=1e-12, max_iter=100000):
    """Independent float64 numpy log-domain Sinkhorn for one map: ``⟨C, P_reg⟩`` (HDM Eq. 2).

    Builds suppliers (Eq. 3), four demanders (Eq. 4, written out here from the formula) and the
    dense Euclidean cost matrix, then alternates the two log-domain marginal projections until
    the demander-marginal L1 error is below ``tol``. Used when POT is not installed.
    """
    h = np.maximum(np.asarray(heatmap, dtype=np.float64), 0.0)
    H, W = h.shape
    a = h.ravel() / h.sum() if h.sum() > 0 else np.full(H * W, 1.0 / (H * W))
    x, y = (float(v) for v in keypoint)
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


# ----------------------------------------------------------------------------- ablations
def fit_free_heatmaps(keypoints, size=(16, 12), demanders="subpixel", steps=150, lr=0.05,
                      n_iters=1000, tol=1e-6, seed=0):
    """Optimise free heatmaps (no network) with the EMD loss toward given keypoints.

    The heatmap logits are parameters, ``heatmap = softplus(logits)``-free: the raw values are
    the heatmaps (Eq. 3 applies ReLU). Adam, ``steps`` steps. Returns (heatmaps (N, H, W) numpy,
    EPE of four-pixel decoding (N,), EPE of argmax decoding (N,), final losses (N,)).
    """
    g = torch.Generator().manual_seed(seed)
    kp = torch.as_tensor(np.asarray(keypoints, dtype=np.float32)).reshape(-1, 1, 2)
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
            np.linalg.norm(decode_argmax_simple(h.numpy()) - k, axis=1), final.numpy())


def iteration_cap_study(heatmaps, keypoints, caps=(500, 1000, 1500), reg=1.0):
    """Loss and gradient with exactly ``cap`` Sinkhorn iterations (tol = 0) for each cap, plus
    the iterations needed to reach tol = 1e-6. Float64. Returns a dict of numpy arrays/values."""
    h = torch.as_tensor(np.asarray(heatmaps, dtype=np.float64))
    k = torch.as_tensor(np.asarray(keypoints, dtype=np.float64))
    vis = torch.ones(h.shape[:2])
    losses, grads = {}, {}
    for cap in caps:
        x = h.clone().requires_grad_(True)
        val = emd_loss(x, k, vis, reg=reg, n_iters=cap, tol=0.0, reduction="none")
        val.sum().backward()
        losses[cap], grads[cap] = val.detach().numpy(), x.grad.numpy()
    from ..losses.transport import hdm_transport
    needed = {t: hdm_transport(h, k, vis, reg=reg, tol=t)["iterations"] for t in (1e-3, 1e-6, 1e-9)}
    return {"losses": losses, "grads": grads, "iterations_to_tol": needed}


def decoding_study(n=2000, size=(16, 12), seed=0):
    """Argmax vs four-pixel decoding EPE (px) on sub-pixel keypoints for heatmap families:
    Gaussians σ = 2 and σ = 1 centred at the keypoint, and the bilinear 4-pixel map of Eq. 4
    (what EMD training aims at). Returns {family: {"argmax": mean, "four_pixel": mean}}."""
    rng = np.random.default_rng(seed)
    H, W = size
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
        out[name] = {"argmax": float(np.linalg.norm(decode_argmax_simple(maps) - kp, axis=1).mean()),
                     "four_pixel": float(np.linalg.norm(four - kp, axis=1).mean())}
    return out


# ----------------------------------------------------------------------------- Fig. 3
def heatmap_compactness(heatmaps, keypoints, visible=None):
    """How compact predicted heatmaps are around the ground truth (HDM Fig. 3, measured).

    For each labelled joint: ``radius`` = sqrt(Σ s_i ‖p_i − kp‖²) with s the ReLU-normalised map
    (the suppliers of Eq. 3) — the RMS distance of the heatmap's mass from the keypoint, px;
    ``half_max_area`` = number of pixels ≥ half the map's maximum; ``mass_r1`` = fraction of the
    mass within 1.5 px of the keypoint. Returns a dict of 1-D float64 arrays over labelled joints.
    """
    h = np.maximum(np.asarray(heatmaps, dtype=np.float64), 0.0)
    kp = np.asarray(keypoints, dtype=np.float64)
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
    return {"radius": np.sqrt((s * d2).sum((1, 2))),
            "half_max_area": (h >= 0.5 * h.max((1, 2), keepdims=True)).sum((1, 2)).astype(float),
            "mass_r1": (s * (d2 <= 1.5 ** 2)).sum((1, 2))}
