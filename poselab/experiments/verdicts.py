"""Empirical verdicts straight from a :func:`~poselab.experiments.compare` table.

    table = compare(["emd", "mse"], seeds=(0, 1, 2), preset=preset)
    v = compare_recipes(table, "emd", "mse", metric="EPE_crop", min_effect=0.1, floor=0.3)
    claims.record("hdm.training.emd_vs_mse", kind="empirical", verdict=v, value=v.summary, paper=...)

The rule is :func:`poselab.claims.compare_seeds` (Welch interval with t critical values, a
minimum effect, ≥ 3 seeds, fast preset → "inconclusive"), then :func:`poselab.claims.apply_floor`
on the baseline's AP (a comparison with a baseline that has not learnt is "inconclusive"), with
the run's evidence (preset, seeds, per-seed values, sizes, data) taken from the table.
"""
from __future__ import annotations

from typing import Sequence

from .. import claims
from .presets import get_preset
from .registry import adapt_to_preset, get_recipe
from .runner import GENERATED_VAL, ComparisonTable

__all__ = ["compare_recipes", "paired_table", "forward_precision", "config_precision", "table_evidence", "validation_curves",
           "objective_changes", "LOWER_IS_BETTER", "DEFAULT_AP_FLOOR", "DEFAULT_CONVERGE_TOLERANCE", "OBJECTIVE_SWITCHES"]

LOWER_IS_BETTER = {"EPE", "EPE_crop", "seconds_per_step", "train_seconds", "peak_memory_mb"}
#: the baseline AP on generated val below which no loss comparison is a finding
DEFAULT_AP_FLOOR = 0.3
#: a run has converged when its validation AP rose by less than this share of its final value
#: over the last fifth of training (MSE at the default preset: +2.6 %; EMD: +13 %)
DEFAULT_CONVERGE_TOLERANCE = 0.05


def table_evidence(table: ComparisonTable, recipes: Sequence[str], metric: str,
                   set_name: str = GENERATED_VAL) -> dict:
    """:func:`poselab.claims.evidence` of a table: preset, seeds, per-seed ``metric`` of each
    recipe, input and heatmap size, data."""
    first = table.results[0]
    geometry = first.config["geometry"]
    seeds = sorted({r.seed for r in table.results if r.recipe in recipes})
    return claims.evidence(preset=first.preset, seeds=seeds,
                           per_seed={f"{r} {metric}": table.values(r, metric, set_name) for r in recipes},
                           input_size=geometry["input_size"], heatmap_size=geometry["heatmap_size"],
                           data=f"{first.data} ({set_name})")


def config_precision(config) -> str:
    """The forward precision a run's ``config`` (its record's ``run.config``) trained in: the
    resolved autocast (``"bfloat16"``, ``"float16"``) or ``"float32"``. A preset's
    ``autocast="auto"`` resolves per machine (bfloat16 only where the CPU or GPU computes it
    natively), so records of one recipe made on different machines can differ in it."""
    found = config.get("autocast") if isinstance(config, dict) else None
    return found if isinstance(found, str) and found else "float32"


def forward_precision(run) -> str:
    """:func:`config_precision` of a run (a :class:`~poselab.experiments.RunResult`)."""
    return config_precision(getattr(run, "config", None))


