"""Benchmark: batched poselab emd_loss vs POT solving the same problems one by one.

B=32, K=17, 64×48 heatmaps, float64, reg=1, tol=1e-6 for both. Reported, as medians over
interleaved repetitions (the machine may be shared: every repetition times all variants back to
back, at every torch thread count):

* ours, forward + backward (the training use; Newton solver, the default for tol > 0);
* ours, forward only (no gradient) — the like-for-like comparison with POT, which is forward only;
* ours with ``solver="sinkhorn"`` (forward + backward), for reference;
* POT ``ot.sinkhorn2`` one problem at a time, forward only. Its inputs (suppliers, the four
  demanders and the (H·W, 4) cost matrix) are built *outside* the timed loop, so the POT time is
  pure solving; POT's stopping rule is its own (L2 marginal error checked every 10 iterations),
  ours is stricter (L1 error of every problem ≤ tol).

The ratio is POT time / our time. Values must agree (max relative difference printed; float64).

Each thread count runs in its own Python process (one process per repetition and thread count,
alternating): switching ``torch.set_num_threads`` 1 → 2 inside one process after POT/numpy work
made our times ~30× slower on the 2-core test machine (a runtime artefact, not the loss). Every
process does one untimed warm-up call first. The per-repetition times are printed too: with 2
torch threads they are bimodal on a shared 2-core machine (fast when both cores are free,
seconds when another job holds one, as the loss's many mid-sized ops synchronise threads). Also a training step of the tiny model (64×48 input
→ 16×12 heatmaps, batch 32) with EMD vs MSE, at torch's default thread count.

    .venv/bin/python benchmarks/emd.py [--reps 5] [--threads 1 2] [--no-train]
"""
import argparse
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


def pot_inputs(hm, kp):
    """Per-problem (a, b, M) for POT, built once (not timed)."""
    B, K, H, W = hm.shape
    yy, xx = np.mgrid[0:H, 0:W]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
    out = []
    for b in range(B):
        for k in range(K):
            a = np.maximum(hm[b, k].numpy().ravel(), 0)
            a /= a.sum()
            pos, m = subpixel_demanders(kp[b, k])
            M = np.sqrt(((pix[:, None] - pos.numpy()[None]) ** 2).sum(-1))
            out.append((a, m.numpy(), M))
    return out


def time_pot(inputs, tol):
    import ot
    t = time.perf_counter()
    ref = np.array([ot.sinkhorn2(a, m, M, 1.0, numItermax=1000, stopThr=tol) for a, m, M in inputs])
    return time.perf_counter() - t, ref


def time_ours(hm, kp, tol, grad=True, solver="auto"):
    vis = torch.ones(hm.shape[:2])
    h = hm.clone().requires_grad_(grad)
    t = time.perf_counter()
    val = emd_loss(h, kp, vis, tol=tol, reduction="none", solver=solver)
    if grad:
        val.sum().backward()
    return time.perf_counter() - t, val.detach().numpy()


VARIANTS = {"ours fwd+bwd (newton)": dict(grad=True), "ours fwd only (newton)": dict(grad=False),
            "ours fwd+bwd (sinkhorn)": dict(grad=True, solver="sinkhorn")}
POT_NAME = "POT one by one (fwd)"


DENSE_NAME = "ours fwd+bwd, dense maps"
POT_DENSE_NAME = "POT one by one, dense maps"


