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
