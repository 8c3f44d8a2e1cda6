"""Chapter 00 analysis: ground-truth AP with any scores, determinism across processes."""
import textwrap

import pytest

from poselab.analysis import basics as B
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
