"""Chapter 07: the capstone: every registered recipe in one arena, the re-scoring on top of the
best, the playground and every chapter's scorecard (arena, playground, figures, widgets)."""
from poselab.chapters.registry import Chapter, register, replicating

CHAPTER = register(Chapter(
    number=7, name="capstone", stem="07_capstone",
    title="the loss arena",
    claim_prefixes=("arena",), runs_last=True,
    replication_recipes=replicating(None),  # every registered recipe
    expected_claims={"arena.best_recipe", "arena.cache_consistent",
                     "arena.ranking_losses_raise_spearman", "arena.rcnet_gain_over_best",
                     "arena.same_inputs"},
    package=__name__))
