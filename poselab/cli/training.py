"""``poselab train``, ``recipes``, ``arena``, ``results`` and ``replicate``: the experiment
engine (:mod:`poselab.experiments`) driven from the command line. The engine never imports this
module."""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from poselab.paths import writable_folder

from ._common import FAILED, OK, Command, CliError, add_jobs, add_seeds, non_negative

# poselab.experiments loads torch (about 2 s): every handler imports what it needs from it
# inside its body, each marked "deferred", so `poselab --help` does not pay for torch.

__all__ = ["COMMANDS"]

_SHOWN = ("AP", "AP50", "AP75", "AR", "EPE", "EPE_crop", "PCK@0.2", "spearman", "ranking_accuracy")


def _metrics_lines(result) -> list[str]:
    lines = [f"{'set':20s}" + "".join(f"{k:>17s}" for k in _SHOWN)]
    for name, m in result.metrics.items():
        lines.append(f"{name:20s}" + "".join(
            f"{m[k]:17.4f}" if isinstance(m.get(k), float) else f"{'—':>17s}" for k in _SHOWN))
    return lines


def _train(args) -> int:
    from poselab.experiments import compare, get_preset, get_recipe, run_recipe  # deferred: torch
    from poselab.experiments.records import (check_record_path, provenance,  # deferred: torch
                                             write_record)
    from poselab.experiments.runner import _jsonable  # deferred: torch
    seeds = list(dict.fromkeys(args.seeds))  # a repeated seed trains once
    try:
        recipes = [get_recipe(name) for name in dict.fromkeys(args.recipe)]
        preset = get_preset(args.preset)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    names = "+".join(r.name for r in recipes)
    out = _out_folder(args.out or f"runs/train/{names}-{preset.name}")
    if args.record:
        try:
            check_record_path(args.record, force=args.force)  # before training, not after
        except ValueError as exc:
            raise CliError(str(exc)) from None
    started = provenance()  # the commit the runs train with, before any code can change
    t0 = time.perf_counter()
    try:
        if len(recipes) == 1 and len(seeds) == 1:
            results = [run_recipe(recipes[0], data=args.data, preset=preset, seed=seeds[0],
                                  device=args.device, cache=not args.no_cache)]
        else:
            results = compare(recipes, seeds=seeds, data=args.data, preset=preset,
                              device=args.device, cache=not args.no_cache, jobs=args.jobs).results
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    for res in results:
        how = "loaded from the cache" if res.cached else f"trained {res.train_seconds:.1f} s"
        print(f"{res.recipe} · preset {preset.name} · seed {res.seed}: {how} "
              f"({res.seconds_per_step * 1000:.0f} ms/step); weights {res.weights_path}")
        print("\n".join(_metrics_lines(res)))
    out.mkdir(parents=True, exist_ok=True)
    if len(results) == 1:
        payload = _jsonable(results[0].to_dict())
    else:
        for res in results:
            folder = out / f"seed{res.seed}" if len(recipes) == 1 else out / res.recipe / f"seed{res.seed}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "result.json").write_text(json.dumps(_jsonable(res.to_dict()), indent=1))
        sets = list(results[0].metrics)

        def mean(values):  # None where a run has no value (e.g. Spearman of constant scores)
            ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            return sum(values) / len(values) if ok else None

        def means(runs):
            return {s: {k: mean([r.metrics.get(s, {}).get(k) for r in runs]) for k in runs[0].metrics[s]}
                    for s in sets}
        if len(recipes) == 1:
            payload = {"recipe": recipes[0].name, "preset": preset.name, "seeds": seeds,
                       "metrics": means(results),
                       "metrics_are": "means over seeds; per-seed results in seed<N>/result.json"}
        else:
            payload = {"recipes": [r.name for r in recipes], "preset": preset.name, "seeds": seeds,
                       "metrics": {r.name: means([x for x in results if x.recipe == r.name]) for r in recipes},
                       "metrics_are": "per recipe, means over seeds; per-run results in "
                                      "<recipe>/seed<N>/result.json"}
        payload.update({"train_seconds": sum(r.train_seconds for r in results),
                        "runs": [_jsonable(r.to_dict()) for r in results]})
    (out / "result.json").write_text(json.dumps(payload, indent=1))
    print(f"wrote {out / 'result.json'}")
    if args.record:
        command = "poselab " + " ".join(shlex.quote(a) for a in args.argv)
        path = write_record(args.record, results, command, time.perf_counter() - t0, started,
                            force=args.force)
        print(f"wrote record {path}")
    return OK


