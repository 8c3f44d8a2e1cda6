"""Confidence-ranking losses (RCNet): vectorised ``poselab.losses.confidence_ranking`` vs a loop.

``laplacian_rank_loss`` (RCNet Eq. 8-9) and ``ranknet_loss`` against a plain Python loop over the
poses (one row of pairs per iteration, the way a per-pose implementation is written), forward +
backward, at N = 1 000 and 5 000 poses (scores in [0, 1], targets = OKS-like values, groups=None:
one list, as COCO AP ranks). Values and gradients are checked equal; a pure-Python scalar double
loop (float64, N = 150) checks both once more. The other rivals (listwise: no loop form here) are
timed vectorised, as a ratio to ``laplacian_rank_loss``. 1 and 2 torch threads, float32 (training)
and float64. CPU-time medians after one warm-up (CPU time sums over threads; wall in brackets).

    python benchmarks/rank_losses.py [--quick] [--repeats 3]
"""
from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from _common import measure

from poselab.losses.confidence_ranking import (CONFIDENCE_RANKING_LOSSES, laplacian_rank_loss,
                                               rank_pair_term, ranknet_loss)


def laplacian_loop(pred, target, b_prime=2.0, c=1.0):
    """Row-by-row loop: for each pose i, its pairs (i, j) with s*_i ≠ s*_j."""
    total, count = pred.new_zeros(()), 0
    for i in range(pred.numel()):
        order = torch.sign(target[i] - target).to(pred.dtype)
        total = total + rank_pair_term(pred[i] - pred, order, c).sum()
        count += int(order.abs().sum().item())
    l1 = (target.to(pred.dtype) - pred).abs().mean()
    return (2.0 / b_prime) * l1 + (total / count if count else total)


def ranknet_loop(pred, target, sigma=1.0):
    total, count = pred.new_zeros(()), 0
    for i in range(pred.numel()):
        better = (target[i] > target).to(pred.dtype)
        total = total + (F.softplus(-sigma * (pred[i] - pred)) * better).sum()
        count += int(better.sum().item())
    return total / count


def laplacian_scalar(pred, target, c=1.0):
    """Pure-Python double loop of Eq. 8-9 (b' = 2, m = c/2) on lists of floats."""
    n, total, count = len(pred), 0.0, 0
    for i in range(n):
        for j in range(n):
            if i == j or target[i] == target[j]:
                continue
            d = pred[i] - pred[j]
            o = 1.0 if target[i] > target[j] else -1.0
            total += (abs(d) - c / 2) ** 2 + c * c / 4 if o * d > 0 else c * abs(d) + c * c / 2
            count += 1
    return sum(abs(t - p) for p, t in zip(pred, target)) / n + total / count


def ranknet_scalar(pred, target):
    n, total, count = len(pred), 0.0, 0
    for i in range(n):
        for j in range(n):
            if target[i] > target[j]:
                total += math.log1p(math.exp(-(pred[i] - pred[j])))
                count += 1
    return total / count


def inputs(n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, generator=g, dtype=torch.float64) * 100).round() / 100  # ties exist
    pred = (target + 0.2 * torch.randn(n, generator=g, dtype=torch.float64)).clamp(0, 1)
    return pred.to(dtype), target


def fwd_bwd(fn, pred, target):
    p = pred.clone().requires_grad_(True)
    loss = fn(p, target)
    loss.backward()
    return loss.detach(), p.grad


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 1000 only, float32 + float64, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = (1000,) if args.quick else (1000, 5000)
    threads = (1,) if args.quick else (1, 2)
    repeats = 1 if args.quick else args.repeats

    p, t = inputs(150, torch.float64, seed=1)
    for name, fn, ref in (("laplacian", laplacian_rank_loss, laplacian_scalar),
                          ("ranknet", ranknet_loss, ranknet_scalar)):
        ours, scalar = fn(p, t).item(), ref(p.tolist(), t.tolist())
        assert abs(ours - scalar) <= 1e-12 * max(1.0, abs(scalar)), (name, ours, scalar)
    print("scalar double-loop check (float64, N = 150): laplacian and ranknet equal to 1e-12")
    print()
    print("| loss | N | dtype | threads | vectorised ms (CPU) [wall] | loop ms (CPU) [wall] | speed-up loop / vectorised | loss rel diff | grad max diff | equal |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    failures = []
    for nthreads in threads:
        torch.set_num_threads(nthreads)
        for n in sizes:
            for dtype in (torch.float32, torch.float64):
                pred, target = inputs(n, dtype)
                for name, fn, loop in (("laplacian_rank_loss", laplacian_rank_loss, laplacian_loop),
                                       ("ranknet_loss", ranknet_loss, ranknet_loop)):
                    lv, gv = fwd_bwd(fn, pred, target)
                    ll, gl = fwd_bwd(loop, pred, target)
                    rel = abs(lv.item() - ll.item()) / max(1e-12, abs(ll.item()))
                    gdiff = (gv - gl).abs().max().item()
                    tol = 1e-4 if dtype == torch.float32 else 1e-10
                    gtol = 1e-6 if dtype == torch.float32 else 1e-14
                    ok = rel <= tol and gdiff <= gtol
                    if not ok:
                        failures.append((name, n, dtype))
                    tv = measure(lambda: fwd_bwd(fn, pred, target), repeats)
                    tl = measure(lambda: fwd_bwd(loop, pred, target), 1 if n > 1000 else repeats)
                    print(f"| {name} | {n} | {str(dtype)[6:]} | {nthreads} | {1e3 * tv['cpu']:.1f} [{1e3 * tv['wall']:.1f}] | "
                          f"{1e3 * tl['cpu']:.1f} [{1e3 * tl['wall']:.1f}] | {tl['cpu'] / tv['cpu']:.1f} | {rel:.1e} | {gdiff:.1e} | {ok} |")
    torch.set_num_threads(threads[0])
    print()
    print("All rivals vectorised, forward + backward, float32, 1 thread (ratio to laplacian_rank_loss):")
    print()
    print("| loss | N | ms (CPU) | ratio |")
    print("| --- | --- | --- | --- |")
    torch.set_num_threads(1)
    for n in sizes:
        pred, target = inputs(n, torch.float32)
        base = None
        for name, fn in CONFIDENCE_RANKING_LOSSES.items():
            tv = measure(lambda: fwd_bwd(fn, pred, target), repeats)
            base = tv["cpu"] if base is None else base
            print(f"| {name} | {n} | {1e3 * tv['cpu']:.1f} | {tv['cpu'] / base:.2f} |")
    if failures:
        raise SystemExit(f"vectorised and loop values differ: {failures}")


if __name__ == "__main__":
    main()
