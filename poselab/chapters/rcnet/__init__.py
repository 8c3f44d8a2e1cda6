"""Chapter 03: RCNet, confidence ranking (the post-hoc re-scoring fit, analysis, the simulated
person detector, the numerical checks of Lemma 5 / Theorem 3 / Cor. 6 (``theory``), where the AP
gain comes from (``mechanism``), figures, widgets). It registers no recipe: RCNet re-ranks the detections of
the ``mse`` model, which is what its replication trains; the RCNet fits on each recorded model
are the replication's derived records (:mod:`poselab.chapters.rcnet.replication`)."""
from poselab.chapters.registry import Chapter, register, replicating


def _derived_steps():
    # deferred: the fits need torch, and this module imports the engine; called on first use
    from poselab.chapters.rcnet.replication import derived_steps
    return derived_steps()


CHAPTER = register(Chapter(
    number=3, name="rcnet", stem="03_rcnet",
    title="RCNet — confidence ranking",
    paper="rcnet-confidence-ranking.md", tag="RCNet",
    recipes=("mse",),
    replication_recipes=replicating(("mse",)),
    replication_derived=_derived_steps,
    expected_claims={"rcnet.ablation.attention_vs_mlp", "rcnet.ablation.margin",
                     "rcnet.calibration.pearson_ause", "rcnet.control.rank_vs_regression", "rcnet.cor6.chain_breaks",
                     "rcnet.lemma5.accuracy_bound", "rcnet.loss.eq9_matches_simplified", "rcnet.loss.tied_gradient",
                     "rcnet.posthoc.map_gain", "rcnet.posthoc.mar_unchanged",
                     "rcnet.posthoc.ranking_accuracy_gain", "rcnet.prop2.expected_margin",
                     "rcnet.random.ranking_accuracy", "rcnet.rivals.table",
                     "rcnet.theorem1.upper_bound", "rcnet.theorem3.finite_counterexample",
                     "rcnet.theorem3.outside_case", "rcnet.toy.ar_rank_invariant",
                     "rcnet.toy.correct_order_ap", "rcnet.toy.fp_first_ap"},
    package=__name__))
