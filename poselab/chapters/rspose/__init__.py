"""Chapter 02: RSPose, ranking losses (recipes, analysis, figures, widgets)."""
from poselab.chapters.registry import Chapter, register, replicating


def _derived_steps():
    # deferred: the replication module needs torch and imports the engine; called on first use
    from poselab.chapters.rspose.replication import derived_steps
    return derived_steps()


CHAPTER = register(Chapter(
    number=2, name="rspose", stem="02_rspose",
    title="RSPose — ranking losses",
    paper="rspose-ranking-losses.md", tag="RSPose",
    recipes=("mse", "spatial_rank", "spatial_rs", "spatial_rs_is", "simcc_kl", "simcc_rs"),
    # the chapter's recipes, then what only the replication trains (recipes.EXTRA_RECIPES):
    # Instance-Sort on SimCC and Table 1's ranking dot cell. Table 1's MSE cells (mse, mse_dot)
    # are read from chapter 04's records (`poselab replicate 04` trains mse_dot), not trained twice.
    replication_recipes=replicating(("mse", "spatial_rank", "spatial_rs", "spatial_rs_is", "simcc_kl", "simcc_rs",
                                     "simcc_rs_is", "spatial_rs_dot")),
    # measured on the trained models, per seed (App. C's min-max scaling on spatial_rs_is)
    replication_derived=_derived_steps,
    expected_claims={"rspose.cost.step_time", "rspose.gradients.mse_negatives_dominate", "rspose.gradients.rank_balanced",
                     "rspose.imbalance.dot_2d_ratio", "rspose.imbalance.gaussian_2d_ratio",
                     "rspose.imbalance.simcc_dot_ratio_x", "rspose.imbalance.simcc_dot_ratio_y",
                     "rspose.loss.matches_reference_loop",
                     "rspose.plateau.rank_blind_inside_window", "rspose.scaling.minmax_keeps_ap",
                     "rspose.simcc.kl_vs_rs", "rspose.simcc.instance_sort_effect",
                     "rspose.table1.gaussian_vs_dot_mse", "rspose.table1.gaussian_vs_dot_ranking",
                     "rspose.theorem1.covariance_identity_error",
                     "rspose.training.ablation", "rspose.training.spearman"},
    package=__name__))
