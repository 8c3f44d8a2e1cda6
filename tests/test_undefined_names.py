"""No undefined name in the library: a block pasted into the wrong function (chapter 04's
``compactness_of_runs`` once read ``recipe``, ``seed``, ``n_crops`` of another function and failed
every run of the chapter with a NameError) is caught here, without executing the chapter."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff():
    exe = Path(sys.executable).with_name("ruff")
    return str(exe) if exe.is_file() else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed")
def test_no_undefined_names_in_poselab():
    out = subprocess.run([_ruff(), "check", "--isolated", "--select", "F821,F822,F823", "--output-format", "concise",
                          str(ROOT / "poselab")], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
