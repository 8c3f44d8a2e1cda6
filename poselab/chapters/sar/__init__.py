"""Chapter 05: SAR, spatial-aware regression (recipes, analysis, multi-person, figures, widgets)."""
from poselab.chapters.registry import Chapter, register


def _replication(preset):
    """Table 2's recipes, the ablations and the stride variants (derived, not registered)."""
    from .recipes import replication_recipes  # deferred: the registration stays light (no torch)
    return replication_recipes()


def _derived_steps():
    """The derived records of the claims computed on the models (out-of-crop, multi-person)."""
    from .replication import derived_steps  # deferred: the analysis needs torch and imports the engine
    return derived_steps()


CHAPTER = register(Chapter(
    number=5, name="sar", stem="05_sar",
    title="SAR — spatial-aware regression",
    paper="sar-spatial-aware-regression.md", tag="SAR",
    recipes=("sar_regression", "mse", "sar_simcc", "sar_aux"),
    replication_recipes=_replication,
    replication_derived=_derived_steps,
    expected_claims={"sar.degenerate_to_regression", "sar.fg_fc_variant", "sar.heatmap_offset",
                     "sar.input_size.table", "sar.loss.matches_formula",
                     "sar.multi_person.recall", "sar.normalization.shift_invariance",
                     "sar.normalization.softmax_depends_on_count", "sar.objective.optimum_cases",
                     "sar.out_of_crop.reach", "sar.out_of_crop.error",
                     "sar.quantization.exact_target_floor", "sar.quantization.stride_robustness",
                     "sar.training.auxiliary_heatmap"},
    package=__name__))
