"""Every chapter (labs/NN_*.ipynb; assignments excepted) reads as a lesson (GUIDE "Chapters").

Checked statically, one rule per test so a failure names the rule, the cell and the line:
kernelspec; a claims table in the markdown before the code; the first code cell tagged
``parameters`` with every parameter commented; ``claims.start`` in the next code cell(s); no
committed outputs; no ``def``/``class``; one import cell; no one- or two-letter module aliases
(``np``, ``pd``, ``go``, ``px``, ``ot`` excepted); no code cell over :data:`MAX_LINES` lines;
``claims.table()`` displayed, not printed.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

LABS = Path(__file__).resolve().parents[1] / "labs"
CHAPTERS = sorted(p for p in LABS.glob("[0-9][0-9]_*.ipynb"))
MAX_LINES = 20                 # lines of a code cell (blank lines not counted)
MAX_PARAMETER_LINES = 40       # the parameters cell holds every knob, one per line
SHORT_ALIASES_OK = {"np", "pd", "go", "px", "ot"}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _code_cells(path: Path) -> list[tuple[int, dict, str]]:
    return [(i, c, "".join(c["source"])) for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"]


def _python(source: str) -> str:
    """Cell source with IPython magics / shell lines blanked (so ``ast`` can parse it)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _parse(index: int, source: str) -> ast.Module:
    try:
        return ast.parse(_python(source))
    except SyntaxError as exc:  # pragma: no cover - message path
        pytest.fail(f"cell {index} does not parse: {exc}")


ids = [p.stem for p in CHAPTERS]


