"""Output locations are checked before any work (reliability issue, class 9): a folder under a
file, without write permission or on a full disk fails at once, naming the folder and why."""
from __future__ import annotations

import errno
import os

import pytest

from poselab.paths import writable_folder


def _afile(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    return f


def _refuse_probe(monkeypatch, code):
    """os.write fails with ``code`` for the write probe only (a full disk, a read-only mount...)."""
    real = os.write

    def refusing(fd, data):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".poselab-write-probe-"):
            raise OSError(code, os.strerror(code))
        return real(fd, data)
    monkeypatch.setattr(os, "write", refusing)


def test_a_fresh_nested_folder_is_created_and_left_clean(tmp_path):
    folder = writable_folder(tmp_path / "a" / "b", "--out")
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe is removed


@pytest.mark.parametrize("sub", ["", "x/y"])
def test_a_path_at_or_under_a_file_is_refused_and_the_file_kept(tmp_path, sub):
    f = _afile(tmp_path)
    with pytest.raises(ValueError, match="a file, not a folder"):
        writable_folder(f / sub if sub else f, "--out")
    assert f.read_text() == "mine"


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EACCES, "no write permission"),
                                         (errno.EROFS, "read-only")])
def test_a_folder_that_refuses_the_probe_is_named_with_the_reason(tmp_path, monkeypatch, code, words):
    _refuse_probe(monkeypatch, code)
    with pytest.raises(ValueError, match=words) as err:
        writable_folder(tmp_path / "out", "the run cache")
    assert "the run cache" in str(err.value)
    monkeypatch.undo()
    assert not [p for p in (tmp_path / "out").iterdir()]  # no probe left behind


def test_a_real_read_only_folder_is_refused_when_permissions_apply(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions do not apply (the probe test above covers it)")
        with pytest.raises(ValueError, match="no write permission"):
            writable_folder(ro / "out", "--out")
    finally:
        ro.chmod(0o700)


def _no_training(monkeypatch):
    from poselab import train

    def trained(*a, **k):
        raise AssertionError("training started before the output folder was checked")
    monkeypatch.setattr(train, "fit", trained)


def test_run_recipe_checks_the_cache_folder_before_training(tmp_path, monkeypatch):
    from poselab.experiments import run_recipe
    _no_training(monkeypatch)
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(_afile(tmp_path) / "cache"))
    with pytest.raises(ValueError, match="the run cache .* a file, not a folder"):
        run_recipe("mse", preset="fast", seed=0)


def test_train_and_arena_check_out_before_training(tmp_path, monkeypatch, capsys):
    from poselab.cli import main
    _no_training(monkeypatch)
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    under = _afile(tmp_path) / "sub"
    assert main(["train", "mse", "--preset", "fast", "--no-cache", "--out", str(under)]) == 2
    assert "a file, not a folder" in capsys.readouterr().err
    assert main(["arena", "--recipes", "mse", "--preset", "fast", "--no-cache", "--out", str(under)]) == 2
    assert "a file, not a folder" in capsys.readouterr().err


def test_the_data_folder_is_checked_before_generating(tmp_path):
    from poselab.data import synth
    with pytest.raises(ValueError, match="the data folder .* a file, not a folder"):
        synth.default_dataset("val", n_images=2, root=_afile(tmp_path) / "synth", progress=False)


def test_bench_checks_its_results_folder_before_running_scripts(tmp_path, monkeypatch):
    from poselab import bench
    (tmp_path / "marker.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    _refuse_probe(monkeypatch, errno.ENOSPC)
    with pytest.raises(ValueError, match="disk is full"):
        bench.run_suite(folder=tmp_path, out=tmp_path / "out" / "results.md")
    assert not (tmp_path / "ran").exists()
