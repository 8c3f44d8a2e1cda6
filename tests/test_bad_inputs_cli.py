"""Hostile command lines for ``poselab run`` (reliability probe, issue 10), on throwaway chapters."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import nbformat
import pytest

from poselab import cli
from poselab.cli.chapters import _cell_timeout

PARAMS = ('fast = False\nseed = 0\nsize = (64, 48)\nnested = {"a": (0, 0)}\nseeds = [0, 1, 2]\n'
          'strides = (4, 16)\nrun_seeds = (0, 1, 2)\nout_dir = ""\n')
BODY = """from poselab import claims
claims.start("00_types", out_dir=out_dir)
claims.record("types.size", value=repr(size), paper="", kind="math",
              holds=isinstance(size, tuple) and all(isinstance(v, int) for v in size))
claims.record("types.nested", value=repr(nested), paper="", kind="math",
              holds=isinstance(nested["a"], tuple))
claims.record("types.seeds", value=repr(seeds), paper="", kind="math", holds=isinstance(seeds, list))
"""


@pytest.fixture
def labs(tmp_path, monkeypatch):
    folder = tmp_path / "labs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(BODY)]
    nbformat.write(nb, folder / "00_types.ipynb")
    monkeypatch.setenv("POSELAB_LABS", str(folder))
    return folder


def _other_chapter_record():
    return {"id": "other.claim", "chapter": "07_other", "kind": "math", "value": 1, "paper": "",
            "holds": True, "verdict": "holds", "note": ""}


def test_tuples_reach_the_chapter_as_tuples_timeout_and_stray_ledger_entries(labs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "claims.json").write_text(json.dumps([_other_chapter_record(), "stray", 42, {"id": 1}]))
    code = cli.main(["run", "0", "--fast", "--out", str(out), "--timeout", "30.5",
                     "-p", "size=(128,96)", "-p", 'nested={"a": (1, 2)}', "-p", "seeds=[3]"])
    text = capsys.readouterr().out
    ledger = json.loads((out / "claims.json").read_text())
    by_id = {c["id"]: c for c in ledger}
    assert code == 0, text
    assert by_id["types.size"]["value"] == "(128, 96)" and by_id["types.size"]["holds"]
    assert by_id["types.nested"]["value"] == "{'a': (1, 2)}" and by_id["types.nested"]["holds"]
    assert by_id["types.seeds"]["value"] == "[3]"
    assert by_id["other.claim"] == _other_chapter_record()  # another chapter's claim survives
    assert "skipped 3 malformed record(s)" in text


def test_unreadable_ledger_is_moved_aside_not_lost(labs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "claims.json").write_text('[{"id": "half')
    assert cli.main(["run", "0", "--fast", "--out", str(out)]) == 0
    assert (out / "claims.json.unreadable").read_text() == '[{"id": "half'
    assert "moved it to" in capsys.readouterr().out
    assert {c["id"] for c in json.loads((out / "claims.json").read_text())} == {
        "types.size", "types.nested", "types.seeds"}


@pytest.mark.parametrize("value, words", [
    ("size=(128,)", "expects tuple"),
    ("size=(128.5,96)", "expects tuple"),
    ("size=128", "expects tuple"),
    ("seeds=[0, 'a']", "expects list"),
    ("seed={1, 2}", "set values are not supported"),
    ("seed=b'x'", "bytes values are not supported"),
    ("size=(1+2j, 3)", "complex"),
])
def test_parameters_that_cannot_arrive_intact_are_refused(labs, tmp_path, value, words):
    with pytest.raises(cli.CliError, match=re.escape(words)):
        cli.run(["0"], out=tmp_path / "o", parameters=cli.parse_parameters([value]))
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_list_for_a_tuple_parameter_becomes_a_tuple(labs):
    checked = cli.check_parameters(labs / "00_types.ipynb", {"size": [128, 96]})
    assert checked == {"size": (128, 96)}


def test_tuples_of_seeds_or_strides_take_any_length_sizes_do_not(labs):
    """`02 -p seeds=(0,1)` and `05 -p strides=(4,)` were refused: every tuple default was taken
    for a fixed-length one. Only sizes keep their length."""
    nb = labs / "00_types.ipynb"
    assert cli.check_parameters(nb, {"strides": (4,), "run_seeds": (0, 1, 2, 3, 4)}) == {
        "strides": (4,), "run_seeds": (0, 1, 2, 3, 4)}
    with pytest.raises(cli.CliError, match="'size'"):
        cli.check_parameters(nb, {"size": (128,)})
    with pytest.raises(cli.CliError, match="'run_seeds'"):
        cli.check_parameters(nb, {"run_seeds": ()})
    with pytest.raises(cli.CliError, match="'strides'"):
        cli.check_parameters(nb, {"strides": (4, "x")})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "poselab.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_out_naming_a_file_is_a_one_line_error(labs, tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    proc = _cli("run", "0", "--out", target)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("poselab: error: --out") and "is a file" in proc.stderr
    assert target.read_text() == "mine"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_bad_timeout_is_refused_by_the_parser(labs, tmp_path, value):
    proc = _cli("run", "0", "--out", tmp_path / "o", "--timeout", value)
    assert proc.returncode == 2 and "--timeout" in proc.stderr and "Traceback" not in proc.stderr
    assert "positive number of seconds" in proc.stderr


def test_timeout_in_the_python_api(labs, tmp_path):
    with pytest.raises(cli.CliError, match="--timeout"):
        cli.run(["0"], out=tmp_path / "o", timeout=float("nan"))
    assert _cell_timeout(0.5) == 1 and _cell_timeout(None) is None


def test_docstring_usage_lines_parse():
    """Every usage line of the module docstring is a command the parser accepts."""
    parser = cli.build_parser()
    lines = [part.strip() for ln in cli.__doc__.splitlines() for part in ln.split(";")
             if part.strip().startswith("poselab ")]
    assert any(ln.startswith("poselab data synth") for ln in lines)
    examples = {"CHAPTER": "0", "N": "8888", "name=value": "seed=1", "S": "60", "T": "1e-6"}
    for line in lines:
        words, alternative = [], False
        for token in line.split()[1:]:
            token = token.strip("[]").rstrip(".")
            if token == "|" or alternative:  # [a | b]: only a
                alternative = token == "|"
                continue
            if token == "..." or not token:
                continue
            token = token.split("|")[0]
            if token in examples:
                token = examples[token]
            elif token.isupper():  # a placeholder such as DIR, NAME, SUBMISSION
                token = "x"
            words.append(token)
        parser.parse_args(words)  # SystemExit (exit 2) if an option does not exist


def test_broken_notebook_and_broken_parameters_cell(labs, tmp_path):
    (labs / "01_broken.ipynb").write_text('{"cells": [')
    with pytest.raises(cli.CliError, match="01_broken.ipynb is not a readable notebook"):
        cli.run(["1"], out=tmp_path / "o")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fast = False\nseed = (\n")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nbformat.write(nb, labs / "01_broken.ipynb")
    with pytest.raises(cli.CliError, match="parameters cell of 01_broken.ipynb is not valid Python"):
        cli.run(["1"], out=tmp_path / "o")


def test_data_synth_root_naming_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    proc = _cli("data", "synth", "--root", target, "--split", "val")
    assert proc.returncode == 2 and proc.stderr.startswith("poselab: error: cannot generate data")
    assert "Traceback" not in proc.stderr and target.read_text() == "x"


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_lab_port_checked_before_starting_jupyter(port):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(["lab", "--port", port])
    assert e.value.code == 2
