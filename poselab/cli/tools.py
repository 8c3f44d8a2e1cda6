"""``poselab index``, ``poselab bench`` and ``poselab doctor``: the paper index, the benchmark
suite, and what this machine offers (device, versions, data folders, cache)."""
from __future__ import annotations

import argparse

from poselab import bench, doctor, index

from ._common import FAILED, OK, Command, CliError, seconds

__all__ = ["COMMANDS"]


def _add_index(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group()
    how.add_argument("--write-readme", action="store_true", help="refresh the README's copy")
    how.add_argument("--check", action="store_true", help="exit 1 if the README's copy is stale")


def _index(args: argparse.Namespace) -> int:
    if args.check:
        current = index.update_readme(check=True)
        print("README index is current" if current else
              "README index is stale: run poselab index --write-readme")
        return OK if current else FAILED
    if args.write_readme:
        index.update_readme()
        print("README index updated")
        return OK
    print(index.index_markdown())
    return OK


def _add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes (each script's own)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="script stems")
    p.add_argument("--out", default=None, help="results file (default benchmarks/results.md)")
    p.add_argument("--timeout", type=seconds, default=None, help="seconds per script")


def _bench(args: argparse.Namespace) -> int:
    try:
        return bench.run_suite(out=args.out, quick=args.quick, only=args.only, timeout=args.timeout)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _add_doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="device to report on (default auto)")


def _doctor(args: argparse.Namespace) -> int:
    try:
        return doctor.main(args.device)
    except ValueError as exc:
        raise CliError(str(exc)) from None


COMMANDS = {
    "index": Command("print the paper -> equation -> function -> chapter index", _add_index, _index),
    "bench": Command("run benchmarks/*.py and write benchmarks/results.md", _add_bench, _bench),
    "doctor": Command("print the device, torch/CUDA versions, threads, autocast choice, data "
                      "folders and cache", _add_doctor, _doctor),
}
