"""``poselab run``, ``poselab lab`` and ``poselab list``: the chapters, executed through
papermill, opened in JupyterLab, listed.

``run`` writes the executed notebooks and a ``claims.json`` ledger (list of ``{id, chapter, kind,
value, paper, holds, verdict}``) into ``--out``; it returns 1 when a chapter fails (naming the
cell and the error) or a ``math`` claim does not hold.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from poselab.labs import labs_dir, list_chapters, resolve_chapters
from poselab.paths import writable_folder

from ._common import FAILED, OK, Command, CliError, seconds
from ._common import port as port_number

# papermill (and the numpy behind poselab.scorecard) load in 0.3-1 s: they are imported in the
# functions that execute chapters, each marked "deferred", so `poselab --help` and `list` stay fast.

__all__ = ["COMMANDS", "run", "lab", "parse_parameters", "check_parameters", "declared_parameters",
           "run_chapter", "ChapterResult"]

DEFAULT_OUT = "runs/latest"


def parse_value(text: str):
    """Parse a ``-p`` value: Python literal (True, 3, 0.5, 'x', [1, 2]) or a plain string."""
    if text in ("true", "false"):
        return text == "true"
    if text in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


_INJECTABLE = (type(None), bool, int, float, str, list, tuple, dict)


def _not_injectable(value):
    """The first part of ``value`` papermill cannot write into a chapter as Python source (sets,
    bytes, complex numbers, non-string dict keys would arrive as strings), else None."""
    if isinstance(value, (list, tuple)):
        return next((bad for v in value if (bad := _not_injectable(v)) is not None), None)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return k
            if (bad := _not_injectable(v)) is not None:
                return bad
        return None
    return None if isinstance(value, _INJECTABLE) else value


def parse_parameters(items: list[str]) -> dict:
    params = {}
    for item in items:
        if "=" not in item:
            raise CliError(f"parameter {item!r} must look like name=value")
        name, value = item.split("=", 1)
        name = name.strip()
        if not name.isidentifier():
            raise CliError(f"parameter name {name!r} is not a valid Python name")
        parsed = parse_value(value)
        bad = _not_injectable(parsed)
        if bad is not None:
            raise CliError(f"parameter {name!r}: {type(bad).__name__} values are not supported "
                           "(use numbers, strings, True/False/None, lists, tuples or dicts with "
                           "string keys)")
        params[name] = parsed
    return params


def _tuple_translator():
    """papermill's Python translator writes tuples as strings ("(128, 96)"); this subclass writes
    them as tuples (also inside lists and dicts), so ``-p input_size=(128,96)`` arrives as one."""
    from papermill.translators import PythonTranslator  # deferred: heavy

    class TupleTranslator(PythonTranslator):
        @classmethod
        def translate(cls, val):
            if isinstance(val, tuple):
                items = ", ".join(cls.translate(v) for v in val)
                return f"({items},)" if len(val) == 1 else f"({items})"
            return super().translate(val)

    return TupleTranslator


def declared_parameters(notebook: Path) -> dict[str, object]:
    """Names and default values of the chapter's ``parameters`` cell (literal defaults only)."""
    try:
        nb = json.loads(notebook.read_text())
        cells = nb.get("cells", []) if isinstance(nb, dict) else None
        if not isinstance(cells, list):
            raise ValueError("no 'cells' list")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CliError(f"{notebook} is not a readable notebook ({exc}); restore it (git checkout "
                       f"{notebook.name}) or remove it from the chapters folder") from None
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            defaults = {}
            try:
                tree = ast.parse(source)
            except SyntaxError as exc:
                raise CliError(f"the parameters cell of {notebook.name} is not valid Python "
                               f"(line {exc.lineno}: {exc.msg}); fix that cell") from None
            for node in tree.body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name):
                            try:
                                defaults[target.id] = ast.literal_eval(node.value)
                            except ValueError:
                                defaults[target.id] = None
            return defaults
    raise CliError(f"{notebook.name} has no cell tagged 'parameters'")


def _type_ok(default, value, name: str = "") -> bool:
    """Does ``value`` fit a parameter whose default is ``default``? Tuples keep their length only
    where they are a size (``input_size=(H, W)``: a name ending in ``size``); lists of seeds,
    strides or counts take any non-empty length."""
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        if isinstance(default, tuple) and default and name.endswith("size") and len(value) != len(default):
            return False  # a fixed-size tuple such as input_size=(H, W)
        if default and not value:
            return False  # seeds=() would leave nothing to run
        kinds = {type(d) for d in default}
        if len(kinds) == 1 and kinds <= {int, float, bool, str}:
            return all(_type_ok(default[0], v) for v in value)
        return True
    return True


def check_parameters(notebook: Path, params: dict) -> dict:
    """Keep the parameters the chapter declares; reject unknown names and wrong types."""
    declared = declared_parameters(notebook)
    checked = {}
    for name, value in params.items():
        if name not in declared:
            raise CliError(f"{notebook.stem} has no parameter {name!r}; its parameters: "
                           + ", ".join(sorted(declared)))
        default = declared[name]
        if not _type_ok(default, value, name):
            raise CliError(f"parameter {name!r} of {notebook.stem} expects "
                           f"{type(default).__name__} (default {default!r}), got {value!r}")
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)  # -p size=[128,96] for a tuple default arrives as a tuple
        checked[name] = value
    return checked


