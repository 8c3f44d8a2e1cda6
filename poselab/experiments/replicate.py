"""Recorded replications at a deciding scale: ``poselab replicate CHAPTER``.

    poselab replicate 04 --preset full --seeds 0 1 2 3 4 --jobs 2
    poselab replicate 04 --plan          # what would train, what is recorded, the CPU-hour budget

A chapter's live run (a student's budget) rarely decides an empirical claim; a replication
trains what the chapter's empirical claims compare (:func:`chapter_recipes`) at a larger preset
and more seeds, and records **each run the moment it finishes** as one JSON file under
``results/replications/<chapter file stem>/<recipe>__<preset>__seed<N>.json``: recipe, seed,
preset, data, metrics, the validation curve, commit, source digest, threads, device, machine,
wall and CPU time. A run already recorded is skipped, so an interrupted replication is resumed by
running the command again — on another day, or another machine (commit the records).

By default the runs train from a clean ``git worktree`` of the checkout's HEAD commit
(``.worktrees/replicate-<sha>``): editing the checkout never changes a running replication, and
every record names the one commit it trained. Several runs train side by side in one-thread
worker processes on a CPU (``--jobs``), or one after another on a GPU (``--device cuda``).

:func:`recorded_table` turns the records back into a :class:`ComparisonTable`, so a chapter
judges its claims on the recorded runs with the same rule as on its live run, and shows both.
"""
from __future__ import annotations

import datetime as _dt
import json
import numbers
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch

from poselab.data import resolve_dataset, synth
from poselab.train import resolve_device

from .cache import cache_root, list_entries, source_digest
from .records import _git, provenance
from .presets import Preset, get_preset
from .registry import Recipe
from .runner import ComparisonTable, RunResult, _jsonable, compare
from .verdicts import config_precision, forward_precision

__all__ = ["RECORD_KIND", "recorded_verdict", "compact_records", "chapter_recipes", "register_chapter_recipes",
           "unregister_chapter_recipes", "replication_folder", "record_file", "recorded_runs",
           "recorded_table", "replicate", "plan", "REPLICATIONS_DIR", "DERIVED_KIND",
           "DerivedStep", "register_chapter_derived", "unregister_chapter_derived", "chapter_derived",
           "derive", "recorded_derived", "derived_precision", "record_precision", "records_by_seed", "PRECISION_LABELS",
           "recorded_derived_verdict", "recorded_derived_group_verdict", "recorded_pooled",
           "recorded_pooled_verdict", "borrowed_runs",
           "SeedPairs", "pair_by_seed"]

RECORD_KIND = "poselab-replication-run"
_REPO = Path(__file__).resolve().parent.parent.parent
#: where the committed records live (``results/replications/<chapter stem>/``)
REPLICATIONS_DIR = _REPO / "results" / "replications"


#: chapter file stem → ``fn(preset) -> list[Recipe]``: what a chapter's empirical claims compare.
#: Each chapter supplies its own (``poselab.chapters.registry.register`` adds it here), so this
#: core module never imports a chapter.
_CHAPTER_RECIPES: dict[str, Callable[[Preset], list[Recipe]]] = {}


def register_chapter_recipes(stem: str, recipes: Callable[[Preset], list[Recipe]]) -> None:
    """Say what ``poselab replicate <stem>`` trains: ``recipes(preset)`` returns the recipes
    (adapted to the preset where they depend on it). ``stem``: the chapter's notebook stem."""
    if not isinstance(stem, str) or not re.fullmatch(r"\d\d_\w+", stem):
        raise ValueError(f"stem must be a chapter's notebook stem such as '04_hdm', got {stem!r}")
    if not callable(recipes):
        raise TypeError(f"recipes must be callable(preset) -> list[Recipe], got {type(recipes).__name__}")
    _CHAPTER_RECIPES[stem] = recipes


def unregister_chapter_recipes(stem: str) -> None:
    """Forget a chapter's replication recipes (tests registering a dummy chapter)."""
    _CHAPTER_RECIPES.pop(stem, None)


# ----------------------------------------------------------------------------- derived records

DERIVED_KIND = "poselab-replication-derived"


@dataclass(frozen=True)
class DerivedStep:
    """A computation a chapter records per seed on top of one recorded base run (RCNet's
    post-hoc fits on the ``mse`` model, for example).

    Attributes:
        name: the record's name: ``<name>__<preset>__seed<N>.json`` in the chapter's folder.
        recipe: the base recipe whose run (same preset and seed; from the run cache, trained
            on a miss) ``compute`` receives.
        compute: ``fn(run: RunResult, preset: Preset) -> dict`` of JSON-able values (what the
            chapter's recorded verdicts read), stored under the record's ``values``. It runs in this
            process (on the CPU unless it moves work itself); the record notes the thread count.
    """
    name: str
    recipe: str
    compute: Callable[[Any, Preset], dict]

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", self.name):
            raise ValueError(f"a derived step's name must be letters, digits and '_', got {self.name!r}")
        if not isinstance(self.recipe, str) or not self.recipe:
            raise TypeError(f"derived step {self.name}: recipe must be a recipe name, got {self.recipe!r}")
        if not callable(self.compute):
            raise TypeError(f"derived step {self.name}: compute must be callable(run, preset) -> dict")


#: chapter file stem → its derived steps (registered by the chapter, like the recipes)
_CHAPTER_DERIVED: dict[str, tuple[DerivedStep, ...]] = {}


def register_chapter_derived(stem: str, steps: Iterable[DerivedStep] | Callable[[], Iterable[DerivedStep]]) -> None:
    """Say what ``poselab replicate <stem>`` records per seed after the chapter's base runs
    (:class:`DerivedStep`); the chapter registers them through the chapter registry, so this core
    module never imports a chapter. ``steps`` may be a function returning them, called (and its
    result checked) when the steps are first asked for: the chapter's module that defines them
    may itself import the engine, so it cannot be imported while the engine loads."""
    if not isinstance(stem, str) or not re.fullmatch(r"\d\d_\w+", stem):
        raise ValueError(f"stem must be a chapter's notebook stem such as '03_rcnet', got {stem!r}")
    _CHAPTER_DERIVED[stem] = steps if callable(steps) else _checked_steps(stem, steps)


