"""The loss arena: every registered recipe on identical data, seeds, backbone and step budget.

    from poselab.experiments.arena import run_arena
    arena = run_arena(preset="default")          # all recipes of RECIPES, seed 0
    arena.table                                  # ComparisonTable (renders in a notebook)
    arena.same_inputs                            # every recipe saw byte-identical batches

Each recipe goes through :func:`poselab.experiments.run_recipe`, so the cache makes re-running
the arena instant and only recipes whose code or settings changed train again.
"""
from __future__ import annotations

import html as _html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

from poselab.viz.html import fitted_table

from .presets import Preset, get_preset
from .registry import RECIPES, Recipe, get_recipe
from .runner import ComparisonTable, compare

__all__ = ["Arena", "run_arena", "ARENA_METRICS", "recorded_arena", "RecordedArena"]

ARENA_METRICS = ("AP", "AP50", "AP75", "AR", "EPE_crop", "PCK@0.2", "spearman", "ranking_accuracy",
                 "seconds_per_step", "peak_memory_mb")


@dataclass
class Arena:
    """The arena's results: the table, and the checks that make its comparison fair."""

    table: ComparisonTable
    preset: Preset

    @property
    def same_inputs(self) -> bool:
        """Per seed, every recipe's training stream (images, keypoints, visibility) hashed equal."""
        by_seed: dict[int, set[str]] = {}
        for r in self.table.results:
            by_seed.setdefault(r.seed, set()).add(r.data_stream_sha256)
        return all(len(hashes) == 1 for hashes in by_seed.values())

    @property
    def same_budget(self) -> bool:
        """Every run of a seed took the same number of optimiser steps on the same backbone."""
        keys = {(r.seed, len(r.history["losses"]), r.config["recipe"]["backbone"])
                for r in self.table.results}
        return len(keys) == len({r.seed for r in self.table.results})

    def best(self, metric: str = "AP", set_name: str = "generated val") -> str:
        """The recipe with the highest mean ``metric``."""
        rows = self.table.summary(set_name, (metric,))
        return max(rows, key=lambda row: row[metric][0])["recipe"]

    def to_markdown(self) -> str:
        return "\n".join(f"**{s}**\n\n" + _markdown(self.table.summary(s, ARENA_METRICS))
                         for s in self.table.sets)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()


def _markdown(rows: list[dict]) -> str:
    heads = list(rows[0])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(ComparisonTable._cell(r[h]) for h in heads) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def run_arena(recipes: Iterable[Recipe | str] | None = None, seeds: Sequence[int] = (0,),
              data: str | os.PathLike = "synth", preset: Preset | str = "default",
              device: str | torch.device = "auto", cache: bool = True, progress: bool = True,
              backbone: str | None = None, jobs: int | str | None = None) -> Arena:
    """Run ``recipes`` (default: every registered recipe) under one preset and backbone.

    ``backbone`` (default: the preset's, else each recipe's — the built-in recipes all use
    "tiny") is forced on every recipe so the comparison is like for like. ``jobs``: runs
    trained at once (see :func:`poselab.experiments.compare`).
    """
    preset = get_preset(preset)
    if isinstance(recipes, (str, Recipe)):
        recipes = [recipes]  # one recipe, not the letters of its name
    chosen = [get_recipe(r) for r in (RECIPES if recipes is None else recipes)]
    if not chosen:
        raise ValueError("the arena needs at least one recipe (poselab recipes lists them)")
    backbone = backbone or preset.backbone or chosen[0].backbone
    chosen = [r if r.backbone == backbone else r.replace(backbone=backbone) for r in chosen]
    table = compare(chosen, seeds=seeds, data=data, preset=preset, device=device, cache=cache,
                    progress=progress, jobs=jobs)
    return Arena(table=table, preset=preset)


class RecordedArena:
    """A recorded arena: ``markdown`` (``arena.md`` as ``poselab arena --out`` wrote it),
    ``manifest`` (its provenance) and ``label`` (one line saying what and when); renders in a
    notebook as the label and one width-fitted table per evaluation set."""

    def __init__(self, markdown: str, manifest: dict, label: str):
        self.markdown, self.manifest, self.label = markdown, manifest, label

    def tables(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """``(set name, heads, rows)`` of each markdown table (``**set**`` headings above them)."""
        out, name = [], ""
        for line in self.markdown.splitlines():
            text = line.strip()
            if text.startswith("**") and text.endswith("**"):
                name = text.strip("*")
            elif text.startswith("|"):
                cells = [c.strip() for c in text.strip("|").split("|")]
                if all(set(c) <= set("-: ") for c in cells):
                    continue  # the |---| separator
                if not out or out[-1][0] != name:
                    out.append((name, cells, []))
                else:
                    out[-1][2].append(cells)
        return out

    def _repr_html_(self) -> str:
        return (f"<p>{_html.escape(self.label)}</p>"
                + "".join(fitted_table(heads, rows, caption=name) for name, heads, rows in self.tables()))

    def __repr__(self) -> str:
        return f"{self.label}\n\n{self.markdown}"


def recorded_arena(name: str = "default", root=None) -> RecordedArena | None:
    """The checkout's recorded arena ``results/arena_<name>/`` — ``arena.md`` as ``poselab arena
    --out`` wrote it and ``manifest.json`` (command, commit, dates, machine, wall time) — as
    ``{"markdown": ..., "manifest": ..., "label": ...}``, or None where there is none.
    ``root``: another folder holding ``arena_<name>/`` (default: the checkout's ``results``)."""

    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name must be a recorded arena's name such as 'default', got {name!r}")
    base = Path(__file__).resolve().parents[2] / "results" if root is None else Path(root)
    folder = base / f"arena_{name}"
    try:
        markdown = (folder / "arena.md").read_text()
    except OSError:
        return None
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    facts = [f"`{manifest['command']}`" if manifest.get("command") else "",
             f"commit {str(manifest['commit'])[:7]}" if manifest.get("commit") else "",
             str(manifest.get("started", ""))[:16].replace("T", " "),
             f"{float(manifest['wall_seconds']) / 60:.1f} min wall" if isinstance(
                 manifest.get("wall_seconds"), (int, float)) else "",
             str(manifest.get("machine", ""))]
    label = (f"Recorded `{name}`-preset arena (a real run, not this session's): "
             + "; ".join(f for f in facts if f))
    return RecordedArena(markdown, manifest, label)