@dataclass
class ChapterResult:
    chapter: str
    seconds: float
    ok: bool
    error: str = ""
    claims: list = field(default_factory=list)


def _execution_error(exc: Exception, output: Path) -> str:
    """Name the failing cell and the error from papermill's exception / the output notebook."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "exec_count", None)
    where = f"cell [{cell}]" if cell is not None else "a cell"
    try:
        nb = json.loads(output.read_text())
        inserted = {"injected-parameters", "papermill-error-cell-tag"}
        source_cells = [c for c in nb["cells"]
                        if not inserted & set(c.get("metadata", {}).get("tags", []))]
        for index, c in enumerate(source_cells, start=1):
            if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
                first = "".join(c["source"]).strip().splitlines()[:1]
                where = f"cell {index} of {len(source_cells)}"
                where += f" ({first[0][:60]!r})" if first else ""
                break
    except (OSError, ValueError, KeyError):
        pass
    return f"{where}: {ename}: {str(evalue).strip()[:500]}"


def run_chapter(notebook: Path, out_dir: Path, parameters: dict, fast: bool,
                timeout: float | None = None) -> ChapterResult:
    import papermill  # deferred: heavy
    from papermill.translators import papermill_translators  # deferred: heavy

    params = dict(parameters)
    declared = declared_parameters(notebook)
    if fast:
        params["fast"] = True
    if "out_dir" in declared:
        params["out_dir"] = str(out_dir.resolve())
    params = check_parameters(notebook, params)
    ledger = out_dir / "claims" / f"{notebook.stem}.json"
    if ledger.exists():
        ledger.unlink()  # our own artefact from an earlier run: stale claims must not count
    output = out_dir / notebook.name
    env_before = {k: os.environ.get(k) for k in ("POSELAB_OUT_DIR", "OMP_NUM_THREADS")}
    os.environ["POSELAB_OUT_DIR"] = str(out_dir.resolve())
    if fast and env_before["OMP_NUM_THREADS"] is None:
        # fast (CI) runs use one CPU thread in the kernel: on a 2-core machine with anything else
        # running, torch's 2-thread ops were measured 10-30x slower; 1 thread costs ~1.4x at most
        os.environ["OMP_NUM_THREADS"] = "1"
    start = time.perf_counter()
    ok, error = True, ""
    papermill_translators.register("python", _tuple_translator())
    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters=params, kernel_name="python3",
            cwd=str(notebook.parent), progress_bar=False, log_output=False,
            execution_timeout=_cell_timeout(timeout))
    except Exception as exc:  # papermill raises PapermillExecutionError and kernel errors
        ok, error = False, _execution_error(exc, output)
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.perf_counter() - start
    claims = []
    if ledger.exists():
        try:
            claims = json.loads(ledger.read_text())
            if not isinstance(claims, list):
                raise ValueError("not a list of records")
        except ValueError as exc:
            ok, claims = False, []
            error = (error + "; " if error else "") + f"its claims ledger {ledger} is unreadable ({exc})"
        claims = [c for c in claims if _is_claim(c)]
    return ChapterResult(notebook.stem, seconds, ok, error, claims)


def _is_claim(record) -> bool:
    """A ledger record as :func:`poselab.claims.record` writes it (stray entries are skipped)."""
    return (isinstance(record, dict) and isinstance(record.get("id"), str)
            and isinstance(record.get("chapter"), str) and record.get("kind") in ("math", "empirical")
            and isinstance(record.get("holds"), bool) and "verdict" in record)


def _cell_timeout(timeout) -> int | None:
    """Seconds per cell as the int nbclient needs (0.5 → 1); None = no limit."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            math.isfinite(timeout) and timeout > 0):
        raise CliError(f"--timeout must be a positive number of seconds, got {timeout!r}")
    return int(math.ceil(timeout))


