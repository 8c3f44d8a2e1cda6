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


# ---- class 10: empty and huge inputs -----------------------------------------------------------

def test_pose_features_of_no_pose_is_an_empty_table():
    import numpy as np
    from poselab.models.rcnet import pose_features
    assert pose_features(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros(0)).shape == (0, 75)


def test_fit_rescorer_on_no_pose_names_the_problem():
    import numpy as np
    from poselab.models.rcnet import RCNet
    from poselab.train.rescore import fit_rescorer
    with pytest.raises(ValueError, match="at least one pose"):
        fit_rescorer(RCNet(in_features=75), np.zeros((0, 75), np.float32), np.zeros(0), np.zeros(0, np.int64))


@pytest.mark.parametrize("name", ["ranknet_loss", "lambdarank_loss", "approx_ndcg_loss", "ap_rank_loss",
                                  "dr_loss", "crps_rank_loss", "gaussian_rank_loss", "laplacian_rank_loss"])
def test_pairwise_losses_refuse_a_table_of_gigabytes_before_allocating(name, monkeypatch):
    """30 000 poses: an (N, N) float64 table is 7.2 GB; the losses tried to allocate it."""
    import torch
    from poselab import losses
    fn = getattr(losses, name)
    pred, target = torch.rand(30_000), torch.rand(30_000)
    kwargs = {"chunk": 30_000} if name == "laplacian_rank_loss" else {}
    with pytest.raises(ValueError, match=rf"{name} on 30,000 poses \(900,000,000 pairs at once\)"):
        fn(pred, target, **kwargs)
    monkeypatch.setenv("POSELAB_MAX_PAIR_MB", "0.5")  # the same rule on a small set: refused too
    with pytest.raises(ValueError, match="limit 0 MiB|limit 1 MiB"):
        fn(torch.rand(200), torch.rand(200), **({"chunk": 200} if kwargs else {}))
    monkeypatch.setenv("POSELAB_MAX_PAIR_MB", "64")
    assert torch.isfinite(fn(torch.rand(200), torch.rand(200), **({"chunk": 200} if kwargs else {})))


def test_a_chunked_laplacian_evaluation_and_slates_stay_allowed(monkeypatch):
    """The memory rule at a tenth of the size (a limit of 8 MiB instead of 2 GiB, 3000 poses
    instead of 30 000): the whole table is refused, a chunked evaluation is allowed and gives the
    whole table's value; per-image slates are allowed where one slate of every pose is not."""
    import torch
    from poselab.losses import laplacian_rank_loss, neural_ndcg_loss
    pred, target = torch.rand(3000, dtype=torch.float64), torch.rand(3000, dtype=torch.float64)
    whole = laplacian_rank_loss(pred, target, chunk=3000)        # 275 MiB of pair tables
    monkeypatch.setenv("POSELAB_MAX_PAIR_MB", "8")
    with pytest.raises(ValueError, match="limit 8 MiB"):
        laplacian_rank_loss(pred, target, chunk=3000)
    chunked = laplacian_rank_loss(pred, target, chunk=64)         # 6 MiB at once
    assert torch.isfinite(chunked) and abs(float(chunked) - float(whole)) <= 1e-12 * abs(float(whole))
    groups = torch.arange(3000) // 10  # 300 images of 10 poses: (300, 10, 10) slates
    assert torch.isfinite(neural_ndcg_loss(pred.float(), target.float(), groups))
    with pytest.raises(ValueError, match="limit 8 MiB"):
        neural_ndcg_loss(pred.float(), target.float())


def test_spatial_sort_refuses_a_map_whose_positive_pairs_take_gigabytes():
    """A 160×160 map of soft labels (every pixel positive): |P|² = 655 M pairs, 2.6 GB per table."""
    import torch
    from poselab.losses import spatial_rank_sort_loss, spatial_sort_loss
    scores, labels = torch.rand(1, 1, 160, 160), torch.rand(1, 1, 160, 160) * 0.9 + 0.05
    for fn in (spatial_sort_loss, spatial_rank_sort_loss):
        with pytest.raises(ValueError, match="25,600 positive pixels"):
            fn(scores, labels)
    window = torch.zeros(1, 1, 160, 160)
    window[..., 70:83, 70:83] = labels[..., 70:83, 70:83]  # a 13×13 window: allowed
    assert torch.isfinite(spatial_sort_loss(scores, window))