def paired_table(table: ComparisonTable, ours: str, theirs: str) -> tuple[ComparisonTable | None, dict]:
    """The runs of ``ours`` and ``theirs`` for the seeds **both** trained in the same forward
    precision, ordered by seed, so the i-th values of both sides are one seed's pair (same seed:
    the same initialisation where the model is the same, the same data stream and augmentations,
    the same evaluation crops; same precision: the pair differs only in the recipe).

    Returns ``(table, note)``: ``table`` is None when no seed pairs; ``note`` holds
    ``paired_seeds``, ``unpaired`` (recipe -> the seeds only it has, left out of the test) and,
    when some seed's two runs trained in different forward precisions
    (:func:`forward_precision`), ``precision_mismatch`` (seed -> each side's precision), left out
    too. A recipe with two runs of one seed cannot be paired: ``ValueError`` names it."""
    seeds, precision = {}, {}
    for name in (ours, theirs):
        runs = [r for r in table.results if r.recipe == name]
        mine = [r.seed for r in runs]
        repeated = sorted({s for s in mine if mine.count(s) > 1})
        if repeated:
            raise ValueError(f"cannot pair {ours!r} with {theirs!r} by seed: {name!r} has more than one run "
                             f"of seed(s) {repeated}")
        seeds[name] = set(mine)
        precision[name] = {r.seed: forward_precision(r) for r in runs}
    both = sorted(seeds[ours] & seeds[theirs])
    mismatch = {s: {name: precision[name][s] for name in (ours, theirs)} for s in both
                if precision[ours][s] != precision[theirs][s]}
    common = [s for s in both if s not in mismatch]
    note = {"paired_seeds": common,
            "unpaired": {name: sorted(seeds[name] - set(both)) for name in (ours, theirs)
                         if seeds[name] - set(both)}}
    if mismatch:
        note["precision_mismatch"] = mismatch
    if not common:
        return None, note
    keep = [r for name in (ours, theirs) for r in sorted(table.results, key=lambda r: r.seed)
            if r.recipe == name and r.seed in common]
    return ComparisonTable(keep), note


def _steps(run) -> int:
    """Training steps of a run: its per-step history, or the count a compact record keeps."""
    history = getattr(run, "history", None) or {}
    return len(history.get("step_times") or []) or int(history.get("steps") or 0)


#: loss parameters that switch a term of the objective off during training, as ``(epoch at which
#: it switches off, the term's weight)``: BCIR's Gaussian prior λ(t)·L_de (off at T_o)
OBJECTIVE_SWITCHES = (("t_off_epochs", "prior_weight"),)


def objective_change_step(run) -> float | None:
    """The training step at which ``run``'s objective last changed — a term of
    :data:`OBJECTIVE_SWITCHES` with a non-zero weight switching off at its epoch — or None: no
    such term, a recipe or preset that cannot be read, or a preset capped by ``max_steps`` (its
    epochs do not give the step). The loss parameters and preset are the ones the run recorded
    in its config; without them, the registered recipe as adapted to the run's preset."""
    config = getattr(run, "config", None)
    config = config if isinstance(config, dict) else {}
    recipe = config.get("recipe")
    params = recipe.get("loss_params") if isinstance(recipe, dict) else None
    preset = config.get("preset") or {}
    try:
        if params is None or not preset:
            known = get_preset(getattr(run, "preset", None))
            params = adapt_to_preset(get_recipe(getattr(run, "recipe", None)), known).loss_params \
                if params is None else params
            preset = preset or {"epochs": known.epochs, "max_steps": known.max_steps}
        epochs = [float(params[at]) for at, weight in OBJECTIVE_SWITCHES
                  if params.get(weight) and params.get(at) is not None]
        total = float(preset["epochs"])
        steps = _steps(run)
    except (KeyError, ValueError, TypeError, AttributeError):  # a config that cannot be read: no change known
        return None
    if not epochs or not steps or preset.get("max_steps") is not None or total <= 0:
        return None
    return max(epochs) * steps / total


def objective_changes(table: ComparisonTable, recipe: str) -> list[float | None]:
    """Per-seed :func:`objective_change_step` of ``recipe``'s runs, in the order of
    :func:`validation_curves` (``changed_at`` of :func:`poselab.claims.has_converged`)."""
    return [objective_change_step(r) for r in table.results if r.recipe == recipe]


def validation_curves(table: ComparisonTable, recipe: str, metric: str = "AP") -> list[tuple[list, list]]:
    """Per-seed ``(steps, values)`` of ``metric`` from each run's validations during training."""
    curves = []
    for r in table.results:
        if r.recipe != recipe:
            continue
        rows = [row for row in (getattr(r, "history", None) or {}).get("val", [])
                if row.get(metric) is not None]
        curves.append(([float(row["step"]) for row in rows], [float(row[metric]) for row in rows]))
    return curves


