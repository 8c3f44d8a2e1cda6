"""rspose.analysis.probed_run: the gradient-balance probe watches a run without changing it, so the
probed run is the cached plain run, and a re-opened chapter 02 reads the probe's records instead of
training its four probe runs again (they trained with ``cache=False`` on every run before)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from poselab import experiments as ex
from poselab.chapters.rspose import analysis as A
from poselab.data import default_dataset

TINY = ex.Preset("tiny-probe", input_size=(64, 48), epochs=5, max_steps=4, batch_size=8, n_train=12, n_val=6)


@pytest.fixture()
def probe_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("POSELAB_CACHE_DIR", str(tmp_path / "cache"))
    data = A.probe_batch(default_dataset("val", n_images=TINY.n_val), TINY.input_size, 2.0, 3,
                         heatmap_size=TINY.heatmap_size)
    return data


def _probe(data):
    return A.GradientBalanceProbe(*data, every=2, losses=("mse",))


def test_a_probe_does_not_change_the_run(probe_setup):
    plain = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu", cache=False, threads=1)
    probe = _probe(probe_setup)
    watched = ex.run_recipe("mse", preset=TINY, seed=0, device="cpu", cache=False, threads=1, callbacks=[probe])
    assert [r["step"] for r in probe.records] == [0, 2, 4]
    assert plain.history["losses"] == watched.history["losses"]
    for name, m in plain.metrics.items():        # NaN == NaN here (a 4-step model's Spearman is undefined)
        assert m.keys() == watched.metrics[name].keys()
        assert all(m[k] == watched.metrics[name][k] or (np.isnan(m[k]) and np.isnan(watched.metrics[name][k]))
                   for k in m), name
    a, b = plain.model("cpu").state_dict(), watched.model("cpu").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_probed_run_is_the_cached_run_and_reopens_without_training(probe_setup, monkeypatch):
    first = _probe(probe_setup)
    res = A.probed_run("mse", first, preset=TINY, seed=1, device="cpu")
    assert not res.cached and first.records
    # the chapter's comparison then finds the same run in the cache
    again = ex.run_recipe("mse", preset=TINY, seed=1, device="cpu")
    assert again.cached and again.key == res.key
    # a re-opened chapter: records read back, nothing trains
    calls = []
    monkeypatch.setattr(A, "run_recipe", lambda *a, **k: calls.append(k) or pytest.fail("trained"))
    second = _probe(probe_setup)
    reopened = A.probed_run("mse", second, preset=TINY, seed=1, device="cpu")
    assert reopened.cached and not calls
    assert second.records == first.records                 # exact: floats round-trip through JSON
    # another probe batch is another record: it must train (here: refused by the stand-in)
    other = A.GradientBalanceProbe(*(t[:2] for t in probe_setup), every=2, losses=("mse",))
    with pytest.raises(pytest.fail.Exception, match="trained"):
        A.probed_run("mse", other, preset=TINY, seed=1, device="cpu")


def test_a_cached_run_without_records_trains_once_more_with_the_probe(probe_setup):
    plain = ex.run_recipe("mse", preset=TINY, seed=2, device="cpu", threads=1)   # cached, no probe records
    probe = _probe(probe_setup)
    res = A.probed_run("mse", probe, preset=TINY, seed=2, device="cpu")
    assert probe.records and not res.cached
    assert res.history["losses"] == plain.history["losses"]          # the same run, at its thread count
    kept = A._probe_path(res, probe)
    for damaged in ("not json", '[{"step": 0}]'):       # unreadable, or records without the loss: trained again
        kept.write_text(damaged)
        third = _probe(probe_setup)
        A.probed_run("mse", third, preset=TINY, seed=2, device="cpu")
        assert third.records == probe.records
    assert np.isfinite([r["mse"]["neg_share"] for r in third.records]).all()
