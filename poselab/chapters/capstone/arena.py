"""Numbers behind the capstone's arena figures (arrays in, arrays out), and the arena's three
empirical claims as one rule applied to the live arena and to the recorded replications
(:func:`best_recipe_verdict`, :func:`ranking_spearman_verdict`, :func:`rcnet_gain_verdict`,
:func:`recorded_arena_verdicts`)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from poselab import claims
from poselab.experiments import compare_recipes
from poselab.experiments.replicate import recorded_derived, recorded_pooled_verdict

__all__ = ["per_keypoint_error", "time_to_metric", "RANKING_RECIPES", "ARENA_MIN_SEEDS", "ranked_recipes",
           "best_recipe_verdict", "ranking_spearman_verdict", "rcnet_gain_verdict", "recorded_arena_verdicts"]

#: the ranking recipes whose Spearman the arena compares with MSE's, first present wins (RSPose Table 5)
RANKING_RECIPES = ("spatial_rs_is", "spatial_rs", "spatial_rank")
#: seeds every arena recipe needs before the recorded arena names a best recipe
ARENA_MIN_SEEDS = 3
_STEM = "07_capstone"


def per_keypoint_error(coords: np.ndarray, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Mean end-point error per joint ``(K,)`` over persons where the joint is labelled
    (``visible > 0``); NaN for a joint labelled nowhere. Inputs ``(N, K, 2)``, ``(N, K, 2)``,
    ``(N, K)`` in the same pixel units (crop or image px).

    Example:
        >>> c = np.zeros((2, 2, 2)); g = np.array([[[3., 4.], [0., 0.]], [[0., 0.], [0., 1.]]])
        >>> per_keypoint_error(c, g, np.array([[1, 0], [1, 1]])).tolist()
        [2.5, 1.0]
    """
    c, g = np.asarray(coords, np.float64), np.asarray(keypoints, np.float64)
    v = np.asarray(visible) > 0
    if c.shape != g.shape or c.ndim != 3 or c.shape[-1] != 2 or v.shape != c.shape[:2]:
        raise ValueError(f"coords and keypoints must be (N, K, 2) and visible (N, K); got "
                         f"{c.shape}, {g.shape}, {v.shape}")
    d = np.linalg.norm(c - g, axis=-1)
    n = v.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (d * v).sum(0) / np.maximum(n, 1), np.nan)


def time_to_metric(history: Mapping, threshold: float, metric: str = "AP") -> float:
    """Training seconds (steps + data, validation excluded) until validation ``metric`` first
    reached ``threshold``; NaN if it never did. ``history`` is a ``History.to_dict()``."""
    t = np.cumsum(np.asarray(history["step_times"]) + np.asarray(history["data_times"]))
    for row in history.get("val", []):
        if metric in row and row[metric] is not None and row[metric] >= threshold:
            step = int(row["step"])
            return float(t[min(step, len(t)) - 1]) if step > 0 and len(t) else 0.0
    return float("nan")



def ranked_recipes(table, recipes: Sequence[str] | None = None) -> list[str]:
    """Recipes of ``table`` (or those of ``recipes`` in it) by mean generated-val AP, best first."""
    keep = None if recipes is None else set(recipes)
    means = {}
    for recipe in table.recipes:
        if keep is None or recipe in keep:
            ap = np.asarray(table.values(recipe, "AP"), dtype=np.float64)
            ap = ap[np.isfinite(ap)]
            means[recipe] = float(ap.mean()) if ap.size else -np.inf
    return sorted(means, key=lambda r: (-means[r], r))


def best_recipe_verdict(table, recipes: Sequence[str] | None = None, *,
                        min_seeds: int | None = None) -> tuple[claims.Verdict, str, str]:
    """``arena.best_recipe``: the best recipe by mean AP against the runner-up (minimum effect
    0.01 AP, floors and convergence both sides, mse as the floor's baseline). Returns the verdict,
    the best and the runner-up. With ``min_seeds`` every recipe of ``recipes`` must have that many
    seeds in ``table``, else ValueError names the missing ones (a best recipe among some of the
    arena's recipes is not the arena's answer)."""
    if isinstance(recipes, str):
        raise TypeError(f"recipes must be a list of recipe names, got the string {recipes!r}")
    if min_seeds is not None and (isinstance(min_seeds, bool) or not isinstance(min_seeds, (int, np.integer))
                                  or min_seeds < 1):
        raise ValueError(f"min_seeds must be an int >= 1 or None, got {min_seeds!r}")
    if min_seeds is not None:
        wanted = list(recipes if recipes is not None else table.recipes)
        have = {r: len(table.values(r, "AP")) if r in table.recipes else 0 for r in wanted}
        short = [f"{r} ({n})" for r, n in have.items() if n < min_seeds]
        if short:
            raise ValueError(f"{len(short)} of {len(wanted)} arena recipes have fewer than {min_seeds} "
                             f"seeds recorded: {', '.join(short[:4])}{', ...' if len(short) > 4 else ''}")
    ranking = ranked_recipes(table, recipes)
    if not ranking:
        raise ValueError("no arena recipe in the table")
    best, runner_up = ranking[0], ranking[1] if len(ranking) > 1 else ranking[0]
    if len(ranking) < 2:  # a recipe against itself would read as a measured tie
        return (claims.not_testable(f"only one arena recipe ({best}) in the table: a best recipe needs a runner-up"),
                best, runner_up)
    baseline = "mse" if "mse" in table.recipes else None
    return compare_recipes(table, best, runner_up, metric="AP", min_effect=0.01, baseline=baseline), best, runner_up


