"""Assignments: every one builds (its solution passes all its tests), the student version holds no
solution and no hidden test and scores below full marks as handed out, and a filled-in student
notebook is graded with full marks by the autograder."""
from __future__ import annotations

import json
import re

import pytest

from poselab import assignments

SOURCES = assignments.list_assignments()
pytest.importorskip("otter", reason="otter-grader comes with the test extras (pip install -e .[test])")


def _fill_in(student_nb, source_nb, out):
    """A student who writes the solution: each `...` body of an answer cell gets the solved lines."""
    src_cells = [c for c in json.loads(source_nb.read_text())["cells"] if c["cell_type"] == "code"]
    solved = {}
    for c in src_cells:
        text = "".join(c["source"])
        m = re.search(r"def (\w+)\(", text)
        if m and "# BEGIN SOLUTION" in text:
            solved[m.group(1)] = re.sub(r"\n?\s*# (BEGIN|END) SOLUTION", "", text)
    nb = json.loads(student_nb.read_text())
    for c in nb["cells"]:
        text = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        m = re.search(r"def (\w+)\(", text)
        if c["cell_type"] == "code" and m and m.group(1) in solved and "..." in text:
            c["source"] = solved[m.group(1)]
    out.write_text(json.dumps(nb))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """otter runs the first assignment's solution against its tests while building (the default
    build path); every other solution is graded against all its tests, hidden ones included, by
    test_a_filled_in_submission_gets_full_marks, so otter's second run of them is skipped."""
    return assignments.build(tmp_path_factory.mktemp("assign"), run_tests=[SOURCES[0].stem])


def test_there_is_an_assignment_per_paper_chapter():
    assert len(SOURCES) >= 5
    assert {"hdm_demanders", "rspose_rank_error", "rcnet_g_delta", "bcir_compensation",
            "sar_objective"} <= {p.stem for p in SOURCES}


def test_student_versions_leak_nothing_and_fail_as_handed_out(built, tmp_path):
    """Every assignment through the sandboxed grader (a second or two each); otter's own
    ``otter run`` (a kernel per grading, ~30 s) on the first one only."""
    from poselab import grading
    for b in built:
        src = assignments.assignments_dir() / f"{b.name}.ipynb"
        assignments.check_student_version(src, b.student)  # raises on a leak
        result = grading.grade_submission(b.student, b.name)
        assert result["max_score"] > 0 and result["score"] < result["max_score"], b.name
    b = built[0]
    result = assignments.grade(b.student, b.autograder, tmp_path / f"{b.name}-empty")
    assert result["max_score"] > 0 and result["score"] < result["max_score"], b.name


def test_a_filled_in_submission_gets_full_marks(built, tmp_path):
    from poselab import grading
    for b in built:
        src = assignments.assignments_dir() / f"{b.name}.ipynb"
        filled = _fill_in(b.student, src, tmp_path / f"{b.name}.ipynb")
        result = grading.grade_submission(filled, b.name)
        assert result["score"] == result["max_score"] > 0, (b.name, result["tests"])
    b = built[0]
    filled = _fill_in(b.student, assignments.assignments_dir() / f"{b.name}.ipynb", tmp_path / "otter.ipynb")
    result = assignments.grade(filled, b.autograder, tmp_path / f"{b.name}-filled")
    assert result["score"] == result["max_score"] > 0, (b.name, result["tests"])


def test_a_leak_is_detected(tmp_path, built):
    b = built[0]
    src = assignments.assignments_dir() / f"{b.name}.ipynb"
    leaky = tmp_path / "leaky.ipynb"
    nb = json.loads(b.student.read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": assignments.solution_lines(src)[0]})
    leaky.write_text(json.dumps(nb))
    with pytest.raises(assignments.AssignmentError, match="leaks"):
        assignments.check_student_version(src, leaky)


def test_a_hidden_test_leaked_into_metadata_is_detected(tmp_path, built):
    b = built[0]
    src = assignments.assignments_dir() / f"{b.name}.ipynb"
    nb = json.loads(b.student.read_text())
    nb.setdefault("metadata", {})["otter_leak"] = {"code": f"def {assignments.hidden_test_names(src)[0]}(): pass"}
    leaky = tmp_path / "meta.ipynb"
    leaky.write_text(json.dumps(nb))
    with pytest.raises(assignments.AssignmentError, match="hidden tests"):
        assignments.check_student_version(src, leaky)


def test_run_tests_chooses_which_solutions_otter_runs(tmp_path, monkeypatch):
    """``run_tests`` reaches ``otter assign`` as ``--no-run-tests`` for the assignments it leaves
    out (a name string is one name, not its letters); an unknown name is refused before anything
    is built."""
    calls = []

    def fake_otter(*args, **kwargs):
        calls.append(args)
        raise assignments.AssignmentError("stop after the first call")
    monkeypatch.setattr(assignments, "_otter", fake_otter)
    first = SOURCES[0].stem
    for run_tests, skipped in ((True, False), (False, True), (first, False), ([SOURCES[1].stem], True)):
        with pytest.raises(assignments.AssignmentError, match="stop after"):
            assignments.build(tmp_path / str(len(calls)), names=[first], run_tests=run_tests)
        assert ("--no-run-tests" in calls[-1]) is skipped, run_tests
    with pytest.raises(assignments.AssignmentError, match="unknown assignment"):
        assignments.build(tmp_path / "x", run_tests=["nope"])
    for bad in (3, [3], None, [[SOURCES[0].stem]]):
        with pytest.raises(assignments.AssignmentError, match="run_tests must be"):
            assignments.build(tmp_path / "x", run_tests=bad)
    assert len(calls) == 4
