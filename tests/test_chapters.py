"""Every chapter executes through papermill in fast mode; its math claims hold and the claim ids
the issues promise are in its ledger. The real COCO sample is used when it sits beside the
checkout (../shared/coco_sample), as on every developer machine and in CI."""
import json
import os
import sys
from pathlib import Path

import pytest

from poselab import cli
from poselab.chapters import chapters as registered_chapters, get_chapter

sys.path.insert(0, str(Path(__file__).resolve().parent / "binder_env"))
import closure  # noqa: E402  (tests/binder_env: run kernels with only what Binder installs)

# claim ids that chapters promise (issue contracts), from each chapter's registration
# (poselab/chapters/<name>/__init__.py: expected_claims); a notebook not registered still runs
EXPECTED_CLAIMS = {c.stem: set(c.expected_claims) for c in registered_chapters()}
CHAPTERS = [p.stem for p in cli.list_chapters()]
# time budgets (60 s per chapter's fast run) are measured by benchmarks/chapters.py
# (poselab bench --only chapters), never asserted here: a loaded machine must not fail the tests


@pytest.fixture(scope="session")
def shared_ledgers(tmp_path_factory):
    return tmp_path_factory.mktemp("ledgers")


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
def test_chapter_runs_fast_with_math_claims_holding(chapter, tmp_path, shared_ledgers, monkeypatch):
    # the kernel (and any worker it starts) can import only what binder/requirements.txt installs
    binder = closure.binder_env(dict(os.environ))
    for key in ("PYTHONPATH", "POSELAB_BLOCKED_MODULES"):
        monkeypatch.setenv(key, binder[key])
    # the capstone (runs_last: listed last) reads every earlier chapter's ledger from the shared folder
    capstone = get_chapter(chapter).name == "capstone"
    params = {"ledger_dir": str(shared_ledgers)} if capstone else None
    code = cli.run([chapter], fast=True, out=tmp_path, parameters=params)
    (shared_ledgers / "claims").mkdir(exist_ok=True)
    for ledger in (tmp_path / "claims").glob("*.json"):
        (shared_ledgers / "claims" / ledger.name).write_text(ledger.read_text())
    timings = json.loads((tmp_path / "timings.json").read_text())
    ledger = json.loads((tmp_path / "claims.json").read_text())
    failed = [c["id"] for c in ledger if c["kind"] == "math" and not c["holds"]]
    assert code == 0, f"{chapter} failed (see output above); math claims failing: {failed}"
    assert not failed
    missing = EXPECTED_CLAIMS.get(chapter, set()) - {c["id"] for c in ledger}
    assert not missing, f"{chapter} did not record {sorted(missing)}"
    assert all(c["chapter"] == chapter for c in ledger)
    if capstone:  # the scorecard lists every claim of the chapters run before it
        executed = (tmp_path / f"{chapter}.ipynb").read_text()
        earlier = {c["id"] for f in (shared_ledgers / "claims").glob("*.json")
                   for c in json.loads(f.read_text())}
        assert earlier and not [i for i in earlier if i not in executed]
    assert chapter in timings  # recorded; the 60 s budget is benchmarks/chapters.py's
