"""Chapter 00 analysis: ground-truth AP with any scores, determinism across processes."""
import textwrap

import pytest

from poselab.chapters.basics import analysis as B
from poselab.data import synth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("gt"), n_images=4, seed=3, split="val")


def test_ground_truth_scores_one_with_constant_and_random_scores(tiny):
    assert B.ground_truth_ap(tiny, "one")["AP"] == 1.0
    assert B.ground_truth_ap(tiny, "random", seed=5)["AP"] == 1.0
    # counter-case: one person's joints moved by 30 px — AP falls below 1
    assert B.ground_truth_ap(tiny, "random", perturb_px=30.0)["AP"] < 0.99
    with pytest.raises(ValueError):
        B.ground_truth_ap(tiny, "ranked")


def test_dataset_summary(tiny):
    s = B.dataset_summary(tiny)
    assert s["images"] == 4 and 4 <= s["persons"] <= 8 and s["labelled joints"] > s["persons"]


def test_digest_across_processes_same_for_the_generator_and_catches_hash_salting(tmp_path, monkeypatch):
    same = B.digest_across_processes(n_images=2, seed=0)
    assert same["identical"] and len(same["digests"]) == 2
    # counter-case: a generator whose output depends on hash() of a string (salted per process)
    (tmp_path / "salted_gen.py").write_text(textwrap.dedent('''
        from pathlib import Path
        def generate(out_dir, n_images, seed, split):
            out = Path(out_dir); out.mkdir(parents=True)
            (out / "x.txt").write_text(str(hash(f"person-{seed}") % 1000))
    '''))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    salted = B.digest_across_processes(n_images=1, seed=0, generator="salted_gen:generate")
    assert not salted["identical"]


def test_half_ks_distance_matches_the_ks_curve():
    import numpy as np
    area = 4321.0
    for row, j in zip(B.half_ks_distance(area, joints=(0, 9, 12)), (0, 9, 12)):
        d = row["error (px) at KS = 0.5"]
        ks = B.ks_versus_distance(np.array([d]), area)[j, 0]
        assert abs(ks - 0.5) < 1e-12


def test_oks_explorer_fits_the_notebook_and_its_status_line_follows_the_sliders():
    import numpy as np
    from poselab.chapters.basics.widgets import OKSExplorer
    gt = np.column_stack([np.linspace(10, 90, 17), np.linspace(20, 180, 17), np.full(17, 2.0)])
    ex = OKSExplorer(gt, area=100.0 ** 2)
    assert (ex.pose_fig.layout.width or 0) + (ex.ks_fig.layout.width or 0) <= 900
    assert ex.dy.max == 65.0 and ex.dy.min == -65.0  # 0.65 s: past it KS < 0.01 for every joint
    ex.joint.value = 9
    ex.dx.value = 12.0
    assert "left_wrist moved by (+12.0, +0.0) px" in ex.status.value
    assert f"OKS {ex.state()['oks']:.3f}" in ex.status.value and ex.state()["oks"] < 1.0
