"""The replication scorecard: every chapter's claims, grouped by paper, with our verdicts.

Reads the claim ledgers a run wrote (``<out>/claims.json`` from ``poselab run``, or the
per-chapter ``<out>/claims/<chapter>.json``) and renders one table per paper: claim id, what
the paper says, our measured value, kind, verdict, preset and seeds, and for empirical claims
that were not reproduced the stated reason. :func:`write_scorecard` writes ``scorecard.md`` and
``scorecard.json`` beside the ledger.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .chapters.registry import claim_prefixes
from .claims import recorded_text
from .viz.html import Missing, fitted_table, plain_text
from .viz.sentence import Sentence

__all__ = ["PAPERS", "paper_of", "load_ledger", "scorecard", "summary", "to_markdown",
           "write_scorecard", "ScorecardView", "verdict_figure", "LedgerSource", "ledger_source",
           "recorded_ledger_dir", "summary_sentence", "misses", "misses_sentence", "with_current_recorded"]

class _Papers(Mapping):
    """Claim-id prefix → the chapter's label, read from the chapter registry on every access (so a
    chapter registered later — a new folder, or a test's dummy — is in the scorecard)."""

    def _current(self) -> dict[str, str]:
        return {prefix: chapter.label for prefix, chapter in claim_prefixes().items()}

    def __getitem__(self, key: str) -> str:
        return self._current()[key]

    def __iter__(self):
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return f"PAPERS({self._current()!r})"


#: claim-id prefix → the paper (or part of the lab) it belongs to, in display (chapter) order
PAPERS: Mapping[str, str] = _Papers()
_OTHER = "other"


def paper_of(claim_id: str) -> str:
    """The :data:`PAPERS` key of a claim id (its first dotted part), or ``"other"``."""
    prefix = str(claim_id).split(".", 1)[0]
    return prefix if prefix in PAPERS else _OTHER


