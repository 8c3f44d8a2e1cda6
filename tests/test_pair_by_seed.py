"""poselab.experiments.replicate.pair_by_seed: the per-seed pairing every recorded replication
reader makes before it judges (chapter 04's compactness, 05's out-of-crop errors and multi-person
detection, 06's heatmap study). The happy path with seeds recorded for one side only, then each
refusal shown on a constructed counter-case."""
import math

import pytest

from poselab.experiments.replicate import SeedPairs, pair_by_seed


def _rec(side, seed, preset="full", size=(64, 48), **extra):
    return {"side": side, "seed": seed, "preset": preset, "geometry": {"heatmap_size": list(size)}, **extra}


def _records(a=(0, 1, 2), b=(0, 1, 2)):
    return {"a": [_rec("a", s) for s in a], "b": [_rec("b", s) for s in b]}


def _problem(rec):
    return None if isinstance(rec, dict) and "preset" in rec else "lacks a preset"


KW = {"check": _problem, "side_of": lambda r: r["side"],
      "same": ["preset", ("heatmap size", lambda r: r["geometry"]["heatmap_size"])]}


def test_pairs_the_common_seeds_in_seed_order_and_names_the_rest():
    records = {"a": [_rec("a", s) for s in (3, 0, 2, 1)], "b": [_rec("b", s) for s in (5, 1, 0, 2)],
               "other": "ignored"}
    pairs = pair_by_seed(records, ["a", "b"], **KW)
    assert isinstance(pairs, SeedPairs)
    assert pairs.seeds == [0, 1, 2]
    assert list(pairs.sides) == ["a", "b"]
    assert [(r["side"], r["seed"]) for r in pairs.sides["b"]] == [("b", 0), ("b", 1), ("b", 2)]
    assert pairs.alone == {"a": [3], "b": [5]} and pairs.unpaired == [3, 5]
    # all seeds on both sides: nothing alone; a whole float seed (a JSON 2.0) counts as 2
    full = pair_by_seed({"a": [_rec("a", 2.0), _rec("a", 1)], "b": [_rec("b", 1), _rec("b", 2)]}, ("a", "b"), **KW)
    assert full.seeds == [1, 2] and full.unpaired == [] and full.alone == {"a": [], "b": []}


def test_three_sides_pair_on_the_seeds_all_of_them_hold():
    records = {"a": [_rec("a", s) for s in (0, 1, 2)], "b": [_rec("b", s) for s in (1, 2)],
               "c": [_rec("c", s) for s in (2, 1, 7)]}
    pairs = pair_by_seed(records, ["a", "b", "c"], **KW)
    assert pairs.seeds == [1, 2] and pairs.alone == {"a": [0], "b": [], "c": [7]}
    with pytest.raises(ValueError, match=r"no seed recorded for all of a \(seeds \[0\]\), b \(seeds \[1\]\) and c"):
        pair_by_seed({"a": [_rec("a", 0)], "b": [_rec("b", 1)], "c": [_rec("c", 2)]}, ["a", "b", "c"], **KW)


def test_refuses_what_is_no_records_by_side():
    with pytest.raises(TypeError, match="records must be"):
        pair_by_seed([_rec("a", 0)], ["a"])
    with pytest.raises(KeyError, match=r"no record of 'b' \(have \['a'\]\)"):
        pair_by_seed({"a": [_rec("a", 0)], "b": []}, ["a", "b"])
    with pytest.raises(TypeError, match="records of 'a' must be a list"):
        pair_by_seed({"a": _rec("a", 0), "b": [_rec("b", 0)]}, ["a", "b"])
    with pytest.raises(ValueError, match="sides must be distinct"):
        pair_by_seed(_records(), ["a", "a"])
    with pytest.raises(ValueError, match="sides must be distinct"):
        pair_by_seed(_records(), [])
    with pytest.raises(TypeError, match="same must hold keys"):
        pair_by_seed(_records(), ["a", "b"], same=[("preset",)])


def test_a_record_the_check_refuses_is_named_by_side_and_seed():
    records = _records()
    del records["b"][1]["preset"]
    with pytest.raises(ValueError, match="the b row of seed 1 lacks a preset"):
        pair_by_seed(records, ["a", "b"], **KW, what="row")
    records["b"][1] = "not a record"
    with pytest.raises(ValueError, match=r"the b record of seed \? lacks a preset"):
        pair_by_seed(records, ["a", "b"], **KW)


@pytest.mark.parametrize("seed", [True, 1.5, math.nan, math.inf, "1", None])
def test_a_seed_that_is_no_whole_number_is_refused(seed):
    records = _records()
    records["a"][1]["seed"] = seed
    with pytest.raises(ValueError, match="a a record has seed .* not a whole number"):
        pair_by_seed(records, ["a", "b"], **KW)


def test_a_record_without_a_seed_is_refused():
    records = _records()
    del records["a"][0]["seed"]
    with pytest.raises(ValueError, match="a a record has no seed"):
        pair_by_seed(records, ["a", "b"], **KW)
    # the seed read where the caller keeps it
    nested = {n: [{"values": {"seed": s}} for s in (0, 1)] for n in ("a", "b")}
    assert pair_by_seed(nested, ["a", "b"], seed_of=lambda r: r["values"]["seed"]).seeds == [0, 1]


def test_a_record_filed_under_the_wrong_side_is_refused():
    records = _records()
    records["a"][2] = _rec("b", 2)
    with pytest.raises(ValueError, match="the a record of seed 2 holds b's, given as 'a'"):
        pair_by_seed(records, ["a", "b"], **KW)
    assert pair_by_seed(records, ["a", "b"], check=_problem).seeds == [0, 1, 2]  # no side_of: not checked


def test_a_repeated_seed_is_not_another_replicate():
    records = _records()
    records["b"].append(_rec("b", 1))
    with pytest.raises(ValueError, match="b has two records of seed 1: a repeated seed is not another replicate"):
        pair_by_seed(records, ["a", "b"], **KW)


def test_no_common_seed_names_each_sides_seeds():
    with pytest.raises(ValueError, match=r"no seed recorded for both a \(seeds \[0, 1\]\) and b \(seeds \[2, 3\]\)"):
        pair_by_seed(_records(a=(1, 0), b=(3, 2)), ["a", "b"], **KW)


def test_paired_records_of_another_experiment_are_refused_naming_side_seed_and_key():
    records = _records()
    records["b"][2]["preset"] = "default"
    with pytest.raises(ValueError, match=r"b seed 2 differs from a seed 0 in preset \(default against full\): "
                                         "not one experiment"):
        pair_by_seed(records, ["a", "b"], **KW)
    records = _records()
    for r in records["a"][1:]:
        r["geometry"]["heatmap_size"] = [32, 24]
    with pytest.raises(ValueError, match=r"a seed 1, a seed 2 differ from a seed 0 in heatmap size \(\[32, 24\] "
                                         r"against \[64, 48\]\)"):
        pair_by_seed(records, ["a", "b"], **KW)


def test_an_unpaired_record_of_another_experiment_is_left_out_unless_all_must_agree():
    records = _records(a=(0, 1, 2, 9))
    records["a"][3]["preset"] = "fast"
    assert pair_by_seed(records, ["a", "b"], **KW).unpaired == [9]
    with pytest.raises(ValueError, match="a seed 9 differs from a seed 0 in preset"):
        pair_by_seed(records, ["a", "b"], **KW, same_among_all=True)