def _out_folder(path) -> Path:
    """``--out`` created and shown writable before any training."""
    try:
        return writable_folder(path, "--out")
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _recipes(args: argparse.Namespace) -> int:
    from poselab.experiments import RECIPES  # deferred: torch
    print(f"{'recipe':22s} {'head':9s} {'codec':12s} {'loss':18s} paper")
    for name, r in sorted(RECIPES.items()):
        print(f"{name:22s} {r.head:9s} {r.codec:12s} {r.loss:18s} {r.paper}")
    return OK


def _results(args) -> int:
    from poselab.experiments.cache import cache_root, list_entries  # deferred: torch
    from poselab.experiments.records import (load_record, record_status,  # deferred: torch
                                             verify_record)
    from poselab.experiments.verdicts import config_precision  # deferred: torch
    if args.action == "verify":
        if not args.file:
            raise CliError("results verify needs a record file, e.g. poselab results verify results/mse_full.json")
        try:
            rec = load_record(args.file)
            print(f"record {args.file}: {record_status(rec)}")
            rows = verify_record(args.file, seeds=args.seeds, tol=args.tol)
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(str(exc)) from None
        for r in rows:
            print(f"{r['recipe']:14s} seed {r['seed']} {r['set']:18s} {r['metric']:9s} "
                  f"recorded {r['recorded']} now {r['now']} |diff| {r['abs_diff']:.2e} "
                  f"{'ok' if r['match'] else 'DIFFERS'}")
        return OK if all(r["match"] for r in rows) else FAILED
    if args.file:
        raise CliError("results lists cached runs; to check a record use: poselab results verify FILE")
    entries = [e for e in list_entries() if args.recipe in (None, e.get("recipe"))]
    if not entries:
        print(f"no cached runs under {cache_root()}")
        return OK
    print(f"{'recipe':16s} {'preset':8s} {'seed':>4s} {'AP':>7s} {'train s':>8s} {'forward':9s} {'created':26s} path")
    for e in entries:
        config = e.get("config")  # the forward precision: a run's seeds pair only within one
        forward = config_precision(config) if isinstance(config, dict) or config is None else "?"
        metrics = e.get("metrics")
        first = next(iter(metrics.values()), {}) if isinstance(metrics, dict) else {}
        ap = first.get("AP") if isinstance(first, dict) else None
        seed, secs = e.get("seed"), e.get("train_seconds")
        print(f"{str(e.get('recipe', '?')):16s} {str(e.get('preset', '?')):8s} "
              f"{seed if isinstance(seed, int) else '?':>4} "
              f"{format(ap, '7.3f') if isinstance(ap, (int, float)) else '—':>7} "
              f"{format(secs, '8.1f') if isinstance(secs, (int, float)) else '—':>8} "
              f"{forward:9s} {str(e.get('created', '')):26s} {e['path']}")
    return OK


def _arena(args) -> int:
    from poselab.experiments.arena import run_arena  # deferred: torch
    from poselab.experiments.runner import _jsonable  # deferred: torch
    out = _out_folder(args.out) if args.out else None  # before training, not after
    try:
        arena = run_arena(args.recipes, seeds=args.seeds, data=args.data, preset=args.preset,
                          device=args.device, cache=not args.no_cache, jobs=args.jobs)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise CliError(exc.args[0] if exc.args else str(exc)) from None
    text = arena.to_markdown()
    print(text)
    print(f"same inputs for every recipe: {arena.same_inputs}; same step budget and backbone: "
          f"{arena.same_budget}; best AP on generated data: {arena.best()}")
    if out is not None:
        (out / "arena.md").write_text(text)
        (out / "arena.json").write_text(json.dumps(
            {"same_inputs": arena.same_inputs, "same_budget": arena.same_budget,
             "runs": [_jsonable(r.to_dict()) for r in arena.table.results]}, indent=1))
        print(f"wrote {out / 'arena.md'} and arena.json")
    return OK


