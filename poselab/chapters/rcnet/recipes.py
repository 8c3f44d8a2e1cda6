"""RCNet chapter: post-hoc rescoring of a trained recipe's poses (RCNet §4.2, §5, App. B–H).

No new pose recipe: RCNet rescoring runs on top of a trained run (e.g. ``run_recipe("mse")``).

    from poselab.experiments import run_recipe
    from poselab.chapters.rcnet.recipes import fit_rcnet
    result = fit_rcnet(run_recipe("mse", preset="default"))
    result.summary()          # AP / AP50 / AP75 / AR / ranking accuracy before and after

Pipeline (keypoints never change):

1. a **simulated person detector** (:func:`poselab.chapters.rcnet.person_detector.simulate_detections`)
   puts jittered true boxes, duplicates and background boxes on every image of a set;
2. the trained pose model predicts a pose in every box (top-down crops, the recipe's codec);
   the instance score is the recipe's score rule × the box score (MMPose ``bbox_keypoint``);
3. pycocotools scores those detections; each one's target s* is the OKS COCO matched it with
   (0 for a false positive or a duplicate that lost the match);
4. RCNet (or ScoreNet) is trained on the poses of the **generated training set** — the set the
   pose model was trained on — and evaluated on the disjoint **generated val** set (and the real
   COCO sample when present): same detector settings, a different detector seed.

Results are cached on disk (``<cache root>/rcnet/``) under a key covering the run, every
parameter and the package sources.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poselab import claims
from poselab._numbers import whole_number
from poselab.chapters.rcnet.analysis import (ause_oks, average_precision_eq3, fp_above_tp, pearson,
                                             ranking_accuracies)
from poselab.chapters.rcnet.person_detector import simulate_detections
from poselab.data import TopDownDataset, crop_to_image
from poselab.experiments.cache import cache_root, run_key, source_digest
from poselab.experiments.presets import Preset
from poselab.experiments.registry import SCORES
from poselab.experiments.runner import resolve_run_data
from poselab.metrics import coco_keypoint_eval
from poselab.models import RCNet, ScoreNet, count_parameters, pose_features
from poselab.train.evaluate import predict_crops
from poselab.train.rescore import fit_rescorer, rescore

__all__ = ["detector_predictions", "fit_rcnet", "RCNetResult", "TRAIN_SET", "DEFAULT_DETECTOR",
           "seed_values", "rcnet_evidence", "gain_verdict", "unchanged_verdict", "beats_verdict",
           "summary_rows", "rescorer_table", "collapse_guard", "worse_than_nothing_guard",
           "RIVAL_TEMPERATURES", "METRIC_LABELS", "tune_rival", "mechanism_sentence", "rival_params", "structural_ar_check"]

TRAIN_SET = "generated train"
#: how tables name the metrics (the two ranking accuracies must never be confused)
METRIC_LABELS = {"ranking_accuracy": "ranking accuracy, matched (paper §3.3)",
                 "ranking_accuracy_all": "ranking accuracy, all detections (FPs included)",
                 "fp_wrong_fp": "FPs above a TP (Table 6)",
                 "fp_wrong_fp_per_tp": "FPs above a TP, per TP"}
DEFAULT_DETECTOR = {"jitter": 0.08, "duplicate_prob": 0.4, "duplicate_jitter": 0.2,
                    "false_per_image": 0.6}


def _cache_dir(kind: str, parts: dict) -> Path:
    key = run_key({**parts, "source_digest": source_digest()})
    return cache_root() / "rcnet" / kind / key[:16]


def _set_json(run, set_name: str) -> Path:
    train_json, sets = resolve_run_data(run.data, _preset_of(run))
    if set_name == TRAIN_SET:
        return train_json
    if set_name not in sets:
        raise KeyError(f"unknown set {set_name!r}; choose {TRAIN_SET!r} or one of {sorted(sets)}")
    return sets[set_name]


def _preset_of(run):
    p = dict(run.config["preset"])
    return Preset(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})


def detector_predictions(run, set_name: str = TRAIN_SET, *, detector_seed: int = 0,
                         detector: dict | None = None, cache: bool = True) -> dict[str, Any]:
    """The run's pose model on simulated detections of one set, scored by pycocotools.

    Returns numpy arrays ``coords (D, 17, 2)`` (image px), ``scores (D, 17)``, ``det_score``,
    ``instance_scores`` (score rule × box score), ``matched_oks`` (D,), ``max_oks``,
    ``image_id``, ``kind`` (0 true box, 1 duplicate, 2 background) and ``metrics`` (AP, AP50,
    AP75, AR of the original scores).
    """
    params = {**DEFAULT_DETECTOR, **(detector or {})}
    folder = _cache_dir("detections", {"run": run.key, "set": set_name, "seed": int(detector_seed),
                                       "detector": params})
    path = folder / "detections.npz"
    if cache and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        out["metrics"] = json.loads((folder / "metrics.json").read_text())
        return out
    ann = _set_json(run, set_name)
    recipe, geometry = run.recipe_object(), run.geometry()
    ds = TopDownDataset(ann, input_size=geometry.input_size, train=False)
    persons = list(ds.persons)
    sizes = {int(p.image_id): tuple(p.image_size) for p in persons}
    det = simulate_detections(np.stack([p.bbox for p in persons]), [p.image_id for p in persons],
                              sizes, seed=int(detector_seed), **params)
    first_of_image = {}
    for i, p in enumerate(persons):
        first_of_image.setdefault(int(p.image_id), i)
    ds.persons = [dataclasses.replace(persons[src if src >= 0 else first_of_image[int(img)]],
                                      bbox=np.asarray(box, dtype=np.float64))
                  for box, src, img in zip(det["bbox"], det["source"], det["image_id"])]
    pred = predict_crops(run.model(), ds, recipe.head, run.codec(), device="cpu")
    coords = np.asarray(crop_to_image(pred["coords_crop"].astype(np.float64), pred["center"],
                                      pred["scale"], geometry.input_size))
    kscores = pred["scores"].astype(np.float64)
    inst = np.asarray(SCORES[recipe.score](kscores), dtype=np.float64) * det["det_score"]
    results = [{"image_id": int(img), "category_id": 1, "score": float(s),
                "keypoints": np.concatenate([c, k[:, None]], 1).ravel().tolist()}
               for img, s, c, k in zip(det["image_id"], inst, coords, kscores)]
    coco = coco_keypoint_eval(ann, results)
    out = {"coords": coords, "scores": kscores, "det_score": det["det_score"],
           "instance_scores": inst, "matched_oks": np.asarray(coco["matched_oks"]),
           "max_oks": np.asarray(coco["max_oks"]), "image_id": det["image_id"], "kind": det["kind"]}
    metrics = {k: float(coco[k]) for k in ("AP", "AP50", "AP75", "AR")}
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **out)
        (folder / "metrics.json").write_text(json.dumps(metrics))
    out["metrics"] = metrics
    return out


def _evaluate_scores(run, set_name: str, det: dict, scores: np.ndarray, quality: np.ndarray) -> dict:
    results = [{"image_id": int(img), "category_id": 1, "score": float(s),
                "keypoints": np.concatenate([c, k[:, None]], 1).ravel().tolist()}
               for img, s, c, k in zip(det["image_id"], scores, det["coords"], det["scores"])]
    coco = coco_keypoint_eval(_set_json(run, set_name), results)
    out = {k: float(coco[k]) for k in ("AP", "AP50", "AP75", "AR")}
    ranked = ranking_accuracies(scores, quality)
    out["ranking_accuracy"] = ranked["matched"]  # the paper's way (§3.3): matched predictions only
    out["ranking_accuracy_all"] = ranked["all"]  # every detection, false positives included
    out["pearson"] = pearson(scores, quality) if scores.size > 1 else float("nan")
    out["ause_oks"] = ause_oks(scores, quality) if scores.size > 1 else float("nan")
    out.update({f"fp_{k}": v for k, v in fp_above_tp(scores, quality).items()})
    return out


@dataclass
class RCNetResult:
    """What :func:`fit_rcnet` produced.

    Attributes:
        sets: ``{set name: {"before": metrics, "after": metrics}}`` with AP, AP50, AP75, AR,
            ranking_accuracy (the paper's way, §3.3: only detections matched to a person),
            ranking_accuracy_all (every detection, false positives included), pearson,
            ause_oks and the FP-above-TP statistics (``fp_*``).
            Ranking accuracy, Pearson and AUSE compare scores with the OKS matched under the
            **original** scores, before and after (a fixed yardstick).
        history: per-epoch record of :func:`poselab.train.rescore.fit_rescorer`.
        scores: ``{set name: {"before", "after", "oks", "kind"}}`` arrays.
        n_train_poses, n_parameters, train_seconds, config, cached.
    """
    sets: dict[str, dict[str, dict[str, float]]]
    history: dict[str, list]
    scores: dict[str, dict[str, np.ndarray]] = field(repr=False)
    n_train_poses: int = 0
    n_parameters: int = 0
    train_seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def gain(self, metric: str = "AP", set_name: str = "generated val") -> float:
        """after − before of one metric on one set."""
        s = self.sets[set_name]
        return float(s["after"][metric] - s["before"][metric])

    def summary(self) -> list[dict]:
        """Rows ``{set, metric, before, after, change}`` for AP, AP50, AP75, AR, ranking accuracy."""
        rows = []
        for name, s in self.sets.items():
            for m in ("AP", "AP50", "AP75", "AR", "ranking_accuracy", "ranking_accuracy_all",
                      "pearson", "ause_oks"):
                rows.append({"set": name, "metric": m, "before": s["before"][m],
                             "after": s["after"][m], "change": s["after"][m] - s["before"][m]})
        return rows


def fit_rcnet(run, *, rescorer: str = "rcnet", loss: str = "laplacian",
              loss_params: dict | None = None, epochs: int = 50, lr: float = 1e-3,
              batch_poses: int = 128, warmup_steps: int = 250, seed: int = 0,
              detector: dict | None = None, eval_sets: list[str] | None = None,
              track_max_poses: int = 3000, track_every: int = 1, cache: bool = True,
              callback=None) -> RCNetResult:
    """Train RCNet (or ScoreNet) post hoc on ``run``'s poses and measure AP before and after.

    Args:
        run: a :class:`poselab.experiments.RunResult` (its model predicts the poses).
        rescorer: ``"rcnet"`` (Eq. 10–11) or ``"scorenet"`` (DEKR's MLP, Table 11).
        loss: a name of :data:`poselab.losses.CONFIDENCE_RANKING_LOSSES` (rivals: Tables 8, 10);
            loss_params: its keyword arguments (e.g. ``{"margin": 0.3}``, Table 7).
        epochs, lr, batch_poses, warmup_steps: :func:`poselab.train.rescore.fit_rescorer`.
        seed: RCNet's initialisation and batch order.
        detector: overrides of :data:`DEFAULT_DETECTOR` (see ``simulate_detections``).
        eval_sets: sets to evaluate (default: every evaluation set of the run).
        track_max_poses, track_every: the per-epoch measurements of ``fit_rescorer``
            (``track_every=-1``: none, for fits whose history nobody reads).
        cache: reuse a stored result with the same key.

    Training set: the run's training images (:data:`TRAIN_SET`, detector seed 0);
    evaluation: each of ``eval_sets`` (detector seed 1), disjoint from it.
    """
    if rescorer not in ("rcnet", "scorenet"):
        raise ValueError(f"rescorer must be 'rcnet' or 'scorenet', got {rescorer!r}")
    eval_sets = list(run.metrics) if eval_sets is None else list(eval_sets)
    if TRAIN_SET in eval_sets:
        raise ValueError(f"{TRAIN_SET!r} is RCNet's training set; evaluate on a disjoint set "
                         f"(one of {sorted(run.metrics)})")
    config = {"run": run.key, "rescorer": rescorer, "loss": loss, "loss_params": loss_params or {},
              "epochs": whole_number(epochs, "epochs", 0), "lr": float(lr),
              "batch_poses": whole_number(batch_poses, "batch_poses", 1),
              "warmup_steps": whole_number(warmup_steps, "warmup_steps", 0),
              "seed": whole_number(seed, "seed", 0),
              "detector": {**DEFAULT_DETECTOR, **(detector or {})}, "eval_sets": eval_sets,
              "track_max_poses": whole_number(track_max_poses, "track_max_poses", 0),
              "track_every": whole_number(track_every, "track_every", -1),
              # the fit's numbers depend on the torch thread count (AP 0.4814 with 2 threads vs
              # 0.4773 with 1: 27 % of the claimed gain), so a cached fit is reused only at its own
              "threads": int(torch.get_num_threads())}
    folder = _cache_dir("fits", config)
    if cache and (folder / "result.json").is_file():
        d = json.loads((folder / "result.json").read_text())
        with np.load(folder / "scores.npz") as z:
            scores: dict[str, dict] = {}
            for k in z.files:
                name, part = k.split("::")
                scores.setdefault(name, {})[part] = z[k]
        return RCNetResult(sets=d["sets"], history=d["history"], scores=scores,
                           n_train_poses=d["n_train_poses"], n_parameters=d["n_parameters"],
                           train_seconds=d["train_seconds"], config=config, cached=True)

    def features(det):
        return pose_features(det["coords"], det["scores"], det["instance_scores"])

    train = detector_predictions(run, TRAIN_SET, detector_seed=0, detector=detector)
    evals = {name: detector_predictions(run, name, detector_seed=1, detector=detector)
             for name in eval_sets}
    torch.manual_seed(seed)
    net = RCNet(features(train).shape[1]) if rescorer == "rcnet" else ScoreNet(features(train).shape[1])
    first = eval_sets[0] if eval_sets else None
    val = None if first is None else (features(evals[first]), evals[first]["matched_oks"],
                                      evals[first]["image_id"])
    start = time.process_time()
    history = fit_rescorer(net, features(train), train["matched_oks"], train["image_id"], loss=loss,
                           loss_params=loss_params, epochs=epochs, batch_poses=batch_poses, lr=lr,
                           warmup_steps=warmup_steps, seed=seed, val=val,
                           track_max_poses=track_max_poses, track_every=track_every,
                           callback=callback)
    seconds = time.process_time() - start
    sets, scores = {}, {}
    for name, det in evals.items():
        after = rescore(net, features(det), det["image_id"])
        quality = det["matched_oks"]
        sets[name] = {"before": _evaluate_scores(run, name, det, det["instance_scores"], quality),
                      "after": _evaluate_scores(run, name, det, after, quality)}
        scores[name] = {"before": det["instance_scores"], "after": after, "oks": quality,
                        "kind": det["kind"]}
    result = RCNetResult(sets=sets, history=history, scores=scores,
                         n_train_poses=int(train["matched_oks"].size),
                         n_parameters=count_parameters(net), train_seconds=float(seconds),
                         config=config)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "scores.npz", **{f"{n}::{k}": v for n, d in scores.items()
                                                      for k, v in d.items()})
        (folder / "result.json").write_text(json.dumps(
            {"sets": sets, "history": history, "n_train_poses": result.n_train_poses,
             "n_parameters": result.n_parameters, "train_seconds": result.train_seconds},
            default=float))
    return result


# ----------------------------------------------------------------------------- verdicts over seeds

def _paired(ours, theirs, **kw):
    """:func:`poselab.claims.compare_seeds` with ``paired=True``: both sides come from the same
    pose-model run of each seed (ties, e.g. a metric exactly unchanged, get the sign-flip test)."""
    return claims.compare_seeds(ours, theirs, paired=True, **kw)


def seed_values(results, metric: str = "AP", which: str = "after",
                set_name: str = "generated val") -> list[float]:
    """One value per seed: ``results[i].sets[set_name][which][metric]``."""
    return [float(r.sets[set_name][which][metric]) for r in results]


def rcnet_evidence(runs, per_seed: dict, **extra) -> dict:
    """``claims.evidence`` of RCNet fits on ``runs`` (one pose-model run per seed)."""
    first = runs[0]
    g = first.geometry()
    return claims.evidence(preset=first.preset, seeds=[r.seed for r in runs], per_seed=per_seed,
                           input_size=g.input_size, heatmap_size=g.heatmap_size, data=first.data,
                           detector=DEFAULT_DETECTOR, rcnet_train_set=TRAIN_SET, **extra)


def gain_verdict(results, runs, metric: str = "AP", *, min_effect: float,
                 set_name: str = "generated val", lower_is_better: bool = False,
                 floor: float | None = None, paper_effect: float | None = None):
    """"RCNet's scores beat the original scores on ``metric``" over seeds (after vs before,
    paired by seed: the t interval is that of the per-seed differences).

    ``floor``: the original scores' AP (detector boxes) must reach it, else "inconclusive:
    baseline too weak" (:func:`poselab.claims.apply_floor`).
    """
    after = seed_values(results, metric, "after", set_name)
    before = seed_values(results, metric, "before", set_name)
    ev = rcnet_evidence(runs, {f"{metric} after": after, f"{metric} before": before}, set=set_name)
    v = _paired(after, before, lower_is_better=lower_is_better, min_effect=min_effect,
                metric=metric, preset=runs[0].preset, evidence=ev, paper_effect=paper_effect)
    if floor is not None:
        v = claims.apply_floor(v, seed_values(results, "AP", "before", set_name), floor,
                               name="original-score AP (detector boxes)")
    return v


def unchanged_verdict(results, runs, metric: str = "AR", *, tolerance: float,
                      set_name: str = "generated val"):
    """"``metric`` does not move" (RCNet Table 2: mAR unchanged): "reproduced" when both
    "after exceeds before by ≥ tolerance" and "before exceeds after by ≥ tolerance" are "not
    reproduced" (the interval of the change lies inside ±tolerance); "not reproduced" when either
    is reproduced; else "inconclusive"."""
    after = seed_values(results, metric, "after", set_name)
    before = seed_values(results, metric, "before", set_name)
    ev = rcnet_evidence(runs, {f"{metric} after": after, f"{metric} before": before}, set=set_name)
    kw = dict(lower_is_better=False, min_effect=tolerance, metric=metric, preset=runs[0].preset,
              evidence=ev)
    up = _paired(after, before, **kw)
    down = _paired(before, after, **kw)
    summary = {"up": up.summary, "down": down.summary, "tolerance": tolerance}
    if up.verdict == "not reproduced" and down.verdict == "not reproduced":
        return claims.Verdict("reproduced", f"{metric} change within ±{tolerance:g} "
                              f"(up: {up.reason}; down: {down.reason})", summary, ev)
    if "reproduced" in (up.verdict, down.verdict):
        moved = up if up.verdict == "reproduced" else down
        return claims.Verdict("not reproduced", f"{metric} moved: {moved.reason}", summary, ev)
    return claims.Verdict("inconclusive", f"up: {up.reason}; down: {down.reason}", summary, ev)


def beats_verdict(ours, theirs, runs, metric: str = "AP", *, min_effect: float,
                  set_name: str = "generated val", name: str = "", lower_is_better: bool = False,
                  paper_effect: float | None = None):
    """"``ours`` (RCNet fits) beat ``theirs`` (other fits on the same runs) after rescoring"."""
    a, b = seed_values(ours, metric, "after", set_name), seed_values(theirs, metric, "after", set_name)
    ev = rcnet_evidence(runs, {"ours": a, name or "theirs": b}, set=set_name)
    return _paired(a, b, lower_is_better=lower_is_better, min_effect=min_effect,
                   metric=f"{metric} vs {name}" if name else metric, preset=runs[0].preset, evidence=ev,
                   paper_effect=paper_effect)


def summary_rows(results, metrics=("AP", "AP50", "AP75", "AR", "ranking_accuracy",
                                   "ranking_accuracy_all", "pearson", "ause_oks",
                                   "fp_wrong_fp", "fp_wrong_fp_per_tp")) -> list[dict]:
    """Mean ± std over seeds, before and after rescoring, per evaluation set and metric."""
    rows = []
    for set_name in results[0].sets:
        for m in metrics:
            b = np.asarray(seed_values(results, m, "before", set_name))
            a = np.asarray(seed_values(results, m, "after", set_name))
            sd = (lambda v: float(v.std(ddof=1)) if v.size > 1 else 0.0)  # noqa: E731
            rows.append({"set": set_name, "metric": m, "what": METRIC_LABELS.get(m, m),
                         "before": float(b.mean()),
                         "before ± std": sd(b), "after": float(a.mean()), "after ± std": sd(a),
                         "change": float((a - b).mean()), "seeds": int(a.size)})
    return rows


def rescorer_table(fits: dict, set_name: str = "generated val",
                   metrics=("AP", "AP75", "AR", "ranking_accuracy", "ranking_accuracy_all")) -> list[dict]:
    """One row per variant (``{name: [RCNetResult per seed]}``): mean over seeds after rescoring,
    with the original scores as the first row."""
    first = next(iter(fits.values()))
    label = lambda m: METRIC_LABELS.get(m, m)  # noqa: E731
    rows = [{"variant": "original scores",
             **{label(m): float(np.mean(seed_values(first, m, "before", set_name))) for m in metrics}}]
    for name, results in fits.items():
        rows.append({"variant": str(name),
                     **{label(m): float(np.mean(seed_values(results, m, "after", set_name)))
                        for m in metrics}})
    return rows


def _finite_mean(values) -> float:
    """Mean of the finite values; NaN (without numpy's empty-slice warning) when there are none."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def collapse_guard(verdict, theirs, *, set_name: str = "generated val", margin: float = 0.05):
    """"inconclusive" when the rival's fits collapsed: its rescored ranking accuracy is below the
    **original** scores' by more than ``margin`` (mean over seeds). A rival that ranks worse than
    the scores it was given has failed to train (e.g. a saturated sigmoid), so beating it says
    nothing about the claim (cf. :func:`poselab.claims.guard_dead_maps`)."""
    after = _finite_mean(seed_values(theirs, "ranking_accuracy", "after", set_name))
    before = _finite_mean(seed_values(theirs, "ranking_accuracy", "before", set_name))
    summary = {**verdict.summary, "rival_ranking_accuracy": {"before": before, "after": after}}
    if after < before - margin:
        return verdict.replace(verdict="inconclusive", summary=summary,
                               reason=f"the rival collapsed: its ranking accuracy {after:.3f} is below "
                                      f"the original scores' {before:.3f}; {verdict.reason}")
    return verdict.replace(summary=summary)


def worse_than_nothing_guard(verdict, theirs, *, metric: str = "AP", set_name: str = "generated val"):
    """Never count beating a rival that is worse than doing nothing as a win.

    When the rival's rescored ``metric`` is not above the original scores' (mean over seeds of
    after − before ≤ 0), leaving the scores alone beats it, so "ours beats it" says nothing about
    the rank loss: a "reproduced" verdict becomes "inconclusive" with that reason. Other
    verdicts pass unchanged (a rival that beats ours while being worse than nothing makes ours
    worse than nothing too)."""
    change = _finite_mean(np.subtract(seed_values(theirs, metric, "after", set_name),
                                      seed_values(theirs, metric, "before", set_name)))
    summary = {**verdict.summary, f"rival_{metric}_change": change}
    if verdict.verdict == "reproduced" and not change > 0:
        return verdict.replace(verdict="inconclusive", summary=summary,
                               reason=f"the rival is no better than the original scores ({metric} "
                                      f"change {change:+.4f}), so beating it is no evidence for the "
                                      f"rank loss; {verdict.reason}")
    return verdict.replace(summary=summary)


#: the temperature-like parameter of each rival that has one (allRank's defaults, 1, are meant
#: for raw logits; RCNet's scores are sigmoid outputs in [0, 1], so they are tuned)
RIVAL_TEMPERATURES = {"ranknet": "sigma", "lambdarank": "sigma", "approx_ndcg": "alpha",
                      "neural_ndcg": "temperature"}


def rival_params(loss: str, value: float | None) -> dict:
    """``loss_params`` setting the rival's temperature to ``value`` ({} for None or no temperature)."""
    name = RIVAL_TEMPERATURES.get(loss)
    if name is None or value is None:
        return {}
    if name == "temperature":  # NeuralSort's τ divides the logits: a larger σ is a smaller τ
        return {name: 1.0 / float(value)}
    return {name: float(value)}


def tune_rival(run, loss: str, candidates=(1.0, 10.0, 30.0), *, epochs: int = 50, lr: float = 1e-3,
               warmup_steps: int = 250, batch_poses: int = 128, seed: int = 0,
               holdout: float = 0.25, detector: dict | None = None, cache: bool = True) -> dict:
    """Pick a rival's temperature on a held-out split of RCNet's **training** detections.

    The training images are split once (``holdout`` of them held out, by ``seed``); for each
    candidate scale σ (RankNet/LambdaRank σ, ApproxNDCG α, NeuralNDCG 1/τ: the slope the loss
    puts on a score difference) RCNet is trained on the rest with the main fit's schedule
    (``epochs``, ``lr``, ``warmup_steps``) and scored on the held-out images by Eq. 3 AP over
    the detections' matched OKS (a fixed matching: a selection criterion, not a reported
    metric). The evaluation sets are never seen. Losses without a temperature return
    ``{"value": None}``.

    Returns ``{"loss", "param", "value", "scores": {candidate: held-out AP}, "original": AP of
    the original scores on the held-out images}``.
    """
    if loss not in RIVAL_TEMPERATURES:
        return {"loss": loss, "param": None, "value": None, "scores": {}, "original": float("nan")}
    if not 0 < float(holdout) < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    candidates = [float(c) for c in candidates]
    if not candidates or any(not (np.isfinite(c) and c > 0) for c in candidates):
        raise ValueError(f"candidates must be positive numbers, got {candidates}")
    config = {"run": run.key, "loss": loss, "candidates": candidates,
              "epochs": whole_number(epochs, "epochs", 0), "lr": float(lr),
              "warmup_steps": whole_number(warmup_steps, "warmup_steps", 0),
              "batch_poses": whole_number(batch_poses, "batch_poses", 1),
              "seed": whole_number(seed, "seed", 0), "holdout": float(holdout),
              "detector": {**DEFAULT_DETECTOR, **(detector or {})}, "threads": int(torch.get_num_threads())}
    folder = _cache_dir("tuning", config)
    if cache and (folder / "tuning.json").is_file():
        return json.loads((folder / "tuning.json").read_text())
    train = detector_predictions(run, TRAIN_SET, detector_seed=0, detector=detector)
    feats = pose_features(train["coords"], train["scores"], train["instance_scores"])
    images = np.unique(train["image_id"])
    held_images = np.random.default_rng(seed).choice(images, max(1, int(round(holdout * images.size))),
                                                     replace=False)
    held = np.isin(train["image_id"], held_images)
    target = train["matched_oks"]
    n_gt = max(1, int((target[held] > 0).sum()))
    scores = {}
    for value in candidates:
        torch.manual_seed(seed)
        net = RCNet(feats.shape[1])
        fit_rescorer(net, feats[~held], target[~held], train["image_id"][~held], loss=loss,
                     loss_params=rival_params(loss, value), epochs=epochs, batch_poses=batch_poses,
                     lr=lr, warmup_steps=warmup_steps, seed=seed, track_every=-1)
        s = rescore(net, feats[held], train["image_id"][held])
        scores[value] = average_precision_eq3(s, target[held], n_gt)
    best = max(scores, key=lambda v: (scores[v], -abs(np.log(v))))
    out = {"loss": loss, "param": RIVAL_TEMPERATURES[loss], "value": best,
           "scores": {f"{k:g}": v for k, v in scores.items()},
           "original": average_precision_eq3(train["instance_scores"][held], target[held], n_gt)}
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tuning.json").write_text(json.dumps(out))
    return out


def structural_ar_check(results, set_name: str = "generated val") -> dict:
    """``rcnet.posthoc.mar_unchanged`` as what it is here: structural.

    COCO's AR counts, at each OKS threshold, the persons matched by some detection. The greedy
    match gives a person to the first detection (in score order) above the threshold; when no
    detection can match two persons (isolated people), a person is matched at a threshold iff
    any of its detections reaches it — whatever the order. Then re-scoring cannot move AR at
    all, and the check is |AR after − AR before| ≤ 1e-12 per seed. Where it fails, a detection
    competes for two persons (:func:`poselab.chapters.rcnet.analysis.two_person_ar` shows the size).

    Returns ``{"max_abs_change", "per_seed_change", "holds"}``.
    """
    change = np.subtract(seed_values(results, "AR", "after", set_name),
                         seed_values(results, "AR", "before", set_name))
    worst = float(np.abs(change).max()) if change.size else float("nan")
    return {"max_abs_change": worst, "per_seed_change": change.tolist(),
            "holds": bool(change.size and worst <= 1e-12)}


def mechanism_sentence(results, set_name: str = "generated val") -> str:
    """Where RCNet's AP change comes from, in one sentence printed by the run (App. C, Table 6).

    App. C attributes the gain to fewer false positives ranked above true positives. Compares the
    mean over seeds of FPs above a TP (``fp_wrong_fp``) and of AP before and after, and says
    which way each moved — when FPs above TPs rise while AP rises, the gain came from ordering
    the true positives among themselves, against App. C's account.
    """
    fp_b = _finite_mean(seed_values(results, "fp_wrong_fp", "before", set_name))
    fp_a = _finite_mean(seed_values(results, "fp_wrong_fp", "after", set_name))
    ap = _finite_mean(np.subtract(seed_values(results, "AP", "after", set_name),
                                  seed_values(results, "AP", "before", set_name)))
    head = (f"False positives above a true positive: {fp_b:.0f} -> {fp_a:.0f} (mean over seeds) "
            f"while AP changed by {ap:+.4f}")
    if not (np.isfinite(fp_b) and np.isfinite(fp_a) and np.isfinite(ap)):
        return head + "; nothing to attribute."
    if ap > 0 and fp_a > fp_b:
        return head + ": the gain came from ordering true positives, not from pushing false " \
                      "positives down (App. C credits the latter)."
    if ap > 0 and fp_a < fp_b:
        return head + ": fewer false positives above true positives, as App. C describes."
    return head + "."