def run(names: list[str], *, fast: bool = False, out: str | Path = DEFAULT_OUT,
        parameters: dict | None = None, timeout: float | None = None,
        stream=None) -> int:
    """Execute chapters; write ``out/claims.json``; return the exit code."""
    stream = sys.stdout if stream is None else stream
    chapters = resolve_chapters(names)
    if not chapters:
        raise CliError(f"no chapters found in {labs_dir()}")
    parameters = parameters or {}
    for notebook in chapters:  # reject bad parameters before running anything
        check_parameters(notebook, {k: v for k, v in parameters.items()
                                    if k in declared_parameters(notebook)})
    unknown = [k for k in parameters if not any(k in declared_parameters(nb) for nb in chapters)]
    if unknown:
        raise CliError(f"no selected chapter has parameter(s) {', '.join(unknown)}")
    _cell_timeout(timeout)
    try:
        out_dir = writable_folder(out, "--out")  # the executed notebooks and claims.json
    except ValueError as exc:
        raise CliError(str(exc)) from None
    results = []
    for notebook in chapters:
        mine = {k: v for k, v in parameters.items() if k in declared_parameters(notebook)}
        print(f"running {notebook.stem}{' (fast)' if fast else ''} ...", file=stream, flush=True)
        result = run_chapter(notebook, out_dir, mine, fast, timeout)
        results.append(result)
        status = "ok" if result.ok else "FAILED"
        print(f"  {status} in {result.seconds:.1f} s, {len(result.claims)} claims", file=stream,
              flush=True)
        if not result.ok:
            print(f"  {notebook.stem}: {result.error}", file=stream, flush=True)
    # aggregate ledger: chapters of this run replace their earlier records, others are kept
    aggregate_path = out_dir / "claims.json"
    ran = {r.chapter for r in results}
    aggregate = []
    if aggregate_path.exists():
        try:
            earlier = json.loads(aggregate_path.read_text())
            if not isinstance(earlier, list):
                raise ValueError("not a list of claim records")
        except (ValueError, UnicodeDecodeError) as exc:
            kept = aggregate_path.with_name("claims.json.unreadable")
            aggregate_path.replace(kept)
            print(f"warning: {aggregate_path} was unreadable ({exc}); moved it to {kept} and "
                  "started a new ledger", file=stream)
            earlier = []
        stray = [c for c in earlier if not _is_claim(c)]
        if stray:
            print(f"warning: skipped {len(stray)} malformed record(s) in {aggregate_path} (e.g. "
                  f"{stray[0]!r:.80}); the other chapters' claims are kept", file=stream)
        aggregate = [c for c in earlier if _is_claim(c) and c["chapter"] not in ran]
    for r in results:
        aggregate.extend(r.claims)
    aggregate_path.write_text(json.dumps(aggregate, indent=2))
    (out_dir / "timings.json").write_text(json.dumps(
        {r.chapter: round(r.seconds, 2) for r in results}, indent=2))
    failed_math = [c for r in results for c in r.claims if c["kind"] == "math" and not c["holds"]]
    print("\nclaims:", file=stream)
    for r in results:
        for c in r.claims:
            print(f"  {c['id']:50s} {c['kind']:9s} {c['verdict']}", file=stream)
    code = OK
    if failed_math:
        print("math claims that do not hold: " + ", ".join(c["id"] for c in failed_math), file=stream)
        code = FAILED
    if any(not r.ok for r in results):
        print("failed chapters: " + ", ".join(r.chapter for r in results if not r.ok), file=stream)
        code = FAILED
    from poselab import scorecard  # deferred: numpy
    card = scorecard.summary(aggregate)
    md, _ = scorecard.write_scorecard(aggregate, out_dir)
    print(f"scorecard: {card['claims']} claims; " + "; ".join(
        f"{paper} {n}" for paper, n in card["per_paper"].items()) + f" -> {md}", file=stream)
    print(f"executed notebooks and claims.json in {out_dir}", file=stream)
    return code


def lab(port: int | None = None, no_browser: bool = False, extra: list[str] | None = None) -> int:
    folder = labs_dir()
    if not folder.is_dir():
        raise CliError(f"no chapters folder at {folder}")
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}"]
    if port:
        cmd.append(f"--ServerApp.port={port}")
    if no_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI machines run as root
    cmd.extend(extra or [])
    sys.stdout.flush()
    if os.name == "posix":  # become JupyterLab: signals (Ctrl-C, terminate) reach the server itself
        os.execv(cmd[0], cmd)
    return subprocess.call(cmd)




def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("chapters", nargs="*", help="numbers or names; all when omitted")
    p.add_argument("--all", action="store_true", help="every chapter (the same as naming none)")
    p.add_argument("--fast", action="store_true", help="CI mode: fast=True (≤ 60 s a chapter)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="chapter parameter, e.g. -p seed=1 -p data=synth")
    p.add_argument("--timeout", type=seconds, default=None,
                   help="seconds per cell (rounded up to whole seconds)")


def _run(args: argparse.Namespace) -> int:
    if args.all and args.chapters:
        raise CliError("give chapter names or --all, not both")
    return run(args.chapters, fast=args.fast, out=args.out,
               parameters=parse_parameters(args.parameter), timeout=args.timeout)


def _add_lab(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=port_number, default=None, help="1-65535 (default: Jupyter's)")
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("jupyter_args", nargs=argparse.REMAINDER,
                   help="passed to jupyter lab, e.g. -- --ServerApp.token=abc")


def _lab(args: argparse.Namespace) -> int:
    return lab(args.port, args.no_browser, [a for a in args.jupyter_args if a != "--"])


def _list(args: argparse.Namespace) -> int:
    for path in list_chapters():
        print(path.stem)
    return OK


COMMANDS = {
    "run": Command("execute chapters through papermill", _add_run, _run),
    "lab": Command("open JupyterLab on the chapters", _add_lab, _lab),
    "list": Command("list chapters", None, _list),
}