def _replicate(args) -> int:
    from poselab.experiments import replicate as rep  # deferred: torch
    from poselab.experiments.presets import get_preset  # deferred: torch
    k, n = args.shard
    try:
        get_preset(args.preset)
        rep.check_run_target(args.device, args.data)
        if args.plan:
            rows = rep.plan(args.chapter, preset=args.preset, seeds=args.seeds, root=args.out, recipes=args.recipes)
            total = sum(r["expected_seconds"] or 0 for r in rows if not r["recorded"])
            unknown = sum(1 for r in rows if not r["recorded"] and r["expected_seconds"] is None)
            print(f"{'recipe':24s} {'seed':>4s} {'recorded':>8s} {'steps':>7s} {'s/step':>7s} {'CPU h':>6s}")
            for r in rows:
                sps = f"{r['seconds_per_step']:.3f}" if r["seconds_per_step"] else "?"
                hours = f"{r['expected_seconds'] / 3600:.2f}" if r["expected_seconds"] else "?"
                print(f"{r['recipe']:24s} {r['seed']:>4d} {'yes' if r['recorded'] else 'no':>8s} "
                      f"{r['steps'] or '?':>7} {sps:>7s} {hours:>6s}")
            print(f"to train: {sum(not r['recorded'] for r in rows)} run(s), about {total / 3600:.1f} "
                  f"single-thread CPU hours" + (f" plus {unknown} run(s) never timed" if unknown else ""))
            print(_precision_line(args))
            return OK
        written = rep.replicate(args.chapter, preset=args.preset, seeds=args.seeds, jobs=args.jobs,
                                device=args.device, data=args.data, root=args.out,
                                worktree=not args.in_place, shard=(k, n), stage=args.stage,
                                recipes=args.recipes)
    except (KeyError, ValueError, RuntimeError, FileNotFoundError) as exc:
        # a KeyError's str() is the repr of its message (quoted): show the message itself
        raise CliError(exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)) from None
    if (k, n) == (0, 1):
        print(f"{len(written)} run(s) recorded now")
    return OK


def _precision_line(args) -> str:
    """Which forward precision this machine trains the preset in, against the records': runs
    pair by seed only within one precision."""
    from poselab.experiments import replicate as rep  # deferred: torch
    from poselab.experiments.presets import get_preset, resolve_autocast  # deferred: torch
    from poselab.train import resolve_device  # deferred: torch
    here = resolve_autocast(get_preset(args.preset).autocast, resolve_device(args.device)) or "float32"
    held = rep.recorded_precisions(args.chapter, preset=args.preset, root=args.out, recipes=args.recipes)
    counts = ", ".join(f"{p} {len(runs)}" for p, runs in held.items()) or "none"
    line = f"this machine trains preset {args.preset!r} in {here}; recorded runs by forward precision: {counts}"
    if any(p != here for p in held):
        line += (" -- a seed's two runs pair only in one precision, so here train new seeds of every "
                 "compared recipe rather than the missing seeds of some")
        # a seed with runs in another precision can never pair here: only seeds all in this one fill in
        others = {seed for p, runs in held.items() if p != here for _, seed in runs}
        mine = sorted({seed for _, seed in held.get(here, [])} - others)
        fresh = max(others | set(mine)) + 1
        line += (f"; seeds with {here} runs only: {', '.join(map(str, mine))} (fill them in for the other "
                 f"recipes), new seeds from {fresh}" if mine else f"; new seeds from {fresh}")
    return line


