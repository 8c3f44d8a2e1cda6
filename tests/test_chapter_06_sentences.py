"""Chapter 06 keeps the closing-sentence rule: every ``## `` section whose code shows a figure or
table ends with a markdown cell after its last code cell, or its last code cell displays a
sentence the run prints (a library ``*_sentence`` function)."""
import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "labs" / "06_bcir.ipynb"


def sections(cells):
    out, current = [], None
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and text.lstrip().startswith("## "):
            current = {"title": text.strip().splitlines()[0], "cells": []}
            out.append(current)
        elif current is not None:
            current["cells"].append((cell["cell_type"], text))
    return out


def missing_sentences(cells):
    bad = []
    for sec in sections(cells):
        code = [text for kind, text in sec["cells"] if kind == "code"]
        if not code:
            continue
        last_code = max(i for i, (kind, _) in enumerate(sec["cells"]) if kind == "code")
        closed = any(kind == "markdown" for kind, _ in sec["cells"][last_code + 1:])
        if not closed and "_sentence(" not in code[-1]:
            bad.append(sec["title"])
    return bad


def test_every_section_of_chapter_06_ends_with_its_sentence():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert missing_sentences(cells) == []
    # the counter-case: drop the closing markdown of the first section
    first = next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith("## 1."))
    end = next(i for i in range(first + 1, len(cells)) if "".join(cells[i]["source"]).startswith("## "))
    assert cells[end - 1]["cell_type"] == "markdown"
    assert missing_sentences(cells[:end - 1] + cells[end:]) == [cells[first]["source"][0].strip()]


def test_papermill_reads_every_parameter_of_chapter_06():
    """papermill drops a parameter whose comment holds '=' ("σ = 0.5" did): it then cannot be
    set with -p and prints a parse warning in every run."""
    from papermill.translators import PythonTranslator
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    source = "".join(params["source"])
    assigned = [line.split("=")[0].strip() for line in source.splitlines()
                if line and not line.startswith("#") and "=" in line.split("#")[0]]
    assert [p.name for p in PythonTranslator.inspect({"source": source})] == assigned
    bad = "x = 1  # a comment with σ = 2 in it"
    assert PythonTranslator.inspect({"source": bad}) == []
