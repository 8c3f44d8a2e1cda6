"""``poselab train``, ``poselab recipes`` and ``poselab results`` (hooked into :mod:`poselab.cli`).

    poselab train RECIPE [RECIPE ...] [--preset P] [--seed N ...] [--data D] [--device D]
                         [--out DIR] [--no-cache] [--record FILE] [--jobs J]
    poselab recipes
    poselab arena [--recipes R ...] [--seeds N ...] [--data D] [--preset P] [--device D] [--out DIR]
    poselab results [--recipe NAME]
    poselab results verify FILE [--seed N ...] [--tol T]
    poselab replicate CHAPTER [--preset P] [--seeds N ...] [--jobs N] [--device D] [--plan]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

__all__ = ["add_parsers", "dispatch"]

_SHOWN = ("AP", "AP50", "AP75", "AR", "EPE", "EPE_crop", "PCK@0.2", "spearman", "ranking_accuracy")


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train a recipe (poselab recipes lists them), cached")
    p.add_argument("recipe", nargs="+", help="registered recipe name(s), e.g. mse (several: one record of all)")
    p.add_argument("--preset", default="default",
                   help="fast | default | full | coco (default: default)")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds (default 0)")
    p.add_argument("--data", default="synth", help="'synth' or a COCO folder/json (default synth)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    p.add_argument("--out", default=None, help="folder for result.json (default runs/train/RECIPE-PRESET)")
    p.add_argument("--no-cache", action="store_true", help="train again even if a cached run exists")
    p.add_argument("--record", default=None, metavar="FILE",
                   help="also write a run record with provenance (e.g. results/mse_full.json)")
    p.add_argument("--force", action="store_true",
                   help="let --record overwrite an existing file that is not a poselab run record")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs trained at once in one-thread worker processes when several train "
                        "(default: as compare decides; 1: one after the other here)")
    sub.add_parser("recipes", help="list the registered recipes")
    a = sub.add_parser("arena", help="every recipe on identical data, seeds and budget: one table")
    a.add_argument("--recipes", nargs="+", default=None, help="recipe names (default: all registered)")
    a.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    a.add_argument("--data", default="synth", help="'synth' or a COCO folder/json (default synth)")
    a.add_argument("--preset", default="default", help="fast | default | full (default: default)")
    a.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    a.add_argument("--no-cache", action="store_true", help="train every recipe again")
    a.add_argument("--jobs", type=int, default=None,
                   help="runs trained at once in one-thread worker processes (default: auto, "
                        "the CPU cores; 1 trains one after the other)")
    a.add_argument("--out", default=None, help="also write arena.md and arena.json into this folder")
    r = sub.add_parser("results", help="list cached runs, or verify a recorded run: results verify FILE")
    r.add_argument("action", nargs="?", choices=["list", "verify"], default="list")
    r.add_argument("file", nargs="?", default=None, help="record to verify (results/*.json)")
    r.add_argument("--recipe", default=None, help="only runs of this recipe")
    r.add_argument("--seed", type=int, nargs="+", default=None, help="verify only these seeds")
    r.add_argument("--tol", type=float, default=1e-6, help="allowed |recorded - now| (default 1e-6)")
    rp = sub.add_parser("replicate", help="train and record, run by run, what a chapter's empirical "
                                          "claims need at a deciding scale (resumes where it stopped)")
    rp.add_argument("chapter", help="chapter number, name or file stem (e.g. 04, hdm, 04_hdm)")
    rp.add_argument("--preset", default="full", help="fast | default | full (default: full)")
    rp.add_argument("--seeds", "--seed", dest="seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                    help="seeds (default 0 1 2 3 4)")
    rp.add_argument("--jobs", type=int, default=None,
                    help="runs trained at once, each in its own process (one thread each on a CPU)")
    rp.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    rp.add_argument("--data", default="synth", help="'synth' or a COCO folder (default synth)")
    rp.add_argument("--out", default=None,
                    help="records root (default results/replications of this checkout)")
    rp.add_argument("--plan", action="store_true",
                    help="list the runs, which are recorded, and the expected CPU time; train nothing")
    rp.add_argument("--in-place", action="store_true",
                    help="train the code imported here instead of a clean worktree of HEAD")
    rp.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)


def _error(message: str):
    from poselab.errors import CliError
    return CliError(message)


def _metrics_lines(result) -> list[str]:
    lines = [f"{'set':20s}" + "".join(f"{k:>17s}" for k in _SHOWN)]
    for name, m in result.metrics.items():
        lines.append(f"{name:20s}" + "".join(
            f"{m[k]:17.4f}" if isinstance(m.get(k), float) else f"{'—':>17s}" for k in _SHOWN))
    return lines


def _train(args) -> int:
    from . import compare, get_preset, get_recipe, run_recipe
    from .records import write_record
    from .runner import _jsonable
    try:
        recipes = [get_recipe(name) for name in dict.fromkeys(args.recipe)]
        args.seed = list(dict.fromkeys(args.seed))  # a repeated seed trains once
        preset = get_preset(args.preset)
    except KeyError as exc:
        raise _error(exc.args[0]) from None
    if any(s < 0 for s in args.seed):
        raise _error(f"--seed takes integers >= 0, got {args.seed}")
    if args.jobs is not None and args.jobs < 1:
        raise _error(f"--jobs takes an integer >= 1, got {args.jobs}")
    names = "+".join(r.name for r in recipes)
    out = _out_folder(args.out or f"runs/train/{names}-{preset.name}")
    if args.record:
        from .records import check_record_path
        try:
            check_record_path(args.record, force=args.force)  # before training, not after
        except ValueError as exc:
            raise _error(str(exc)) from None
    from .records import provenance
    started = provenance()  # the commit the runs train with, before any code can change
    t0 = time.perf_counter()
    try:
        if len(recipes) == 1 and len(args.seed) == 1:
            results = [run_recipe(recipes[0], data=args.data, preset=preset, seed=args.seed[0],
                                  device=args.device, cache=not args.no_cache)]
        else:
            results = compare(recipes, seeds=args.seed, data=args.data, preset=preset,
                              device=args.device, cache=not args.no_cache, jobs=args.jobs).results
    except (ValueError, FileNotFoundError) as exc:
        raise _error(str(exc)) from None
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
            payload = {"recipe": recipes[0].name, "preset": preset.name, "seeds": args.seed,
                       "metrics": means(results),
                       "metrics_are": "means over seeds; per-seed results in seed<N>/result.json"}
        else:
            payload = {"recipes": [r.name for r in recipes], "preset": preset.name, "seeds": args.seed,
                       "metrics": {r.name: means([x for x in results if x.recipe == r.name]) for r in recipes},
                       "metrics_are": "per recipe, means over seeds; per-run results in "
                                      "<recipe>/seed<N>/result.json"}
        payload.update({"train_seconds": sum(r.train_seconds for r in results),
                        "runs": [_jsonable(r.to_dict()) for r in results]})
    (out / "result.json").write_text(json.dumps(payload, indent=1))
    print(f"wrote {out / 'result.json'}")
    if args.record:
        command = "poselab " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        path = write_record(args.record, results, command, time.perf_counter() - t0, started,
                            force=args.force)
        print(f"wrote record {path}")
    return 0


def _out_folder(path) -> Path:
    """``--out`` created and shown writable before any training."""
    from poselab.paths import writable_folder
    try:
        return writable_folder(path, "--out")
    except ValueError as exc:
        raise _error(str(exc)) from None


def _recipes() -> int:
    from . import RECIPES
    print(f"{'recipe':22s} {'head':9s} {'codec':12s} {'loss':18s} paper")
    for name, r in sorted(RECIPES.items()):
        print(f"{name:22s} {r.head:9s} {r.codec:12s} {r.loss:18s} {r.paper}")
    return 0


def _results(args) -> int:
    from .cache import cache_root, list_entries
    from .records import load_record, record_status, verify_record
    if args.action == "verify":
        if not args.file:
            raise _error("results verify needs a record file, e.g. poselab results verify results/mse_full.json")
        try:
            rec = load_record(args.file)
            print(f"record {args.file}: {record_status(rec)}")
            rows = verify_record(args.file, seeds=args.seed, tol=args.tol)
        except (ValueError, FileNotFoundError) as exc:
            raise _error(str(exc)) from None
        for r in rows:
            print(f"{r['recipe']:14s} seed {r['seed']} {r['set']:18s} {r['metric']:9s} "
                  f"recorded {r['recorded']} now {r['now']} |diff| {r['abs_diff']:.2e} "
                  f"{'ok' if r['match'] else 'DIFFERS'}")
        return 0 if all(r["match"] for r in rows) else 1
    if args.file:
        raise _error("results lists cached runs; to check a record use: poselab results verify FILE")
    entries = [e for e in list_entries() if args.recipe in (None, e.get("recipe"))]
    if not entries:
        print(f"no cached runs under {cache_root()}")
        return 0
    print(f"{'recipe':16s} {'preset':8s} {'seed':>4s} {'AP':>7s} {'train s':>8s} {'created':26s} path")
    for e in entries:
        metrics = e.get("metrics")
        first = next(iter(metrics.values()), {}) if isinstance(metrics, dict) else {}
        ap = first.get("AP") if isinstance(first, dict) else None
        seed, secs = e.get("seed"), e.get("train_seconds")
        print(f"{str(e.get('recipe', '?')):16s} {str(e.get('preset', '?')):8s} "
              f"{seed if isinstance(seed, int) else '?':>4} "
              f"{format(ap, '7.3f') if isinstance(ap, (int, float)) else '—':>7} "
              f"{format(secs, '8.1f') if isinstance(secs, (int, float)) else '—':>8} "
              f"{str(e.get('created', '')):26s} {e['path']}")
    return 0


def _arena(args) -> int:
    from .arena import run_arena
    from .runner import _jsonable
    out = _out_folder(args.out) if args.out else None  # before training, not after
    try:
        arena = run_arena(args.recipes, seeds=args.seeds, data=args.data, preset=args.preset,
                          device=args.device, cache=not args.no_cache, jobs=args.jobs)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise _error(exc.args[0] if exc.args else str(exc)) from None
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
    return 0


def dispatch(args: argparse.Namespace) -> int | None:
    """Run the command if it is one of ours; None otherwise."""
    if args.command == "train":
        return _train(args)
    if args.command == "recipes":
        return _recipes()
    if args.command == "arena":
        return _arena(args)
    if args.command == "results":
        return _results(args)
    if args.command == "replicate":
        return _replicate(args)
    return None


def _replicate(args) -> int:
    from . import replicate as rep
    try:
        k, n = (int(v) for v in str(args.shard).split("/"))
    except ValueError:
        raise _error(f"--shard must be K/N, got {args.shard!r}") from None
    if any(s < 0 for s in args.seeds):
        raise _error(f"--seeds must be non-negative, got {args.seeds}")
    if args.jobs is not None and args.jobs < 1:
        raise _error(f"--jobs must be >= 1, got {args.jobs}")
    try:
        from .presets import get_preset
        get_preset(args.preset)
        if args.plan:
            rows = rep.plan(args.chapter, preset=args.preset, seeds=args.seeds, root=args.out)
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
            return 0
        written = rep.replicate(args.chapter, preset=args.preset, seeds=args.seeds, jobs=args.jobs,
                                device=args.device, data=args.data, root=args.out,
                                worktree=not args.in_place, shard=(k, n))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise _error(str(exc).strip("'\"")) from None
    if (k, n) == (0, 1):
        print(f"{len(written)} run(s) recorded now")
    return 0
