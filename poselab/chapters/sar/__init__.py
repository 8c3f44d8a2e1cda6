"""Chapter 05: SAR, spatial-aware regression (recipes, analysis, multi-person, figures, widgets)."""
from poselab.chapters.registry import Chapter, register
from . import recipes

CHAPTER = register(Chapter(
    number=5, name="sar", stem="05_sar",
    title="SAR — spatial-aware regression",
    paper="sar-spatial-aware-regression.md", tag="SAR",
    recipes=recipes.CHAPTER_RECIPES,
    replication_recipes=lambda preset: recipes.replication_recipes(),  # with the stride variants
    expected_claims={"sar.degenerate_to_regression", "sar.fg_fc_variant", "sar.heatmap_offset",
                     "sar.input_size.table", "sar.loss.matches_formula",
                     "sar.multi_person.recall", "sar.normalization.shift_invariance",
                     "sar.normalization.softmax_depends_on_count", "sar.objective.optimum_cases",
                     "sar.quantization.exact_target_floor", "sar.quantization.stride_robustness",
                     "sar.training.auxiliary_heatmap"},
    package=__name__))
