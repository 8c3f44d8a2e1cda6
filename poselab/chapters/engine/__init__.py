"""Chapter 01: the training engine and the codecs, trained in a minute (analysis)."""
from poselab.chapters.registry import Chapter, register, replicating


def _derived_steps():
    # deferred: the analysis needs torch and imports the engine; called on first use
    from poselab.chapters.engine.analysis import derived_steps
    return derived_steps()


CHAPTER = register(Chapter(
    number=1, name="engine", stem="01_train_in_a_minute",
    title="training engine and codecs",
    recipes=("mse",),
    replication_recipes=replicating(("mse",)),
    replication_derived=_derived_steps,
    expected_claims={"engine.codecs.roundtrip_max_error_px", "engine.training.deterministic",
                     "engine.training.loss_decreases"},
    package=__name__))