def _checked_steps(stem: str, steps: Iterable[DerivedStep]) -> tuple[DerivedStep, ...]:
    steps = tuple(steps)
    if not steps or not all(isinstance(s, DerivedStep) for s in steps):
        raise TypeError(f"chapter {stem}: derived steps must be a non-empty list of DerivedStep, got {steps!r:.120}")
    if len({s.name for s in steps}) != len(steps):
        raise ValueError(f"chapter {stem}: two derived steps share a name")
    return steps


def unregister_chapter_derived(stem: str) -> None:
    """Forget a chapter's derived steps (tests)."""
    _CHAPTER_DERIVED.pop(stem, None)


def chapter_derived(chapter: str) -> tuple[DerivedStep, ...]:
    """The chapter's derived steps (empty when it registered none)."""
    stem = _chapter_stem(chapter)
    steps = _CHAPTER_DERIVED.get(stem, ())
    if callable(steps):  # registered lazily: resolve and check once
        steps = _CHAPTER_DERIVED[stem] = _checked_steps(stem, steps())
    return steps


def _read_derived(path: Path, *, name: str | None = None, preset: str | None = None,
                  seed: int | None = None) -> dict[str, Any]:
    """A derived record, checked; a file that is not one raises ValueError naming it and the way out."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable derived record ({type(exc).__name__}: "
                         f"{str(exc)[:120]}); delete it to compute it again") from None
    want = {"name": name, "preset": preset, "seed": seed}
    if not isinstance(rec, dict) or rec.get("kind") != DERIVED_KIND or not isinstance(rec.get("values"), dict) \
            or any(v is not None and rec.get(k) != v for k, v in want.items()):
        raise ValueError(f"{path} is not a derived record of {name or 'this step'} (preset {preset}, seed "
                         f"{seed}); delete it to compute it again")
    return rec


def _derived_todo(folder: Path, steps, preset: str, seeds) -> list[tuple[DerivedStep, int]]:
    todo = []
    for seed in seeds:
        for step in steps:
            path = record_file(folder, step.name, preset, seed)
            if path.is_file():
                _read_derived(path, name=step.name, preset=preset, seed=seed)  # corrupt: fail, never trust
            else:
                todo.append((step, seed))
    return todo


def derive(chapter: str, *, preset: str = "full", seeds: Iterable[int] = (0, 1, 2, 3, 4),
           device: str = "auto", data: str = "synth", root: str | os.PathLike | None = None,
           shard: tuple[int, int] = (0, 1), started: dict[str, Any] | None = None) -> list[Path]:
    """Compute and record every derived record of the chapter not recorded yet (one JSON per step
    and seed, written the moment it is computed); returns the files written now. The base run
    comes from the run cache (trained on a miss). A record that exists but cannot be read raises
    ValueError naming the file (never silently recomputed or trusted)."""
    p = get_preset(preset)
    seeds = [int(s) for s in seeds]
    folder = replication_folder(chapter, root).resolve()
    todo = _derived_todo(folder, chapter_derived(chapter), p.name, seeds)[shard[0]::shard[1]]
    command = "poselab replicate " + shlex.join([str(chapter), "--preset", p.name, "--seeds", *map(str, seeds)])
    return _derive(folder, todo, p, device=device, data=data, started=started or provenance(), command=command)


def _derive(folder: Path, todo, p, *, device: str, data: str, started: dict[str, Any],
            command: str) -> list[Path]:
    """Compute and record the derived records ``todo`` ((step, seed) pairs) in ``folder``."""
    written = []
    for step, seed in todo:
        t0, c0 = time.perf_counter(), time.process_time()
        base = compare([step.recipe], seeds=[seed], data=data, preset=p, device=device, jobs=1).results[0]
        values = step.compute(base, p)
        if not isinstance(values, dict):
            raise TypeError(f"derived step {step.name} returned {type(values).__name__}, not a dict")
        rec = {"kind": DERIVED_KIND, "name": step.name, "chapter": folder.name, "seed": seed, "preset": p.name,
               "base": {"recipe": base.recipe, "key": base.key, "seed": base.seed, "data": base.data,
                        "metrics": base.metrics, "forward_precision": forward_precision(base)},
               "commit": started.get("commit"), "dirty": started.get("dirty"),
               "source_digest": source_digest(), "threads": int(torch.get_num_threads()),
               "device": "cpu", "base_device": str(device), "machine": f"{platform.platform()}; {os.cpu_count()} CPUs",
               "wall_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
               "command": command, "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "values": values}
        folder.mkdir(parents=True, exist_ok=True)
        path = record_file(folder, step.name, p.name, seed)
        _write_json(path, rec)
        written.append(path)
        print(f"recorded {path}", flush=True)
    return written


def recorded_derived(chapter: str, name: str, *, preset: str = "full",
                     root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The chapter's derived records of step ``name`` at ``preset``, by seed; a file that is not
    one raises ValueError naming it."""
    folder = replication_folder(chapter, root)
    recs = [_read_derived(path, name=name, preset=preset)
            for path in sorted(folder.glob(f"{name}__{preset}__seed*.json"))]
    return sorted(recs, key=lambda r: int(r["seed"]))


def recorded_derived_verdict(chapter: str, name: str, judge, *, preset: str = "full",
                             root: str | os.PathLike | None = None) -> dict[str, Any]:
    """:func:`recorded_verdict` for derived records: ``judge(records) -> Verdict`` (records by
    seed, each with ``values``) with the rule the chapter applies to its live run. Same return
    shape; "no recorded replication yet" (with the command) when there are no records."""
    stem = replication_folder(chapter, root).name
    how = f"poselab replicate {stem} --preset {preset}"
    try:
        recs = recorded_derived(chapter, name, preset=preset, root=root)
    except ValueError as exc:
        return {"recorded": False, "verdict": "—", "preset": preset, "reason": f"{exc}"[:240]}
    return _judged(judge, recs if recs else None, recs, preset, how)


