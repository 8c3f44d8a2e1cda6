"""Run a recipe under a preset — train, evaluate, cache — and compare recipes over seeds.

    from poselab.experiments import run_recipe, compare
    result = run_recipe("mse", preset="default", seed=0)      # trains, or loads from the cache
    result.metrics["generated val"]["AP"]
    table = compare(["mse", "emd"], seeds=(0, 1, 2))           # renders as a table in a notebook

Evaluation is exact: keypoint AP/AR through pycocotools (:func:`poselab.metrics.coco_keypoint_eval`)
on generated val and, when present, on the real COCO sample; EPE and PCK@0.2 over labelled joints;
Spearman and pairwise ranking accuracy between each person's instance score and the OKS
pycocotools matched it with (OKS 0 when unmatched at 0.5).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from poselab import data as pdata
from poselab import train as ptrain  # fit, Evaluator, resolve_device: looked up when called
from poselab.data import TopDownDataset
from poselab.data.crop_cache import CropCache
from poselab.data.synth import GENERATOR_VERSION
from poselab.metrics import ranking_accuracy, spearman
from poselab.paths import writable_folder
from poselab.train.device import check_float64
from poselab.train.history import History
from poselab.viz.html import fitted_table

from .._version import __version__
from ..codecs.base import attach_codec
from .cache import entry_dir, file_sha256, run_key, source_digest
from .parallel import part_modules, resolve_jobs, train_many
from .presets import Preset, get_preset, resolve_autocast
from .registry import CODECS, LOSSES, MODELS, SCORES, Geometry, Recipe, adapt_to_preset, get_recipe

__all__ = ["RunResult", "run_recipe", "compare", "ComparisonTable", "resolve_run_data",
           "METRIC_KEYS", "GENERATED_VAL", "REAL_SAMPLE"]

GENERATED_VAL = "generated val"
REAL_SAMPLE = "real COCO sample"
METRIC_KEYS = ("AP", "AP50", "AP75", "AR", "EPE", "EPE_crop", "PCK@0.2", "spearman",
               "ranking_accuracy", "n_persons")
_PREDICTION_KEYS = ("coords", "scores", "instance_scores", "matched_oks", "keypoints", "visible",
                    "image_id", "ann_id", "bbox", "coords_crop", "keypoints_crop")


@dataclass
class RunResult:
    """What one run produced (also ``result.json`` in its cache folder).

    Attributes:
        recipe, preset, seed, data: what ran (``config`` holds the full recipe and preset).
        metrics: ``{set name: {AP, AP50, AP75, AR, EPE, EPE_crop, PCK@0.2, spearman,
            ranking_accuracy, n_persons}}`` — sets ``"generated val"`` (or ``"val"`` for a COCO
            folder) and ``"real COCO sample"`` when present.
        history: the training record (:meth:`training_history` gives a ``History``).
        seconds_per_step: median wall time of a step, data included (first two skipped).
        train_seconds: wall time of the training steps (data + forward + backward + update;
            validation excluded).
        peak_memory_mb: CUDA peak allocation on a GPU; on a CPU the process's peak RSS.
        weights_path: the saved ``state_dict``.
        data_stream_sha256: sha256 of every training batch's images, keypoints and visibility
            in the order the model saw them (equal for recipes that saw identical inputs).
        key: the cache key; cached: True when this call loaded it instead of training.
    """

    recipe: str
    preset: str
    seed: int
    data: str
    metrics: dict[str, dict[str, float]]
    history: dict[str, Any]
    seconds_per_step: float
    train_seconds: float
    peak_memory_mb: float
    weights_path: str
    data_stream_sha256: str
    key: str
    device: str
    created: str
    config: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def folder(self) -> Path:
        return Path(self.weights_path).parent

    @property
    def threads(self) -> int | None:
        """The torch thread count the run trained with (None for entries that did not record it)."""
        value = self.config.get("threads")
        return int(value) if value else None

    def training_history(self):
        return History.from_dict(self.history)

    def recipe_object(self) -> Recipe:
        return Recipe(**self.config["recipe"])

    def geometry(self) -> Geometry:
        g = self.config["geometry"]
        return Geometry(tuple(g["input_size"]), tuple(g["heatmap_size"]), int(g["num_keypoints"]))

    def codec(self):
        recipe = self.recipe_object()
        return CODECS.lookup(recipe.codec, recipe.name)(self.geometry(), **dict(recipe.codec_params))

    def model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The trained model (eval mode) rebuilt from the recipe and loaded from the weights, with
        the recipe's codec attached (``poselab.train.evaluate(model, json)`` decodes with it)."""
        recipe = self.recipe_object()
        model = MODELS.lookup(recipe.model, recipe.name)(recipe, self.geometry(), self.seed)
        model = _prepared(model, self.config.get("autocast"), False)
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return attach_codec(model.to(device).eval(), self.codec())

    def predictions(self, set_name: str = GENERATED_VAL) -> dict[str, np.ndarray]:
        """Per-person arrays of one evaluation set: ``coords`` (N, K, 2) image px, ``scores``
        (N, K), ``instance_scores`` (N,), ``matched_oks`` (N,), ``keypoints`` (GT, image px),
        ``visible``, ``image_id``, ``ann_id``, ``bbox``, ``coords_crop``, ``keypoints_crop``."""
        path = self.folder / f"predictions_{_slug(set_name)}.npz"
        if not path.is_file():
            raise KeyError(f"no predictions for set {set_name!r}; sets: {sorted(self.metrics)}")
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("cached")
        return d

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "RunResult":
        d = json.loads((Path(folder) / "result.json").read_text())
        d["weights_path"] = str(Path(folder) / "weights.pt")
        d["metrics"] = {name: {k: float("nan") if v is None else v for k, v in m.items()}
                        for name, m in d["metrics"].items()}  # JSON null = NaN (undefined)
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}},
                   cached=True)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def resolve_run_data(data: str | os.PathLike, preset: Preset,
                     progress: bool = False) -> tuple[Path, dict[str, Path]]:
    """``(train json, {evaluation set name: json})`` for ``data`` under ``preset``.

    ``"synth"``: the default generated sets (``preset.n_train`` / ``n_val`` images), evaluated
    on ``"generated val"``; a COCO folder or json (e.g. made by ``data_scripts/fetch_coco.py``):
    its ``train`` and ``val`` splits, evaluated on ``"val"``. The real COCO sample
    (:func:`poselab.data.find_coco_sample`) is added as ``"real COCO sample"`` when present.
    """
    if isinstance(data, str) and data == "synth":
        train = pdata.default_dataset("train", n_images=preset.n_train, progress=progress)
        sets = {GENERATED_VAL: pdata.default_dataset("val", n_images=preset.n_val, progress=progress)}
    else:
        if not isinstance(data, (str, os.PathLike)) or str(data) == "":
            raise ValueError(f"data must be 'synth' or a COCO folder / json path, got {data!r}")
        train = pdata.resolve_dataset(data, "train")
        sets = {"val": pdata.resolve_dataset(data, "val")}
    sample = pdata.find_coco_sample()
    if sample is not None:
        real = pdata.resolve_dataset(sample, "val")
        if all(Path(real).resolve() != Path(p).resolve() for p in sets.values()):
            sets[REAL_SAMPLE] = real
    return Path(train), {k: Path(v) for k, v in sets.items()}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    try:
        import resource  # deferred: Unix only (absent on Windows); the except below handles it
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 1024 if sys.platform != "darwin" else rss / 2 ** 20
    except (ImportError, OSError):
        return float("nan")


