"""binder/: the requirements cover the package's dependencies, with the CPU torch index; postBuild
and start agree on where the data lives, and postBuild's data step makes data the chapters find
without a download. (A full fresh-venv install of binder/requirements.txt + postBuild was run by
hand, see the README; it needs the network for ~1.6 GB.)"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_requirements_cover_every_runtime_dependency_with_cpu_torch():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [ln.split("#")[0].strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()]
    reqs = {_name(ln) for ln in lines if ln and not ln.startswith("-")}
    missing = {_name(d) for d in deps} - reqs
    assert not missing, f"binder/requirements.txt lacks {sorted(missing)}"
    assert any("download.pytorch.org/whl/cpu" in ln for ln in lines), "Binder must use the CPU torch index"


def test_postbuild_and_start_agree_and_fail_loudly():
    post, start = (BINDER / "postBuild").read_text(), (BINDER / "start").read_text()
    assert "set -euo pipefail" in post
    assert 'exec "$@"' in start
    env_post = re.findall(r'POSELAB_DATA_DIR="([^"]+)"', post)
    env_start = re.findall(r'POSELAB_DATA_DIR="([^"]+)"', start)
    assert env_post and env_post == env_start
    assert "--no-deps -e ." in post  # the dependency layer above stays cached


def test_postbuild_data_step_makes_data_the_chapters_find(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    data_dir = re.findall(r'POSELAB_DATA_DIR="([^"]+)"', (BINDER / "start").read_text())[0]
    env["POSELAB_DATA_DIR"] = data_dir.replace("$HOME", str(home))
    code = ("from poselab.data import synth;"
            "import sys; p = synth.default_dataset('val', n_images=3, progress=False); print(p)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith(str(home))


# ----------------------------------------------------------------------------- Binder as a student meets it
sys.path.insert(0, str(ROOT / "tests" / "binder_env"))
import closure  # noqa: E402  (tests/binder_env/closure.py)

# third-party modules that poselab imports only behind ``except ImportError`` with a fallback
OPTIONAL_IMPORTS = {"ot": "POT: poselab.chapters.hdm.analysis falls back to its numpy Sinkhorn"}


def _imports_of(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, guarded by an ``except ImportError``) for every import in a file,
    module level and inside functions alike."""
    import ast
    tree = ast.parse(path.read_text())
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers):
            guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name.partition(".")[0], id(node) in guarded) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.partition(".")[0], id(node) in guarded))
    return out


def test_every_runtime_import_is_installed_on_binder():
    """scipy was imported by claims.t_critical but installed only by the test extra: every
    chapter crashed on Binder after its training. Any import in poselab/ of a module Binder does
    not install fails here, unless it is a guarded optional import with a fallback."""
    blocked = closure.blocked_modules()
    problems = []
    for path in sorted((ROOT / "poselab").rglob("*.py")):
        for module, guarded in _imports_of(path):
            if module in blocked and not (guarded and module in OPTIONAL_IMPORTS):
                problems.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not problems, "not installed on Binder: " + "; ".join(problems)


def test_binder_closure_would_catch_a_requirement_missing(tmp_path):
    """The check above can fail: without its scipy line, binder/requirements.txt leaves scipy out."""
    reqs = closure.requirement_lines(BINDER / "requirements.txt")
    assert "scipy" in {r.name for r in reqs}
    without = closure.closure([r for r in reqs if r.name != "scipy"])
    assert "scipy" not in without and "torch" in without
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "scipy" in {_name(d) for d in deps}


