"""Convergence read after a scheduled change of the objective (BCIR's prior switched off at T_o):
the jump the change causes is no sign of slow learning, a steady climb after it still is, and
with too few validations after the change the plain rule applies."""
from types import SimpleNamespace

import pytest

import poselab.experiments  # noqa: F401  (registers the chapters' recipes)
from fake_tables import FakeTable
from poselab import claims
from poselab.chapters.bcir import analysis as B
from poselab.experiments.verdicts import compare_recipes, objective_change_step

# the shape of ipr_prior's recorded full-preset curves: the prior is off from step 4250 (T_o = 34 of
# 40 epochs at 125 steps an epoch); AP jumps between the validations at 4000 and 4500, then is flat
JUMP = [(3000, 0.46), (3500, 0.50), (4000, 0.525), (4500, 0.627), (5000, 0.631)]
CLIMB = [(3000, 0.40), (3500, 0.46), (4000, 0.52), (4500, 0.58), (5000, 0.64)]


def test_a_jump_at_the_change_is_not_slow_learning_a_climb_after_it_is():
    curve = ([s for s, _ in JUMP], [v for _, v in JUMP])
    plain = claims.has_converged("ipr_prior", [curve], tolerance=0.05, relative=True)
    assert not plain.ok and "+16.8%" in plain.reason, plain.reason        # the counter-case: the jump counted
    after = claims.has_converged("ipr_prior", [curve], tolerance=0.05, relative=True, changed_at=[4250])
    assert after.ok and "changed at step 4250" in after.reason, after.reason
    # (0.631 - 0.627) scaled from 500 to 1000 steps, over the final 0.631
    assert after.summary["gains"] == [pytest.approx(0.008 / 0.631)]
    assert after.summary["objective_changed_at"] == [4250]
    climb = ([s for s, _ in CLIMB], [v for _, v in CLIMB])
    still = claims.has_converged("ipr_prior", [climb], tolerance=0.05, relative=True, changed_at=[4250])
    assert not still.ok and still.summary["gains"] == [pytest.approx(0.12 / 0.64)]


def test_the_plain_rule_where_the_change_cannot_be_read_after():
    curve = ([2500, 4000, 5000], [0.30, 0.49, 0.50])                      # one validation after 4250
    plain = claims.has_converged("bcir", [curve], tolerance=0.05, relative=True)
    late = claims.has_converged("bcir", [curve], tolerance=0.05, relative=True, changed_at=[4250])
    assert late.ok == plain.ok and late.summary["gains"] == plain.summary["gains"]
    assert "objective_changed_at" not in late.summary
    early = claims.has_converged("bcir", [([s for s, _ in JUMP], [v for _, v in JUMP])], tolerance=0.05,
                                 relative=True, changed_at=[1000])      # before the last fifth: no effect
    assert not early.ok
    with pytest.raises(claims.ClaimError, match="one step"):
        claims.has_converged("bcir", [curve, curve], tolerance=0.05, changed_at=[4250])


def test_objective_change_step_follows_the_recipe_and_preset():
    full = FakeTable({"ipr_prior": [0.63], "ipr": [0.47], "bcir_beta1": [0.48], "nonesuch": [0.1]}, preset="full",
                     curve=lambda r, ap: [(2500, ap * 0.6), (5000, ap)])
    steps = {r.recipe: objective_change_step(r) for r in full.results}
    assert steps == {"ipr_prior": 4250.0, "ipr": None, "bcir_beta1": 4250.0, "nonesuch": None}
    default = FakeTable({"bcir": [0.3]}, preset="default", curve=lambda r, ap: [(250, ap * 0.6), (625, ap)])
    assert objective_change_step(default.results[0]) == 500.0            # T_o = 4 of 5 epochs
    fast = FakeTable({"bcir": [0.3]}, preset="fast", curve=lambda r, ap: [(5, ap * 0.6), (10, ap)])
    assert objective_change_step(fast.results[0]) is None                 # capped by max_steps


def test_compare_recipes_reads_the_prior_recipe_after_its_switch():
    """ipr_prior with its jump against ipr (no switch) with the same curve shape: only ipr's
    climb across the same steps is "not converged"."""
    base = [0.47, 0.44, 0.48, 0.46, 0.45]
    up = [0.63, 0.631, 0.628, 0.633, 0.629]
    table = FakeTable({"ipr": base, "ipr_prior": up}, preset="full",
                      curve=lambda r, ap: [(s, ap * v / 0.631) for s, v in JUMP])
    v = compare_recipes(table, "ipr_prior", "ipr", min_effect=0.011, paper_effect=0.022, paired=True)
    ready = {c["name"]: c for c in v.summary["readiness"] if c["check"] == "converged"}
    assert ready["ipr_prior"]["ok"] and not ready["ipr"]["ok"], v.reason
    assert v.verdict == "inconclusive" and "ipr not converged" in v.reason and "ipr_prior not" not in v.reason
    flat = FakeTable({"ipr": base, "ipr_prior": up}, preset="full",
                     curve=lambda r, ap: ([(s, ap * v / 0.631) for s, v in JUMP] if r == "ipr_prior" else
                                          [(3000, ap * 0.95), (4000, ap * 0.99), (5000, ap)]))
    assert B.components_verdict(flat).summary["links"]["ipr_prior > ipr"]["verdict"] == "reproduced"


def test_the_step_comes_from_the_runs_own_config_first():
    """A recorded run keeps the loss parameters and preset it trained with: a T_o of its own (here
    20 of 40 epochs) wins over the registered recipe's."""
    table = FakeTable({"ipr_prior": [0.63]}, preset="full", curve=lambda r, ap: [(2500, ap * 0.6), (5000, ap)])
    run = table.results[0]
    run.config = {**run.config, "recipe": {"loss_params": {"prior_weight": 1.0, "t_off_epochs": 20}},
                  "preset": {"epochs": 40, "max_steps": None}}
    assert objective_change_step(run) == 2500.0
    run.config["recipe"]["loss_params"]["prior_weight"] = 0.0          # the term never trained
    assert objective_change_step(run) is None


@pytest.mark.parametrize("bad", [4, "4", [float("nan")], [-1.0], ["4"], [True], [float("inf")], [[1]]])
def test_changed_at_refuses_what_is_not_a_step_per_curve(bad):
    curve = ([3000, 4000, 4500, 5000], [0.46, 0.52, 0.63, 0.631])
    with pytest.raises(claims.ClaimError, match="changed_at"):
        claims.has_converged("prior", [curve], tolerance=0.05, relative=True, changed_at=bad)


@pytest.mark.parametrize("run", [5, SimpleNamespace(config="x", recipe="ipr_prior", preset="full"),
                                 SimpleNamespace(config={"recipe": {"loss_params": [1]}, "preset": {"epochs": 5}},
                                                 recipe="ipr_prior", preset="full"),
                                 SimpleNamespace(config={}, recipe="ipr_prior", preset="full", history=[1])])
def test_objective_change_step_of_an_unreadable_run_is_none_not_a_traceback(run):
    assert objective_change_step(run) is None
    ok = SimpleNamespace(config={}, recipe="ipr_prior", preset="full", history={"steps": 5000})
    assert objective_change_step(ok) == pytest.approx(4250.0)  # the same reader does find a readable one