def _ranking_metrics(instance: np.ndarray, oks: np.ndarray) -> dict[str, float]:
    if instance.size < 2 or np.ptp(instance) == 0 or np.ptp(oks) == 0:
        return {"spearman": float("nan"), "ranking_accuracy": float("nan")}
    return {"spearman": float(spearman(instance, oks)),
            "ranking_accuracy": float(ranking_accuracy(instance, oks))}


def _evaluate(evaluator, model) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    out = evaluator(model)
    pred = out.pop("predictions")
    metrics = {k: float(out[k]) for k in METRIC_KEYS if k in out}
    inst = np.asarray(pred["instance_scores"], dtype=np.float64)
    oks = np.asarray(pred["matched_oks"], dtype=np.float64)
    metrics.update(_ranking_metrics(inst, oks))
    metrics["n_persons"] = float(out.get("n_persons", len(inst)))
    arrays = {k: np.asarray(pred[k]) for k in _PREDICTION_KEYS if k in pred and pred[k] is not None}
    return metrics, arrays


def _train_set(recipe: Recipe, preset: Preset, train_json: Path, codec, seed: int, synthetic: bool):
    """The training data: a :class:`~poselab.data.crop_cache.CropCache` (persons cropped once,
    batched augmentation and targets) or, with ``preset.crop_cache=False``, the per-item
    :class:`~poselab.data.TopDownDataset` — the same augmentation draws either way."""
    flip = preset.flip_prob if synthetic else 0.5
    aug = dict(flip_prob=flip, rotation=preset.rotation, scale_jitter=preset.scale_jitter)
    if preset.crop_cache:
        return CropCache(train_json, input_size=preset.input_size, target_fn=codec.encode,
                         batch_size=preset.batch_size, seed=seed, resolution=preset.cache_resolution,
                         memory_format=torch.channels_last if preset.channels_last else torch.contiguous_format,
                         **aug)
    ds = TopDownDataset(train_json, input_size=preset.input_size, train=True, target_fn=codec,
                        seed=seed, **aug)
    ds.preload()
    return ds