def test_student_code_path_runs_with_only_binder_packages(tmp_path):
    """In a process that cannot import what Binder does not install (the test extra, POT): every
    poselab module imports, a verdict is computed at a student's (non-fast) preset, and a recipe
    trains, evaluates and is judged. The blocker itself is shown to bite (import ot fails)."""
    code = """
import importlib, pkgutil, poselab
for m in pkgutil.walk_packages(poselab.__path__, 'poselab.'):
    importlib.import_module(m.name)
try:
    import ot
    raise SystemExit('the Binder blocker did not block POT')
except ModuleNotFoundError:
    pass
from poselab import claims
from poselab.experiments import compare, compare_recipes
v = claims.compare_seeds([0.5, 0.52, 0.51], [0.40, 0.41, 0.43], lower_is_better=False, min_effect=0.01,
                         preset='default')
assert v.verdict == 'reproduced', v
table = compare(['mse', 'ipr'], seeds=(0,), preset='fast', jobs=1)
print(compare_recipes(table, 'mse', 'ipr', metric='EPE', min_effect=0.1).verdict)
"""
    env = closure.binder_env({**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path),
                              "POSELAB_CACHE_DIR": str(tmp_path / "cache"),
                              "POSELAB_DATA_DIR": str(tmp_path / "data")})
    assert "scipy" not in env["POSELAB_BLOCKED_MODULES"].split(",")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "inconclusive"


def test_the_blocker_blocks_scipy_when_told(tmp_path):
    """What a student met: with scipy absent, a non-fast verdict raises ModuleNotFoundError."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "binder_env"), "POSELAB_BLOCKED_MODULES": "scipy"}
    code = ("from poselab import claims\n"
            "claims.compare_seeds([1.0, 1.1, 1.2], [0.0, 0.1, 0.2], lower_is_better=False, min_effect=0.1)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr and "scipy" in out.stderr


@pytest.mark.binder_build
@pytest.mark.skipif(os.environ.get("POSELAB_BINDER_BUILD") != "1",
                    reason="builds the Binder environment in a fresh venv (~1.5 GB of packages, several "
                           "minutes, needs a package index): set POSELAB_BINDER_BUILD=1 to run it, or run "
                           "python tests/binder_env/fresh_build.py")
def test_fresh_binder_environment_runs_a_chapter_within_budget(tmp_path):
    """repo2docker's steps (requirements in one pip call, postBuild, start) in a fresh venv, then
    chapter 00's default (student) path with only that venv, under 1.6 GB over its process tree."""
    sys.path.insert(0, str(ROOT / "tests" / "binder_env"))
    try:
        import fresh_build
    finally:
        sys.path.pop(0)
    chapter = os.environ.get("POSELAB_BINDER_CHAPTER", "00")
    result = fresh_build.build_and_run(tmp_path, chapter=chapter)
    assert result["claims"] > 0 and not result["math_failing"]
    assert (result["peak_pss_mib"] or result["peak_rss_mib"]) * fresh_build.MIB <= fresh_build.BUDGET_BYTES


def test_fresh_build_helpers_keep_the_developer_environment_out(tmp_path, monkeypatch):
    """The opt-in build above runs the chapter with only the fresh venv: no PYTHONPATH, no
    developer venv on PATH; it reads the requirements' index lines and drops only an index that
    cannot be resolved (shown on a .invalid host, which never resolves)."""
    sys.path.insert(0, str(ROOT / "tests" / "binder_env"))
    try:
        import fresh_build
    finally:
        sys.path.pop(0)
    monkeypatch.setenv("PYTHONPATH", "/somewhere/dev")
    monkeypatch.setenv("VIRTUAL_ENV", "/dev/venv")
    env = fresh_build.clean_env(tmp_path / "venv", tmp_path / "home")
    assert "PYTHONPATH" not in env and env["PATH"].startswith(str(tmp_path / "venv" / "bin"))
    assert env["HOME"] == str(tmp_path / "home") and env["VIRTUAL_ENV"] == str(tmp_path / "venv")
    assert fresh_build.index_urls(BINDER / "requirements.txt") == ["https://download.pytorch.org/whl/cpu"]
    reqs = tmp_path / "r.txt"
    reqs.write_text("-i https://a.example/simple\n--extra-index-url https://b.invalid/x  # cpu\nnumpy\n")
    assert fresh_build.index_urls(reqs) == ["https://a.example/simple", "https://b.invalid/x"]
    assert not fresh_build.resolves("https://b.invalid/x")
    assert fresh_build.torch_wheel("none") is None
