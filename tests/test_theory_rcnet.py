"""RCNet's Lemma 5, Theorem 3 and Corollary 6 checks (poselab.chapters.rcnet.theory), each shown
failing on a constructed counter-case, in float64 and float32."""
import numpy as np
import pytest
import torch

from poselab.chapters.rcnet import analysis as R
from poselab.chapters.rcnet import theory as T


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lemma5_holds_on_random_and_extremal_cases(dtype):
    out = T.lemma5_check(400, 8, dtype=dtype, seed=1)
    assert out["holds"] and out["fraction_holds"] == 1.0 and out["dtype"] == dtype.__name__
    assert out["non_vacuous"] > 0  # the bound says something on some cases
    # the equality case is in the set: two items whose errors add up to exactly their gap
    assert out["min_slack"] == 0.0 and out["tightest"]["kind"] == "tight pair"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("wrong", [{"factor": 1.0}, {"factor": 1.9}, {"gap": "max"}])
def test_lemma5_check_rejects_stronger_false_versions(dtype, wrong):
    out = T.lemma5_check(400, 8, dtype=dtype, seed=1, **wrong)
    assert not out["holds"] and out["min_slack"] < -1e-3


def test_lemma5_quantities_tight_pair_and_agreement_with_analysis():
    q = T.lemma5_quantities([0.25, 0.25], [0.0, 0.5])  # errors 0.25 + 0.25 = gap 0.5: tie, misordered
    assert q["accuracy"] == 0.0 and q["bound"] == 0.0 and q["holds"]
    assert not T.lemma5_quantities([0.25, 0.25], [0.0, 0.5], factor=1.0)["holds"]  # bound 0.5 > 0
    rng = np.random.default_rng(3)
    star = rng.random(30)
    mu = star + rng.normal(0, 0.01, 30)
    old = R.lemma5_bound(mu, star)
    new = T.lemma5_quantities(mu, star)
    assert abs(old["accuracy"] - new["accuracy"]) < 1e-15 and abs(old["bound"] - new["bound"]) < 1e-12


def test_lemma5_bad_input():
    with pytest.raises(ValueError, match="two distinct target"):
        T.lemma5_quantities([0.1, 0.2], [0.5, 0.5])
    with pytest.raises(ValueError, match="finite"):
        T.lemma5_quantities([0.1, float("nan")], [0.5, 0.6])
    with pytest.raises(ValueError, match="same length"):
        T.lemma5_quantities([0.1, 0.2, 0.3], [0.5, 0.6])
    with pytest.raises(TypeError, match="float64 or float32"):
        T.lemma5_quantities([0.1, 0.2], [0.5, 0.6], dtype=np.float16)
    with pytest.raises(ValueError, match="gap"):
        T.lemma5_quantities([0.1, 0.2], [0.5, 0.6], gap="mean")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_outside_case_reconstructed_and_it_violates_assumption4(dtype):
    case = T.theorem3_case(**T.theorem3_outside_case(), dtype=dtype)
    assert [round(v, 3) for v in case["loss"]] == [0.469, 0.375]
    assert case["accuracy"] == [1.0, 5 / 6]
    assert case["loss_down"] and case["accuracy_down"]
    # the loss fell through its L1 term; the pair term rose
    assert case["l1_term"][1] < case["l1_term"][0] and case["pair_term"][1] > case["pair_term"][0]
    assert "Assumption 4: E[delta^2] falls" in case["violated"]
    assert "Assumption 4: E[delta^2] above Var[delta*]" in case["violated"]
    assert not case["contradicts"]
    assert "D_A3 >= 0 (Eq. 61)" in case["failed_steps"]


