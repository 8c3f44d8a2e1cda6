"""Build the Binder environment as repo2docker would, in a fresh virtual environment, and run a
chapter's default code path in it under Binder's memory budget (issue 31).

Steps (each printed with its time; the first failure stops the run with the end of its output):

1. a clean copy of the checkout's HEAD (``git archive``: what a student's Binder clones — commit
   first), in a temporary folder;
2. a fresh venv with the Python of ``binder/runtime.txt`` if this interpreter matches it (else a
   warning: repo2docker would use that version);
3. ``pip install -r binder/requirements.txt`` in one go, as repo2docker does. One deviation,
   unless ``--torch-wheel none``: where pip's ``find-links`` hold a CPU torch wheel (the team's
   machines: ``/opt/wheels``), that wheel is installed first so the build does not download torch
   again — the requirements' ``torch>=…`` is then satisfied by it; and where the requirements'
   CPU torch index cannot be resolved (an offline machine) while torch came from disk, that index
   line is left out (pip would retry it for every package, for many minutes);
4. ``binder/postBuild`` with the venv first on ``PATH`` and ``HOME`` in the temporary folder;
5. ``binder/start poselab run <chapter> [-p …]`` in the copy, with **only the venv** (no
   ``PYTHONPATH``, no developer packages), its whole process tree sampled
   (``benchmarks/_process_memory.py``): the chapter must finish and its peak PSS stay under
   1.6 GB; every math claim of its ledger must hold.

The default chapter is 00 in its default (student) mode, which trains nothing (a couple of
minutes); ``--chapter 04 -p preset=fast`` takes a training path. Needs the network or a local
package index for ~1.5 GB of packages; several minutes.

    python tests/binder_env/fresh_build.py [--chapter 00] [-p key=value ...] [--keep DIR]
                                           [--torch-wheel auto|none|PATH]
    python tests/binder_env/fresh_build.py --reuse DIR --chapter 04 -p preset=fast   # no rebuild
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _process_memory import MIB, run_sampled  # noqa: E402

BUDGET_BYTES = 1.6e9


class BuildFailed(RuntimeError):
    pass


def _step(name: str, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    print(f"[{name}] {' '.join(map(str, command))}", flush=True)
    proc = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    print(f"[{name}] exit {proc.returncode} after {time.perf_counter() - t0:.0f} s", flush=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildFailed(f"{name} failed (exit {proc.returncode}):\n{tail}")
    return proc


def _pip_find_links() -> list[Path]:
    links = os.environ.get("PIP_FIND_LINKS", "")
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                             capture_output=True, text=True).stdout
        links += " " + out
    except OSError:
        pass
    return [Path(p) for p in links.split() if p and Path(p).is_dir()]


def torch_wheel(choice: str) -> Path | None:
    """The CPU torch wheel to pre-install (``auto``: one in pip's find-links folders), or None."""
    if choice == "none":
        return None
    if choice != "auto":
        path = Path(choice)
        if not path.is_file():
            raise SystemExit(f"--torch-wheel {choice}: no such file")
        return path
    wheels = sorted(w for folder in _pip_find_links() for w in folder.glob("torch-*+cpu-*.whl"))
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = [w for w in wheels if f"-{tag}-" in w.name]
    return wheels[-1] if wheels else None


def index_urls(requirements: Path) -> list[str]:
    """The ``--index-url`` / ``--extra-index-url`` values of a requirements file."""
    urls = []
    for line in requirements.read_text().splitlines():
        parts = line.split("#")[0].split()
        if len(parts) >= 2 and parts[0] in ("--extra-index-url", "--index-url", "-i"):
            urls.append(parts[1])
    return urls


def resolves(url: str) -> bool:
    """Whether the host of ``url`` has an address (no request is made)."""
    import socket
    from urllib.parse import urlparse
    try:
        socket.getaddrinfo(urlparse(url).hostname or "", 443)
        return True
    except OSError:
        return False


def clean_env(venv_dir: Path, home: Path) -> dict[str, str]:
    """The environment of a Binder user: the venv first on PATH, nothing of the developer's."""
    keep = ("LANG", "LC_ALL", "TERM", "TMPDIR", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT",
            "PIP_DISABLE_PIP_VERSION_CHECK", "SSL_CERT_FILE", "OMP_NUM_THREADS")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=f"{venv_dir / 'bin'}:/usr/bin:/bin", HOME=str(home), VIRTUAL_ENV=str(venv_dir))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def build_and_run(work: Path, chapter: str = "00", parameters: list[str] = (),
                  torch: str = "auto") -> dict:
    """Run every step in ``work``; returns the chapter's measurements (raises BuildFailed)."""
    wheel = build(work, torch)
    result = run_chapter(work, chapter, parameters)
    result["torch"] = "wheel from disk" if wheel else "from the requirements' indexes"
    return result


