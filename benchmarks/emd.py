"""Benchmark: batched poselab emd_loss (forward + backward) vs POT solving the same problems one
by one (forward only), B=32, K=17, 64×48 heatmaps, float64, same marginal tolerance; values compared.
Also a training step of the tiny model (64×48 input → 16×12 heatmaps, batch 32) with EMD vs MSE.

    .venv/bin/python benchmarks/emd.py
"""
import time

import numpy as np
import torch

from poselab.codecs.hdm import subpixel_demanders
from poselab.losses import emd_loss


def problems(B=32, K=17, H=64, W=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0], dtype=torch.float64)
    c = kp + 2 * torch.randn(B, K, 2, generator=g, dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    hm = torch.exp(-((xx - c[..., 0, None, None]) ** 2 + (yy - c[..., 1, None, None]) ** 2) / 8)
    return hm + 0.05 * torch.randn(B, K, H, W, generator=g, dtype=torch.float64), kp


def main(tol=1e-6):
    import ot
    hm, kp = problems()
    B, K, H, W = hm.shape
    vis = torch.ones(B, K)
    h = hm.clone().requires_grad_(True)
    t = time.perf_counter()
    val = emd_loss(h, kp, vis, tol=tol, reduction="none")
    val.sum().backward()
    t_ours = time.perf_counter() - t
    yy, xx = np.mgrid[0:H, 0:W]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
    t = time.perf_counter()
    ref = np.empty((B, K))
    for b in range(B):
        for k in range(K):
            a = np.maximum(hm[b, k].numpy().ravel(), 0)
            a /= a.sum()
            pos, m = subpixel_demanders(kp[b, k])
            M = np.sqrt(((pix[:, None] - pos.numpy()[None]) ** 2).sum(-1))
            ref[b, k] = ot.sinkhorn2(a, m.numpy(), M, 1.0, numItermax=1000, stopThr=tol)
    t_pot = time.perf_counter() - t
    rel = float(np.max(np.abs(ref - val.detach().numpy()) / ref))
    print(f"EMD B={B} K={K} {H}x{W} float64 tol={tol}: ours fwd+bwd {t_ours*1e3:.0f} ms, "
          f"POT one by one (fwd) {t_pot*1e3:.0f} ms, ratio {t_pot/t_ours:.2f}x, max rel diff {rel:.1e}")

    try:
        from poselab.losses.heatmap import heatmap_mse_loss
        from poselab.models import build_model
    except ImportError as exc:
        print("training-step timing skipped:", exc)
        return
    model = build_model(head="heatmap", input_size=(64, 48), seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(32, 3, 64, 48)
    kp16 = torch.rand(32, 17, 2) * torch.tensor([11.0, 15.0])
    target = torch.rand(32, 17, 16, 12)
    vis32 = torch.ones(32, 17)
    losses = {"mse": lambda out: heatmap_mse_loss(out, target, vis32),
              "emd": lambda out: emd_loss(out, kp16, vis32)}
    times = {}
    for name, fn in losses.items():
        ts = []
        for _ in range(6):
            t = time.perf_counter()
            opt.zero_grad()
            fn(model(x)).backward()
            opt.step()
            ts.append(time.perf_counter() - t)
        times[name] = float(np.median(ts[1:]))
    print(f"training step (tiny model, 64x48 input, 16x12 heatmaps, batch 32): MSE {times['mse']*1e3:.0f} ms, "
          f"EMD {times['emd']*1e3:.0f} ms, ratio {times['emd']/times['mse']:.2f}")


if __name__ == "__main__":
    import sys
    # torch's intra-op threads contend badly on a busy 2-core machine; pass a thread count to compare
    if len(sys.argv) > 1:
        torch.set_num_threads(int(sys.argv[1]))
    print("torch threads:", torch.get_num_threads())
    main()
