"""RCNet's ranking guarantees checked numerically: Lemma 5, Theorem 3 and Corollary 6 (App. J.3).

- **Lemma 5**: P_correct ≥ 1 − (2 / min_k |δ*_k|) · E_i |μ_i − s*_i| — the accuracy of any scores
  is bounded below by their mean L1 error over the smallest target gap
  (:func:`lemma5_quantities` on one case, :func:`lemma5_check` on random and extremal cases);
- **Theorem 3**: "if l(θ) decreases at iteration t, P_correct increases", with the proof's
  hypotheses (Assumption 4: E[δ_t²] ≤ E[δ_{t+1}²] ≤ Var[δ*], E[δ] unchanged; |δ| ≤ c) and the
  proof's four-way split of the pair term's change (Eq. 46–65) evaluated on a concrete step
  (:func:`theorem3_case`), on many steps (:func:`theorem3_check`), and the outside audit's case,
  loss 0.469 → 0.375 while accuracy 1.0 → 0.833 (:func:`theorem3_outside_case`);
- **Corollary 6**: a gradient-Lipschitz network trained by full-batch gradient descent with a
  small learning rate sees the loss fall at every step (Lemma 7), hence, by Theorem 3, the
  accuracy rise at every step and converge (:func:`cor6_gradient_descent`).

Each function returns the statement's quantities and a computed ``holds`` so that the same code
can come out either way; the tests feed each a counter-case it must reject. Quantities are
evaluated in the dtype asked for (float64 references, float32 as RCNet trains).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from poselab.losses.confidence_ranking import laplacian_rank_loss, rank_pair_term
from poselab.models import RCNet

__all__ = ["lemma5_quantities", "lemma5_check", "lemma5_on_scores", "lemma5_scores_sentence", "lemma5_rows", "theorem3_case",
           "theorem3_outside_case", "theorem3_check", "theorem3_search_rows", "theorem3_rows", "theorem3_sentence",
           "cor6_gradient_descent", "cor6_rows", "cor6_sentence",
           "theorem3_agreement_sentence"]


def _arrow(pair, digits: int = 4) -> str:
    return f"{pair[0]:.{digits}g} -> {pair[1]:.{digits}g}"

_DTYPES = {"float64": np.float64, "float32": np.float32}


def _np_dtype(dtype) -> type:
    name = getattr(dtype, "__name__", None) or str(dtype).replace("torch.", "")
    if name not in _DTYPES:
        raise TypeError(f"dtype must be float64 or float32 (numpy or torch), got {dtype!r}")
    return _DTYPES[name]


def _torch_dtype(dtype) -> torch.dtype:
    return torch.float64 if _np_dtype(dtype) is np.float64 else torch.float32


def _float64(x) -> np.ndarray:
    """``x`` as a float64 array; torch tensors of any float dtype (bfloat16 and float16 as a GPU
    hands them back) are detached and moved to the CPU first."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _pair_arrays(pred, target, dtype) -> tuple[np.ndarray, np.ndarray]:
    dt = _np_dtype(dtype)
    mu, star = _float64(pred), _float64(target)
    if mu.ndim != 1 or mu.shape != star.shape:
        raise ValueError(f"pred and target must be 1-D of the same length, got shapes {mu.shape} and {star.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(star))):
        raise ValueError("pred and target must be finite (NaN or Inf found)")
    return mu.astype(dt), star.astype(dt)


def _accuracy(mu: np.ndarray, star: np.ndarray) -> float:
    """Fraction of target-ordered pairs (s*_i > s*_j) with μ_i > μ_j strictly: a tie in μ is
    misordered, as in App. J.3 (≺ requires s′_i > s′_j)."""
    pairs = (star[:, None] - star[None, :]) > 0
    correct = (mu[:, None] - mu[None, :]) > 0
    return float((pairs & correct).sum() / pairs.sum())


# ----------------------------------------------------------------------------- Lemma 5

def lemma5_quantities(pred, target, *, dtype=np.float64, factor: float = 2.0, gap: str = "min") -> dict:
    """Lemma 5's two sides on one set of scores ``pred`` (μ) and targets ``target`` (s*).

    accuracy (ties in μ misordered, target ties excluded) against
    bound = 1 − factor / gap · mean_i |μ_i − s*_i|, every quantity computed in ``dtype``.
    ``factor=2, gap="min"`` is the lemma; ``factor < 2`` or ``gap="max"`` (the largest target
    gap) are stronger, false statements the check must reject.

    Returns ``{"accuracy", "bound", "slack"`` (accuracy − bound, ≥ 0 where it holds),
    ``"tolerance"`` (rounding allowance of ``dtype``), ``"holds", "min_gap", "mean_error", "n"}``.
    """
    if gap not in ("min", "max"):
        raise ValueError(f"gap must be 'min' (the lemma) or 'max', got {gap!r}")
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be a finite number > 0, got {factor!r}")
    mu, star = _pair_arrays(pred, target, dtype)
    gaps = (star[:, None] - star[None, :])
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise ValueError("Lemma 5 needs at least two distinct target values")
    m = gaps.min() if gap == "min" else gaps.max()
    err = np.abs(mu - star).mean(dtype=mu.dtype)
    ratio = mu.dtype.type(factor) / m * err
    bound = float(mu.dtype.type(1) - ratio)
    acc = _accuracy(mu, star)
    tol = 8.0 * float(np.finfo(mu.dtype).eps) * max(1.0, float(ratio))
    return {"accuracy": acc, "bound": bound, "slack": acc - bound, "tolerance": tol,
            "holds": bool(acc - bound >= -tol), "min_gap": float(m), "mean_error": float(err),
            "n": int(mu.size)}


def _lemma5_cases(n_cases: int, n_items: int, seed: int):
    """Random cases (targets U(0, 1), μ = s* + Laplace noise at scales from 1 % to 3× the
    smallest gap) and extremal ones: two items whose errors add up to exactly their gap (μ tied:
    accuracy 0 = bound 0, the lemma's equality case) and n items with neighbours tied midway."""
    rng = np.random.default_rng(seed)
    for _ in range(int(n_cases)):
        star = rng.random(int(n_items))
        d = np.diff(np.sort(star))
        scale = float(d.min()) * 10 ** rng.uniform(-2, 0.5)
        yield "random", rng.laplace(0.0, scale, star.size) + star, star
    for m in (0.5, 0.125, 2.0 ** -10):  # exact in binary: the equality case stays exact in float32
        yield "tight pair", np.array([m / 2, m / 2]), np.array([0.0, m])
        star = np.arange(int(n_items) - int(n_items) % 2) * m
        mu = np.repeat((star[0::2] + star[1::2]) / 2, 2)  # each neighbour pair tied at its midpoint
        yield "neighbours tied", mu, star


def lemma5_check(n_cases: int = 2000, n_items: int = 8, *, dtype=np.float64, seed: int = 0,
                 factor: float = 2.0, gap: str = "min") -> dict:
    """Lemma 5 on ``n_cases`` random cases plus extremal ones (:func:`lemma5_quantities` each).

    Returns ``{"holds"`` (every case within rounding), ``"fraction_holds", "min_slack",
    "tightest"`` (the case with the least slack: kind, accuracy, bound), ``"non_vacuous"``
    (cases with a positive bound — where the lemma says something), ``"cases", "dtype"}``.
    """
    if int(n_cases) < 0 or int(n_items) < 2:
        raise ValueError(f"need n_cases >= 0 and n_items >= 2, got {n_cases}, {n_items}")
    rows = [(kind, lemma5_quantities(mu, star, dtype=dtype, factor=factor, gap=gap))
            for kind, mu, star in _lemma5_cases(n_cases, n_items, seed)]
    k = int(np.argmin([r["slack"] for _, r in rows]))
    kind, tight = rows[k]
    return {"holds": all(r["holds"] for _, r in rows),
            "fraction_holds": float(np.mean([r["holds"] for _, r in rows])),
            "min_slack": float(tight["slack"]),
            "tightest": {"kind": kind, "accuracy": tight["accuracy"], "bound": tight["bound"]},
            "non_vacuous": int(sum(r["bound"] > 0 for _, r in rows)), "cases": len(rows),
            "dtype": _np_dtype(dtype).__name__}


def lemma5_on_scores(scores, oks) -> dict:
    """Lemma 5 on a run's refined scores: the detections matched to a person (``oks > 0``, the
    paper's pairs, §3.3), or every detection when fewer than two distinct matched OKS exist.
    Adds ``"pairs"`` (which set was used) to :func:`lemma5_quantities`' result; with no two
    distinct OKS at all (a model that matched nobody) the numbers are NaN and ``"holds"`` None."""
    s, q = _float64(scores), _float64(oks)
    if s.ndim != 1 or s.shape != q.shape:
        raise ValueError(f"scores and oks must be 1-D of the same length (one per detection), got shapes "
                         f"{s.shape} and {q.shape}")
    if not (np.isfinite(s).all() and np.isfinite(q).all()):
        raise ValueError("scores and oks must be finite (NaN or Inf found): a NaN OKS would silently "
                         "count as unmatched")
    matched = q > 0
    if matched.sum() > 1 and np.ptp(q[matched]) > 0:
        return {**lemma5_quantities(s[matched], q[matched]), "pairs": "matched"}
    if q.size > 1 and np.ptp(q) > 0:
        return {**lemma5_quantities(s, q), "pairs": "all detections"}
    nan = float("nan")
    return {"accuracy": nan, "bound": nan, "slack": nan, "tolerance": nan, "holds": None, "min_gap": nan,
            "mean_error": nan, "n": int(q.size), "pairs": "none (fewer than two distinct OKS)"}


def lemma5_scores_sentence(result: dict) -> str:
    """What :func:`lemma5_on_scores` found, in one sentence printed by the run."""
    if result["holds"] is None:
        return f"Lemma 5 on RCNet's scores: not evaluated, {result['pairs']}."
    head = (f"Lemma 5 on RCNet's scores ({result['pairs']}, {result['n']} detections): accuracy "
            f"{result['accuracy']:.3f}, bound {result['bound']:.3g}")
    if result["bound"] <= 0:
        return head + (f"; the smallest OKS gap ({result['min_gap']:.2g}) against a mean error of "
                       f"{result['mean_error']:.3g} makes the bound vacuous.")
    return head + ("; the bound is informative and " + ("holds." if result["holds"] else "FAILS."))


def lemma5_rows(checks: dict) -> list[dict]:
    """Table rows ``{case, holds, min slack, cases, cases with bound > 0}`` from ``{label:
    lemma5_check result or lemma5_quantities result}``."""
    rows = []
    for label, r in checks.items():
        many = "cases" in r
        if r["holds"] is None:  # lemma5_on_scores without two distinct OKS: nothing was evaluated
            rows.append({"case": label, "holds": "not evaluated", "min slack (accuracy - bound)": None,
                         "cases": 0, "cases with bound > 0": 0, "tightest": f"not evaluated: {r.get('pairs', '')}"})
            continue
        rows.append({"case": label, "holds": bool(r["holds"]),
                     "min slack (accuracy - bound)": r["min_slack"] if many else r["slack"],
                     "cases": r["cases"] if many else 1,
                     "cases with bound > 0": r["non_vacuous"] if many else int(r["bound"] > 0),
                     "tightest": (f"{r['tightest']['kind']}: accuracy {r['tightest']['accuracy']:.3g}, "
                                  f"bound {r['tightest']['bound']:.3g}") if many else
                                 f"accuracy {r['accuracy']:.3g}, bound {r['bound']:.3g} (min gap {r['min_gap']:.2g})"})
    return rows


# ----------------------------------------------------------------------------- Theorem 3

def _pair_tables(mu: np.ndarray, star: np.ndarray):
    off = ~np.eye(mu.size, dtype=bool)
    order = np.sign(star[:, None] - star[None, :])
    valid = off & (order != 0)
    return mu[:, None] - mu[None, :], order, valid


def _loss_parts(mu: np.ndarray, star: np.ndarray, b_prime: float, c: float, pair_term) -> dict:
    t = torch.from_numpy(np.ascontiguousarray(mu))
    l1 = float((torch.from_numpy(star) - t).abs().mean()) * 2.0 / b_prime
    delta, order, valid = _pair_tables(mu, star)
    g = pair_term(torch.from_numpy(delta[valid]), torch.from_numpy(order[valid].astype(mu.dtype)), c).numpy()
    return {"l1": l1, "pair": float(g.mean()), "total": l1 + float(g.mean()), "g": g}


def theorem3_case(target, before, after, *, b_prime: float = 2.0, c: float = 1.0, dtype=np.float64,
                  pair_term=None) -> dict:
    """One step μ_t = ``before`` → μ_{t+1} = ``after`` against Theorem 3 and its proof's hypotheses.

    Quantities (pairs (i, j), i ≠ j, s*_i ≠ s*_j, both orders, as the loss averages them):

    - the loss l = (2/b′)·E|s* − μ| + E g(δ) and its two terms, before and after; the accuracy
      (ties in μ misordered, as the proof);
    - Assumption 4: E[δ_t²] ≤ E[δ_{t+1}²] ≤ Var[δ*] = E[δ*²] (E[δ] = 0 on both sides, since
      both orders count); the range |δ| ≤ c;
    - the proof's split of the pair term's change D = D_A1 + D_A2 + D_A3 + D_A4 over pairs that go
      ordered → misordered (A1), misordered → ordered (A2), stay ordered (A3), stay misordered
      (A4), each a finite sum /N_A, and the signs the proof asserts: D_A1 ≥ 0, D_A2 ≤ 0,
      D_A3 ≥ 0 (Eq. 61, "based on Assumption 4"), D_A4 = 0 (Eq. 65).

    ``contradicts`` is True when the loss fell, the accuracy fell, and every hypothesis that a
    finite set can meet holds (Assumption 4 both ways, |δ| ≤ c) — the theorem's remaining
    hypothesis is the proof's limit N_A → ∞. ``violated`` names the hypotheses that fail;
    ``failed_steps`` the proof's sign claims that fail. ``pair_term(delta, order, c)`` replaces g.
    """
    pair_term = rank_pair_term if pair_term is None else pair_term
    if not (math.isfinite(b_prime) and math.isfinite(c) and b_prime > 0 and c > 0):
        raise ValueError(f"b_prime and c must be finite numbers > 0, got {b_prime}, {c}")
    mu0, star = _pair_arrays(before, target, dtype)
    mu1, _ = _pair_arrays(after, target, dtype)
    if star.size < 2 or np.ptp(star) == 0:
        raise ValueError("Theorem 3 needs at least two distinct target values")
    p0, p1 = (_loss_parts(m, star, b_prime, c, pair_term) for m in (mu0, mu1))
    d0, order, valid = _pair_tables(mu0, star)
    d1, _, _ = _pair_tables(mu1, star)
    ds, _, _ = _pair_tables(star, star)
    ok0, ok1 = (order * d0 > 0)[valid], (order * d1 > 0)[valid]
    change = p1["g"] - p0["g"]
    n_a = change.size
    split = {name: float(change[mask].sum() / n_a) for name, mask in
             (("D_A1", ok0 & ~ok1), ("D_A2", ~ok0 & ok1), ("D_A3", ok0 & ok1), ("D_A4", ~ok0 & ~ok1))}
    tol = 64.0 * float(np.finfo(mu0.dtype).eps)
    e0, e1, es = (float((d[valid].astype(np.float64) ** 2).mean()) for d in (d0, d1, ds))
    checks = ((e1 < e0 - tol, "Assumption 4: E[delta^2] falls", f"{e0:.4g} -> {e1:.4g}"),
              (max(e0, e1) > es + tol, "Assumption 4: E[delta^2] above Var[delta*]",
               f"{max(e0, e1):.4g} > {es:.4g}"),
              (max(np.abs(d0).max(), np.abs(d1).max()) > c + tol, "|delta| <= c", f"c = {c:g}"))
    violated = [name for bad, name, _ in checks if bad]
    detail = [f"{name} ({numbers})" for bad, name, numbers in checks if bad]
    failed = [name for name, bad in (("D_A1 >= 0 (Eq. 51)", split["D_A1"] < -tol),
                                     ("D_A2 <= 0 (Eq. 53)", split["D_A2"] > tol),
                                     ("D_A3 >= 0 (Eq. 61)", split["D_A3"] < -tol),
                                     ("D_A4 = 0 (Eq. 65)", abs(split["D_A4"]) > tol)) if bad]
    a0, a1 = _accuracy(mu0, star), _accuracy(mu1, star)
    loss_down, acc_down = p1["total"] < p0["total"] - tol, a1 < a0
    return {"loss": [p0["total"], p1["total"]], "l1_term": [p0["l1"], p1["l1"]],
            "pair_term": [p0["pair"], p1["pair"]], "accuracy": [a0, a1],
            "mean_sq_delta": [e0, e1], "var_delta_star": es, **split,
            "loss_down": bool(loss_down), "accuracy_down": bool(acc_down),
            "violated": violated, "violated_detail": detail, "failed_steps": failed,
            "contradicts": bool(loss_down and acc_down and not violated),
            "outside_hypotheses": bool(loss_down and acc_down and violated), "dtype": mu0.dtype.name}


def theorem3_outside_case(eps: float = 2.0 ** -12) -> dict:
    """A reconstruction of the outside audit's case: four poses, loss 0.469 → 0.375 (b′ = 2,
    c = 1) while the accuracy falls 1.0 → 0.833 (5 of 6 pairs).

    Targets s* = (0, 1/8, 1/4, 1/2); before, μ = (0, 1/8, 1/2, 7/8): every pair ordered but with
    gaps wider than the targets' (loss exactly 15/32 = 0.46875). The step pulls the two top
    scores down to (1/8 − ε, 1/2) and lifts the second to 1/8 + ε: poses 2 and 3 swap (by 2ε,
    ``eps``; exact in binary, so float32 sees the same numbers) and the loss falls to
    ≈ 0.375 because the wide gaps move toward the margin c/2. Returns ``{"target", "before",
    "after"}`` for :func:`theorem3_case`.
    """
    return {"target": [0.0, 0.125, 0.25, 0.5], "before": [0.0, 0.125, 0.5, 0.875],
            "after": [0.0, 0.125 + eps, 0.125 - eps, 0.5]}


def theorem3_check(n_items: int = 8, trials: int = 2000, *, step: float = 0.1, seed: int = 0,
                   kind: str = "random", lr: float = 0.5, dtype=np.float64, pair_term=None) -> dict:
    """Theorem 3 probed on many steps: targets s* ~ U(0, 1) and scores μ ~ U(0, 1) for
    ``n_items`` poses, then one step — ``kind="random"``: μ + N(0, step²); ``"gradient"``: a
    gradient-descent step μ − lr·∇l (the free scores as the network). Steps are clipped to
    [0, 1] (RCNet's sigmoid range). Every step that lowers the loss is judged by
    :func:`theorem3_case`.

    Returns ``{"holds"`` (no step contradicts the theorem with its checkable hypotheses met),
    ``"trials", "loss_down", "accuracy_down"`` (loss down and accuracy down, whatever the
    hypotheses), ``"contradictions"`` (of those, hypotheses met), ``"violations"`` (count per
    violated hypothesis among the accuracy-down steps), ``"failed_steps"`` (count per failing
    proof step among the contradictions), ``"explained_by_eq61_or_eq65"`` (contradictions where
    the proof's D_A3 ≥ 0 or D_A4 = 0 fails — the steps that need N_A → ∞), ``"example"`` (the first contradiction's case)}``.
    """
    if int(n_items) < 3 or int(trials) < 1 or not 0 < step < math.inf or not 0 < lr < math.inf:
        raise ValueError(f"need n_items >= 3, trials >= 1, step > 0, lr > 0; got {n_items}, {trials}, {step}, {lr}")
    if kind not in ("random", "gradient"):
        raise ValueError(f"kind must be 'random' or 'gradient', got {kind!r}")
    rng = np.random.default_rng(seed)
    tdt = _torch_dtype(dtype)
    down = worse = bad = explained = 0
    violations: dict[str, int] = {}
    failed: dict[str, int] = {}
    example = None
    for _ in range(int(trials)):
        star, mu = rng.random(int(n_items)), rng.random(int(n_items))
        if kind == "random":
            nxt = mu + rng.normal(0.0, step, mu.size)
        else:
            t = torch.tensor(mu, dtype=tdt, requires_grad=True)
            laplacian_rank_loss(t, torch.tensor(star, dtype=tdt)).backward()
            nxt = mu - lr * t.grad.double().numpy()
        case = theorem3_case(star, mu, np.clip(nxt, 0.0, 1.0), dtype=dtype, pair_term=pair_term)
        if not case["loss_down"]:
            continue
        down += 1
        if not case["accuracy_down"]:
            continue
        worse += 1
        for v in case["violated"]:
            violations[v] = violations.get(v, 0) + 1
        if case["contradicts"]:
            bad += 1
            explained += any(f.startswith(("D_A3", "D_A4")) for f in case["failed_steps"])
            for s in case["failed_steps"]:
                failed[s] = failed.get(s, 0) + 1
            if example is None:
                example = {"target": star.tolist(), "before": mu.tolist(), "after": np.clip(nxt, 0, 1).tolist(),
                           **{k: case[k] for k in ("loss", "accuracy", "mean_sq_delta", "var_delta_star",
                                                  "failed_steps")}}
    return {"holds": bad == 0, "trials": int(trials), "kind": kind, "loss_down": down, "accuracy_down": worse,
            "contradictions": bad, "explained_by_eq61_or_eq65": explained, "violations": violations, "failed_steps": failed, "example": example,
            "dtype": _np_dtype(dtype).__name__}


def theorem3_rows(cases: dict) -> list[dict]:
    """Table rows of :func:`theorem3_case` results (``{label: case}``): before -> after of the
    loss, its terms, the accuracy and E[δ²], Var[δ*], the proof's four terms, the verdict."""
    rows = []
    for label, c in cases.items():
        rows.append({"case": label, "loss": _arrow(c["loss"]), "L1 term": _arrow(c["l1_term"]),
                     "pair term": _arrow(c["pair_term"]), "accuracy": _arrow(c["accuracy"]),
                     "E[delta^2]": _arrow(c["mean_sq_delta"]), "Var[delta*]": c["var_delta_star"],
                     **{k: c[k] for k in ("D_A1", "D_A2", "D_A3", "D_A4")},
                     "violated": "; ".join(c["violated"]) or "no hypothesis",
                     "proof steps that fail": "; ".join(c["failed_steps"]) or "no step",
                     "contradicts": c["contradicts"]})
    return rows


def _counts(counts: dict) -> str:
    return "; ".join(f"{k}: {v}" for k, v in counts.items()) or "no step"  # "none" renders as a missing value


def theorem3_search_rows(searches: dict) -> list[dict]:
    """Table rows of :func:`theorem3_check` results (``{label: search}``), the per-hypothesis and
    per-proof-step counts written out as text (not Python dicts)."""
    return [{"search": label, "holds": s["holds"], "trials": s["trials"], "steps that lowered the loss": s["loss_down"],
             "... and the accuracy": s["accuracy_down"], "... meeting every checkable hypothesis": s["contradictions"],
             "of these, Eq. 61 or Eq. 65 fails": s["explained_by_eq61_or_eq65"],
             "violated hypotheses (accuracy-down steps)": _counts(s["violations"]),
             "failing proof steps (contradictions)": _counts(s["failed_steps"]), "dtype": s["dtype"]}
            for label, s in searches.items()]


def theorem3_sentence(case: dict, search: dict) -> str:
    """One sentence on the outside case and the search, printed by the run."""
    head = (f"The outside case: loss {case['loss'][0]:.3f} -> {case['loss'][1]:.3f} while accuracy "
            f"{case['accuracy'][0]:.3f} -> {case['accuracy'][1]:.3f}; ")
    if case["contradicts"]:
        head += "it meets every checkable hypothesis, so it contradicts Theorem 3"
    elif case["loss_down"] and case["accuracy_down"]:
        head += "it violates " + "; ".join(case["violated_detail"]) + ", so it does not contradict Theorem 3 as stated"
    else:
        head += "it is not a loss-down, accuracy-down step"
    tail = (f". Of {search['loss_down']} {search['kind']} steps that lowered the loss, {search['accuracy_down']} "
            f"lowered the accuracy and {search['contradictions']} of these met Assumption 4 and |delta| <= c")
    if search["contradictions"]:
        worst = max(search["failed_steps"], key=search["failed_steps"].get) if search["failed_steps"] else "none"
        tail += (f" (the theorem fails on finite sets; the proof step that fails most: {worst}, which needs "
                 "the limit N_A -> infinity)")
    return head + tail + "."


# ----------------------------------------------------------------------------- Corollary 6

def _group_accuracy(out: torch.Tensor, target: torch.Tensor) -> float:
    """Pairwise accuracy within each image (rows of (B, L)); ties in the scores misordered."""
    d_t = target[:, :, None] - target[:, None, :]
    d_o = out[:, :, None] - out[:, None, :]
    pairs = d_t > 0
    return int((pairs & (d_o > 0)).sum()) / int(pairs.sum())


def cor6_gradient_descent(*, lr: float = 0.05, steps: int = 300, n_images: int = 6, poses: int = 8,
                          features: int = 8, dtype=torch.float64, seed: int = 0, model=None,
                          window: int = 30, b_prime: float = 2.0) -> dict:
    """Corollary 6's setting run exactly: an RCNet (Kaiming-uniform init, dropout off: its
    encoder is the gradient-Lipschitz block the paper names) trained by **full-batch gradient
    descent** (plain SGD over all poses at once) on the Laplacian rank loss, pairs within an
    image, on a fixed synthetic set: ``n_images`` × ``poses`` random features, targets
    s* = sigmoid(x·w/√F) (distinct almost surely) — the network can fit them.

    The corollary's proof: with a small enough learning rate the loss falls at every step
    (Lemma 7), hence (Theorem 3) the accuracy rises at every step, and a rising bounded sequence
    converges. Measured: ``"loss_rises"`` (steps whose loss rose beyond rounding),
    ``"accuracy_drops_when_loss_fell"``, ``"loss_settled"`` (relative loss change over the last
    ``window`` steps < 1e-3), ``"accuracy_settled"`` (the accuracy constant over that window),
    ``"lemma7_holds"`` (no loss rise), ``"chain_holds"`` (no loss rise and no accuracy drop: the
    proof's chain), ``"holds"`` (the chain and both settled), the first and last loss and
    accuracy, and the per-step ``"losses"`` / ``"accuracies"``. ``model``: another module
    mapping (B, L, F) to (B, L) scores (default: a fresh RCNet(F, feedforward=32)).
    """
    tdt = _torch_dtype(dtype)
    if not (math.isfinite(lr) and lr > 0) or int(steps) < 2 or int(window) < 1 or int(window) >= int(steps):
        raise ValueError(f"need lr > 0, steps >= 2 and 1 <= window < steps; got {lr}, {steps}, {window}")
    if int(n_images) < 1 or int(poses) < 2 or int(features) < 1:
        raise ValueError(f"need n_images >= 1, poses >= 2 (a pair to rank) and features >= 1; got "
                         f"{n_images}, {poses}, {features}")
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(int(n_images), int(poses), int(features), generator=gen, dtype=torch.float64)
    w = torch.randn(int(features), generator=gen, dtype=torch.float64)
    target = torch.sigmoid(x @ w / math.sqrt(features))
    x, target = x.to(tdt), target.to(tdt)
    groups = torch.arange(int(n_images)).repeat_interleave(int(poses))
    if model is None:
        torch.manual_seed(int(seed))
        model = RCNetForCor6(int(features))
    model = model.to(tdt)
    model.eval()  # dropout off: gradient descent on a fixed deterministic function
    opt = torch.optim.SGD(model.parameters(), lr=float(lr))
    losses, accs = [], []
    for _ in range(int(steps) + 1):
        opt.zero_grad()
        out = model(x)
        loss = laplacian_rank_loss(out.reshape(-1), target.reshape(-1), b_prime=b_prime, groups=groups)
        losses.append(float(loss.detach()))
        accs.append(_group_accuracy(out.detach(), target))
        loss.backward()
        opt.step()
    l, a = np.array(losses), np.array(accs)
    tol = 64.0 * float(torch.finfo(tdt).eps) * max(1.0, float(np.abs(l).max()))
    rises = np.diff(l) > tol
    fell = np.diff(l) < -tol
    drops = int((fell & (np.diff(a) < 0)).sum())
    tail = l[-int(window) - 1:]
    settled = bool(abs(tail[-1] - tail[0]) <= 1e-3 * max(abs(tail[0]), tol))
    acc_settled = bool(np.ptp(a[-int(window) - 1:]) == 0)
    lemma7 = not rises.any()
    chain = lemma7 and drops == 0
    return {"holds": bool(chain and settled and acc_settled), "lemma7_holds": bool(lemma7),
            "chain_holds": bool(chain), "loss_rises": int(rises.sum()),
            "accuracy_drops_when_loss_fell": drops, "loss_settled": settled, "accuracy_settled": acc_settled,
            "loss": [float(l[0]), float(l[-1])], "accuracy": [float(a[0]), float(a[-1])],
            "lr": float(lr), "steps": int(steps), "dtype": str(tdt).replace("torch.", ""),
            "losses": l.tolist(), "accuracies": a.tolist()}


def cor6_rows(results: dict) -> list[dict]:
    """Table rows of :func:`cor6_gradient_descent` results (``{label: result}``)."""
    return [{"run": label, "loss": _arrow(r["loss"]), "accuracy": _arrow(r["accuracy"]),
             "steps": r["steps"], "loss rose at": r["loss_rises"],
             "accuracy fell as the loss fell at": r["accuracy_drops_when_loss_fell"],
             "loss settled": r["loss_settled"], "accuracy settled": r["accuracy_settled"],
             "Lemma 7 (loss never rises)": r["lemma7_holds"], "proof's chain holds": r["chain_holds"]}
            for label, r in results.items()]


def cor6_sentence(results: dict) -> str:
    """One sentence on the gradient-descent runs, printed by the run: where Corollary 6's chain
    (loss falls every step ⇒ accuracy rises every step ⇒ converges) breaks, if it does."""
    if not results:
        raise ValueError("cor6_sentence needs at least one cor6_gradient_descent result")
    parts = []
    for label, r in results.items():
        parts.append(f"{label}: loss {_arrow(r['loss'], 3)}, accuracy {_arrow(r['accuracy'], 3)}, "
                     f"loss rose at {r['loss_rises']} of {r['steps']} steps, accuracy fell at "
                     f"{r['accuracy_drops_when_loss_fell']} steps where the loss fell")
    broken = [label for label, r in results.items() if not r["chain_holds"]]
    which = ("every run" if len(broken) == len(results) else  # labels hold commas: quote them
             ", ".join(f"'{label}'" for label in broken))
    tail = ("the chain holds on every run" if not broken else
            "the chain breaks on " + which + " (a loss rise breaks Lemma 7; an accuracy drop "
            "under a falling loss breaks the Theorem 3 step)")
    return "; ".join(parts) + "; " + tail + "."


def theorem3_agreement_sentence(agreement: dict, where: str = "the training poses") -> str:
    """One sentence on :func:`poselab.chapters.rcnet.analysis.theorem3_agreement` (Theorem 3 read
    off a fit's epochs), printed by the run instead of its raw dict."""
    n = int(agreement["loss_down_epochs"])
    head = f"Theorem 3 on {where}: the rank loss fell in {n} epoch{'s' if n != 1 else ''}"
    if n:
        share = float(agreement["accuracy_up_given_loss_down"])
        head += (f", and the ranking accuracy rose or stayed in {share:.0%} of them"
                 + (" (as the theorem says)" if share == 1.0 else " (the theorem says every one)"))
    return (head + f"; over the fit the loss changed by {agreement['loss_change']:+.4f} and the accuracy by "
            f"{agreement['accuracy_change']:+.4f}.")


def RCNetForCor6(features: int) -> torch.nn.Module:  # noqa: N802 (a factory named for the module it builds)
    """The RCNet of Eq. 10–11 at a small feed-forward width (32), dropout 0: Corollary 6's network."""
    return RCNet(features, feedforward=32, dropout=0.0)