def recorded_derived_group_verdict(chapter: str, names: Iterable[str], judge, *, preset: str = "full",
                                   root: str | os.PathLike | None = None) -> dict[str, Any]:
    """:func:`recorded_derived_verdict` for a claim that reads several derived steps (one per
    compared recipe, e.g. chapter 05's out-of-crop errors of SAR and of the heatmap):
    ``judge({name: records by seed}) -> Verdict`` (a step with no record yet maps to ``[]``;
    the judge pairs the steps by seed and raises KeyError/ValueError when they cannot answer
    yet). Same return shape; "no recorded replication yet" when none of the steps has a record;
    a record that is not one names its file. A seed whose records come from base runs of
    different forward precisions (:func:`derived_precision`) is left out before judging and named
    in the reason and under ``"precision_mismatch"``."""
    names = [names] if isinstance(names, str) else list(names)
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"names must be distinct derived step names, got {names!r}")
    stem = replication_folder(chapter, root).name
    how = f"poselab replicate {stem} --preset {preset}"
    try:
        groups = {n: recorded_derived(chapter, n, preset=preset, root=root) for n in names}
    except ValueError as exc:
        return {"recorded": False, "verdict": "—", "preset": preset, "reason": f"{exc}"[:240]}
    groups, mismatch = _one_precision_per_seed(groups, replication_folder(chapter, root))
    recs = [r for n in names for r in groups[n]]
    out = _judged(judge, groups if recs or mismatch else None, recs, preset, how)
    if mismatch:
        left = "; ".join(f"seed {s}: " + ", ".join(f"{n} {p}" for n, p in by.items()) for s, by in mismatch.items())
        out["precision_mismatch"] = mismatch
        out["reason"] = (f"{out['reason']} (left out, trained in different forward precisions: {left})")
    return out


def derived_precision(record: Mapping[str, Any], folder: str | os.PathLike | None = None) -> str | None:
    """The forward precision the base run of a derived record trained in: the record's own
    ``base.forward_precision`` (every record :func:`derive` writes keeps it), else, for an older record, the
    precision of the run record in ``folder`` whose run key is the base's key; None when
    neither says (an unknown precision never excludes a record from a pair)."""
    base = record.get("base") if isinstance(record, Mapping) else None
    if not isinstance(base, Mapping):
        return None
    if isinstance(base.get("forward_precision"), str):
        return base["forward_precision"]
    if (folder is None or not isinstance(base.get("recipe"), str) or not isinstance(base.get("seed"), int)
            or not isinstance(record.get("preset"), str)):
        return None
    try:
        found = json.loads(record_file(Path(folder), base["recipe"], record["preset"], base["seed"]).read_text())
        same = found["run"]["key"] == base.get("key")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record_precision(found) if same else None


def record_precision(record: Mapping[str, Any]) -> str:
    """The forward precision a run record trained in: :func:`~poselab.experiments.verdicts.config_precision`
    of its ``run.config`` (float32 when the record does not say)."""
    run = record.get("run") if isinstance(record, Mapping) else None
    return config_precision(run.get("config") if isinstance(run, Mapping) else None)


def _one_precision_per_seed(groups: dict[str, list], folder: Path) -> tuple[dict[str, list], dict[int, dict]]:
    """``groups`` without the seeds whose records (one per step) come from base runs of different
    forward precisions (:func:`derived_precision`), and those seeds: ``{seed: {step: precision}}``.
    A seed's records pair only within one precision, as :func:`poselab.experiments.paired_table`
    pairs live runs."""
    by_seed: dict[int, dict[str, str]] = {}
    for name, recs in groups.items():
        for rec in recs:
            precision = derived_precision(rec, folder)
            if precision is not None:
                by_seed.setdefault(int(rec["seed"]), {})[name] = precision
    mismatch = {s: by for s, by in sorted(by_seed.items()) if len(set(by.values())) > 1}
    if not mismatch:
        return groups, {}
    return {n: [r for r in recs if int(r["seed"]) not in mismatch] for n, recs in groups.items()}, mismatch


def _judged(judge, evidence, recs: list[dict[str, Any]], preset: str, how: str) -> dict[str, Any]:
    """``judge(evidence)`` as a recorded verdict (the shape :func:`recorded_verdict` documents);
    no evidence or a judge that cannot answer is reported with ``how`` to make the records."""
    if evidence is None:
        return {"recorded": False, "verdict": "—", "preset": preset,
                "reason": f"no recorded {preset}-preset replication yet ({how})"}
    try:
        v = judge(evidence)
    except (KeyError, ValueError) as exc:
        # a KeyError's str() is the repr of its message (quoted): show the message itself
        text = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
        return {"recorded": False, "verdict": "—", "preset": preset,
                "reason": f"the recorded runs cannot answer yet ({text[:160]}; {how})"}
    digest = source_digest()
    return {"recorded": True, "verdict": v.verdict, "reason": v.reason, "preset": preset,
            "seeds": sorted({int(r["seed"]) for r in recs}), "runs": len(recs),
            "commits": sorted({str(r.get("commit"))[:10] for r in recs}),
            "current": all(r.get("source_digest") == digest for r in recs)}


def _chapter_stem(chapter: str) -> str:
    """A chapter's file stem from a number, name or stem (a stem is taken as given)."""
    text = str(chapter).lower().removesuffix(".ipynb")
    if re.fullmatch(r"\d\d_\w+", text):
        return text
    for stem in _CHAPTER_RECIPES:
        number, name = stem.split("_", 1)
        if text in (number, str(int(number)), name):
            return stem
    raise ValueError(f"chapter {chapter!r} has no empirical training claims to replicate; "
                     f"replicable: {', '.join(sorted(_CHAPTER_RECIPES)) or 'none registered'}")


def chapter_recipes(chapter: str, preset: Preset | str = "full") -> list[Recipe]:
    """The recipes a chapter's empirical claims compare, adapted to ``preset`` where the recipe
    depends on it (BCIR's prior schedule). ``chapter``: number, name or file stem of a chapter
    that registered its replication recipes (:func:`register_chapter_recipes`)."""
    stem = _chapter_stem(chapter)
    if stem not in _CHAPTER_RECIPES:
        raise ValueError(f"chapter {stem!r} has no empirical training claims to replicate; "
                         f"replicable: {', '.join(sorted(_CHAPTER_RECIPES)) or 'none registered'}")
    recipes = list(_CHAPTER_RECIPES[stem](get_preset(preset)))
    if not recipes or not all(isinstance(r, Recipe) for r in recipes):
        raise TypeError(f"chapter {stem!r}'s replication recipes must be a non-empty list of Recipe, "
                        f"got {recipes!r:.120}")
    return recipes


def replication_folder(chapter: str, root: str | os.PathLike | None = None) -> Path:
    stem = _chapter_stem(chapter)
    return Path(root) / stem if root is not None else REPLICATIONS_DIR / stem


