"""Derived records pair by seed only within one forward precision, as live runs do
(poselab.experiments.replicate.derived_precision and recorded_derived_group_verdict)."""

import json

from poselab import claims
from poselab.experiments import replicate as rep


def _derived(folder, name, seed, value, precision=None, key="k"):
    base = {"recipe": name, "key": f"{key}{seed}", "seed": seed, "data": "synth", "metrics": {}}
    if precision is not None:
        base["forward_precision"] = precision
    rec = {"kind": rep.DERIVED_KIND, "name": name, "chapter": "06_bcir", "seed": seed, "preset": "full",
           "base": base, "values": {"x": value}}
    folder.mkdir(parents=True, exist_ok=True)
    rep.record_file(folder, name, "full", seed).write_text(json.dumps(rec))
    return rec


def _judge(groups):
    """a > b on every common seed: reproduced; the seeds judged are in the reason."""
    a = {r["seed"]: r["values"]["x"] for r in groups["a"]}
    b = {r["seed"]: r["values"]["x"] for r in groups["b"]}
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("no common seed")
    ok = all(a[s] > b[s] for s in seeds)
    return claims.Verdict("reproduced" if ok else "not reproduced", f"seeds {seeds}", {})


def test_a_seed_whose_two_records_differ_in_precision_is_left_out_and_named(tmp_path):
    folder = tmp_path / "06_bcir"
    for s in (0, 1, 2):
        _derived(folder, "a", s, 1.0, "bfloat16")
        _derived(folder, "b", s, 0.0, "bfloat16")
    _derived(folder, "a", 3, 0.0, "float32")  # seed 3 would turn the verdict if it paired
    _derived(folder, "b", 3, 1.0, "bfloat16")
    out = rep.recorded_derived_group_verdict("06_bcir", ["a", "b"], _judge, root=tmp_path)
    assert out["verdict"] == "reproduced" and "seeds [0, 1, 2]" in out["reason"]
    assert out["precision_mismatch"] == {3: {"a": "float32", "b": "bfloat16"}}
    assert "different forward precisions" in out["reason"] and out["seeds"] == [0, 1, 2]


def test_the_same_precision_pairs_and_decides_the_other_way(tmp_path):
    folder = tmp_path / "06_bcir"
    for s in (0, 1, 2, 3):
        _derived(folder, "a", s, 1.0 if s < 3 else 0.0, "float32")
        _derived(folder, "b", s, 0.0 if s < 3 else 1.0, "float32")
    out = rep.recorded_derived_group_verdict("06_bcir", ["a", "b"], _judge, root=tmp_path)
    assert out["verdict"] == "not reproduced" and "precision_mismatch" not in out


def test_only_mismatched_seeds_cannot_answer_and_say_why(tmp_path):
    folder = tmp_path / "06_bcir"
    _derived(folder, "a", 5, 1.0, "float32")
    _derived(folder, "b", 5, 0.0, "bfloat16")
    out = rep.recorded_derived_group_verdict("06_bcir", ["a", "b"], _judge, root=tmp_path)
    assert out["recorded"] is False and "different forward precisions" in out["reason"]


def test_an_older_record_reads_its_base_runs_precision_by_key(tmp_path):
    folder = tmp_path / "06_bcir"
    rec = _derived(folder, "study_a", 0, 1.0)
    rec["base"]["recipe"] = "ipr"
    run = {"kind": "poselab-replication", "run": {"key": "k0", "config": {"autocast": "bfloat16"}}}
    rep.record_file(folder, "ipr", "full", 0).write_text(json.dumps(run))
    assert rep.derived_precision(rec, folder) == "bfloat16"
    run["run"]["config"] = {"autocast": None}
    rep.record_file(folder, "ipr", "full", 0).write_text(json.dumps(run))
    assert rep.derived_precision(rec, folder) == "float32"
    run["run"]["key"] = "another run"  # a run of other code: no claim about this record's base
    rep.record_file(folder, "ipr", "full", 0).write_text(json.dumps(run))
    assert rep.derived_precision(rec, folder) is None
    assert rep.derived_precision({"base": {"forward_precision": "float32"}}) == "float32"
    assert rep.derived_precision({"base": None}) is None and rep.derived_precision([]) is None
