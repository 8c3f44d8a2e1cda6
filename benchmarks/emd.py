"""Benchmark: batched poselab emd_loss vs POT solving the same problems one at a time.

B=32, K=17, 64×48 heatmaps (Gaussian blob + noise: about half the pixels ≤ 0), reg=1, tol=1e-6,
in float32 (the training dtype) and float64, with 1 and 2 torch threads. Per repetition, side by
side in one process:

* ours, forward + backward (the training use; Newton solver, the default for tol > 0);
* ours, forward only (no gradient) — the like-for-like comparison with POT, which is forward only;
* ours with ``solver="sinkhorn"`` (forward + backward), for reference;
* ours, forward + backward, on *dense* maps (every pixel > 0: no support saving);
* POT ``ot.sinkhorn2`` one problem at a time, forward only, in the same dtype (and in float64 as
  the value reference). Its inputs (suppliers, the four demanders, the (H·W, 4) cost matrix) are
  built *outside* the timed loop, so the POT time is pure solving; POT's stopping rule is its
  own (L2 marginal error checked every 10 iterations), ours is stricter (L1 error of every
  problem ≤ tol, or float32's round-off floor). POT in float32 is slower than in float64 (its
  error stalls above 1e-6 on some problems, which then run its 1000-iteration cap), so the
  float32 rows also give the ratio against POT float64.

Reported: the minimum over repetitions of the CPU time of the process (``time.process_time``:
robust on a shared machine) and of the wall time, and ratio = POT / ours. With 1 thread CPU
time is the meaningful number; with 2 threads CPU time adds both threads, so the wall ratio is
the one to read — only on an idle machine. Values must agree with POT float64 to 1e-5
(relative; printed, and the script exits non-zero if they do not).

Each thread count runs in its own Python process (one process per repetition and thread count,
alternating): switching ``torch.set_num_threads`` 1 → 2 inside one process after POT/numpy work
made our times ~30× slower on the 2-core test machine (a runtime artefact, not the loss). Every
process does one untimed warm-up call first. Also a training step of the tiny model (64×48
input → 16×12 heatmaps, batch 32) with EMD vs MSE, at torch's default thread count; with
``--profile`` the CPU time per stage of one fwd+bwd call (what limits the ratio), with
``--sizes`` Newton iterations and fwd+bwd time per dtype (float64/32/16, bfloat16) at 16×12,
32×24 and 64×48.

Run timings one at a time on a shared machine:

    flock /tmp/poselab-timing.lock .venv/bin/python benchmarks/emd.py [--reps 5] [--threads 1 2]
        [--dtypes float32 float64] [--no-train] [--profile] [--sizes]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from poselab.codecs.hdm import subpixel_demanders
from poselab.losses import emd_loss

DTYPES = {"float32": torch.float32, "float64": torch.float64}
TOL = 1e-6
VALUE_RTOL = 1e-5


def problems(B=32, K=17, H=64, W=48, seed=0):
    """Float64 heatmaps (B, K, H, W): a Gaussian blob ~2 px off the keypoint plus noise."""
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0], dtype=torch.float64)
    c = kp + 2 * torch.randn(B, K, 2, generator=g, dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    hm = torch.exp(-((xx - c[..., 0, None, None]) ** 2 + (yy - c[..., 1, None, None]) ** 2) / 8)
    return hm + 0.05 * torch.randn(B, K, H, W, generator=g, dtype=torch.float64), kp


def pot_inputs(hm, kp, dtype=np.float64):
    """Per-problem (a, b, M) for POT in ``dtype``, built once (not timed)."""
    B, K, H, W = hm.shape
    yy, xx = np.mgrid[0:H, 0:W]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
    out = []
    for b in range(B):
        for k in range(K):
            a = np.maximum(hm[b, k].double().numpy().ravel(), 0)
            a /= a.sum()
            pos, m = subpixel_demanders(kp[b, k].double())
            M = np.sqrt(((pix[:, None] - pos.numpy()[None]) ** 2).sum(-1))
            out.append((a.astype(dtype), m.numpy().astype(dtype), M.astype(dtype)))
    return out


def _clocks():
    return time.process_time(), time.perf_counter()


def _since(start):
    cpu, wall = _clocks()
    return cpu - start[0], wall - start[1]


def time_pot(inputs, tol=TOL):
    import ot
    start = _clocks()
    ref = np.array([ot.sinkhorn2(a, m, M, 1.0, numItermax=1000, stopThr=tol) for a, m, M in inputs])
    return _since(start), ref.astype(np.float64)


def time_ours(hm, kp, dtype, grad=True, solver="auto"):
    vis = torch.ones(hm.shape[:2])
    h = hm.to(dtype).requires_grad_(grad)
    k = kp.to(dtype)
    start = _clocks()
    val = emd_loss(h, k, vis, tol=TOL, reduction="none", solver=solver)
    if grad:
        val.sum().backward()
    return _since(start), val.detach().double().numpy().reshape(-1)


VARIANTS = {"fwd+bwd newton": dict(grad=True), "fwd newton": dict(grad=False),
            "fwd+bwd sinkhorn": dict(grad=True, solver="sinkhorn")}
DENSE = "fwd+bwd newton, dense maps"


def one_rep(dtypes):
    """One repetition at the current torch thread count, in every dtype:
    {dtype: {name: (cpu s, wall s, max rel diff vs POT float64)}}."""
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # POT's log(0) on zero suppliers
    hm, kp = problems()
    dense = hm.abs() + 0.01
    ref_inputs = {"maps": pot_inputs(hm, kp), "dense": pot_inputs(dense, kp)}
    _, ref = time_pot(ref_inputs["maps"])  # float64 reference values (also warms POT up)
    _, ref_dense = time_pot(ref_inputs["dense"])
    out = {}
    for name in dtypes:
        dt = DTYPES[name]
        npdt = np.float32 if dt == torch.float32 else np.float64
        inputs = {key: [(a.astype(npdt), m.astype(npdt), M.astype(npdt)) for a, m, M in val]
                  for key, val in ref_inputs.items()}
        time_ours(hm, kp, dt)  # warm-up (first-call allocations), not timed
        res = {}
        for variant, kw in VARIANTS.items():
            t, val = time_ours(hm, kp, dt, **kw)
            res[variant] = (*t, float(np.max(np.abs(val - ref) / ref)))
        t, val = time_ours(dense, kp, dt)
        res[DENSE] = (*t, float(np.max(np.abs(val - ref_dense) / ref_dense)))
        t, val = time_pot(inputs["maps"])
        res["POT"] = (*t, float(np.max(np.abs(val - ref) / ref)))
        t, val = time_pot(inputs["dense"])
        res["POT dense"] = (*t, float(np.max(np.abs(val - ref_dense) / ref_dense)))
        out[name] = res
    return out


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        return "?"


def emd_vs_pot(reps=5, threads=(1, 2), dtypes=("float32", "float64")):
    """Run ``reps`` interleaved child processes per thread count; print the table; return
    (results, ok) with ok = every value within VALUE_RTOL of POT float64."""
    runs = {n: [] for n in threads}
    for _ in range(reps):  # interleaved: every repetition runs every thread count, in turn
        for n in threads:
            proc = subprocess.run([sys.executable, __file__, "--child", "--threads", str(n),
                                   "--dtypes", *dtypes], capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(f"benchmark child ({n} threads) failed:\n{proc.stderr}")
            runs[n].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    hm, _ = problems()
    B, K, H, W = hm.shape
    print(f"EMD B={B} K={K} {H}x{W} reg=1 tol={TOL:g}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, torch {torch.__version__}, commit {_git_commit()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{os.getloadavg()[0]:.1f}; pixels > 0 in the maps: {float((hm > 0).double().mean()):.0%}")
    print(f"min over {reps} interleaved reps (one process per rep and thread count), ms; "
          f"ratio = POT / ours (CPU time | wall time)")
    print(f"| dtype | threads | variant | ours CPU | ours wall | POT CPU | POT wall | ratio CPU | ratio wall "
          f"| ratio CPU vs POT float64 | max rel diff vs POT float64 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ok, summary = True, {}
    for name in dtypes:
        for n in threads:
            best = {}
            for variant in [*VARIANTS, DENSE, "POT", "POT dense"]:
                rows = [run[name][variant] for run in runs[n]]
                best[variant] = (min(r[0] for r in rows), min(r[1] for r in rows), max(r[2] for r in rows))
            for variant in [*VARIANTS, DENSE]:
                key = "POT dense" if variant == DENSE else "POT"
                pot = best[key]
                pot64 = min(run["float64"][key][0] for run in runs[n]) if "float64" in dtypes else math.nan
                cpu, wall, rel = best[variant]
                ok = ok and rel <= VALUE_RTOL
                summary[(name, n, variant)] = (pot[0] / cpu, pot[1] / wall)
                print(f"| {name} | {n} | {variant} | {cpu * 1e3:.0f} | {wall * 1e3:.0f} | {pot[0] * 1e3:.0f} | "
                      f"{pot[1] * 1e3:.0f} | {pot[0] / cpu:.1f}x | {pot[1] / wall:.1f}x | {pot64 / cpu:.1f}x | "
                      f"{rel:.1e} |")
            print(f"| {name} | {n} | POT itself vs POT float64 | | | | | | | | {best['POT'][2]:.1e} |")
    target = [(name, n) for name in dtypes for n in threads]
    met = {key: max(summary[(*key, "fwd+bwd newton")]) >= 10 for key in target}
    print("target >= 10x (fwd+bwd newton vs POT, best of CPU/wall ratio): "
          + ", ".join(f"{name} {n} thread(s): {'met' if m else 'NOT met'}" for (name, n), m in met.items()))
    print("values within 1e-5 of POT float64:", "yes" if ok else "NO")
    return runs, ok


def profile_stages(dtypes=("float32", "float64")):
    """CPU time per stage of one fwd+bwd call at one thread (what limits the ratio)."""
    from collections import defaultdict

    from poselab.losses import transport
    from poselab.losses.transport import newton
    torch.set_num_threads(1)
    hm, kp = problems()
    vis = torch.ones(hm.shape[:2])
    stages = [(transport, "_suppliers", "suppliers (Eq. 3)"), (transport, "_support", "support compaction"),
              (transport, "_shared_kernel_source", "kernel tables (once per batch)"),
              (transport, "_gathered_kernels", "kernel gather"), (transport, "_newton_scaling", "Newton solve"),
              (newton, "evaluate", "of which evaluations"), (transport, "_newton_gradient", "implicit gradient"),
              (transport, "_suppliers_vjp", "Eq. 3 chain rule"), (transport, "_newton_chunk", "chunks in all")]
    acc = defaultdict(float)
    originals = [(module, attr, getattr(module, attr)) for module, attr, _ in stages]

    def timed(label, fn):
        def inner(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[label] += time.process_time() - start
        return inner

    try:
        for (module, attr, label), (_, _, fn) in zip(stages, originals):
            setattr(module, attr, timed(label, fn))
        for name in dtypes:
            h = hm.to(DTYPES[name]).requires_grad_(True)
            best = None
            for _ in range(4):
                acc.clear()
                start = time.process_time()
                emd_loss(h, kp.to(DTYPES[name]), vis).backward()
                total = time.process_time() - start
                if best is None or total < best[0]:
                    best = (total, dict(acc))
            total, times = best
            inside = [label for _, _, label in stages
                      if label not in ("chunks in all", "of which evaluations", "kernel tables (once per batch)")]
            rest = times["chunks in all"] - sum(times[label] for label in inside)
            parts = ", ".join(f"{label} {times[label] * 1e3:.1f}" for _, _, label in stages[:-1])
            print(f"profile {name}, one thread, fwd+bwd {total * 1e3:.1f} ms CPU: {parts}, rest of the "
                  f"chunks (cost, expansion, Sinkhorn continuation) {rest * 1e3:.1f}, outside the chunks "
                  f"{(total - times['chunks in all']) * 1e3:.1f}")
    finally:
        for module, attr, fn in originals:
            setattr(module, attr, fn)


def dtype_sizes(sizes=((16, 12), (32, 24), (64, 48)), B=32, K=17, reps=3):
    """Iterations and fwd+bwd CPU time per dtype and heatmap size on rectified-normal maps
    (``relu`` of standard normal noise: half the pixels carry mass), one thread, tol 1e-6.
    Half precision is solved in float32 (the numbers show the cast's cost)."""
    from poselab.losses.transport import hdm_transport
    torch.set_num_threads(1)
    print(f"| heatmap | dtype | Newton iterations | stopped | marginal error | fwd+bwd ms CPU (min of {reps}) |")
    print("|---|---|---|---|---|---|")
    for H, W in sizes:
        g = torch.Generator().manual_seed(0)
        hm = torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
        kp = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 1.0, H - 1.0], dtype=torch.float64)
        vis = torch.ones(B, K)
        for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            h = hm.to(dt).requires_grad_(True)
            emd_loss(h, kp.to(dt), vis).backward()  # warm-up
            best = math.inf
            for _ in range(reps):
                start = time.process_time()
                emd_loss(h, kp.to(dt), vis).backward()
                best = min(best, time.process_time() - start)
            info = hdm_transport(hm.to(dt), kp.to(dt), vis, solver="newton")
            print(f"| {H}x{W} | {str(dt).replace('torch.', '')} | {info['iterations']} | {info['stopped']} | "
                  f"{info['marginal_error']:.1e} | {best * 1e3:.0f} |")


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
            t = time.process_time()
            opt.zero_grad()
            fn(model(x)).backward()
            opt.step()
            times[name].append(time.process_time() - t)
    med = {name: float(np.median(ts[1:])) for name, ts in times.items()}
    print(f"training step (tiny model, float32, 64x48 input, 16x12 heatmaps, batch 32, torch threads "
          f"{torch.get_num_threads()}, CPU time): MSE {med['mse']*1e3:.0f} ms, EMD {med['emd']*1e3:.0f} ms, "
          f"ratio {med['emd']/med['mse']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions of the POT comparison (0: skip it)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=list(DTYPES))
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--profile", action="store_true", help="CPU time per stage of one call")
    parser.add_argument("--sizes", action="store_true", help="iterations and time per dtype and size")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one repetition at one thread count, JSON on the last line
        torch.set_num_threads(args.threads[0])
        print(json.dumps(one_rep(args.dtypes)))
        raise SystemExit
    default_threads = torch.get_num_threads()
    print("torch default threads:", default_threads)
    values_ok = True  # --reps 0: no POT comparison (e.g. --profile only)
    if args.reps > 0:
        _, values_ok = emd_vs_pot(reps=args.reps, threads=tuple(args.threads), dtypes=tuple(args.dtypes))
    if args.profile:
        profile_stages(tuple(args.dtypes))
    if args.sizes:
        dtype_sizes()
    if not args.no_train:
        torch.set_num_threads(default_threads)
        training_step()
    raise SystemExit(0 if values_ok else 1)
