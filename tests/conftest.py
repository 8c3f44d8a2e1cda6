"""Fixtures shared by the test files."""
import pytest


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A run cache of the test's own (``tmp_path/cache``) and one-thread worker processes: the
    replication tests train fast runs without touching the checkout's cache."""
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path