def _shard(text: str) -> tuple[int, int]:
    """argparse type of replicate's hidden ``--shard K/N`` (worker K of N, 0 <= K < N)."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k, n = -1, 0
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}")
    return k, n


_DEVICE_HELP = "auto | cpu | cuda | mps (default auto)"
_DATA_HELP = "'synth' or a COCO folder/json (default synth)"


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="+",
                   help="registered recipe name(s), e.g. mse (several: one record of all)")
    p.add_argument("--preset", default="default",
                   help="fast | default | full | coco (default: default)")
    add_seeds(p, [0], "one or more seeds (default 0)")
    p.add_argument("--data", default="synth", help=_DATA_HELP)
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--out", default=None,
                   help="folder for result.json (default runs/train/RECIPE-PRESET)")
    p.add_argument("--no-cache", action="store_true", help="train again even if a cached run exists")
    p.add_argument("--record", default=None, metavar="FILE",
                   help="also write a run record with provenance (e.g. results/mse_full.json)")
    p.add_argument("--force", action="store_true",
                   help="let --record overwrite an existing file that is not a poselab run record")
    add_jobs(p, "runs trained at once in one-thread worker processes when several train "
                "(default: as compare decides; 1: one after the other here)")


def _add_arena(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipes", nargs="+", default=None, help="recipe names (default: all registered)")
    add_seeds(p, [0], "seeds (default 0)")
    p.add_argument("--data", default="synth", help=_DATA_HELP)
    p.add_argument("--preset", default="default", help="fast | default | full (default: default)")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true", help="train every recipe again")
    add_jobs(p, "runs trained at once in one-thread worker processes (default: auto, the CPU "
                "cores; 1 trains one after the other)")
    p.add_argument("--out", default=None, help="also write arena.md and arena.json into this folder")


def _add_results(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "verify"], default="list")
    p.add_argument("file", nargs="?", default=None, help="record to verify (results/*.json)")
    p.add_argument("--recipe", default=None, help="only runs of this recipe")
    add_seeds(p, None, "verify only these seeds")
    p.add_argument("--tol", type=non_negative, default=1e-6,
                   help="allowed |recorded - now| (default 1e-6)")


def _add_replicate(p: argparse.ArgumentParser) -> None:
    p.add_argument("chapter", help="chapter number, name or file stem (e.g. 04, hdm, 04_hdm)")
    p.add_argument("--preset", default="full", help="fast | default | full (default: full)")
    add_seeds(p, [0, 1, 2, 3, 4], "seeds (default 0 1 2 3 4)")
    add_jobs(p, "runs trained at once, each in its own process (one thread each on a CPU)")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--data", default="synth", help="'synth' or a COCO folder (default synth)")
    p.add_argument("--out", default=None,
                   help="records root (default results/replications of this checkout)")
    p.add_argument("--recipes", nargs="+", metavar="NAME", default=None,
                   help="train only these of the chapter's recipes (e.g. the headline pair first)")
    p.add_argument("--plan", action="store_true",
                   help="list the runs, which are recorded, and the expected CPU time; train nothing")
    p.add_argument("--in-place", action="store_true",
                   help="train the code imported here instead of a clean worktree of HEAD")
    p.add_argument("--shard", type=_shard, default=(0, 1), help=argparse.SUPPRESS)
    p.add_argument("--stage", choices=("all", "base", "derived"), default="all", help=argparse.SUPPRESS)


COMMANDS = {
    "train": Command("train a recipe (poselab recipes lists them), cached", _add_train, _train),
    "recipes": Command("list the registered recipes", None, _recipes),
    "arena": Command("every recipe on identical data, seeds and budget: one table",
                     _add_arena, _arena),
    "results": Command("list cached runs, or verify a recorded run: results verify FILE",
                       _add_results, _results),
    "replicate": Command("train and record, run by run, what a chapter's empirical claims need "
                         "at a deciding scale (resumes where it stopped)",
                         _add_replicate, _replicate),
}
