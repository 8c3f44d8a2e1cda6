"""The paper → code index, generated from docstring tags so it cannot drift.

A library function or class whose docstring's first paragraph names a paper and a place in it —
``(BCIR Eq. 38)``, ``(RSPose Eq. 5–6)``, ``HDM §3.4``, ``(SAR Eq. 7–9)``, ``RCNet Def. 1`` — is
listed under that paper with the chapter cells that call it. Claim ids recorded by the chapters
are listed per paper too. ``poselab index`` prints it; the README carries it between the
``<!-- index:start -->`` and ``<!-- index:end -->`` markers (``poselab index --write-readme``
refreshes them, and a test fails when the README's copy is stale).
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

import poselab

from .chapters.registry import chapters
from .labs import list_chapters

__all__ = ["PAPER_NAMES", "paper_names", "Entry", "tagged_entries", "chapter_calls", "chapter_claims",
           "chapters_markdown", "index_markdown", "update_readme"]

#: works the library cites that are not a chapter's paper (a chapter's paper comes from its
#: registration: :func:`paper_names`)
PAPER_NAMES = {"COCO": "COCO keypoints", "SimpleBaseline": "SimpleBaseline", "DARK": "DARK",
               "SimCC": "SimCC"}
_PLACE = r"(?:Eqs?\.|Fig(?:s|ure)?\.?|Tables?|Theorem|Thm\.|Def(?:inition)?\.?|Prop\.|Lemma|App\.|Appendix|Alg\.|Sec\.|§)"


def paper_names() -> dict[str, str]:
    """Docstring tag → paper: the cited works, then each registered chapter's paper (its ``tag``)."""
    names = dict(PAPER_NAMES)
    for chapter in chapters():
        if chapter.tag:
            names.setdefault(chapter.tag, chapter.title)
    return names


def _tag_pattern() -> re.Pattern:
    """``(PAPER, place)`` in a docstring, PAPER one of :func:`paper_names`."""
    return re.compile(r"\b(" + "|".join(map(re.escape, paper_names())) + r")\b[,:]?\s*(" + _PLACE
                      + r"\s*[A-Z]?[\d.]+(?:\s*(?:[–\-/,]|and)\s*(?:" + _PLACE
                      + r"\s*)?[A-Z]?[\d.]+)*)")
_MARK_START, _MARK_END = "<!-- index:start -->", "<!-- index:end -->"
_ROOT = Path(__file__).resolve().parent.parent
_SKIP_MODULES = ("poselab.cli", "poselab.index")  # and their submodules


@dataclass(frozen=True)
class Entry:
    paper: str
    place: str
    qualname: str  # module.function
    summary: str


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())


def tagged_entries() -> list[Entry]:
    """Every public function/class of ``poselab`` (and of any registered chapter's package outside
    it) whose docstring's first paragraph carries a paper tag, one entry per (paper, place)."""
    tag = _tag_pattern()
    out: list[Entry] = []
    seen = set()
    for name in _modules(poselab):
        module = importlib.import_module(name)
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != module.__name__ or not obj.__doc__:
                continue
            para = _first_paragraph(obj.__doc__)
            for paper, place in tag.findall(para):
                key = (paper, place.strip(" .,"), f"{module.__name__}.{name}")
                if key in seen:
                    continue
                seen.add(key)
                summary = para.split(". ")[0].rstrip(".")
                out.append(Entry(paper, key[1], key[2], summary[:110]))
    order = list(paper_names())
    return sorted(out, key=lambda e: (order.index(e.paper), e.place, e.qualname))


def _modules(poselab) -> list[str]:
    """Module names to scan: poselab's, then those of chapters registered from other packages."""
    names = [i.name for i in pkgutil.walk_packages(poselab.__path__, "poselab.")]
    for chapter in chapters():
        root = chapter.package.split(".", 1)[0] if chapter.package else ""
        if root and root != "poselab":
            package = importlib.import_module(chapter.package)
            names.append(chapter.package)
            if hasattr(package, "__path__"):
                names += [i.name for i in pkgutil.walk_packages(package.__path__, f"{chapter.package}.")]
    return [n for n in dict.fromkeys(names) if n not in _SKIP_MODULES and "._" not in n
            and not n.startswith(tuple(m + "." for m in _SKIP_MODULES))]


