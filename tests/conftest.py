"""Fixtures shared by the test files."""
import pytest


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A run cache of the test's own (``tmp_path/cache``) and one-thread worker processes: the
    replication tests train fast runs without touching the checkout's cache."""
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


@pytest.fixture(scope="session")
def chapter_runs(tmp_path_factory):
    """Each chapter run once in fast mode, for every test that checks it (tests/chapter_runner.py:
    in JupyterLab in Chromium where they are installed, else through papermill)."""
    import chapter_runner  # deferred: only the chapters' tests start kernels and a browser
    from poselab import cli
    runs = chapter_runner.ChapterRuns(tmp_path_factory.mktemp("chapter-runs"), cli.list_chapters())
    try:
        yield runs
    finally:
        runs.close()
