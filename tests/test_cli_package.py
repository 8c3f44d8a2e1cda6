"""The ``poselab`` command as one package (issue 22, item 5): one parser tree built from the
command tables, table dispatch, ``--seeds`` everywhere (``--seed`` the same option), one exit-code
rule (0 done, 1 ran and failed, 2 refused, 130 interrupted), hostile command lines answered with
one line and no traceback, a fast ``--help``, and an engine that never imports the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from poselab import cli
from poselab.cli import _common, data, tools
from poselab.errors import CliError
from test_import_graph import import_graph

ROOT = Path(__file__).resolve().parent.parent


def _subcommands(parser):
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return actions[0].choices if actions else {}


def _leaves(table, prefix=()):
    for name, command in table.items():
        if command.subcommands:
            yield from _leaves(command.subcommands, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_the_parser_tree_is_the_command_tables():
    tree = _subcommands(cli.build_parser())
    assert list(tree) == list(cli.COMMANDS)
    assert set(_subcommands(tree["data"])) == {"synth", "generate", "fetch"}
    for path, command in _leaves(cli.COMMANDS):
        assert callable(command.handler), path


def test_every_command_is_documented_and_has_working_help(capsys):
    """Each command has a usage line in the package docstring, and its --help prints (exit 0)."""
    for path, _ in _leaves(cli.COMMANDS):
        assert f"poselab {' '.join(path)}" in cli.__doc__, path
        assert cli.main([*path, "--help"]) == 0
        assert f"usage: poselab {' '.join(path)}" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 done; 1" in out and "130 interrupted" in out


def test_dispatch_goes_through_the_table(monkeypatch):
    """The handler that runs is the table's: replacing a row's handler changes what runs."""
    calls = []
    row = cli.COMMANDS["recipes"]
    monkeypatch.setitem(cli.COMMANDS, "recipes", _common.Command(
        row.help, row.add_arguments, lambda args: calls.append(args.command) or 0))
    assert cli.main(["recipes"]) == 0 and calls == ["recipes"]


@pytest.mark.parametrize("command", [["train", "mse"], ["arena"], ["results", "verify", "x.json"],
                                     ["replicate", "04"]])
def test_seeds_and_seed_are_one_option(command):
    parser = cli.build_parser()
    a = parser.parse_args([*command, "--seeds", "3", "4"])
    b = parser.parse_args([*command, "--seed", "3", "4"])
    assert a.seeds == b.seeds == [3, 4]


def test_seed_options_are_consistent():
    """Several seeds are always --seeds (with --seed the same option); a lone --seed takes one."""
    seen = 0
    for path, _ in _leaves(cli.COMMANDS):
        parser = cli.build_parser()
        for word in path:
            parser = _subcommands(parser)[word]
        for action in parser._actions:
            if "--seeds" in action.option_strings:
                assert action.option_strings == ["--seeds", "--seed"] and action.dest == "seeds"
                assert action.nargs == "+", path
                seen += 1
            elif "--seed" in action.option_strings:
                assert action.nargs is None and path == ("data", "generate"), path
    assert seen == 4  # train, arena, results, replicate


HOSTILE = [
    [],                                              # no command
    ["nope"],                                        # unknown command
    ["train"],                                       # missing argument
    ["train", "mse", "--jobs", "x"],                 # not a number
    ["train", "mse", "--jobs", "0"],
    ["arena", "--jobs", "-2"],                       # negative --jobs
    ["replicate", "04", "--jobs", "-1"],
    ["train", "mse", "--seeds", "-1"],               # negative seed
    ["arena", "--seed", "1.5"],
    ["results", "verify", "x.json", "--tol", "nan"],
    ["run", "00", "--timeout", "inf"],
    ["lab", "--port", "99999"],
    ["run", "99"],                                   # unknown chapter
    ["replicate", "99", "--plan"],
    ["replicate", "04", "--preset", "nope", "--plan"],
    ["train", "nosuch"],                             # unknown recipe
    ["index", "--check", "--write-readme"],
    ["data", "fetch"],                               # missing --out
    ["data", "fetch", "--out", "x", "--split", "test2017"],
    ["data", "generate", "--out", "x", "--n-images", "0"],
    ["data", "generate", "--out", "x", "--n-images", "2", "--occlusion-prob", "7"],  # bad control
]


@pytest.mark.parametrize("argv", HOSTILE, ids=[" ".join(a) or "(none)" for a in HOSTILE])
def test_hostile_command_lines_are_refused_with_one_line(argv, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("poselab") and ": error: " in lines[0], lines
    assert "Traceback" not in captured.err and not captured.out


def test_hostile_lines_in_a_fresh_process_exit_2_without_traceback():
    for argv in (["nope"], ["train", "mse", "--jobs", "-1"], ["run", "99"]):
        proc = subprocess.run([sys.executable, "-m", "poselab", *argv], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_exit_codes_of_a_handler(monkeypatch, capsys):
    """CliError -> 2 with one line; a failed check -> 1; Ctrl-C -> 130, no traceback."""
    def refuse(device):
        raise CliError("no such thing")
    monkeypatch.setattr(tools.doctor, "main", refuse)
    assert cli.main(["doctor"]) == 2
    assert capsys.readouterr().err == "poselab: error: no such thing\n"

    def interrupt(device):
        raise KeyboardInterrupt
    monkeypatch.setattr(tools.doctor, "main", interrupt)
    assert cli.main(["doctor"]) == 130
    assert capsys.readouterr().err == "poselab: interrupted\n"

    monkeypatch.setattr(tools.index, "update_readme", lambda check=False: False)
    assert cli.main(["index", "--check"]) == 1  # ran; the answer is "stale"
    assert "stale" in capsys.readouterr().out
    monkeypatch.setattr(tools.index, "update_readme", lambda check=False: True)
    assert cli.main(["index", "--check"]) == 0


def test_a_failed_fetch_is_1_and_a_usage_error_2(tmp_path, capsys):
    assert cli.main(["data", "fetch", "--out", tmp_path / "coco", "--from-dir", tmp_path / "none",
                     "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("poselab: error: ") and "Traceback" not in err
    assert data.fetch_main(["--out", str(tmp_path), "--workers", "0"]) == 2
    assert capsys.readouterr().err.startswith("fetch_coco.py: error: argument --workers")


def test_generate_writes_a_dataset_and_refuses_to_replace_it(tmp_path, capsys):
    argv = ["--out", tmp_path / "g", "--n-images", "1", "--seed", "3", "--image-size", "64", "48",
            "--quiet"]
    assert data.generate_main(argv) == 0
    json_path = tmp_path / "g" / "annotations" / "person_keypoints_train.json"
    assert json_path.is_file() and str(json_path) in capsys.readouterr().out
    before = json_path.read_bytes()
    assert cli.main(["data", "generate", *argv]) == 2  # exists: refused, nothing replaced
    assert capsys.readouterr().err.startswith("poselab: error: ")
    assert json_path.read_bytes() == before
    assert cli.main(["data", "generate", *argv, "--overwrite"]) == 0
    assert json_path.read_bytes() == before  # same seed and controls: the same files


def test_fetch_choices_and_documented_defaults_are_fetch_coco_s():
    from poselab.data import fetch
    assert data.SPLITS == fetch.SPLITS
    helptext = data.fetch_parser().format_help()
    assert fetch.DEFAULT_BASE_URL in helptext.replace("\n", "")
    assert (data._BASE_URL, data._LOW_SPEED_LIMIT, data._LOW_SPEED_TIME) == (
        fetch.DEFAULT_BASE_URL, fetch.LOW_SPEED_LIMIT, fetch.LOW_SPEED_TIME)


def test_help_imports_neither_torch_nor_numpy():
    """`poselab --help` stays fast: the heavy imports are deferred to the handlers."""
    code = ("import sys\nfrom poselab.cli import main\nfor argv in (['--help'], ['train', '--help'],"
            " ['data', 'fetch', '--help']):\n    assert main(argv) == 0\n"
            "print(sorted(m for m in ('torch', 'numpy', 'papermill') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_every_entry_point_is_the_same_command():
    for entry in (["-m", "poselab"], ["-m", "poselab.cli"]):
        proc = subprocess.run([sys.executable, *entry, "list"], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and "00_basics" in proc.stdout, proc.stderr
    script = (ROOT / "pyproject.toml").read_text()
    assert 'poselab = "poselab.cli:main"' in script


def _importers_of_the_cli(graph):
    return sorted(mod for mod, deps in graph.items()
                  if not (mod == "poselab.cli" or mod.startswith("poselab.cli.")
                          or mod == "poselab.__main__")
                  and any(d == "poselab.cli" or d.startswith("poselab.cli.") for d in deps))


def test_nothing_but_the_entry_point_imports_the_cli():
    """The engine (and every library module) runs without the command line: only
    ``poselab/__main__.py`` imports ``poselab.cli``; shown failing on a constructed graph."""
    assert _importers_of_the_cli(import_graph()) == []
    bad = {"poselab.experiments.replicate": {"poselab.cli.training"}, "poselab.cli": set()}
    assert _importers_of_the_cli(bad) == ["poselab.experiments.replicate"]


def test_the_old_modules_are_gone():
    assert not (ROOT / "poselab" / "cli.py").exists()
    assert not (ROOT / "poselab" / "experiments" / "cli.py").exists()
    from poselab.data import fetch
    assert not hasattr(fetch, "build_parser") and not hasattr(fetch, "main")


def _undeclared_local_imports(source: str) -> list[int]:
    import ast
    lines = source.splitlines()
    tree = ast.parse(source)
    top = {id(node) for node in tree.body}
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top
            and "# deferred" not in lines[node.lineno - 1]]


def test_imports_sit_at_the_top_unless_deliberately_deferred():
    """A function-level import in the CLI is a heavy one deferred on purpose, and says so."""
    for path in sorted((ROOT / "poselab" / "cli").glob("*.py")):
        assert _undeclared_local_imports(path.read_text()) == [], path.name
    assert _undeclared_local_imports("import os\ndef f():\n    import json\n") == [3]
