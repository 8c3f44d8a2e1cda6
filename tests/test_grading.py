"""The sandboxed grader: per-test feedback, full marks for a right answer, and the cheats an
outside probe used scoring 4/4 now fail: calling poselab's own implementation, hard-coding the
public cases and monkeypatching the reference, reading the hidden tests; a hanging submission
gets a clear timeout and a score; results cannot run code in the grader."""
import json
import time
from pathlib import Path

import pytest

from poselab import assignments, cli, grading

SRC = assignments.assignments_dir() / "hdm_demanders.ipynb"
SOLUTION = '''
import numpy as np

def subpixel_demanders(keypoint):
    x, y = float(keypoint[0]), float(keypoint[1])
    x0, y0 = np.floor(x), np.floor(y)
    positions = np.array([x0, y0]) + np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    masses = (1 - np.abs(x - positions[:, 0])) * (1 - np.abs(y - positions[:, 1]))
    return positions, masses
'''


def _notebook(tmp_path: Path, *cells: str, name: str = "hdm_demanders.ipynb") -> Path:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                     "source": c} for c in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def _score(result):
    return result["score"], result["max_score"]


def test_tests_are_read_with_points_and_hidden_flags():
    tests = grading.assignment_tests(SRC)
    assert [t.hidden for t in tests] == [False, False, True, True]
    assert sum(t.points for t in tests) == 4 and {t.function for t in tests} == {"subpixel_demanders"}
    for src in assignments.list_assignments():
        assert any(t.hidden for t in grading.assignment_tests(src)), src.name


def test_a_right_answer_scores_full_marks_with_feedback(tmp_path, capsys):
    sub = _notebook(tmp_path, "import otter\ngrader = otter.Notebook()", SOLUTION, "grader.check('demanders')")
    result = grading.grade_submission(sub, "hdm_demanders")
    assert _score(result) == (4.0, 4.0) and not result["timed_out"]
    assert cli.main(["grade", str(sub)]) == 0
    out = capsys.readouterr().out
    assert "test_mass_and_mean (public): 1 / 1 — passed" in out and "total: 4 / 4" in out


def test_public_failures_say_why_hidden_ones_only_their_name(tmp_path):
    wrong = SOLUTION.replace("masses = (1 - np.abs", "masses = 0.5 * (1 - np.abs")
    result = grading.grade_submission(_notebook(tmp_path, wrong), "hdm_demanders")
    by = {t["name"]: t for t in result["tests"]}
    assert by["test_mass_and_mean"]["score"] == 0
    assert "assertion failed" in by["test_mass_and_mean"]["message"]
    assert "m.sum() - 1" in by["test_mass_and_mean"]["message"]
    hidden = by["test_matches_poselab_on_random_keypoints"]
    assert hidden["score"] == 0 and hidden["message"].startswith("failed (hidden test")
    assert "allclose" not in hidden["message"]


def test_calling_poselabs_own_implementation_scores_nothing(tmp_path):
    cheat = ("from poselab.codecs import subpixel_demanders as _ref\nimport torch\n"
             "def subpixel_demanders(kp):\n    p, m = _ref(torch.tensor(kp, dtype=torch.float64))\n"
             "    return p.numpy(), m.numpy()\n")
    result = grading.grade_submission(_notebook(tmp_path, cheat), "hdm_demanders")
    assert result["score"] == 0 and "poselab" in result["tests"][0]["message"]
    lazy = ("import torch\ndef subpixel_demanders(kp):\n    from poselab.codecs import subpixel_demanders as r\n"
            "    p, m = r(torch.tensor(kp, dtype=torch.float64))\n    return p.numpy(), m.numpy()\n")
    result = grading.grade_submission(_notebook(tmp_path, lazy), "hdm_demanders")
    assert result["score"] == 0 and "your subpixel_demanders raised" in result["tests"][0]["message"]