def record_file(folder: Path, recipe: str, preset: str, seed: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe)
    return Path(folder) / f"{safe}__{preset}__seed{int(seed)}.json"


def _write_run(folder: Path, res: RunResult, *, started: dict[str, Any], wall: float, cpu: float | None,
               command: str) -> Path:
    path = record_file(folder, res.recipe, res.preset, res.seed)
    history = res.history or {}
    curve = [dict(row) for row in history.get("val", [])]
    steps = len(history.get("step_times", []))
    if steps and (not curve or float(curve[-1].get("step", 0)) < steps) and res.metrics:
        # the final evaluation closes the curve (a preset without validations has only this point)
        curve.append({"step": float(steps), **next(iter(res.metrics.values()))})
    rec = {"kind": RECORD_KIND, "recipe": res.recipe, "seed": res.seed, "preset": res.preset,
           "data": res.data, "metrics": res.metrics, "validation_curve": curve,
           "steps": steps or None,
           "commit": started.get("commit"), "dirty": started.get("dirty"),
           "source_digest": res.config.get("source_digest"), "threads": res.threads,
           "device": res.device, "machine": f"{platform.platform()}; {os.cpu_count()} CPUs",
           "wall_seconds": float(wall), "cpu_seconds": cpu, "train_seconds": res.train_seconds,
           "seconds_per_step": res.seconds_per_step, "command": command,
           "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "run": _compact_run(res.to_dict())}
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(path, rec)
    return path


#: points kept of a run's per-step training loss in a record (the full history stays in the cache)
LOSS_POINTS = 200


def _compact_run(run: dict[str, Any]) -> dict[str, Any]:
    """A run's dict with its per-step history reduced to what a record needs: the validation
    curve, the step count and the training loss at :data:`LOSS_POINTS` evenly spaced steps
    (a 5000-step run's full history is ~580 KB of JSON; 30 runs a chapter)."""
    run = dict(run)
    history = dict(run.get("history") or {})
    losses = list(history.get("losses") or [])
    steps = len(history.get("step_times") or []) or int(history.get("steps") or 0)
    if losses:
        idx = sorted({int(round(i)) for i in np.linspace(0, len(losses) - 1, min(LOSS_POINTS, len(losses)))})
        history["loss_curve"] = [[i + 1, float(losses[i])] for i in idx]
    run["history"] = {"val": history.get("val", []), "steps": steps,
                      **({"loss_curve": history["loss_curve"]} if "loss_curve" in history else {})}
    return run


def _write_json(path: Path, rec: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(rec), separators=(",", ":")) + "\n")
    tmp.replace(path)  # a record is either whole or absent


def compact_records(folder: str | os.PathLike) -> list[Path]:
    """Rewrite the records in ``folder`` that still hold a full per-step history (written by an
    older poselab) in the compact form; returns the files rewritten."""
    done = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("kind") == RECORD_KIND and isinstance(rec.get("run"), dict) \
                and "step_times" in (rec["run"].get("history") or {}):
            rec["run"] = _compact_run(rec["run"])
            _write_json(path, rec)
            done.append(path)
    return done