def test_theorem3_case_flags_a_contradiction_meeting_the_hypotheses():
    # a counter-case found by the search: loss down, accuracy down, Assumption 4 and |delta| <= c met
    search = T.theorem3_check(8, 600, seed=0)
    ex = search["example"]
    assert ex is not None and not search["holds"] and search["contradictions"] > 0
    case = T.theorem3_case(ex["target"], ex["before"], ex["after"])
    assert case["contradicts"] and case["violated"] == [] and case["failed_steps"]
    assert case["mean_sq_delta"][0] <= case["mean_sq_delta"][1] <= case["var_delta_star"]
    # the same pair of score sets in reverse is a loss-up step: no contradiction
    assert not T.theorem3_case(ex["target"], ex["after"], ex["before"])["contradicts"]


def test_theorem3_split_sums_to_the_pair_term_change():
    rng = np.random.default_rng(5)
    star, mu0, mu1 = rng.random((3, 7))
    case = T.theorem3_case(star, mu0, mu1)
    total = sum(case[k] for k in ("D_A1", "D_A2", "D_A3", "D_A4"))
    assert abs(total - (case["pair_term"][1] - case["pair_term"][0])) < 1e-12
    assert case["D_A1"] >= 0 and case["D_A2"] <= 0  # the two signs the proof gets right


def test_theorem3_check_can_come_out_either_way():
    assert T.theorem3_check(8, 300, kind="gradient", lr=0.5, seed=0)["holds"]  # tiny gradient steps
    anti = T.theorem3_check(8, 300, seed=0, pair_term=R.swapped_rank_pair_term)  # an anti-ranking loss
    assert not anti["holds"] and anti["contradictions"] > 0
    with pytest.raises(ValueError, match="kind"):
        T.theorem3_check(kind="newton")
    with pytest.raises(ValueError, match="n_items"):
        T.theorem3_check(n_items=2)


def test_theorem3_sentence_names_the_violated_hypothesis():
    case = T.theorem3_case(**T.theorem3_outside_case())
    search = T.theorem3_check(8, 300, seed=0)
    text = T.theorem3_sentence(case, search)
    assert "does not contradict" in text and "E[delta^2] falls" in text
    assert f"{search['contradictions']} of these" in text


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cor6_large_learning_rate_breaks_lemma7(dtype):
    bad = T.cor6_gradient_descent(lr=5.0, steps=80, window=10, dtype=dtype)
    assert not bad["lemma7_holds"] and bad["loss_rises"] > 0 and not bad["holds"]


def test_cor6_pair_term_alone_descends_monotonically_at_small_lr():
    # without the non-smooth L1 term (b' -> infinity) the loss is gradient-Lipschitz: Lemma 7 holds
    smooth = T.cor6_gradient_descent(lr=0.05, steps=120, window=10, b_prime=1e12)
    assert smooth["lemma7_holds"] and smooth["loss"][1] < smooth["loss"][0]
    assert len(smooth["losses"]) == 121 and smooth["dtype"] == "float64"


def test_cor6_float32_tracks_float64():
    a = T.cor6_gradient_descent(lr=0.01, steps=60, window=10, dtype=torch.float64)
    b = T.cor6_gradient_descent(lr=0.01, steps=60, window=10, dtype=torch.float32)
    assert abs(a["loss"][1] - b["loss"][1]) < 1e-4 and a["accuracy"] == b["accuracy"]


def test_cor6_bad_input():
    with pytest.raises(ValueError, match="lr"):
        T.cor6_gradient_descent(lr=0.0)
    with pytest.raises(ValueError, match="window"):
        T.cor6_gradient_descent(steps=10, window=10)
    with pytest.raises(TypeError, match="float64 or float32"):
        T.cor6_gradient_descent(dtype=torch.float16)


class _ScaledTarget(torch.nn.Module):
    """Scores sigmoid(a·x·w/√F): the targets' own order for every a > 0, so the accuracy cannot
    fall — the counter-case to 'the chain breaks'."""

    def __init__(self, w):
        super().__init__()
        self.register_buffer("w", w)
        self.a = torch.nn.Parameter(torch.tensor(0.5, dtype=w.dtype))

    def forward(self, x):
        return torch.sigmoid(self.a * (x @ self.w) / self.w.numel() ** 0.5)


