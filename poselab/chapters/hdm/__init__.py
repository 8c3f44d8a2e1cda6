"""Chapter 04: HDM, heatmap distribution matching (recipes, analysis, minimiser, training,
figures, widgets, and the derived records of its replication: ``replication``). Its codec, head
and loss live in the core: poselab.codecs.hdm, poselab.models.heads.MaxAnchor,
poselab.losses.emd_keypoints."""
from poselab.chapters.registry import Chapter, register, replicating


def _derived_steps():
    # deferred: the measurements need torch, and that module imports the engine; called on first use
    from poselab.chapters.hdm.replication import derived_steps
    return derived_steps()


CHAPTER = register(Chapter(
    number=4, name="hdm", stem="04_hdm",
    title="HDM — heatmap distribution matching",
    paper="hdm-heatmap-distribution-matching.md", tag="HDM",
    recipes=("mse", "emd", "mse_dot"),
    replication_recipes=replicating(("mse", "emd", "mse_dot")),
    replication_derived=_derived_steps,
    expected_claims={"hdm.ablation.iterations_1000_vs_500", "hdm.ablation.subpixel_beats_naive",
                     "hdm.counterexample.lower_mse_wrong_peak", "hdm.demanders.mass_sum_error",
                     "hdm.demanders.reconstruction_max_error_px", "hdm.emd.matches_reference",
                     "hdm.emd.monotone_in_displacement", "hdm.loss.minimiser_bias",
                     "hdm.sinkhorn.converged_by_cap",
                     "hdm.theorem1.corrected_identity_max_abs_error",
                     "hdm.theorem1.identity_max_abs_error", "hdm.training.compactness",
                     "hdm.training.emd_vs_mse", "hdm.training.level_descent",
                     "hdm.training.consistent_improvement",
                     "hdm.training.gaussian_beats_dot", "hdm.sigma.varies_across_joints"},
    package=__name__))