def recorded_runs(chapter: str, *, preset: str | None = None,
                  root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The chapter's run records (dicts), optionally of one preset; unreadable files are skipped
    with a warning line naming them."""
    folder = replication_folder(chapter, root)
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            print(f"skipping {path}: not readable JSON", file=sys.stderr)
            continue
        if not isinstance(rec, dict) or rec.get("kind") != RECORD_KIND or not isinstance(rec.get("run"), dict):
            continue
        if preset is None or rec.get("preset") == preset:
            out.append(rec)
    return out


def borrowed_runs(chapter: str, *, preset: str = "full", root: str | os.PathLike | None = None,
                  data: str = "synth") -> list[dict[str, Any]]:
    """Run records another chapter made of a recipe this chapter's replication compares, for the
    (recipe, seed) pairs this chapter has not recorded itself (same preset and data): one run per
    recipe, preset, seed and data, whichever chapter trained it. Each gains ``chapter`` (where it
    lives). A recipe a derived step of this chapter builds on is never borrowed (the derived step
    needs the model in the run cache, so the chapter trains and records it). Chapters without
    registered replication recipes borrow nothing."""
    stem = replication_folder(chapter, root).name
    try:
        wanted = {r.name for r in chapter_recipes(stem, preset)}
    except (ValueError, KeyError):  # no registered replication, or a preset made up by a caller
        return []
    wanted -= {step.recipe for step in chapter_derived(stem)}
    base = Path(root) if root is not None else REPLICATIONS_DIR
    own = {(r["recipe"], int(r["seed"])) for r in recorded_runs(stem, preset=preset, root=root)}
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for rec in recorded_pooled(preset=preset, root=base, exclude=(stem,), recipes=wanted):
        key = (rec["recipe"], int(rec["seed"]))
        if key not in own and rec.get("data", data) == data:
            found[key] = rec
    return [found[k] for k in sorted(found)]


def _chapter_runs(chapter: str, preset: str, root) -> list[dict[str, Any]]:
    return recorded_runs(chapter, preset=preset, root=root) + borrowed_runs(chapter, preset=preset, root=root)


def recorded_table(chapter: str, *, preset: str = "full", root: str | os.PathLike | None = None
                   ) -> ComparisonTable | None:
    """The recorded runs of one preset as a :class:`ComparisonTable` (None when there are none),
    so :func:`poselab.experiments.compare_recipes` judges them with the live run's rule: the
    chapter's own records and those it borrows from other chapters (:func:`borrowed_runs`)."""
    return _runs_table(_chapter_runs(chapter, preset, root))


def _runs_table(recs: list[dict[str, Any]]) -> ComparisonTable | None:
    results = []
    for rec in recs:
        run = dict(rec["run"])
        run["metrics"] = {name: {k: float("nan") if v is None else v for k, v in m.items()}
                          for name, m in run["metrics"].items()}
        fields = {f for f in RunResult.__dataclass_fields__}
        results.append(RunResult(**{k: v for k, v in run.items() if k in fields}, cached=True))
    return ComparisonTable(results) if results else None


def recorded_pooled(*, preset: str = "full", root: str | os.PathLike | None = None,
                    exclude: Iterable[str] = (), recipes: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every chapter's run records of ``preset`` pooled (chapter folders under ``root``, except the
    stems in ``exclude``; only ``recipes`` when given), one per (recipe, seed): where several
    chapters recorded the same run, the one trained with the code of now (source digest) wins,
    then the newest. Each record gains ``chapter`` (the folder it came from)."""
    base = Path(root) if root is not None else REPLICATIONS_DIR
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    digest = source_digest()
    skip = set(exclude)
    keep = None if recipes is None else set(recipes)
    for folder in sorted(p for p in base.glob("*") if p.is_dir() and p.name not in skip):
        for rec in recorded_runs(folder.name, preset=preset, root=base):
            if keep is not None and rec.get("recipe") not in keep:
                continue
            rec = {**rec, "chapter": folder.name}
            key = (str(rec["recipe"]), int(rec["seed"]))
            rank = (rec.get("source_digest") == digest, str(rec.get("recorded") or ""))
            old = chosen.get(key)
            if old is None or rank > (old.get("source_digest") == digest, str(old.get("recorded") or "")):
                chosen[key] = rec
    return [chosen[k] for k in sorted(chosen)]


def recorded_pooled_verdict(judge, *, preset: str = "full", root: str | os.PathLike | None = None,
                            exclude: Iterable[str] = (), recipes: Iterable[str] | None = None) -> dict[str, Any]:
    """:func:`recorded_verdict` on :func:`recorded_pooled` (every chapter's records at ``preset``,
    of ``recipes`` when given): for claims about recipes across chapters (the capstone's arena)."""
    recs = recorded_pooled(preset=preset, root=root, exclude=exclude, recipes=recipes)
    return _judged(judge, _runs_table(recs), recs, preset,
                   f"poselab replicate <chapter> --preset {preset}, for the chapters that own the recipes")


def recorded_precisions(chapter: str, *, preset: str = "full", root: str | os.PathLike | None = None,
                        recipes: Iterable[str] | None = None) -> dict[str, list[tuple[str, int]]]:
    """The forward precision each recorded run of ``chapter`` trained in (its own records and the
    ones it borrows; only ``recipes`` when given): ``{precision: [(recipe, seed), ...]}``, by
    :func:`poselab.experiments.verdicts.config_precision`. Seeds pair only within one precision (:func:`~poselab.experiments.verdicts.paired_table`)."""
    keep = None if recipes is None else set(recipes)
    out: dict[str, list[tuple[str, int]]] = {}
    for rec in _chapter_runs(chapter, preset, root):
        if keep is not None and rec.get("recipe") not in keep:
            continue
        out.setdefault(record_precision(rec), []).append((rec["recipe"], int(rec["seed"])))
    return {k: sorted(v) for k, v in sorted(out.items())}


#: short labels of the forward precisions in :func:`records_by_seed`
PRECISION_LABELS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def records_by_seed(chapter: str, *, preset: str = "full", root: str | os.PathLike | None = None,
                    recipes: Iterable[str] | None = None, metric: str = "AP",
                    set_name: str = "generated val") -> dict[str, dict[str, str]]:
    """The chapter's recorded runs laid out for pairing: ``{recipe: {"seed N": "0.631 bf16"}}``,
    each cell the run's final ``metric`` on ``set_name`` and the forward precision it trained in
    (:data:`PRECISION_LABELS`; ``—`` for a value the record lacks). Two recipes' cells of one seed
    pair only when their precisions match (:func:`poselab.experiments.verdicts.paired_table`),
    so this is the table to read before training more seeds. ``recipes``: these rows, in this
    order (a recipe with no record gets an empty row); default: the chapter's replication recipes
    (:func:`chapter_recipes`, recorded or not), then any other recipe it has records of.

    Example:
        >>> rows = records_by_seed("06", recipes=["ipr_prior"])
        >>> rows["ipr_prior"]["seed 0"].endswith("bf16")
        True
    """
    if not isinstance(metric, str) or not isinstance(set_name, str):
        raise TypeError(f"metric and set_name must be names, got {metric!r} and {set_name!r}")
    recs = _chapter_runs(chapter, preset, root)
    if recipes is None:
        order = [r.name for r in chapter_recipes(chapter, preset)]
        order += sorted({r["recipe"] for r in recs} - set(order))
    else:
        order = [recipes] if isinstance(recipes, str) or not isinstance(recipes, Iterable) else list(recipes)
        if not all(isinstance(name, str) and name for name in order):
            raise TypeError(f"recipes must be recipe names, got {recipes!r:.80}")
    seeds = sorted({int(r["seed"]) for r in recs if r["recipe"] in order})
    rows: dict[str, dict[str, str]] = {name: {} for name in order}
    for rec in recs:
        if rec["recipe"] not in rows:
            continue
        value = ((rec.get("metrics") or {}).get(set_name) or {}).get(metric)
        precision = record_precision(rec)
        shown = f"{value:.3f}" if isinstance(value, numbers.Real) and not isinstance(value, bool) else "—"
        rows[rec["recipe"]][f"seed {int(rec['seed'])}"] = f"{shown} {PRECISION_LABELS.get(precision, precision)}"
    return {name: {f"seed {s}": cells.get(f"seed {s}", "") for s in seeds} for name, cells in rows.items()}


def plan(chapter: str, *, preset: str = "full", seeds: Iterable[int] = (0, 1, 2, 3, 4),
         root: str | os.PathLike | None = None, recipes: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per run the replication needs: recipe, seed, recorded (bool: by this chapter or
    another, :func:`borrowed_runs`), steps, and the CPU seconds it is expected to cost (seconds per
    step of a recorded or cached run of the same recipe and preset × steps; None when nothing
    measured it). ``recipes``: only these recipes and the derived steps built on them (as
    :func:`replicate`'s ``recipes``)."""
    p = get_preset(preset)
    chosen = _chosen(chapter, recipes)
    folder = replication_folder(chapter, root)
    lent = {(r["recipe"], int(r["seed"])) for r in borrowed_runs(chapter, preset=p.name, root=root)}
    measured = {r["recipe"]: r.get("seconds_per_step") for r in recorded_runs(chapter, root=root)
                if r.get("preset") == p.name and r.get("seconds_per_step")}
    for path in sorted((_REPO / "results").glob("*.json")):  # poselab train --record files
        try:
            runs = json.loads(path.read_text()).get("runs", [])
        except (OSError, ValueError, AttributeError):
            continue
        for r in runs if isinstance(runs, list) else []:
            if isinstance(r, dict) and r.get("preset") == p.name and r.get("seconds_per_step"):
                measured.setdefault(r.get("recipe"), r["seconds_per_step"])
    for e in list_entries():
        if e.get("preset") == p.name and e.get("seconds_per_step") and e.get("recipe") not in measured:
            measured[e["recipe"]] = e["seconds_per_step"]
    rows = []
    for recipe in chapter_recipes(chapter, p):
        if chosen is not None and recipe.name not in chosen:
            continue
        for seed in seeds:
            steps = _steps(p)
            sps = measured.get(recipe.name)
            rows.append({"recipe": recipe.name, "seed": int(seed), "preset": p.name,
                         "recorded": record_file(folder, recipe.name, p.name, seed).is_file()
                         or (recipe.name, int(seed)) in lent,
                         "steps": steps, "seconds_per_step": sps,
                         "expected_seconds": None if (sps is None or steps is None) else sps * steps})
    for step in chapter_derived(chapter):  # derived records: CPU seconds of those recorded at this preset
        if chosen is not None and step.recipe not in chosen:
            continue
        done = [_read_derived(path, name=step.name, preset=p.name)
                for path in sorted(folder.glob(f"{step.name}__{p.name}__seed*.json"))]
        cpu = [float(r["cpu_seconds"]) for r in done if r.get("cpu_seconds")]
        for seed in seeds:
            rows.append({"recipe": step.name, "seed": int(seed), "preset": p.name, "derived": True,
                         "recorded": record_file(folder, step.name, p.name, seed).is_file(),
                         "steps": None, "seconds_per_step": None,
                         "expected_seconds": float(np.mean(cpu)) if cpu else None})
    return rows


def _steps(p: Preset) -> int | None:
    if p.max_steps is not None:
        return p.max_steps
    n_people = {"fast": None}.get(p.name)
    if n_people is None:
        try:
            with open(synth.default_dataset("train", progress=False)) as f:
                n_people = sum(1 for a in json.load(f)["annotations"] if a.get("num_keypoints", 0) > 0)
        except Exception:  # a plan is an estimate: no data yet means no estimate
            return None
    return -(-n_people // p.batch_size) * p.epochs


def _worktree(commit: str) -> Path:
    target = _REPO / ".worktrees" / f"replicate-{commit[:12]}"
    if not (target / "poselab").is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["git", "worktree", "add", "--detach", str(target), commit], cwd=_REPO,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"git worktree add failed: {out.stderr.strip()[:500]}")
    return target


def _chosen(chapter: str, names: Iterable[str] | None) -> set[str] | None:
    """``names`` checked against the chapter's replication recipes (None: all of them)."""
    if names is None:
        return None
    names = [names] if isinstance(names, str) else list(names)
    known = [r.name for r in chapter_recipes(chapter, "full")]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(f"recipes {bad or names} are not in {replication_folder(chapter).name}'s replication; "
                         f"choose from {', '.join(known)}")
    return set(names)


def check_run_target(device: str = "auto", data: str = "synth") -> None:
    """Refuse an unusable ``device`` (ValueError / RuntimeError: an unknown name, CUDA asked for
    on a machine without it) or ``data`` (``"synth"``, or a COCO folder / json with train and val
    splits: :class:`poselab.data.errors.DatasetNotFound`) before any training starts."""
    resolve_device(device)
    if not (isinstance(data, str) and data == "synth"):
        if not isinstance(data, (str, os.PathLike)) or str(data) == "":
            raise ValueError(f"data must be 'synth' or a COCO folder / json path, got {data!r}")
        for split in ("train", "val"):
            resolve_dataset(data, split)


def replicate(chapter: str, *, preset: str = "full", seeds: Iterable[int] = (0, 1, 2, 3, 4),
              jobs: int | None = None, device: str = "auto", data: str = "synth",
              root: str | os.PathLike | None = None, worktree: bool = True,
              shard: tuple[int, int] = (0, 1), stage: str = "all",
              recipes: Iterable[str] | None = None) -> list[Path]:
    """Train and record every run of the chapter's replication not recorded yet; returns the
    record files written now.

    ``worktree=True`` re-runs this in a clean worktree of HEAD (the records still land in this
    checkout's ``root``); ``False`` trains the code imported here. ``jobs`` > 1 trains that many
    runs at once, each in its own process (one torch thread each on a CPU; on a GPU they share
    it). ``shard=(k, n)``: only every n-th missing run from the k-th (what each process takes).

    After the base runs, the chapter's derived records (:func:`register_chapter_derived`, e.g.
    RCNet's fits on each recorded ``mse`` model) are computed and recorded the same way, one per
    step and seed, skipping those recorded (:func:`derive`). ``stage``: ``"all"``, ``"base"``
    (runs only) or ``"derived"`` (derived records only; base runs come from the run cache).
    ``recipes``: train only these of the chapter's recipes (the headline pair first, say);
    derived records are computed only when their base recipe is among them.
    """
    if stage not in ("all", "base", "derived"):
        raise ValueError(f"stage must be 'all', 'base' or 'derived', got {stage!r}")
    p = get_preset(preset)
    seeds = [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative ints, got {seeds!r}")
    if jobs is not None and (isinstance(jobs, bool) or int(jobs) < 1):
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    k, n = (int(v) for v in shard)
    if not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    check_run_target(device, data)  # before a worktree or a worker starts
    folder = replication_folder(chapter, root).resolve()
    chosen = _chosen(chapter, recipes)
    recipes = [r for r in chapter_recipes(chapter, p) if chosen is None or r.name in chosen]
    # seed by seed, so an interrupted replication holds complete pairs of the compared recipes
    lent = {(r["recipe"], int(r["seed"])) for r in borrowed_runs(chapter, preset=p.name, root=folder.parent,
                                                                  data=str(data))}
    todo = [(r, s) for s in seeds for r in recipes
            if not record_file(folder, r.name, p.name, s).is_file() and (r.name, s) not in lent] \
        if stage != "derived" else []
    steps = [st for st in chapter_derived(chapter) if chosen is None or st.recipe in chosen] if stage != "base" else ()
    derived_todo = _derived_todo(folder, steps, p.name, seeds)
    if shard == (0, 1):
        print(f"replication of {folder.name} at preset {p.name!r}: {len(recipes)} recipe(s) x "
              f"{len(seeds)} seed(s); {len(recipes) * len(seeds) - len(todo)} recorded, {len(todo)} "
              "to train", flush=True)
        if steps:
            print(f"derived records ({', '.join(s.name for s in steps)}) x {len(seeds)} seed(s): "
                  f"{len(steps) * len(seeds) - len(derived_todo)} recorded, {len(derived_todo)} to compute",
                  flush=True)
    todo, derived_todo = _my_share(todo, derived_todo, k, n)
    if not todo and not derived_todo:
        return []
    head = _git("rev-parse", "HEAD")
    base = [sys.executable, "-m", "poselab", "replicate", str(chapter), "--preset", p.name,
            "--seeds", *map(str, seeds), "--device", device, "--data", data, "--out", str(folder.parent),
            "--in-place"] + (["--stage", stage] if stage != "all" else []) \
        + (["--recipes", *sorted(chosen)] if chosen is not None else [])
    before = set(folder.glob("*.json")) if folder.is_dir() else set()
    if worktree and head:
        if _git("status", "--porcelain", "--", "poselab"):
            print(f"note: uncommitted changes in poselab/ are not part of the replication; it trains "
                  f"commit {head[:10]}", flush=True)
        tree = _worktree(head)
        # the worktree trains into this checkout's run cache (the key holds the training code's
        # digest, so a run of other code is never reused): a later commit with the same training
        # code, or a derived step, finds the models instead of training them again
        env = {**os.environ, "PYTHONPATH": str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "POSELAB_CACHE_DIR": str(cache_root().resolve())}
        rc = subprocess.run(base + (["--jobs", str(jobs)] if jobs else []), cwd=tree, env=env).returncode
        return _finish(folder, before, rc, str(tree))
    jobs = min(int(jobs or 1), max(len(todo), len(derived_todo)))
    if jobs > 1:
        on_cpu = device in ("auto", "cpu") and not torch.cuda.is_available()
        rc = 0
        # base runs first, then the derived records (which read the base runs from the run cache)
        for part, count in (("base", len(todo)), ("derived", len(derived_todo))):
            if count and rc == 0:
                width = min(jobs, count)
                env = dict(os.environ)
                if on_cpu or part == "derived":
                    env["OMP_NUM_THREADS"] = "1"  # side by side on a CPU (derived steps compute there): one thread each
                # the workers share out this snapshot of the work, not what each finds missing when it
                # starts (a sibling may have recorded some by then, and a fresh count would shift the shares)
                env[_PLAN_ENV] = json.dumps([[x.name, s] for x, s in (todo if part == "base" else derived_todo)])
                procs = [subprocess.Popen(base + ["--shard", f"{i}/{width}", "--stage", part], env=env)
                         for i in range(width)]
                rc = max(proc.wait() for proc in procs)
        return _finish(folder, before, rc, "the worker processes")
    started = provenance()  # the commit these runs train, taken before any of them starts
    command = "poselab replicate " + shlex.join([str(chapter), "--preset", p.name, "--seeds",
                                                 *map(str, seeds)])
    written: list[Path] = []
    for recipe, seed in todo:  # every finished run is recorded at once
        t0, c0 = time.perf_counter(), time.process_time()
        res = compare([recipe], seeds=[seed], data=data, preset=p, device=device, jobs=1).results[0]
        written.append(_write_run(folder, res, started=started, wall=time.perf_counter() - t0,
                                  cpu=time.process_time() - c0, command=command))
        print(f"recorded {written[-1]}", flush=True)
    if derived_todo:
        # every base run of the seeds is recorded (or cached) by now; derived records follow
        written += _derive(folder, derived_todo, p, device=device, data=data, started=started,
                           command=command)
    return written


_PLAN_ENV = "POSELAB_REPLICATE_PLAN"


def _my_share(todo: list, derived_todo: list, k: int, n: int) -> tuple[list, list]:
    """Worker ``k`` of ``n``'s share of the work: every n-th item from the k-th of the snapshot the
    parent process took (``POSELAB_REPLICATE_PLAN``; without it, of ``todo`` as found now), kept
    only while still missing. Sharing out a fixed snapshot means a worker that starts after a
    sibling has recorded something neither skips nor repeats an item."""
    plan = os.environ.get(_PLAN_ENV)
    if n == 1 or not plan:
        return todo[k::n], derived_todo[k::n]
    try:
        mine = {(str(name), int(seed)) for name, seed in json.loads(plan)[k::n]}
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{_PLAN_ENV} is not a list of [name, seed] pairs ({exc})") from None
    return ([(r, s) for r, s in todo if (r.name, s) in mine],
            [(st, s) for st, s in derived_todo if (st.name, s) in mine])


def _finish(folder: Path, before: set, rc: int, where: str) -> list[Path]:
    written = sorted(set(folder.glob("*.json")) - before) if folder.is_dir() else []
    if rc != 0:
        raise RuntimeError(f"the replication in {where} stopped (exit {rc}); {len(written)} run(s) were "
                           "recorded: run the command again to resume")
    return written


def recorded_verdict(chapter: str, judge, *, preset: str = "full",
                     root: str | os.PathLike | None = None) -> dict[str, Any]:
    """A claim judged on the chapter's recorded replication: ``judge(table) -> Verdict`` (the
    same function the chapter applies to its live run) on :func:`recorded_table`.

    Returns ``{recorded: True, verdict, reason, preset, seeds, runs, commits, current}`` —
    ``current`` False when a record's source digest differs from the code now — or
    ``{recorded: False, verdict: "—", reason}`` saying how to make the record (never invented).
    A judge that fails on the records (e.g. a recipe not recorded yet) is reported the same way.
    """
    stem = replication_folder(chapter, root).name
    recs = _chapter_runs(chapter, preset, root)  # read once: the table and the provenance
    table = _runs_table(recs)
    how = f"poselab replicate {stem} --preset {preset}"
    return _judged(judge, table, recs, preset, how)


# ----------------------------------------------------------------------------- pairing records by seed

@dataclass(frozen=True)
class SeedPairs:
    """What :func:`pair_by_seed` found.

    Attributes:
        seeds: the seeds every side recorded, ascending: the pairs a judge compares.
        sides: ``{side: [its record of each seed in seeds]}`` (seed order, sides in the order asked).
        alone: ``{side: [the seeds it recorded that another side lacks]}`` (ascending; ``[]`` when none):
            left out of the pairs, for the judge to name.
    """
    seeds: list[int]
    sides: dict[str, list]
    alone: dict[str, list[int]]

    @property
    def unpaired(self) -> list[int]:
        """Every seed left out of the pairs (recorded for some side but not all), ascending."""
        return sorted({s for seeds in self.alone.values() for s in seeds})


def _record_seed(record) -> Any:
    return record["seed"]


def _seed_or_unknown(seed_of, record):
    """The seed a message names: ``seed_of(record)``, or "?" for a record too broken to say."""
    try:
        return seed_of(record)
    except (KeyError, IndexError, TypeError, AttributeError):
        return "?"


def _whole_seed(side: str, what: str, seed_of, record) -> int:
    """``seed_of(record)`` as an int; no seed, or True, 2.5, NaN, "3", None, raise ValueError naming the side."""
    try:
        raw = seed_of(record)
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError(f"a {side} {what} has no seed: it cannot be paired by seed") from None
    if isinstance(raw, numbers.Real) and not isinstance(raw, bool) and float(raw).is_integer():  # not NaN, inf
        return int(raw)
    raise ValueError(f"a {side} {what} has seed {raw!r}, not a whole number: it cannot be paired by seed")


def _getter(entry) -> tuple[str, Callable[[Any], Any]]:
    if isinstance(entry, str):
        return entry, lambda record: record[entry]
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str) and callable(entry[1]):
        return entry
    raise TypeError(f"same must hold keys or (label, getter) pairs, got {entry!r}")


def _shown(value, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def pair_by_seed(records: Mapping[str, Sequence[Any]], sides: Sequence[str], *,
                 check: Callable[[Any], str | None] | None = None, side_of: Callable[[Any], Any] | None = None,
                 seed_of: Callable[[Any], Any] = _record_seed, same: Sequence = (), what: str = "record",
                 same_among_all: bool = False) -> SeedPairs:
    """Pair the per-seed records of several ``sides`` (recipes, kinds) by seed, refusing what
    cannot be paired: the check every recorded replication reader makes before it judges.

    ``records``: ``{side: [record per seed, any order]}`` (other keys are ignored). In order, each
    failure raising the error it names:

    - ``records`` not a mapping: TypeError; a side with no record: KeyError naming it (a reader
      with its own wording checks this first);
    - ``check(record)`` returns a phrase saying what is wrong with one record (``None``: fine):
      ValueError "the <side> <what> of seed <seed> <phrase>" (seed "?" when unreadable);
    - a seed that is not a whole number (``seed_of``, default ``record["seed"]``): ValueError;
    - ``side_of(record)`` names another side than the one it is filed under: ValueError
      "the <side> <what> of seed <seed> holds <other>'s, given as '<side>'";
    - one side holds a seed twice: ValueError "... a repeated seed is not another replicate";
    - no seed recorded for every side: ValueError naming each side's seeds;
    - a paired record differs from the first side's record of the first common seed in one of
      ``same`` (keys, or ``(label, getter)`` pairs for values nested deeper; compared with ``!=``,
      so plain JSON values): ValueError naming the odd sides and seeds, the key and both values
      ("not one experiment"). ``same_among_all``: hold the unpaired records to it too.

    ``what`` is the records' noun in messages (plural: + "s"). ``check`` should make sure of what
    ``side_of``, ``seed_of`` and ``same`` read. Returns :class:`SeedPairs`: the common seeds, each
    side's records of them in seed order, and the seeds recorded for some sides only.

    Example:
        >>> pairs = pair_by_seed({"a": [{"seed": 1}, {"seed": 0}], "b": [{"seed": 0}, {"seed": 2}]}, ["a", "b"])
        >>> pairs.seeds, pairs.alone, pairs.unpaired
        ([0], {'a': [1], 'b': [2]}, [1, 2])
    """
    if not isinstance(records, Mapping):
        raise TypeError(f"records must be {{side: [record per seed]}}, got {type(records).__name__}")
    sides = [sides] if isinstance(sides, str) else list(sides)
    if not sides or not all(isinstance(n, str) for n in sides) or len(set(sides)) != len(sides):
        raise ValueError(f"sides must be distinct names, got {sides!r}")
    same = [_getter(entry) for entry in same]
    by_seed: dict[str, dict[int, Any]] = {}
    for side in sides:
        recs = records.get(side)
        if not recs:
            raise KeyError(f"no {what} of {side!r} (have {sorted(k for k, v in records.items() if v) or 'none'})")
        if isinstance(recs, (str, bytes, Mapping)) or not isinstance(recs, Sequence):
            raise TypeError(f"the {what}s of {side!r} must be a list, got {type(recs).__name__}")
        by_seed[side] = {}
        for record in recs:
            problem = check(record) if check is not None else None
            if problem:
                raise ValueError(f"the {side} {what} of seed {_seed_or_unknown(seed_of, record)} {problem}")
            seed = _whole_seed(side, what, seed_of, record)
            if side_of is not None and side_of(record) != side:
                raise ValueError(f"the {side} {what} of seed {seed} holds {side_of(record)}'s, given as {side!r}")
            if seed in by_seed[side]:
                raise ValueError(f"{side} has two {what}s of seed {seed}: a repeated seed is not another replicate")
            by_seed[side][seed] = record
    seeds = sorted(set.intersection(*(set(per) for per in by_seed.values())))
    if not seeds:
        each = [f"{n} (seeds {sorted(by_seed[n])})" for n in sides]
        raise ValueError(f"no seed recorded for {'both' if len(sides) == 2 else 'all of'} "
                         f"{', '.join(each[:-1])} and {each[-1]}")
    first, ref = sides[0], by_seed[sides[0]][seeds[0]]
    pool = [(n, s, r) for n in sides for s, r in sorted(by_seed[n].items()) if same_among_all or s in seeds]
    for label, get in same:
        want = get(ref)
        odd = [(n, s, get(r)) for n, s, r in pool if get(r) != want]
        if odd:
            names = ", ".join(f"{n} seed {s}" for n, s, _ in odd)
            got = ", ".join(sorted({_shown(v) for *_, v in odd}))
            raise ValueError(f"{names} differ{'s' if len(odd) == 1 else ''} from {first} seed {seeds[0]} in {label} "
                             f"({got} against {_shown(want)}): not one experiment")
    return SeedPairs(seeds=seeds, sides={n: [by_seed[n][s] for s in seeds] for n in sides},
                     alone={n: sorted(set(by_seed[n]) - set(seeds)) for n in sides})