def load_ledger(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Claim records from a ledger file, or from a run folder (``claims.json``, else
    ``claims/*.json``). A file that is not a list of claim records raises ``ValueError``."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ValueError(f"path must be a claim ledger file or a run folder, got {path!r}")
    path = Path(path)
    if path.is_dir():
        agg = path / "claims.json"
        files = [agg] if agg.is_file() else sorted((path / "claims").glob("*.json"))
        if not files:
            raise FileNotFoundError(f"no claims.json or claims/*.json in {path}; run "
                                    f"poselab run --fast --out {path} first")
        return [r for f in files for r in _read_ledger_file(f)]
    return _read_ledger_file(path)


def recorded_ledger_dir(name: str = "default") -> Path | None:
    """The checkout's recorded ledgers ``results/ledgers/<name>`` (the chapters' claims from a
    real run, committed with a ``manifest.json`` of its provenance), or None outside a checkout."""
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name must be a recorded run's folder name such as 'default', got {name!r}")
    folder = Path(__file__).resolve().parent.parent / "results" / "ledgers" / name
    return folder if (folder / "claims").is_dir() else None


class LedgerSource:
    """Where a scorecard's chapter claims come from: ``paths`` (ledger files), ``label`` (one
    line saying so, for the reader) and ``manifest`` (the provenance of a recorded run, else {})."""

    def __init__(self, paths: list[Path], label: str, manifest: dict[str, Any] | None = None):
        self.paths, self.label, self.manifest = paths, label, dict(manifest or {})

    def records(self, exclude_chapter: str | None = None) -> list[dict[str, Any]]:
        """Every claim record of the ledgers (those of ``exclude_chapter`` left out)."""
        return [r for p in self.paths for r in load_ledger(p) if r.get("chapter") != exclude_chapter]


def ledger_source(folder: str | os.PathLike | None = None, recorded: str = "default") -> LedgerSource:
    """The chapter ledgers in ``folder/claims`` (a ``poselab run --out`` folder); when ``folder``
    is empty or holds none, the recorded run ``results/ledgers/<recorded>`` of the checkout."""
    if folder not in (None, "") and not isinstance(folder, (str, os.PathLike)):
        raise ValueError(f"folder must be a poselab run --out folder or empty, got {folder!r}")
    if folder not in (None, ""):
        paths = sorted(Path(folder).glob("claims/*.json"))
        if paths:
            return LedgerSource(paths, f"from this run's ledgers in `{folder}`")
    rec = recorded_ledger_dir(recorded)
    if rec is None:
        return LedgerSource([], "no chapter ledgers found — run `poselab run --all --out DIR` and "
                                "pass `ledger_dir=DIR` to see every chapter's claims here")
    manifest: dict[str, Any] = {}
    try:
        loaded = json.loads((rec / "manifest.json").read_text())
        manifest = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    when = ", ".join(str(manifest[k])[:10] if k == "date" else f"commit {str(manifest[k])[:7]}"
                     for k in ("commit", "date") if manifest.get(k))
    return LedgerSource(sorted((rec / "claims").glob("*.json")),
                        f"from the recorded `{recorded}`-preset run of every chapter "
                        f"(`results/ledgers/{recorded}`{'; ' + when if when else ''}) — not this "
                        "session's runs; pass `ledger_dir=` a `poselab run --out` folder for yours", manifest)


def with_current_recorded(records: Iterable[Mapping[str, Any]], verdicts: Mapping[str, Mapping] | None = None,
                          *, preset: str = "full") -> list[dict[str, Any]]:
    """The claim records with each empirical claim's recorded verdict judged now on the committed
    replication records (:func:`poselab.chapters.recorded.recorded_verdicts` of the chapters whose
    empirical claims the records hold, or ``verdicts`` given), so a ledger made before a replication
    landed shows it. Copies; a claim with no
    recorded rule keeps the ledger's own. Each replaced verdict carries ``"judged": "now"``."""
    if isinstance(records, (str, bytes, os.PathLike, Mapping)):
        raise ValueError("records must be a list of claim records (load a file with load_ledger), "
                         f"got {type(records).__name__}")
    records = [dict(r) for r in records]
    if verdicts is None:
        from .chapters.recorded import CHAPTERS, recorded_verdicts  # deferred: every chapter's modules (torch), only here
        from .chapters.registry import get_chapter  # deferred: with the line above
        ids = {str(r.get("id")) for r in records if r.get("kind") == "empirical"}
        # judge only the chapters with an empirical claim in these records (a chapter's rules train nothing
        # but read its records and evaluation data, so one absent from the ledger is not judged for nothing)
        wanted = [name for name in CHAPTERS if ids & get_chapter(name).expected_claims]
        verdicts = recorded_verdicts(wanted, preset=preset) if wanted else {}
    for r in records:
        new = verdicts.get(str(r.get("id")))
        if r.get("kind") == "empirical" and isinstance(new, Mapping):
            r["recorded"] = {**new, "judged": "now"}
    return records


def _read_ledger_file(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        raise ValueError(f"{path} is not a readable JSON claim ledger: it is a folder")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no claim ledger at {path}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable JSON claim ledger: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) and "id" in r and "kind" in r
                                             for r in data):
        raise ValueError(f"{path} is not a claim ledger (a list of {{id, kind, ...}} records)")
    return data


def _evidence_text(rec: Mapping[str, Any]) -> str:
    ev = rec.get("evidence") or {}
    if not isinstance(ev, Mapping) or not ev:
        return ""
    seeds = ev.get("seeds")
    if seeds is not None and not isinstance(seeds, (list, tuple)):
        seeds = [seeds]  # a single seed (or anything else) shown as is, never a TypeError
    parts = [f"preset {ev.get('preset')}" if ev.get("preset") else "",
             f"seeds {list(seeds)}" if seeds is not None else ""]
    return ", ".join(p for p in parts if p)


def _value_text(value: Any, limit: int = 80) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = plain_text(value)  # readable "key: value; …", not raw JSON
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scorecard(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by paper (keys in :data:`PAPERS` order, then ``"other"``); each row has
    ``id, chapter, paper_says, ours, kind, verdict, evidence, reason, recorded`` (the recorded
    replication's verdict of an empirical claim, :func:`poselab.claims.recorded_text`). A claim recorded twice
    (e.g. two runs) keeps the last record."""
    if isinstance(records, (str, bytes, os.PathLike, Mapping)):
        raise ValueError("records must be a list of claim records (load a file with load_ledger), "
                         f"got {type(records).__name__}")
    by_id: dict[str, Mapping[str, Any]] = {}
    for i, r in enumerate(records):
        if not isinstance(r, Mapping) or "id" not in r:
            raise ValueError(f"records[{i}] is not a claim record (a mapping with an 'id'), got "
                             f"{str(r)[:80]!r}")
        by_id[str(r["id"])] = r
    groups: dict[str, list[dict[str, Any]]] = {k: [] for k in [*PAPERS, _OTHER]}
    for cid, r in by_id.items():
        reason = r.get("reason") or ""
        if not reason and r.get("kind") == "empirical" and r.get("verdict") != "reproduced":
            reason = r.get("note") or ""
        groups[paper_of(cid)].append({
            "id": cid, "chapter": r.get("chapter"), "paper_says": r.get("paper", ""),
            "ours": r.get("value"), "kind": r.get("kind"), "verdict": r.get("verdict"),
            "evidence": _evidence_text(r), "reason": reason,
            "recorded": recorded_text(r.get("recorded")) if r.get("kind") == "empirical" else ""})
    return {k: sorted(v, key=lambda row: row["id"]) for k, v in groups.items() if v}


def summary(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per paper and verdict, the total, and the math claims that fail."""
    card = scorecard(records)
    per_paper = {k: dict(Counter(row["verdict"] for row in rows)) for k, rows in card.items()}
    failing = [row["id"] for rows in card.values() for row in rows
               if row["kind"] == "math" and row["verdict"] != "holds"]
    return {"claims": sum(len(v) for v in card.values()),
            "per_paper": {k: len(v) for k, v in card.items()},
            "verdicts": per_paper, "math_failing": failing}


def to_markdown(records: Iterable[Mapping[str, Any]]) -> str:
    """The scorecard as Markdown: one table per paper."""
    card = scorecard(records)
    lines = []
    for key, rows in card.items():
        lines += [f"### {PAPERS.get(key, 'other claims')}", "",
                  "| claim | paper says | ours | kind | verdict (live) | preset, seeds | reason | recorded verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in rows:
            cells = [row["id"], row["paper_says"], _value_text(row["ours"]), row["kind"],
                     row["verdict"], row["evidence"], row["reason"], row["recorded"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ")
                                            for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _finite_json(value: Any) -> Any:
    """``value`` with NaN/±Inf floats as the strings "nan"/"inf"/"-inf" (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def write_scorecard(records: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``scorecard.md`` and ``scorecard.json`` into ``out_dir``; returns both paths."""
    records = list(records) if not isinstance(records, (str, bytes, Mapping)) else records
    out = Path(out_dir)
    if out.exists() and not out.is_dir() or any(p.exists() and not p.is_dir() for p in out.parents):
        raise ValueError(f"out_dir {str(out)!r} is (under) a file; pass a folder")
    text = "# Replication scorecard\n\n" + to_markdown(records)
    payload = json.dumps(_finite_json({"summary": summary(records), "papers": scorecard(records)}),
                         indent=1, default=str, allow_nan=False)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "scorecard.md", out / "scorecard.json"
    md.write_text(text)
    js.write_text(payload)
    return md, js


class ScorecardView:
    """Notebook rendering of a scorecard (HTML tables, one per paper)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], papers: Sequence[str] | None = None):
        self.records = list(records)
        if isinstance(papers, str):
            papers = [papers]
        if papers is not None:
            papers = list(papers)
            unknown = [p for p in papers if p not in PAPERS and p != _OTHER]
            if unknown:
                raise ValueError(f"papers {unknown} unknown; choose from {[*PAPERS, _OTHER]}")
        self.papers = papers
        scorecard(self.records)  # bad records fail here, not when the notebook renders

    def _repr_html_(self) -> str:
        no_record = Missing("no recorded replication of this claim")
        out = []
        for key, rows in scorecard(self.records).items():
            if self.papers is not None and key not in self.papers:
                continue
            out.append(fitted_table(
                ("claim", "paper says", "ours", "kind", "verdict (live)", "preset, seeds", "reason",
                 "recorded verdict"),
                [[row["id"], row["paper_says"], row["ours"], row["kind"], row["verdict"],
                  row["evidence"], row["reason"], no_record if row["recorded"] == "—" else row["recorded"]]
                 for row in rows],
                caption=PAPERS.get(key, "other claims")))
        return "".join(out)

    def _repr_markdown_(self) -> str:
        return to_markdown(self.records)


def verdict_figure(records: Iterable[Mapping[str, Any]], width: int = 820, height: int = 380):
    """Stacked bars: per paper, how many claims hold / reproduce / are inconclusive / fail."""
    import plotly.graph_objects as go  # deferred: plotly, this figure only
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                100 <= value <= 4000):
            raise ValueError(f"{name} must be a number of pixels in [100, 4000], got {value!r}")
    card = scorecard(records)
    order = ["holds", "reproduced", "inconclusive", "not reproduced", "fails"]
    # the tables' colour-blind-safe scheme (blue: holds/reproduced, orange: not reproduced, red:
    # a failing math claim, grey: inconclusive), darker for math, lighter for empirical
    colours = {"holds": "#1f5f99", "reproduced": "#7fb3e0", "inconclusive": "#b0b0b0",
               "not reproduced": "#e69138", "fails": "#a8001c"}
    papers = list(card)
    fig = go.Figure()
    for verdict in order:
        counts = [sum(1 for row in card[p] if str(row["verdict"]).startswith(verdict)
                      and not (verdict == "reproduced" and str(row["verdict"]).startswith("not")))
                  for p in papers]
        fig.add_bar(name=verdict, x=papers, y=counts, marker_color=colours[verdict])
    fig.update_layout(barmode="stack", width=width, height=height, yaxis_title="claims",
                      title="claims per paper and verdict", margin=dict(l=50, r=20, t=50, b=60))
    return fig


_VERDICT_ORDER = ("holds", "reproduced", "inconclusive", "not reproduced", "fails")


def _counts_text(counts: Mapping[str, int]) -> str:
    parts = [f"{counts[v]} {v}" for v in _VERDICT_ORDER if counts.get(v)]
    parts += [f"{n} {v}" for v, n in counts.items() if v not in _VERDICT_ORDER and n]
    return ", ".join(parts) or "none"


def summary_sentence(records: Iterable[Mapping[str, Any]], source: str = ""):
    """Closing sentence of the scorecard: how many claims, their verdicts, the failing math claims.

    Example:
        >>> str(summary_sentence([{"id": "basics.a", "kind": "math", "verdict": "holds", "chapter": "00"},
        ...                       {"id": "hdm.b", "kind": "empirical", "verdict": "inconclusive", "chapter": "04"}]))
        'The scorecard holds 2 claims of 2 chapters: 1 holds, 1 inconclusive; every math claim holds.'
    """
    records = list(records)
    card = scorecard(records)
    counts = Counter(str(row["verdict"]) for rows in card.values() for row in rows)
    chapters = len({r.get("chapter") for r in records if r.get("chapter")})
    facts = summary(records)
    failing = facts["math_failing"]
    math = (f"math claims failing (a bug): {', '.join(f'`{c}`' for c in failing)}" if failing
            else "every math claim holds")
    origin = f" (the other chapters' claims are {source})" if source else ""
    return Sentence(f"The scorecard holds {facts['claims']} claims"
                    f"{f' of {chapters} chapters' if chapters > 1 else ' of one chapter' if chapters else ''}{origin}: "
                    f"{_counts_text(counts)}; {math}.")


def misses(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The empirical claims whose verdict is not "reproduced": ``{claim, verdict, reason}`` rows
    (the reason falls back to the record's note)."""
    rows = []
    for rows_of_paper in scorecard(records).values():
        for row in rows_of_paper:
            if row["kind"] == "empirical" and row["verdict"] != "reproduced":
                rows.append({"claim": row["id"], "verdict": row["verdict"],
                             "reason": row["reason"] or "no reason recorded"})
    return rows


def misses_sentence(records: Iterable[Mapping[str, Any]]):
    """Closing sentence of the "what we could not reproduce" table.

    Example:
        >>> str(misses_sentence([{"id": "hdm.b", "kind": "empirical", "verdict": "inconclusive"},
        ...                      {"id": "hdm.c", "kind": "empirical", "verdict": "reproduced"}]))
        "Of 2 empirical claims, 1 did not come out as reproduced (1 inconclusive); the table above gives each one's reason."
    """
    card = scorecard(list(records))
    empirical = [row for rows in card.values() for row in rows if row["kind"] == "empirical"]
    missed = Counter(str(row["verdict"]) for row in empirical if row["verdict"] != "reproduced")
    if not empirical:
        return Sentence("No empirical claim was recorded, so nothing could fail to reproduce.")
    if not missed:
        return Sentence(f"All {len(empirical)} empirical claims came out as reproduced; the table is empty.")
    return Sentence(f"Of {len(empirical)} empirical claims, {sum(missed.values())} did not come out as "
                    f"reproduced ({_counts_text(missed)}); the table above gives each one's reason.")