def _code_cells(notebook: Path) -> list[tuple[int, str]]:
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
        if not isinstance(cells, list):
            raise ValueError("'cells' is not a list")
        return [(i, "".join(c.get("source", "")) if isinstance(c.get("source", ""), list)
                 else str(c.get("source", "")))
                for i, c in enumerate(cells) if isinstance(c, dict) and c.get("cell_type") == "code"]
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"{notebook} is not a readable notebook: {exc}") from None


def _chapters(labs: str | os.PathLike | None = None) -> list[Path]:
    if labs is not None and (not isinstance(labs, (str, os.PathLike)) or str(labs) == ""):
        raise ValueError(f"labs must be None or the chapters folder, got {labs!r}")
    labs = _ROOT / "labs" if labs is None else Path(labs)
    if not labs.is_dir():
        raise ValueError(f"labs={str(labs)!r} is not a folder; pass the chapters folder (labs/)")
    return list_chapters(labs)


def chapters_markdown() -> str:
    """One row per registered chapter: number, notebook, paper, package and recipes."""
    lines = ["| chapter | notebook | paper | package | recipes |", "| --- | --- | --- | --- | --- |"]
    for c in chapters():
        recipes = ", ".join(f"`{r}`" for r in c.recipes) or "—"
        lines.append(f"| {c.number:02d} {c.title} | `{c.stem}.ipynb` | {c.paper or '—'} | "
                     f"`{c.package or '—'}` | {recipes} |")
    return "\n".join(lines) + "\n"


def chapter_calls(name: str, labs: Path | None = None) -> list[str]:
    """``"<chapter stem> cell <n>"`` for every chapter code cell that calls ``name(``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier (a function name), got {name!r}")
    pattern = re.compile(r"(?<![\w.])(?:\w+\.)*" + re.escape(name) + r"\(")
    return [f"{nb.stem} cell {i}" for nb in _chapters(labs) for i, src in _code_cells(nb)
            if pattern.search(src)]


def chapter_claims(labs: Path | None = None) -> dict[str, str]:
    """Every claim id a chapter records (``claims.record("<id>", ...)``) → ``"<stem> cell <n>"``."""
    pattern = re.compile(r"claims\.record\(\s*[\"']([\w.]+)[\"']")
    out = {}
    for nb in _chapters(labs):
        for i, src in _code_cells(nb):
            for cid in pattern.findall(src):
                out.setdefault(cid, f"{nb.stem} cell {i}")
    return out


def index_markdown(labs: Path | None = None) -> str:
    """The index as Markdown: per paper, place → function → chapter cells; then claims."""
    entries = tagged_entries()
    lines = [chapters_markdown(), "| paper | where | function | chapter cells |", "| --- | --- | --- | --- |"]
    for e in entries:
        short = e.qualname.rsplit(".", 1)[-1]
        cells = ", ".join(chapter_calls(short, labs)[:3]) or "—"
        lines.append(f"| {e.paper} | {e.place} | `{e.qualname}` | {cells} |")
    claim_rows = chapter_claims(labs)
    lines += ["", "| claim id | chapter cell |", "| --- | --- |"]
    lines += [f"| `{cid}` | {where} |" for cid, where in sorted(claim_rows.items())]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path | None = None, check: bool = False) -> bool:
    """Write the index between the README markers (``check=True``: only report whether the
    README's copy is current). Returns True when the README holds the current index."""
    readme = _ROOT / "README.md" if readme is None else Path(readme)
    if not readme.is_file():
        raise ValueError(f"readme={str(readme)!r} is not a file; pass the README.md to update")
    text = readme.read_text(encoding="utf-8")
    if _MARK_START not in text or _MARK_END not in text:
        raise ValueError(f"{readme} has no {_MARK_START} ... {_MARK_END} section")
    head, rest = text.split(_MARK_START, 1)
    _, tail = rest.split(_MARK_END, 1)
    new = f"{head}{_MARK_START}\n{index_markdown()}{_MARK_END}{tail}"
    if check:
        return new == text
    readme.write_text(new, encoding="utf-8")
    return True