def test_cor6_chain_holds_for_an_order_preserving_model():
    gen = torch.Generator().manual_seed(0)
    torch.randn(6, 8, 8, generator=gen, dtype=torch.float64)  # cor6's features, drawn first
    w = torch.randn(8, generator=gen, dtype=torch.float64)
    run = T.cor6_gradient_descent(lr=0.01, steps=60, window=10, model=_ScaledTarget(w))
    assert run["accuracy"] == [1.0, 1.0] and run["accuracy_drops_when_loss_fell"] == 0
    assert run["chain_holds"] and run["lemma7_holds"]
    # the real RCNet on the same data, same schedule: the accuracy falls at a step where the loss falls
    assert T.cor6_gradient_descent(lr=0.01, steps=150, window=10)["accuracy_drops_when_loss_fell"] > 0


def test_theorem3_contradictions_are_explained_by_eq61_or_eq65():
    search = T.theorem3_check(8, 600, seed=0)
    assert search["contradictions"] > 0 and search["explained_by_eq61_or_eq65"] == search["contradictions"]
    assert T.theorem3_check(8, 300, kind="gradient", lr=0.5, seed=0)["contradictions"] == 0


def test_outside_hypotheses_false_for_a_contradiction():
    ex = T.theorem3_check(8, 600, seed=0)["example"]
    case = T.theorem3_case(ex["target"], ex["before"], ex["after"])
    assert not case["outside_hypotheses"]
    assert T.theorem3_case(**T.theorem3_outside_case())["outside_hypotheses"]


def test_row_helpers_and_lemma5_on_scores():
    rows = T.theorem3_rows({"outside": T.theorem3_case(**T.theorem3_outside_case())})
    assert rows[0]["loss"] == "0.4688 -> 0.3752" and rows[0]["contradicts"] is False
    on = T.lemma5_on_scores([0.2, 0.3, 0.5, 0.1], [0.1, 0.4, 0.45, 0.0])
    assert on["pairs"] == "matched" and on["n"] == 3
    assert T.lemma5_on_scores([0.2, 0.3], [0.4, 0.0])["pairs"] == "all detections"
    runs = {"lr 5": T.cor6_gradient_descent(lr=5.0, steps=40, window=5)}
    assert T.cor6_rows(runs)[0]["run"] == "lr 5" and "breaks on every run" in T.cor6_sentence(runs)


def test_lemma5_on_scores_without_two_distinct_oks_and_its_sentence():
    none = T.lemma5_on_scores([0.2, 0.3, 0.4], [0.0, 0.0, 0.0])  # a model that matched nobody
    assert none["holds"] is None and np.isnan(none["bound"])
    assert "not evaluated" in T.lemma5_scores_sentence(none)
    assert T.lemma5_rows({"x": none})[0]["holds"] == "not evaluated"
    vacuous = T.lemma5_on_scores([0.9, 0.1, 0.5], [0.61, 0.6, 0.9])
    assert vacuous["bound"] < 0 and "vacuous" in T.lemma5_scores_sentence(vacuous)
    useful = T.lemma5_on_scores([0.11, 0.52, 0.89], [0.1, 0.5, 0.9])
    assert useful["bound"] > 0 and "informative and holds" in T.lemma5_scores_sentence(useful)