def _prepared(model: torch.nn.Module, autocast: str | None, channels_last: bool) -> torch.nn.Module:
    """Apply a preset's forward precision (models with an ``autocast`` attribute, e.g.
    :class:`~poselab.models.PoseModel`; others run in float32) and memory layout."""
    if hasattr(model, "autocast"):
        model.autocast = autocast
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def run_recipe(recipe: Recipe | str, data: str | os.PathLike = "synth", preset: Preset | str = "default",
               seed: int = 0, device: str | torch.device = "auto", callbacks: Sequence = (),
               cache: bool = True, threads: int | None = None) -> RunResult:
    """Train ``recipe`` under ``preset`` (or load the cached run) and evaluate it.

    Args:
        recipe: a :class:`Recipe` or a registered name (``poselab recipes``).
        data: ``"synth"`` (generated people) or a COCO folder / json with train and val splits.
        preset: ``"fast"`` / ``"default"`` / ``"full"`` or a :class:`Preset`.
        seed: weights initialisation, batch order and augmentation.
        device: ``"auto"`` (cuda → cpu; MPS only when asked for) or a device string.
        callbacks: :mod:`poselab.train.callbacks` objects (progress bars, live curves).
        cache: False trains again and overwrites the cached entry of this key.
        threads: torch CPU threads for this run (None: as set). A run's numbers depend on its
            thread count in the last bits (convolution reductions split differently), so a
            re-run meant to equal a cached entry passes that entry's ``RunResult.threads``.
            The thread count is recorded, not part of the cache key.

    Returns:
        :class:`RunResult` (``cached=True`` when loaded from disk).
    """
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise ValueError(f"callbacks must be a list of poselab.train callbacks, got {callbacks!r}")
    if threads is None:
        return _run_recipe(recipe, data, preset, seed, device, callbacks, cache)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _run_recipe(recipe, data, preset, seed, device, callbacks, cache)
    finally:
        torch.set_num_threads(before)


def _plan(recipe: Recipe | str, data, preset: Preset | str, seed: int, device) -> dict[str, Any]:
    """Everything that decides a run before it trains: the resolved recipe, preset and device,
    the data files, the cache key and the cache folder."""

    preset = get_preset(preset)
    recipe = adapt_to_preset(get_recipe(recipe), preset)  # the one route a preset reaches a recipe
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    seed = int(seed)
    dev = ptrain.resolve_device(device)
    if preset.backbone is not None:
        recipe = recipe.replace(backbone=preset.backbone)
    for registry, name in ((CODECS, recipe.codec), (LOSSES, recipe.loss), (MODELS, recipe.model),
                           (SCORES, recipe.score)):
        registry.lookup(name, recipe.name)
    synthetic = isinstance(data, str) and data == "synth"
    train_json, eval_sets = resolve_run_data(data, preset)
    geometry = Geometry(preset.input_size, preset.heatmap_size)
    autocast = resolve_autocast(preset.autocast, dev)
    config = {"recipe": recipe.to_dict(), "preset": preset.to_dict(), "seed": seed,
              "autocast": autocast,
              "geometry": {"input_size": list(geometry.input_size),
                           "heatmap_size": list(geometry.heatmap_size),
                           "num_keypoints": geometry.num_keypoints},
              "data": {"name": str(data), "train": file_sha256(train_json),
                       "eval": {k: file_sha256(v) for k, v in eval_sets.items()},
                       "generator_version": GENERATOR_VERSION if synthetic else None},
              "poselab_version": __version__, "source_digest": source_digest()}
    key = run_key(config)
    return dict(recipe=recipe, preset=preset, seed=seed, dev=dev, synthetic=synthetic,
                train_json=train_json, eval_sets=eval_sets, geometry=geometry, autocast=autocast,
                config=config, key=key, folder=entry_dir(recipe.name, key))