def compare_recipes(table: ComparisonTable, ours: str, theirs: str, *, metric: str = "AP",
                    min_effect: float, set_name: str = GENERATED_VAL,
                    lower_is_better: bool | None = None, baseline: str | None = None,
                    floor: float | None = DEFAULT_AP_FLOOR, floor_metric: str = "AP",
                    paper_effect: float | None = None, paired: bool = False,
                    converge_tolerance: float | None = DEFAULT_CONVERGE_TOLERANCE) -> claims.Verdict:
    """Verdict for "``ours`` beats ``theirs`` on ``metric``", the paper's effect beside ours.

    The rule is :func:`poselab.claims.compare_seeds` (with ``paper_effect``: the power check;
    ``paired``: each seed's runs of both recipes paired, over the seeds both trained in one
    forward precision — :func:`paired_table`; the seeds only one side has, and those whose two
    runs differ in precision, are left out and named in the evidence,
    and the floor and convergence checks read the same paired runs). Then both sides must be
    able to carry a verdict (:func:`poselab.claims.require_ready`): the baseline's
    ``floor_metric`` reaches ``floor`` (:func:`~poselab.claims.apply_floor`), **each** compared
    recipe has learnt (its own ``floor_metric`` ≥ ``floor``) and converged (its validation ``floor_metric`` gained less
    than ``converge_tolerance`` of its final value over the last fifth of training; for a recipe
    whose objective changes inside that fifth, read after the change: :func:`objective_changes`)
    — else "inconclusive", naming the side ("emd not converged at 625 steps ...").

    Args:
        table: a :func:`compare` result holding both recipes.
        ours, theirs: recipe names.
        metric: a metric of the table (``AP``, ``EPE_crop``, ``spearman``, ...).
        min_effect: the smallest advantage the claim is about, in the metric's unit.
        set_name: evaluation set.
        lower_is_better: default: True for EPE and time/memory, else False.
        baseline: whose ``floor_metric`` must reach ``floor`` (default ``theirs``).
        floor: the floor (default :data:`DEFAULT_AP_FLOOR`); None skips the floor rules.
        paper_effect: the paper's ours − theirs in ``metric``'s unit (signed).
        paired: pair the runs by seed (for recipes of the same model trained from the same
            seeds: only the loss or the target differs).
        converge_tolerance: relative gain over the last fifth allowed (None skips the check).
    """
    lower = metric in LOWER_IS_BETTER if lower_is_better is None else lower_is_better  # a bool: compare_seeds checks it
    whole = table                            # a baseline outside the pair is floored on all its runs
    if paired:
        for name in (ours, theirs):          # a recipe, metric or set the table lacks: its KeyError
            table.values(name, metric, set_name)
        sub, note = paired_table(table, ours, theirs)
        if sub is None:
            seeds = "; ".join(f"{k} seeds {v}" for k, v in note["unpaired"].items())
            if note.get("precision_mismatch"):
                seeds = "; ".join(filter(None, [seeds, "seeds " + ", ".join(map(str, note["precision_mismatch"]))
                                                + " trained in different forward precisions"]))
            return claims.Verdict("inconclusive", f"paired by seed, but no seed was trained by both {ours} "
                                  f"and {theirs} in one forward precision ({seeds})", {"paired": True, **note}, {})
        table = sub
    ev = table_evidence(table, [ours, theirs], metric, set_name)
    if paired:
        ev.update(note)
    ev["steps"] = {r: sorted({_steps(x) for x in table.results if x.recipe == r}) for r in (ours, theirs)}
    v = claims.compare_seeds(table.values(ours, metric, set_name), table.values(theirs, metric, set_name),
                             lower_is_better=lower, min_effect=min_effect, metric=metric,
                             preset=table.results[0].preset, evidence=ev, paired=paired,
                             paper_effect=paper_effect)
    checks = []
    if floor is not None:
        base = baseline or theirs
        v = claims.apply_floor(v, (table if base in (ours, theirs) else whole).values(base, floor_metric, set_name),
                               floor, name=f"{base} {floor_metric}")
        checks += [claims.has_learnt(r, table.values(r, floor_metric, set_name), floor=floor,
                                     metric=floor_metric) for r in (ours, theirs) if r != base]
    if converge_tolerance is not None:
        checks += [claims.has_converged(r, validation_curves(table, r, floor_metric),
                                        tolerance=converge_tolerance, relative=True, metric=floor_metric,
                                        changed_at=objective_changes(table, r))
                   for r in (ours, theirs)]
    return claims.require_ready(v, checks)
