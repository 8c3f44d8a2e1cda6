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