def test_hard_coded_public_cases_and_a_patched_reference_fail_the_hidden_tests(tmp_path):
    cheat = '''
import numpy as np, sys, types
fake = types.ModuleType("poselab")          # whatever the submission patches stays in its process
sys.modules["poselab"] = fake
def subpixel_demanders(kp):
    kp = np.asarray(kp, dtype=float)
    if np.allclose(kp, [2.25, 3.5]):
        pos = np.array([[2, 3], [3, 3], [2, 4], [3, 4]], dtype=float)
        return pos, np.array([0.375, 0.125, 0.375, 0.125])
    return np.array([[4, 1], [5, 1], [4, 2], [5, 2]], dtype=float), np.array([1.0, 0, 0, 0])
'''
    result = grading.grade_submission(_notebook(tmp_path, cheat), "hdm_demanders")
    by = {t["name"]: t["score"] for t in result["tests"]}
    assert by["test_mass_and_mean"] == 1 and by["test_integer_keypoint"] == 1
    assert by["test_matches_poselab_on_random_keypoints"] == 0 and result["score"] < 4


def test_the_submission_cannot_see_the_hidden_tests_or_the_grader(tmp_path):
    spy = '''
import gc, sys
found = [name for name in ("test_matches_poselab_on_random_keypoints",) if any(
    isinstance(o, str) and name in o for o in gc.get_objects())]
def subpixel_demanders(kp):
    raise RuntimeError("saw hidden tests: " + str(found) + " modules: " + str("poselab.grading" in sys.modules))
'''
    result = grading.grade_submission(_notebook(tmp_path, spy), "hdm_demanders")
    msg = result["tests"][0]["message"]
    assert "saw hidden tests: []" in msg and "modules: False" in msg


def test_a_hanging_submission_times_out_with_a_score(tmp_path):
    hang = "def subpixel_demanders(kp):\n    while True:\n        pass\n"
    t0 = time.monotonic()
    result = grading.grade_submission(_notebook(tmp_path, hang), "hdm_demanders", timeout=3)
    assert time.monotonic() - t0 < 20
    assert result["timed_out"] and result["score"] == 0 and result["max_score"] == 4
    assert all("timed out after 3 s" in t["message"] for t in result["tests"])
    top = grading.grade_submission(_notebook(tmp_path, "while True:\n    pass\n"), "hdm_demanders", timeout=2)
    assert top["timed_out"] and top["score"] == 0


def test_results_are_data_never_code_and_writes_land_in_a_scratch_folder(tmp_path):
    evil = '''
import os
open("written_by_student.txt", "w").write("x")
class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/poselab-grader-owned",))
def subpixel_demanders(kp):
    return Evil(), Evil()
'''
    result = grading.grade_submission(_notebook(tmp_path, evil), "hdm_demanders")
    assert result["score"] == 0 and "cannot be graded" in result["tests"][0]["message"]
    assert not Path("/tmp/poselab-grader-owned").exists()
    assert not (tmp_path / "written_by_student.txt").exists() and not Path("written_by_student.txt").exists()


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(grading.GradingError, match="no assignment source") as err:
        grading.grade_submission(_notebook(tmp_path, SOLUTION), "nope")
    # the message names the assignments there are (it used to point at a command that does not exist)
    assert "hdm_demanders" in str(err.value) and "list-assignments" not in str(err.value)
    # a path that is not a notebook is refused as the submission, before its stem is taken for
    # an assignment name
    with pytest.raises(grading.GradingError, match="submission .* must be an existing .ipynb"):
        grading.grade_submission(Path("/etc/hostname"), "hdm_demanders")
    with pytest.raises(grading.GradingError, match="ipynb"):
        grading.grade_submission(tmp_path / "missing.ipynb", "hdm_demanders")
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(grading.GradingError, match="not a readable notebook"):
        grading.grade_submission(tmp_path / "bad.ipynb", "hdm_demanders")
    with pytest.raises(grading.GradingError, match="timeout"):
        grading.grade_submission(_notebook(tmp_path, SOLUTION), "hdm_demanders", timeout=0)