def cached_result(recipe: Recipe | str, data: str | os.PathLike = "synth",
                  preset: Preset | str = "default", seed: int = 0,
                  device: str | torch.device = "auto") -> RunResult | None:
    """The cached :class:`RunResult` of this run, or None when it would have to train."""
    plan = _plan(recipe, data, preset, seed, device)
    return _load_cached(plan["folder"], plan)


_CHECKSUMS = "checksums.json"


def _file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != _CHECKSUMS}


def _set_aside(folder: Path, why: str) -> None:
    """Move a damaged cache entry out of the way (kept for inspection) and say so."""
    target = folder.with_name(f"{folder.name}.damaged-{int(time.time())}")
    try:
        os.replace(folder, target)
        where = f"moved to {target.name}"
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        where = "removed"
    warnings.warn(f"cache entry {folder} is damaged ({why}); {where}, the run trains again",
                  RuntimeWarning, stacklevel=3)


def _load_cached(folder: Path, plan: dict[str, Any] | None = None) -> RunResult | None:
    """The entry in ``folder`` if it is whole and is the run of ``plan`` (key, recipe, seed and
    preset in its ``result.json``; every file matching the checksums written with it); a damaged
    or foreign entry is set aside with a warning (and the run trains again)."""
    if not folder.is_dir():
        return None
    try:
        sums = json.loads((folder / _CHECKSUMS).read_text())
        if not isinstance(sums, dict) or "weights.pt" not in sums or "result.json" not in sums:
            raise ValueError("no checksums for weights.pt and result.json")
        if _file_digests(folder) != sums:
            raise ValueError("a file does not match the checksum it was written with")
        result = RunResult.load(folder)
        if not isinstance(result.metrics, dict) or not result.metrics or not all(
                isinstance(m, dict) for m in result.metrics.values()):
            raise ValueError("no metrics")
        if plan is not None:
            want = (plan["key"], plan["recipe"].name, plan["seed"], plan["preset"].name)
            have = (result.key, result.recipe, result.seed, result.preset)
            if want != have:
                raise ValueError(f"it holds key/recipe/seed/preset {have}, not {want}")
        return result
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        _set_aside(folder, str(exc)[:200])
        return None


