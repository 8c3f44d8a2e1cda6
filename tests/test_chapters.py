"""Every chapter executes in fast mode (once per session, shared with the browser tests: see
tests/chapter_runner.py); its math claims hold and the claim ids the issues promise are in its
ledger. The real COCO sample is used when it sits beside the checkout (../shared/coco_sample), as
on every developer machine and in CI. Kernels import only what Binder installs."""
import json

import pytest

from poselab import cli
from poselab.chapters import chapters as registered_chapters, get_chapter

# claim ids that chapters promise (issue contracts), from each chapter's registration
# (poselab/chapters/<name>/__init__.py: expected_claims); a notebook not registered still runs
EXPECTED_CLAIMS = {c.stem: set(c.expected_claims) for c in registered_chapters()}
CHAPTERS = [p.stem for p in cli.list_chapters()]
# time budgets (60 s per chapter's fast run) are measured by benchmarks/chapters.py
# (poselab bench --only chapters), never asserted here: a loaded machine must not fail the tests


def test_every_promised_chapter_exists():
    assert set(EXPECTED_CLAIMS) <= set(CHAPTERS)


def test_every_notebook_is_a_registered_chapter():
    # labs/NN_*.ipynb and the registry agree: a notebook without a registration (or a
    # registration without its notebook) is a chapter the scorecard and index would miss
    assert sorted(EXPECTED_CLAIMS) == sorted(CHAPTERS)
    assert CHAPTERS[-1] == get_chapter("capstone").stem  # it reads the ledgers of all the others
    assert all(EXPECTED_CLAIMS.values())


@pytest.mark.chapters
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_fast_with_math_claims_holding(chapter, chapter_runs):
    run = chapter_runs.get(chapter)
    ledger = run.claims
    failed = [c["id"] for c in ledger if c["kind"] == "math" and not c["holds"]]
    assert run.failure is None, f"{chapter} ({run.via}): {run.failure}; math claims failing: {failed}"
    assert not failed
    missing = EXPECTED_CLAIMS.get(chapter, set()) - {c["id"] for c in ledger}
    assert not missing, f"{chapter} did not record {sorted(missing)}"
    assert all(c["chapter"] == chapter for c in ledger)
    if get_chapter(chapter).name == "capstone":  # the scorecard lists every earlier chapter's claim
        earlier = {c["id"] for stem in CHAPTERS[:-1] for c in chapter_runs.get(stem).claims}
        assert earlier and not [i for i in earlier if i not in run.text]


@pytest.mark.chapters
def test_poselab_run_executes_a_real_chapter(chapter_runs):
    """`poselab run --fast` (papermill) on the cheapest real chapter, whichever way the others
    ran: its parameters cell takes papermill's injection and its ledger reaches claims.json."""
    run = chapter_runs.get("00_basics") if chapter_runs.mode == "papermill" else chapter_runs.papermill("00_basics")
    assert run.via == "papermill" and run.failure is None, run.failure
    assert EXPECTED_CLAIMS["00_basics"] <= {c["id"] for c in run.claims}
    assert '"injected-parameters"' in run.text and json.loads(run.text)["cells"]


@pytest.mark.chapters
def test_chapter_kernels_import_only_what_binder_installs(chapter_runs):
    """The kernels the chapters ran in (JupyterLab's or papermill's) miss what Binder does not
    install (pytest: a test extra) and find what it does."""
    assert chapter_runs.kernel_finds("json", "plotly", "pytest") == {"json": True, "plotly": True, "pytest": False}


def _notebook(path, *cells):
    """A notebook with a parameters cell and ``cells`` (sources) after it."""
    sources = ["fast = False\nout_dir = ''", *cells]
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "outputs": [], "id": f"c{i}", "source": src,
                     "metadata": {"tags": ["parameters"]} if i == 0 else {}} for i, src in enumerate(sources)],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.chapters
def test_a_cell_that_raises_or_writes_to_stderr_is_caught(chapter_runs, tmp_path):
    """The browser run's own failure checks, on notebooks that are not chapters: a cell that
    raises (cells after it never run), a last cell that raises, a warning on stderr (no failure,
    but a problem a student sees). papermill's are tests/test_cli.py's."""
    if chapter_runs.mode != "browser":
        pytest.skip("the chapters ran through papermill (its failures: tests/test_cli.py)")
    middle = chapter_runs.get(chapter_runs.add(_notebook(tmp_path / "90_middle.ipynb", "1 / 0", "print('after')")))
    assert "ZeroDivisionError" in middle.failure and "1 code cell(s) did not run" in middle.failure
    last = chapter_runs.get(chapter_runs.add(_notebook(tmp_path / "91_last.ipynb", "print(1)", "raise KeyError('x')")))
    assert "KeyError" in last.failure and "did not run" not in last.failure
    warned = chapter_runs.get(chapter_runs.add(_notebook(tmp_path / "92_warn.ipynb",
                                                         "import sys\nprint('careful', file=sys.stderr)")))
    assert warned.failure is None and any("careful" in p for p in warned.problems)
    assert "no plotly figure rendered" in warned.problems