def one_rep(tol=1e-6):
    """One repetition at the current torch thread count: {variant: (seconds, max rel diff)}.

    Besides the benchmark problems (Gaussian blob + noise: about half the pixels ≤ 0, which the
    Newton path skips — they carry no mass), the same problems with every pixel positive
    (``|h| + 0.01``) show the speed without that saving, against POT on the same dense maps."""
    import warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # POT's log(0) on zero suppliers
    hm, kp = problems()
    dense = hm.abs() + 0.01
    inputs, inputs_dense = pot_inputs(hm, kp), pot_inputs(dense, kp)
    time_ours(hm, kp, tol)  # warm-up (first-call allocations), not timed
    time_pot(inputs[:20], tol)
    out, vals = {}, {}
    for name, kw in VARIANTS.items():
        out[name], vals[name] = time_ours(hm, kp, tol, **kw)
    out[DENSE_NAME], vals[DENSE_NAME] = time_ours(dense, kp, tol)
    t_pot, ref = time_pot(inputs, tol)
    t_pot_dense, ref_dense = time_pot(inputs_dense, tol)
    res = {name: (out[name], float(np.max(np.abs(ref - vals[name].reshape(-1)) / ref))) for name in VARIANTS}
    res[DENSE_NAME] = (out[DENSE_NAME],
                       float(np.max(np.abs(ref_dense - vals[DENSE_NAME].reshape(-1)) / ref_dense)))
    res[POT_NAME] = (t_pot, 0.0)
    res[POT_DENSE_NAME] = (t_pot_dense, 0.0)
    return res


def emd_vs_pot(reps=5, threads=(1, 2), tol=1e-6):
    import json
    import subprocess
    import sys
    times = {(n, v): [] for n in threads for v in [*VARIANTS, DENSE_NAME, POT_NAME, POT_DENSE_NAME]}
    rel = {name: 0.0 for name in [*VARIANTS, DENSE_NAME]}
    for _ in range(reps):  # interleaved: every repetition runs every thread count, in turn
        for n in threads:
            proc = subprocess.run([sys.executable, __file__, "--child", "--threads", str(n)],
                                  capture_output=True, text=True, check=True)
            for name, (t, r) in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                times[(n, name)].append(t)
                if name in rel:
                    rel[name] = max(rel[name], r)
    hm, _ = problems()
    B, K, H, W = hm.shape
    print(f"EMD B={B} K={K} {H}x{W} float64 reg=1 tol={tol}; medians of {reps} interleaved reps "
          f"(ms, one process per rep and thread count); ratio = POT / ours; pixels > 0 in the "
          f"benchmark maps: {float((hm > 0).double().mean()):.0%}")
    for n in threads:
        for pot_name, names in ((POT_NAME, list(VARIANTS)), (POT_DENSE_NAME, [DENSE_NAME])):
            pot = np.median(times[(n, pot_name)])
            print(f"  torch threads {n}: {pot_name} {pot * 1e3:.0f}")
            for name in names:
                ours = np.median(times[(n, name)])
                print(f"    {name:26s} {ours * 1e3:6.0f}   ratio {pot / ours:5.2f}x   "
                      f"(reps: {', '.join(f'{t * 1e3:.0f}' for t in times[(n, name)])})")
    for name, r in rel.items():
        print(f"  max rel diff vs POT, {name}: {r:.1e}")
    return times


def training_step():
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
    times = {name: [] for name in losses}
    for _ in range(6):  # interleaved
        for name, fn in losses.items():
            t = time.perf_counter()
            opt.zero_grad()
            fn(model(x)).backward()
            opt.step()
            times[name].append(time.perf_counter() - t)
    med = {name: float(np.median(ts[1:])) for name, ts in times.items()}
    print(f"training step (tiny model, 64x48 input, 16x12 heatmaps, batch 32, torch threads "
          f"{torch.get_num_threads()}): MSE {med['mse']*1e3:.0f} ms, EMD {med['emd']*1e3:.0f} ms, "
          f"ratio {med['emd']/med['mse']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one repetition at one thread count, JSON on the last line
        import json
        torch.set_num_threads(args.threads[0])
        print(json.dumps(one_rep()))
        raise SystemExit
    default_threads = torch.get_num_threads()
    print("torch default threads:", default_threads)
    emd_vs_pot(reps=args.reps, threads=tuple(args.threads))
    if not args.no_train:
        torch.set_num_threads(default_threads)
        training_step()