def test_there_are_chapters():
    assert CHAPTERS, f"no chapters in {LABS}"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_kernelspec(path):
    spec = json.loads(path.read_text()).get("metadata", {}).get("kernelspec", {})
    assert spec.get("name") == "python3", f"{path.name}: metadata.kernelspec.name must be 'python3' " \
                                          f"(a missing kernelspec opens a blocking dialog), got {spec}"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_every_cell_has_a_unique_id(path):
    """nbformat 4.5 cells carry an ``id`` (1-64 of [A-Za-z0-9_-]); a cell without one makes
    papermill and JupyterLab warn today and is an error in later nbformat versions."""
    cells = json.loads(path.read_text())["cells"]
    bad = [i for i, c in enumerate(cells) if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(c.get("id", "")))]
    assert not bad, f"{path.name}: cells {bad} have no valid id"
    found = [c["id"] for c in cells]
    assert len(set(found)) == len(found), f"{path.name}: repeated cell ids {sorted({i for i in found if found.count(i) > 1})}"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_no_outputs_committed(path):
    dirty = [i for i, c, _ in _code_cells(path) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; run `python3 tasks.py strip`"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_claims_table_up_front(path):
    cells = _cells(path)
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    intro = "\n".join("".join(c["source"]) for c in cells[:first_code] if c["cell_type"] == "markdown")
    table = [line for line in intro.splitlines() if line.strip().startswith("|")]
    assert table and "claim" in table[0].lower(), \
        f"{path.name}: the markdown before the first code cell needs a claims table (a header row with 'claim')"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_first_code_cell_is_parameters_with_every_parameter_commented(path):
    index, cell, source = _code_cells(path)[0]
    assert "parameters" in cell.get("metadata", {}).get("tags", []), \
        f"{path.name}: the first code cell (cell {index}) must be tagged 'parameters' (papermill)"
    lines = source.splitlines()
    assert sum(1 for line in lines if line.strip()) <= MAX_PARAMETER_LINES
    tree = _parse(index, source)
    bad = []
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            bad.append(f"line {node.lineno}: only assignments belong in the parameters cell")
            continue
        line = lines[node.lineno - 1]
        above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
        if "#" not in line and not above.startswith("#"):
            bad.append(f"line {node.lineno} `{line.strip()}` has no comment (same line or the line above)")
    assert not bad, f"{path.name} parameters cell: " + "; ".join(bad)


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_claims_start_right_after_parameters(path):
    code = _code_cells(path)
    assert any("claims.start(" in src for _, _, src in code[1:3]), \
        f"{path.name}: call claims.start('{path.stem}', out_dir=out_dir) in the cell after the parameters"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_no_def_or_class_in_cells(path):
    found = []
    for index, _, source in _code_cells(path):
        for node in ast.walk(_parse(index, source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.append(f"cell {index} line {node.lineno}: {type(node).__name__} {node.name}")
    assert not found, f"{path.name}: move these into the library (with tests): {found}"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_one_import_cell(path):
    with_imports = [index for index, _, source in _code_cells(path)
                    if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(_parse(index, source)))]
    assert len(with_imports) <= 1, f"{path.name}: imports in cells {with_imports}; keep them in one cell"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_no_short_module_aliases(path):
    short = []
    for index, _, source in _code_cells(path):
        for node in ast.walk(_parse(index, source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.asname and len(alias.asname) <= 2 and alias.asname not in SHORT_ALIASES_OK:
                        short.append(f"cell {index}: `{alias.name} as {alias.asname}`")
    assert not short, f"{path.name}: name modules so a student can read them: {short}"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_cells_are_short(path):
    long = []
    for n, (index, _, source) in enumerate(_code_cells(path)):
        if n == 0:
            continue  # the parameters cell (checked above)
        count = sum(1 for line in source.splitlines() if line.strip())
        if count > MAX_LINES:
            long.append(f"cell {index}: {count} lines")
    assert not long, f"{path.name}: code cells over {MAX_LINES} lines: {long}; move logic into the library"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_tables_are_displayed_not_printed(path):
    printed = [index for index, _, source in _code_cells(path)
               if re.search(r"print\(\s*claims\.table\(", source)]
    assert not printed, f"{path.name}: cells {printed} print claims.table(); end the cell with " \
                        "`claims.table()` (or display(...)) so it renders as a table"


def test_prose_names_only_sizes_the_run_or_the_papers_use():
    """Closing sections described "64×48 crops / 16×12 heatmaps" long after the default moved to
    128×96 crops with 64×48 heatmaps (chapter 04 then blamed small heatmaps for its result). A
    crop/input or heatmap size typed into a chapter's prose must be the default preset's or a
    size the papers use; anything else belongs in a printed table."""
    import json
    import re
    from poselab.experiments import PRESETS
    d = PRESETS["default"]
    inputs = {tuple(d.input_size), (256, 192), (384, 288), (256, 256)}
    heatmaps = {tuple(d.heatmap_size), (64, 48), (96, 72), (64, 64)}
    pattern = re.compile(r"(\d+)\s*×\s*(\d+)\s+(crops?|inputs?|heatmaps?)\b", re.I)
    bad = []
    for path in sorted(LABS.glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] != "markdown":
                continue
            for m in pattern.finditer("".join(cell["source"])):
                size, kind = (int(m.group(1)), int(m.group(2))), m.group(3).lower()
                allowed = heatmaps if kind.startswith("heatmap") else inputs
                if size not in allowed:
                    bad.append(f"{path.name} cell {i}: {m.group(0)!r}")
    assert not bad, "sizes the run does not use: " + "; ".join(bad)
    assert pattern.search("on 64×48 crops with 16×12 heatmaps")  # the check sees the old prose


# --- every section ends with a sentence on what its figure or table shows (issue 31) ---------
#
# A `## ` section (from a markdown cell holding a `## ` heading to the next one) whose code cells
# display something — a `display(...)` call, a `.show()`, or a last statement that is an expression
# (Jupyter shows its value: a table, a figure, a claim record) — must end with either
#   * a markdown cell after its last code cell, with a line of prose (a heading alone is not a
#     sentence), or
#   * a sentence produced by the run: the last statement of its last code cell calls a poselab
#     function whose name ends in `_sentence` (`figures.ranking_sentence(evals)`, shown as the
#     cell's value or through `display(...)`). Such functions return a `poselab.viz.sentence.Sentence`.
# Cells before the first `## ` heading (the title and the set-up) are no section.

SENTENCE_SUFFIX = "_sentence"


def _sections(cells: list[dict]) -> list[tuple[str, list[tuple[int, dict]]]]:
    """``(heading, [(cell index, cell), ...])`` per `## ` section, in order."""
    out: list[tuple[str, list[tuple[int, dict]]]] = []
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        heading = next((line for line in source.splitlines() if line.startswith("## ")), None) \
            if cell["cell_type"] == "markdown" else None
        if heading is not None:
            out.append((heading[3:].strip(), []))
        if out:
            out[-1][1].append((i, cell))
    return out


def _poselab_names(cells: list[dict]) -> set[str]:
    """Names a chapter binds by importing from poselab (modules and functions alike)."""
    names = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse(_python("".join(cell["source"])))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "poselab":
                names |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.asname or a.name.split(".")[0] for a in node.names
                          if a.name.split(".")[0] == "poselab"}
    return names


def _displays(source: str) -> bool:
    """Whether a code cell shows a figure, table or widget (statically)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "display":
                return True
            if isinstance(func, ast.Attribute) and func.attr == "show":
                return True
    lines = [line for line in source.splitlines() if line.strip()]
    if not tree.body or not lines or lines[-1].rstrip().endswith(";"):
        return False  # empty, or the value suppressed by a trailing semicolon
    last = tree.body[-1]
    if not isinstance(last, ast.Expr) or isinstance(last.value, ast.Constant):
        return False
    value = last.value
    return not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print")


def _root_name(func: ast.expr) -> str | None:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def _ends_with_library_sentence(source: str, poselab_names: set[str]) -> bool:
    """The cell's last statement shows ``<poselab name>...<something>_sentence(...)``."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return False
    if not tree.body or not isinstance(tree.body[-1], ast.Expr) or source.rstrip().endswith(";"):
        return False
    shown = tree.body[-1].value
    if (isinstance(shown, ast.Call) and isinstance(shown.func, ast.Name) and shown.func.id == "display"
            and shown.args):
        shown = shown.args[-1]  # display(figure, sentence): what is shown last
    if (isinstance(shown, ast.Call) and isinstance(shown.func, ast.Name) and shown.func.id == "Markdown"
            and len(shown.args) == 1):
        shown = shown.args[0]  # Markdown(sentence)

    def is_sentence(node) -> bool:  # a poselab *_sentence(...) call, or such sentences joined by +
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            parts = [node.left, node.right]
            return any(is_sentence(n) for n in parts) and all(
                is_sentence(n) or isinstance(n, ast.Constant) for n in parts)
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name.endswith(SENTENCE_SUFFIX) and _root_name(func) in poselab_names
    return is_sentence(shown)


def closing_problems(cells: list[dict]) -> list[str]:
    """The sections of ``cells`` that show a figure or table and end without a closing sentence."""
    names = _poselab_names(cells)
    bad = []
    for heading, members in _sections(cells):
        code = [(i, "".join(c["source"])) for i, c in members if c["cell_type"] == "code"]
        if not any(_displays(src) for _, src in code):
            continue
        last_code_index, last_code = code[-1]
        after = [c for i, c in members if i > last_code_index and c["cell_type"] == "markdown"]
        prose = any(line.strip() and not line.lstrip().startswith("#")
                    for c in after for line in "".join(c["source"]).splitlines())
        if prose or _ends_with_library_sentence(last_code, names):
            continue
        bad.append(f"section '{heading}' (last code cell {last_code_index})")
    return bad


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_sections_end_with_a_sentence_on_their_figure(path):
    bad = closing_problems(_cells(path))
    assert not bad, (f"{path.name}: end these sections with a markdown cell saying in one sentence what "
                     f"the figure/table shows, or (when it depends on the run) with a poselab "
                     f"`..._sentence(...)` call as the last line of the last code cell: {bad}")


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "source": text, "metadata": {}}


def _code(text: str) -> dict:
    return {"cell_type": "code", "source": text, "metadata": {}, "outputs": [], "execution_count": None}


def test_closing_sentence_rule_fails_on_constructed_sections():
    imports = _code("from poselab.viz import poses as figures\nfrom poselab import claims\nimport numpy")
    title = _md("# a chapter\n\n| claim |")

    def problems(*section_cells):
        return closing_problems([title, imports, _md("## 1. A section\n\nintro"), *section_cells])

    # a figure, then nothing: fails; the same with a closing sentence in markdown: passes
    assert problems(_code("figures.pose_figure(x).show()")) == ["section '1. A section' (last code cell 3)"]
    assert problems(_code("figures.pose_figure(x).show()"), _md("The figure shows each joint.")) == []
    # a markdown cell *before* the last code cell does not close the section
    assert problems(_md("The figure shows each joint."), _code("figures.pose_figure(x).show()"))
    # a heading alone is not a sentence
    assert problems(_code("display(figures.f(x))"), _md("### Claim `x.y`"))
    # a last expression is displayed (a claim record renders as a table): it needs a closing too
    assert problems(_code("claims.record('x.y', value=1, kind='math', holds=True)"))
    # ... unless its value is suppressed, or the cell displays nothing at all
    assert problems(_code("claims.record('x.y', value=1, kind='math', holds=True);")) == []
    assert problems(_code("print(3)\nvalue = 4")) == []
    # a sentence from the library, as the last line of the last code cell: passes
    assert problems(_code("display(figures.f(x))\nfigures.agreement_sentence(x)")) == []
    assert problems(_code("display(figures.f(x), Markdown(figures.agreement_sentence(x)))")) == []
    assert problems(_code("display(Markdown(figures.a_sentence(x) + ' ' + figures.b_sentence(y)))")) == []
    assert problems(_code("display(Markdown(figures.a_sentence(x), figures.f(x)))"))  # not one sentence
    assert problems(_code("display(Markdown(figures.f(x) + figures.a_sentence(x)))"))  # a non-sentence part
    assert problems(_code("display(figures.a_sentence(x), figures.f(x))"))  # the figure is shown last
    assert problems(_code("display(figures.f(x))\ndisplay(figures.agreement_sentence(x))")) == []
    # ... but not from outside poselab, not under another name, and not before the last line
    assert problems(_code("display(figures.f(x))\nnumpy.agreement_sentence(x)"))
    assert problems(_code("display(figures.f(x))\nfigures.agreement(x)"))
    assert problems(_code("figures.agreement_sentence(x)\ndisplay(figures.f(x))"))
    # the next `## ` heading ends a section: its prose does not close the one before
    assert problems(_code("figures.f(x).show()"), _md("## 2. Next\n\nThe figure shows it."))