def _run_recipe(recipe, data, preset, seed, device, callbacks, cache) -> RunResult:

    plan = _plan(recipe, data, preset, seed, device)
    recipe, preset, seed, dev = plan["recipe"], plan["preset"], plan["seed"], plan["dev"]
    synthetic, train_json, eval_sets = plan["synthetic"], plan["train_json"], plan["eval_sets"]
    geometry, autocast, config, key, folder = (plan["geometry"], plan["autocast"], plan["config"],
                                               plan["key"], plan["folder"])
    if cache:
        hit = _load_cached(folder, plan)
        if hit is not None:
            return hit
    writable_folder(folder.parent, "the run cache")  # before training, not after

    codec = CODECS[recipe.codec](geometry, **dict(recipe.codec_params))
    loss_fn = LOSSES[recipe.loss](geometry, **dict(recipe.loss_params))
    score_fn = SCORES[recipe.score]
    model = _prepared(MODELS[recipe.model](recipe, geometry, seed), autocast, preset.channels_last)
    attach_codec(model, codec)  # the model carries the recipe's decoder (checkpoints save it)
    train_set = _train_set(recipe, preset, train_json, codec, seed, synthetic)
    if dev.type == "cuda" and preset.crop_cache:  # keep and warp the crops on the GPU
        train_set.to(dev)
    evaluators = {name: ptrain.Evaluator(path, head=recipe.head, codec=codec,
                                         input_size=preset.input_size, device=dev, score_fn=score_fn)
                  for name, path in eval_sets.items()}
    first_set = next(iter(evaluators.values()))
    val_cb = None
    if preset.val_every:
        val_eval = ptrain.Evaluator(first_set.ann_json, head=recipe.head, codec=codec,
                                    input_size=preset.input_size, device=dev, score_fn=score_fn,
                                    return_predictions=False)
        val_eval._datasets = first_set._datasets  # share the decoded val crops
        val_cb = val_eval
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    stream = hashlib.sha256()

    def hashed_loss(outputs, batch):  # the data stream every recipe of a preset/seed sees
        for name in ("image", "keypoints", "visible"):
            stream.update(batch[name].detach().to("cpu", torch.float32).contiguous().numpy())  # no copy
        return loss_fn(outputs, batch)

    try:
        history = ptrain.fit(model, hashed_loss, train_set, val=val_cb, epochs=preset.epochs,
                             max_steps=preset.max_steps, batch_size=preset.batch_size,
                             lr=recipe.lr * preset.lr_scale, weight_decay=recipe.weight_decay,
                             warmup_steps=recipe.warmup_steps, schedule=preset.schedule,
                             grad_clip=recipe.grad_clip, callbacks=list(callbacks), device=dev, seed=seed,
                             val_every=preset.val_every or preset.epochs + 1)
    except (TypeError, RuntimeError) as exc:
        if dev.type == "mps" and "float64" in str(exc).lower():
            try:
                check_float64(dev, f"recipe {recipe.name!r}")
            except ValueError as refused:
                raise refused from exc
        raise
    step_times = np.asarray(history.step_times) + np.asarray(history.data_times)
    metrics, arrays = {}, {}
    for name, ev in evaluators.items():
        metrics[name], arrays[name] = _evaluate(ev, model)

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        torch.save(model.state_dict(), tmp / "weights.pt")
        for name, arr in arrays.items():
            np.savez_compressed(tmp / f"predictions_{_slug(name)}.npz", **arr)
        result = RunResult(
            recipe=recipe.name, preset=preset.name, seed=seed, data=str(data), metrics=metrics,
            history=history.to_dict(),
            seconds_per_step=float(np.median(step_times[2:] if step_times.size > 4 else step_times))
            if step_times.size else float("nan"),
            train_seconds=float(step_times.sum()), peak_memory_mb=_peak_memory_mb(dev),
            weights_path=str(folder / "weights.pt"), data_stream_sha256=stream.hexdigest(),
            key=key, device=str(dev),
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            config={**config, "machine": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()})
        (tmp / "result.json").write_text(json.dumps(_jsonable(result.to_dict()), indent=1))
        (tmp / _CHECKSUMS).write_text(json.dumps(_file_digests(tmp), indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ComparisonTable:
    """Results of :func:`compare`: one row per (recipe, seed, evaluation set).

    ``values(recipe, metric, set)`` → per-seed list; ``summary(set)`` → rows of ``(mean, std)``
    over the finite values, with a third item, the number of them, when a seed's value is NaN;
    ``to_markdown()``; in a notebook it renders as an HTML table; ``figure(metric)`` plots the
    per-seed points with mean ± std.
    """

    #: columns of the rendered table (``to_markdown`` and ``summary`` give every metric)
    SHOWN = ("AP", "AP50", "AR", "EPE_crop", "PCK@0.2", "spearman", "seconds_per_step")
    SHORT = {"EPE_crop": "EPE (crop px)", "seconds_per_step": "s/step"}

    def __init__(self, results: list[RunResult]):
        self.results = list(results)
        # one run per (recipe, seed): a repeated run would pass for another seed in every verdict
        keys = [(r.recipe, r.seed) for r in self.results]
        repeated = sorted({k for k in keys if keys.count(k) > 1}, key=str)
        if repeated:
            raise ValueError("a comparison table holds one run per recipe and seed; given more than once: "
                             + ", ".join(f"{name} seed {seed}" for name, seed in repeated[:6]))

    @property
    def recipes(self) -> list[str]:
        return list(dict.fromkeys(r.recipe for r in self.results))

    @property
    def sets(self) -> list[str]:
        return list(dict.fromkeys(s for r in self.results for s in r.metrics))

    def result(self, recipe: str, seed: int) -> RunResult:
        for r in self.results:
            if r.recipe == recipe and r.seed == seed:
                return r
        raise KeyError(f"no run of {recipe!r} with seed {seed}")

    def values(self, recipe: str, metric: str, set_name: str = GENERATED_VAL) -> list[float]:
        if recipe not in self.recipes:
            raise KeyError(f"no recipe {recipe!r} in this table; recipes: {self.recipes}")
        if set_name not in self.sets:
            raise KeyError(f"no evaluation set {set_name!r} in this table; sets: {self.sets}")
        known = {k for r in self.results for m in r.metrics.values() for k in m}
        if metric not in known | {"train_seconds", "seconds_per_step", "peak_memory_mb"}:
            raise KeyError(f"no metric {metric!r} in this table; metrics: {sorted(known)} and "
                           "train_seconds, seconds_per_step, peak_memory_mb")
        out = []
        for r in self.results:
            if r.recipe == recipe:
                if metric in ("train_seconds", "seconds_per_step", "peak_memory_mb"):
                    out.append(float(getattr(r, metric)))
                else:
                    value = r.metrics.get(set_name, {}).get(metric)
                    out.append(float("nan") if value is None else float(value))
        return out

    def summary(self, set_name: str = GENERATED_VAL,
                metrics: Sequence[str] = ("AP", "AP50", "AP75", "AR", "EPE_crop", "PCK@0.2",
                                          "spearman", "ranking_accuracy", "seconds_per_step")) -> list[dict]:
        rows = []
        known = {k for r in self.results for ms in r.metrics.values() for k in ms}
        known |= {"train_seconds", "seconds_per_step", "peak_memory_mb"}
        for recipe in self.recipes:
            row: dict[str, Any] = {"recipe": recipe, "seeds": sum(r.recipe == recipe for r in self.results)}
            for m in metrics:
                if m not in known:  # a metric no run reports (a custom evaluation): an empty cell, "—"
                    row[m] = (float("nan"), 0.0)
                    continue
                v = np.asarray(self.values(recipe, m, set_name), dtype=np.float64)
                finite = v[np.isfinite(v)]
                row[m] = (float(finite.mean()) if finite.size else float("nan"),
                          float(finite.std(ddof=1)) if finite.size > 1 else 0.0)
                if finite.size < v.size:  # a cell over fewer seeds than the row says so
                    row[m] += (int(finite.size),)
            rows.append(row)
        return rows

    @staticmethod
    def _cell(value) -> str:
        if isinstance(value, tuple):
            mean, std = value[:2]
            if not math.isfinite(mean):
                return "—"
            text = f"{mean:.3f} ± {std:.3f}" if std else f"{mean:.3f}"
            # the seeds whose value is NaN / missing are named, not averaged away silently
            return text + (f" ({value[2]} seeds finite)" if len(value) > 2 else "")
        return str(value)

    def to_markdown(self) -> str:
        parts = []
        for set_name in self.sets:
            rows = self.summary(set_name)
            if not rows:
                continue
            heads = list(rows[0])
            parts.append(f"**{set_name}** (mean ± std over seeds)\n")
            parts.append("| " + " | ".join(heads) + " |")
            parts.append("|" + "---|" * len(heads))
            parts += ["| " + " | ".join(self._cell(r[h]) for h in heads) + " |" for r in rows]
            parts.append("")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        out = []
        for set_name in self.sets:
            rows = self.summary(set_name, self.SHOWN)
            if rows:
                heads = ["recipe", "seeds", *[self.SHORT.get(m, m) for m in self.SHOWN]]
                out.append(fitted_table(heads, [[r["recipe"], r["seeds"], *[self._cell(r[m]) for m in self.SHOWN]]
                                                for r in rows], caption=f"{set_name} (mean ± std over seeds)"))
        return "".join(out)

    def __repr__(self) -> str:
        return self.to_markdown()

    def figure(self, metric: str = "AP", set_name: str = GENERATED_VAL, title: str | None = None):
        """Per-seed points and mean ± std per recipe (:func:`poselab.viz.experiments.seed_figure`)."""
        from poselab.viz.experiments import seed_figure  # deferred: plotly, this figure only
        return seed_figure({r: self.values(r, metric, set_name) for r in self.recipes},
                           metric=metric, title=title or f"{metric} on {set_name}")


def compare(recipes: Iterable[Recipe | str], seeds: Iterable[int] = (0, 1, 2),
            data: str | os.PathLike = "synth", preset: Preset | str = "default",
            device: str | torch.device = "auto", cache: bool = True, progress: bool = True,
            callbacks: Sequence = (), jobs: int | str | None = None) -> ComparisonTable:
    """Run every recipe with every seed (:func:`run_recipe`, cached) and return one table.

    ``progress`` prints one line per run (trained or loaded, time, AP) so a long comparison is
    never silent. ``jobs``: runs trained at once in worker processes of one thread each
    (None/"auto": :func:`poselab.experiments.parallel.resolve_jobs` — on a multi-core CPU, as
    many as the cores for runs of the default size; 1 trains here, one after the other). The
    table is the same either way, up to the last bits a thread count changes
    (``RunResult.threads``).
    """

    if isinstance(recipes, (str, Recipe)):
        recipes = [recipes]  # one recipe, not the letters of its name
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [seeds]
    try:
        recipes = [get_recipe(r) for r in recipes]
        seeds = list(seeds)
    except TypeError:
        raise ValueError(f"compare takes a list of recipes and a list of seeds, got recipes="
                         f"{recipes!r}, seeds={seeds!r}") from None
    if not recipes or not seeds:
        raise ValueError("compare needs at least one recipe and one seed")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
            raise ValueError(f"seeds must be ints in [0, 2**63), got {seed!r}")
    # one run counted twice would pass for two seeds in every verdict read off the table
    repeated = sorted({int(s) for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds {repeated} are given more than once; each seed is one run")
    names = [r.name for r in recipes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"recipes {repeated} are given more than once; the table keeps one row per recipe name")
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise ValueError(f"callbacks must be a list of poselab.train callbacks, got {callbacks!r}")
    callbacks = list(callbacks)
    preset = get_preset(preset)
    dev = ptrain.resolve_device(device)
    resolve_jobs(jobs, 2, preset, dev, callbacks)  # bad jobs / POSELAB_JOBS fail before any work
    runs = [(seed, recipe) for seed in seeds for recipe in recipes]
    found: dict[int, RunResult] = {}
    if cache:
        for i, (seed, recipe) in enumerate(runs):
            hit = cached_result(recipe, data=data, preset=preset, seed=seed, device=device)
            if hit is not None:
                found[i] = hit
    todo = [i for i in range(len(runs)) if i not in found]
    modules = {i: part_modules(runs[i][1]) for i in todo}
    jobs = resolve_jobs(jobs, sum(m is not None for m in modules.values()), preset, dev, callbacks)

    def report(i: int, res: RunResult, seconds: float) -> None:
        if progress:
            seed, recipe = runs[i]
            first = next(iter(res.metrics))
            how = "from the cache" if res.cached else f"trained in {res.train_seconds:.0f} s"
            print(f"{recipe.name:>16s} seed {seed}: {how} ({seconds:.1f} s); "
                  f"{first} AP {res.metrics[first].get('AP', float('nan')):.3f}", flush=True)

    for i, res in found.items():
        report(i, res, 0.0)
    remote = [i for i in todo if jobs > 1 and modules[i] is not None]
    if remote:
        threads = max(1, torch.get_num_threads() // jobs)
        if progress:
            print(f"training {len(remote)} run(s), {jobs} at a time in worker processes "
                  f"({threads} thread(s) each)", flush=True)
        t0 = time.perf_counter()
        specs = [dict(recipe=runs[i][1].to_dict(), modules=modules[i], data=str(data),
                      preset=preset.to_dict(), seed=runs[i][0], device=str(device), cache=cache,
                      threads=threads) for i in remote]

        def done(j: int, folder: str) -> None:
            res = RunResult.load(folder)
            res.cached = False
            found[remote[j]] = res
            report(remote[j], res, time.perf_counter() - t0)

        train_many(specs, jobs, on_done=done, status=print if progress else None)
    for i in todo:
        if i not in found:
            t0 = time.perf_counter()
            seed, recipe = runs[i]
            found[i] = run_recipe(recipe, data=data, preset=preset, seed=seed, device=device,
                                  callbacks=callbacks, cache=cache)
            report(i, found[i], time.perf_counter() - t0)
    return ComparisonTable([found[i] for i in range(len(runs))])
