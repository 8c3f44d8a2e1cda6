"""Chapter 06: BCIR, bias-compensated integral regression (recipes, analysis, figures, widgets)."""
from poselab.chapters.registry import Chapter, register, replicating


def _replication_names():
    """The detection baseline, the chapter's recipes and the σ sweep (Table 6's rows)."""
    from .recipes import CHAPTER_RECIPES, SIGMA_RECIPES  # deferred: the registration stays light
    return ("mse", *CHAPTER_RECIPES, *SIGMA_RECIPES)


def _derived_steps():
    # deferred: the heatmap study needs torch, and its module imports the engine; called on first use
    from poselab.chapters.bcir.replication import derived_steps
    return derived_steps()


CHAPTER = register(Chapter(
    number=6, name="bcir", stem="06_bcir",
    title="BCIR — bias-compensated integral regression",
    paper="bcir-bias-compensated-integral-regression.md", tag="BCIR",
    recipes=("ipr", "ipr_reg", "ipr_prior", "ipr_debias", "bcir", "bcir_beta1", "bcir_beta20"),
    replication_recipes=replicating(_replication_names),
    replication_derived=_derived_steps,
    expected_claims={"bcir.beta.ablation", "bcir.components.each_helps", "bcir.bias.eq37_max_error",
                     "bcir.bias.toward_centre",
                     "bcir.compensation.max_error_px", "bcir.epe.argmax_not_better",
                     "bcir.gradient.eq23_matches_autograd", "bcir.gradient.gt_pixel_nonpositive",
                     "bcir.gradient_cases.bias_drives_collapse", "bcir.gradient_cases.l1_collapses_either_way",
                     "bcir.gradient_cases.off_truth_collapses_anyway",
                     "bcir.hard_cases.regression_better", "bcir.localization.ipr_more_localized",
                     "bcir.regularizer.helps", "bcir.shrinkage.detection_sigma_two_best",
                     "bcir.shrinkage.sigma_star_above_true", "bcir.training.bcir_vs_detection",
                     "bcir.training.bcir_vs_ipr", "bcir.training.ipr_slower_than_detection"},
    package=__name__))
