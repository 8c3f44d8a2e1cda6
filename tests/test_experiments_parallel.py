"""compare(jobs=...): runs trained in worker processes equal runs trained here, bit for bit."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from poselab import experiments as ex
from poselab.experiments import parallel
from poselab.experiments.runner import cached_result
from poselab.train import resolve_device

TINY = ex.Preset("tiny-parallel", input_size=(64, 48), epochs=5, max_steps=3, batch_size=8,
                 n_train=12, n_val=6)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POSELAB_JOBS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _same(a: dict, b: dict) -> bool:
    """Equal nested metrics, NaN equal to NaN (a 3-step model's Spearman is undefined)."""
    return a.keys() == b.keys() and all(
        a[s].keys() == b[s].keys() and all(a[s][k] == b[s][k] or (math.isnan(a[s][k]) and math.isnan(b[s][k]))
                                           for k in a[s]) for s in a)


def test_worker_runs_equal_in_process_runs_at_the_same_thread_count(capsys):
    table = ex.compare(["mse"], seeds=(0, 1), preset=TINY, device="cpu", jobs=2, cache=False)
    assert "2 at a time in worker processes (1 thread(s) each)" in capsys.readouterr().out
    for seed in (0, 1):
        remote = table.result("mse", seed)
        assert remote.threads == 1 and not remote.cached
        here = ex.run_recipe("mse", preset=TINY, seed=seed, device="cpu", cache=False, threads=1)
        assert here.history["losses"] == remote.history["losses"]
        assert _same(here.metrics, remote.metrics)
        assert here.data_stream_sha256 == remote.data_stream_sha256
    # the workers filled the cache this process reads
    again = ex.compare(["mse"], seeds=(0, 1), preset=TINY, device="cpu", jobs=2)
    assert all(r.cached for r in again.results)


def test_threads_is_restored_and_recorded():
    res = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu", cache=False, threads=1)
    assert res.threads == 1 and torch.get_num_threads() == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            ex.run_recipe("mse", preset=TINY, seed=0, device="cpu", threads=bad)


def test_recipes_with_parts_defined_outside_poselab_train_here(capsys):
    if "plain_mse_here" not in ex.LOSSES:
        @ex.register_loss("plain_mse_here")
        def _plain(geometry, **kw):
            def loss(outputs, batch):
                return ((outputs - batch["target"]) ** 2).mean()
            return loss
    recipe = ex.RECIPES["mse"].replace(name="mse_local_loss", loss="plain_mse_here")
    assert not parallel.portable(recipe) and parallel.portable(ex.RECIPES["mse"])
    table = ex.compare([recipe], seeds=(0, 1), preset=TINY, device="cpu", jobs=2, cache=False)
    assert "worker processes" not in capsys.readouterr().out
    assert len(table.results) == 2 and all(r.threads == 2 for r in table.results)


def test_a_failing_worker_names_the_run():
    spec = dict(recipe=ex.RECIPES["mse"].to_dict(), modules=[], data="/no/such/folder",
                preset=TINY.to_dict(), seed=0, device="cpu", cache=True, threads=1)
    with pytest.raises(RuntimeError, match="mse seed 0 failed in a worker process"):
        parallel.train_many([spec], jobs=1)


def test_resolve_jobs(monkeypatch):
    default = ex.PRESETS["default"]
    assert parallel.resolve_jobs(None, 6, ex.PRESETS["fast"], CPU) == 1  # start-up would dominate
    assert parallel.resolve_jobs(None, 1, default, CPU) == 1
    monkeypatch.setenv("POSELAB_MEMORY_MB", "64000")
    auto = parallel.resolve_jobs("auto", 6, default, CPU)
    by_cores = max(1, min(parallel.cpu_cores(), torch.get_num_threads(), 6, 4))
    assert auto == (by_cores if by_cores >= 2 else 1)
    # memory caps the workers: Binder's 2 GB holds the kernel and no worker beside it
    monkeypatch.setenv("POSELAB_MEMORY_MB", "2048")
    assert parallel.resolve_jobs("auto", 6, default, CPU) == 1
    monkeypatch.setenv("POSELAB_MEMORY_MB", "3100")
    assert parallel.resolve_jobs("auto", 6, default, CPU) == min(by_cores, 2) if by_cores >= 2 else 1
    assert parallel.resolve_jobs(3, 6, default, CPU) == 3  # an explicit count is taken as given
    for bad in ("lots", "0"):
        monkeypatch.setenv("POSELAB_MEMORY_MB", bad)
        with pytest.raises(ValueError, match="POSELAB_MEMORY_MB"):
            parallel.resolve_jobs("auto", 6, default, CPU)
    monkeypatch.delenv("POSELAB_MEMORY_MB")
    assert parallel.memory_available_mb() is None or parallel.memory_available_mb() > 0
    assert parallel.resolve_jobs(None, 6, default, CPU, callbacks=[object()]) == 1
    assert parallel.resolve_jobs(3, 2, default, CPU) == 2
    if torch.cuda.is_available():
        assert parallel.resolve_jobs(None, 6, default, resolve_device("cuda")) == 1
    # an explicit count holds on a GPU as well (several processes share it); auto stays 1 there
    gpu = torch.device("cuda")  # only its type is read: no GPU needed
    assert parallel.resolve_jobs(4, 6, default, gpu) == 4 and parallel.resolve_jobs(None, 6, default, gpu) == 1
    assert parallel.resolve_jobs(8, 3, default, gpu) == 3
    monkeypatch.setenv("POSELAB_JOBS", "3")
    assert parallel.resolve_jobs(None, 6, ex.PRESETS["fast"], CPU) == 3
    for bad in ("x", "0", "-2"):
        monkeypatch.setenv("POSELAB_JOBS", bad)
        with pytest.raises(ValueError, match="POSELAB_JOBS"):
            parallel.resolve_jobs(None, 6, default, CPU)
    monkeypatch.delenv("POSELAB_JOBS")
    for bad in (0, -1, 2.0, True, "two"):
        with pytest.raises(ValueError, match="jobs"):
            parallel.resolve_jobs(bad, 6, default, CPU)
    with pytest.raises(ValueError, match="callbacks"):
        parallel.resolve_jobs(2, 6, default, CPU, callbacks=[object()])


def test_status_lines_report_the_running_workers():
    spec = dict(recipe=ex.RECIPES["mse"].to_dict(), modules=[], data="synth",
                preset=TINY.to_dict(), seed=3, device="cpu", cache=False, threads=1)
    lines: list[str] = []
    folders = parallel.train_many([spec, dict(spec, seed=4)], jobs=2, status=lines.append,
                                  status_every=0.0)
    assert len(folders) == 2 and all(folders)
    assert lines and all("done;" in line and "mse seed" in line for line in lines)
    assert any("step" in line or "starting" in line for line in lines)


def _children(pid: int, marker: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid and marker in cmd:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs Linux /proc")
@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_killing_the_caller_with_sigkill_stops_its_workers_and_removes_the_jobs_folder(tmp_path, sigint_ignored):
    """The outside probe's case: kill -9 of ``train --jobs``'s parent left workers training and
    a temp folder behind. Also with SIGINT ignored by the caller (``nohup``, ``cmd &`` in a
    script), which its workers inherit: CI met that case."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    long = ex.Preset("tiny-forever", input_size=(64, 48), epochs=10 ** 6, max_steps=10 ** 6,
                     batch_size=8, n_train=12, n_val=6)
    spec = dict(recipe=ex.RECIPES["mse"].to_dict(), modules=[], data="synth", preset=long.to_dict(),
                seed=0, device="cpu", cache=False, threads=1)
    code = (("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" if sigint_ignored else "")
            + "import json, sys\nfrom poselab.experiments import parallel\n"
            f"parallel.train_many([json.loads({json.dumps(json.dumps(spec))})] * 2, jobs=2)\n")
    env = dict(os.environ, TMPDIR=str(tmp_path), OMP_NUM_THREADS="1")
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(workers := _children(parent.pid, "poselab.experiments.worker")) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "no workers started"
            time.sleep(0.2)
        assert list(tmp_path.glob(f"{parallel.JOBS_PREFIX}{parent.pid}-*"))
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 60
        while [w for w in workers if os.path.exists(f"/proc/{w}")
               and "Z" not in Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0]]:
            assert time.monotonic() < deadline, f"workers {workers} still run after their parent died"
            time.sleep(0.2)
        assert not list(tmp_path.glob(f"{parallel.JOBS_PREFIX}*"))
    finally:
        if parent.poll() is None:
            parent.kill()


def test_stale_jobs_folders_of_dead_callers_are_removed_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    dead = tmp_path / f"{parallel.JOBS_PREFIX}{gone}-abc123"
    live = tmp_path / f"{parallel.JOBS_PREFIX}{os.getpid()}-def456"
    other = tmp_path / "poselab-jobs-notapid"
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "spec0.json").write_text("{}")
    assert parallel.remove_stale_job_folders(tmp_path) == [dead.name]
    assert not dead.exists() and live.exists() and other.exists()


def test_train_in_background_trains_while_the_caller_works_and_equals_a_plain_run():
    mse = ex.RECIPES["mse"]
    bg = parallel.train_in_background([(mse, 1)], data="synth", preset=TINY, device="cpu", jobs=1)
    here = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu", threads=1)   # the caller's own run
    folders = bg.join()
    assert set(folders) == {("mse", 1)} and here.seed == 0
    done = ex.RunResult.load(folders[("mse", 1)])
    assert done.seed == 1 and cached_result("mse", preset=TINY, seed=1, device="cpu") is not None
    plain = ex.run_recipe("mse", preset=TINY, seed=1, device="cpu", cache=False, threads=1)
    assert plain.history["losses"] == done.history["losses"]


def test_train_in_background_declines_what_the_caller_must_train_itself(monkeypatch):
    mse = ex.RECIPES["mse"]
    assert parallel.train_in_background([], data="synth", preset=TINY) is None
    # automatic jobs: a preset too small for workers to pay (TINY trains 24 samples)
    assert parallel.train_in_background([(mse, 1)], data="synth", preset=TINY) is None
    assert parallel.train_in_background([(mse, 1)], data="synth", preset=TINY, device="cuda", jobs=1) is None
    # a recipe whose parts a worker cannot import (defined in a notebook) trains in the caller
    monkeypatch.setattr(parallel, "part_modules", lambda recipe: None)
    assert parallel.train_in_background([(mse, 1)], data="synth", preset=TINY, jobs=1) is None


def test_poselab_jobs_from_the_environment_yields_to_live_callbacks(monkeypatch):
    default = ex.get_preset("default")
    monkeypatch.setenv("POSELAB_JOBS", "3")
    assert parallel.resolve_jobs(None, 6, default, CPU) == 3
    assert parallel.resolve_jobs(None, 6, default, CPU, callbacks=[object()]) == 1   # was a ValueError
    with pytest.raises(ValueError, match="callbacks"):                             # an explicit demand still is
        parallel.resolve_jobs(3, 6, default, CPU, callbacks=[object()])
