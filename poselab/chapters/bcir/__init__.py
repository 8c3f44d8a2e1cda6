"""Chapter 06: BCIR, bias-compensated integral regression (recipes, analysis, figures, widgets)."""
from poselab.chapters.registry import Chapter, register, replicating
from . import recipes

CHAPTER = register(Chapter(
    number=6, name="bcir", stem="06_bcir",
    title="BCIR — bias-compensated integral regression",
    paper="bcir-bias-compensated-integral-regression.md", tag="BCIR",
    recipes=recipes.CHAPTER_RECIPES,
    replication_recipes=replicating(("mse", *recipes.CHAPTER_RECIPES, *recipes.SIGMA_RECIPES)),
    expected_claims={"bcir.beta.ablation", "bcir.bias.eq37_max_error", "bcir.bias.toward_centre",
                     "bcir.compensation.max_error_px", "bcir.epe.argmax_not_better",
                     "bcir.gradient.eq23_matches_autograd", "bcir.gradient.gt_pixel_nonpositive",
                     "bcir.hard_cases.regression_better", "bcir.localization.ipr_more_localized",
                     "bcir.regularizer.helps", "bcir.shrinkage.detection_sigma_two_best",
                     "bcir.shrinkage.sigma_star_above_true", "bcir.training.bcir_vs_detection",
                     "bcir.training.bcir_vs_ipr", "bcir.training.ipr_slower_than_detection"},
    package=__name__))