# ----------------------------------------------------------------------------- hostile inputs (QA)
def test_lemma5_on_scores_rejects_mismatched_nan_and_2d_inputs():
    with pytest.raises(ValueError, match="same length"):
        T.lemma5_on_scores([0.1, 0.2, 0.3], [0.5, 0.6])          # was a deep IndexError
    with pytest.raises(ValueError, match="1-D"):
        T.lemma5_on_scores([[0.1, 0.2]], [[0.5, 0.6]])            # was silently flattened
    with pytest.raises(ValueError, match="finite"):
        T.lemma5_on_scores([0.1, 0.2, 0.3], [float("nan"), 0.5, 0.6])  # a NaN OKS counted as unmatched


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lemma5_takes_gpu_tensors(dtype):
    mu, star = torch.tensor([0.125, 0.5, 0.875], dtype=dtype), torch.tensor([0.0, 0.5, 1.0], dtype=dtype)
    got = T.lemma5_quantities(mu, star)
    assert got == T.lemma5_quantities([0.125, 0.5, 0.875], [0.0, 0.5, 1.0])
    assert T.lemma5_on_scores(mu, star)["pairs"] == "matched"


def test_theorem3_case_rejects_infinite_margin_and_empty_sets():
    with pytest.raises(ValueError, match="finite"):
        T.theorem3_case([0, 1], [0, 1], [0, 1], c=float("inf"))   # was a NaN loss
    with pytest.raises(ValueError, match="two distinct target"):
        T.theorem3_case([], [], [])                                # was numpy's zero-size message
    with pytest.raises(ValueError, match="step > 0"):
        T.theorem3_check(4, 5, step=float("inf"))


@pytest.mark.parametrize("bad", [{"n_images": 0}, {"poses": 1}])
def test_cor6_rejects_sets_without_a_pair(bad):
    with pytest.raises(ValueError, match="poses >= 2"):  # was ZeroDivisionError
        T.cor6_gradient_descent(steps=5, window=2, **bad)


def test_cor6_sentence_needs_a_run():
    with pytest.raises(ValueError, match="at least one"):  # was '; the chain holds on every run.'
        T.cor6_sentence({})


def test_lemma5_rows_say_not_evaluated_instead_of_nan():
    rows = T.lemma5_rows({"scores": T.lemma5_on_scores([0.3, 0.2], [0.0, 0.0])})
    assert rows[0]["holds"] == "not evaluated" and "nan" not in str(rows[0]).lower()


def test_theorem3_search_rows_hold_text_not_python_dicts():
    rows = T.theorem3_search_rows({"random": T.theorem3_check(8, 300, seed=0)})
    assert rows[0]["... meeting every checkable hypothesis"] > 0   # this search finds contradictions
    assert all(not isinstance(v, (dict, list)) for v in rows[0].values())
    assert "{" not in str(list(rows[0].values())) and "D_A4 = 0 (Eq. 65): " in rows[0]["failing proof steps (contradictions)"]
    assert T.theorem3_search_rows({"none": T.theorem3_check(8, 5, kind="gradient")})[0][
        "violated hypotheses (accuracy-down steps)"] == "no step"   # not "none": the renderer shows it as missing


def test_cor6_sentence_quotes_labels_with_commas():
    r = {"holds": False, "chain_holds": False, "loss": [1.0, 0.5], "accuracy": [0.5, 0.8], "loss_rises": 0,
         "steps": 10, "accuracy_drops_when_loss_fell": 2}
    ok = {**r, "chain_holds": True, "accuracy_drops_when_loss_fell": 0}
    assert "the chain breaks on every run" in T.cor6_sentence({"a, b": r, "c, d": r})
    assert "the chain breaks on 'a, b' (" in T.cor6_sentence({"a, b": r, "c, d": ok})


def test_theorem3_agreement_sentence():
    s = T.theorem3_agreement_sentence({"loss_down_epochs": 1, "accuracy_up_given_loss_down": 0.0,
                                       "accuracy_change": -0.28, "loss_change": -0.21})
    assert "fell in 1 epoch," in s and "0% of them (the theorem says every one)" in s and "{" not in s
    s = T.theorem3_agreement_sentence({"loss_down_epochs": 0, "accuracy_up_given_loss_down": float("nan"),
                                       "accuracy_change": 0.0, "loss_change": 0.1})
    assert "nan" not in s and "fell in 0 epochs;" in s