def build(work: Path, torch: str = "auto") -> Path | None:
    """Steps 1-4 in ``work`` (``repo``, ``venv``, ``home``); returns the torch wheel used, if any."""
    copy, venv_dir, home = work / "repo", work / "venv", work / "home"
    for d in (copy, home):
        d.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive.stdout, check=True)
    runtime = (copy / "binder" / "runtime.txt").read_text().strip()
    here = f"python-{sys.version_info.major}.{sys.version_info.minor}"
    if runtime != here:
        print(f"warning: binder/runtime.txt asks {runtime}; this build uses {here}", flush=True)
    print(f"[venv] {venv_dir}", flush=True)
    venv.EnvBuilder(with_pip=True).create(venv_dir)
    env = clean_env(venv_dir, home)
    pip = [venv_dir / "bin" / "python", "-m", "pip", "install", "--no-cache-dir"]
    wheel = torch_wheel(torch)
    if wheel is not None:
        _step("torch from disk", [*pip, wheel], env=env)
    requirements = copy / "binder" / "requirements.txt"
    unreachable = [url for url in index_urls(requirements) if not resolves(url)]
    if unreachable and wheel is not None:
        # pip retries an index it cannot resolve for every package it looks up (minutes); the CPU
        # torch index only serves torch, which the wheel from disk already installed
        print(f"note: {unreachable} cannot be resolved here; installing without it (torch came from "
              f"{wheel.name})", flush=True)
        requirements = work / "requirements-reachable.txt"
        requirements.write_text("".join(line for line in (copy / "binder" / "requirements.txt").read_text()
                                        .splitlines(keepends=True)
                                        if not any(url in line for url in unreachable)))
    _step("requirements", [*pip, "-r", requirements], env=env, cwd=copy)
    _step("postBuild", ["bash", copy / "binder" / "postBuild"], env=env, cwd=copy)
    return wheel


def run_chapter(work: Path, chapter: str = "00", parameters: list[str] = ()) -> dict:
    """Step 5 in a built ``work`` folder: the chapter through ``binder/start`` with only the venv,
    its process tree sampled; returns the measurements (raises BuildFailed)."""
    copy, venv_dir, home = work / "repo", work / "venv", work / "home"
    out = work / f"run-{chapter}"
    env = clean_env(venv_dir, home)
    command = ["bash", str(copy / "binder" / "start"), str(venv_dir / "bin" / "poselab"), "run", chapter,
               "--out", str(out), *[a for p in parameters for a in ("-p", p)]]
    print(f"[chapter] {' '.join(command)}", flush=True)
    t0 = time.perf_counter()
    code, peak, tail = run_sampled(command, interval=0.2, env=env, cwd=copy)
    wall = time.perf_counter() - t0
    if code != 0:
        raise BuildFailed(f"the chapter failed (exit {code}):\n{tail}")
    ledger = json.loads((out / "claims.json").read_text())
    failing = [c["id"] for c in ledger if c.get("kind") == "math" and not c.get("holds")]
    result = {"chapter": chapter, "parameters": list(parameters), "wall_s": round(wall),
              "peak_rss_mib": round(peak.rss_mib), "claims": len(ledger), "math_failing": failing,
              "peak_pss_mib": None if peak.pss_mib is None else round(peak.pss_mib),
              "processes": peak.processes, "budget_mib": round(BUDGET_BYTES / MIB)}
    print(json.dumps(result), flush=True)
    judged = peak.pss if peak.pss is not None else peak.rss
    if failing:
        raise BuildFailed(f"math claims failing in the fresh environment: {failing}")
    if judged > BUDGET_BYTES:
        raise BuildFailed(f"peak {judged / MIB:.0f} MiB over Binder's budget {BUDGET_BYTES / MIB:.0f} MiB")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chapter", default="00", help="chapter number or stem (default 00)")
    ap.add_argument("-p", "--parameter", action="append", default=[], help="chapter parameter key=value")
    ap.add_argument("--torch-wheel", default="auto", help="auto | none | a wheel file")
    ap.add_argument("--keep", default=None, help="build in this folder and keep it (default: a temp folder)")
    ap.add_argument("--reuse", default=None, help="a folder an earlier --keep built: run the chapter only")
    args = ap.parse_args(argv)
    if args.reuse:
        if not (Path(args.reuse) / "venv" / "bin" / "poselab").exists():
            raise SystemExit(f"--reuse {args.reuse}: no built environment there (build one with --keep)")
        args.keep = args.reuse
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="poselab-binder-"))
    try:
        if args.reuse:
            run_chapter(work, args.chapter, args.parameter)
        else:
            build_and_run(work, args.chapter, args.parameter, args.torch_wheel)
    except BuildFailed as exc:
        print(f"FAILED: {exc}", flush=True)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("OK: the fresh Binder environment ran the chapter within the budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