def ranking_spearman_verdict(table) -> claims.Verdict:
    """``arena.ranking_losses_raise_spearman``: the first of :data:`RANKING_RECIPES` in ``table``
    against ``mse`` on Spearman (minimum effect 0.02); "not testable" without one."""
    ranking = [r for r in RANKING_RECIPES if r in table.recipes][:1]
    if not ranking or "mse" not in table.recipes:
        return claims.not_testable(f"no ranking-loss recipe ({', '.join(RANKING_RECIPES)}) and mse in the arena")
    return compare_recipes(table, ranking[0], "mse", metric="spearman", min_effect=0.02)


def rcnet_gain_verdict(before: Sequence[float], after: Sequence[float], seeds: Sequence[int], *,
                       preset, evidence: Mapping | None = None) -> claims.Verdict:
    """``arena.rcnet_gain_over_best``: RCNet re-scoring raises the best recipe's AP, paired by seed
    (the same model before and after), minimum effect 0.005 AP."""
    seeds = [int(x) for x in seeds]
    if not len(before) == len(after) == len(seeds):
        raise ValueError(f"before, after and seeds need one entry per seed, got {len(before)}, {len(after)} and "
                         f"{len(seeds)}")
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"each seed must come once (seeds {seeds}): a repeated fit is not another seed")
    ev = dict(evidence or {})
    ev.setdefault("seeds", list(seeds))
    ev.setdefault("per_seed", {"before": list(before), "after": list(after)})
    return claims.compare_seeds(list(after), list(before), lower_is_better=False, min_effect=0.005, metric="AP",
                                preset=preset, paired=True, evidence=ev)


def recorded_arena_verdicts(recipes: Sequence[str], *, preset: str = "full", root=None) -> dict[str, dict]:
    """The arena's empirical claims judged on every chapter's recorded replication at ``preset``
    (pooled: the arena's recipes are recorded by the chapters that own them), with the rules of the
    live arena. ``arena.best_recipe`` needs every recipe of ``recipes`` with
    :data:`ARENA_MIN_SEEDS` seeds; ``arena.rcnet_gain_over_best`` reads chapter 03's RCNet fits,
    which exist for ``mse`` only. Returns claim id → recorded verdict
    (:func:`poselab.experiments.replicate.recorded_verdict`'s shape)."""
    if isinstance(recipes, str):
        raise TypeError(f"recipes must be a list of recipe names, got the string {recipes!r}")
    recipes = list(recipes)

    def best(table):
        return best_recipe_verdict(table, recipes, min_seeds=ARENA_MIN_SEEDS)[0]

    def spearman(table):
        v = ranking_spearman_verdict(table)
        if v.reason.startswith("not testable"):
            raise ValueError(f"no ranking-loss recipe ({', '.join(RANKING_RECIPES)}) recorded beside mse at "
                             f"preset {preset}")
        return v

    def gain(table):
        top = best_recipe_verdict(table, recipes, min_seeds=ARENA_MIN_SEEDS)[1]
        if top != "mse":
            raise ValueError(f"the recorded best recipe is {top}; RCNet fits are recorded on mse only (chapter 03)")
        fits = recorded_derived("03_rcnet", "rcnet_fit", preset=preset, root=root)
        if not fits:
            raise ValueError("no RCNet fit recorded (poselab replicate 03)")
        lap = [f["values"]["variants"]["laplacian"] for f in fits]
        return rcnet_gain_verdict([v["before"]["AP"] for v in lap], [v["after"]["AP"] for v in lap],
                                  [int(f["seed"]) for f in fits], preset=preset)

    judges = {"arena.best_recipe": best, "arena.ranking_losses_raise_spearman": spearman,
              "arena.rcnet_gain_over_best": gain}
    used = {"arena.best_recipe": recipes, "arena.rcnet_gain_over_best": recipes,
            # the ranking recipe the live arena compares (the first of RANKING_RECIPES it races)
            "arena.ranking_losses_raise_spearman": ["mse", *[r for r in RANKING_RECIPES if r in recipes][:1]]}
    return {cid: recorded_pooled_verdict(judge, preset=preset, root=root, exclude=(_STEM,), recipes=used[cid])
            for cid, judge in judges.items()}
