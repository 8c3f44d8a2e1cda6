"""Documented command lines run: every `poselab ...` line in the README's and the CLI docstrings'
code, every `python3 tasks.py ...` and `data_scripts/fetch_coco.py ...` line parses with the real
parsers (cheap ones are executed)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from poselab import cli
from poselab.cli.data import fetch_parser

ROOT = Path(__file__).resolve().parent.parent


def _code_lines(text: str) -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _poselab_lines() -> list[str]:
    out = []
    for line in _code_lines((ROOT / "README.md").read_text()):
        m = re.match(r"^(?:\S+=\S+\s+)*(?:\.venv/bin/)?poselab\s+(.*)$", line)
        if m:
            out.append(m.group(1))
    for line in cli.__doc__.splitlines():
        m = re.match(r"^\s+poselab\s+(.*)$", line)
        if m:
            out.extend(m.group(1).split(";  poselab "))
    return out


def _example(args: str) -> list[str]:
    """A usage line's placeholders replaced by example values ([a | b] → a, [--x X] → dropped)."""
    args = re.sub(r"\[([^\[\]|]*?)\s*\|[^\[\]]*\]", r"\1", args)       # [a | b] -> a
    args = re.sub(r"\[[^\[\]]*\]", "", args)                            # optional parts dropped
    args = args.replace("RECIPE", "mse").replace("FILE", "results/x.json").replace("SUBMISSION", "s.ipynb")
    args = args.replace("CHAPTER ...", "00").replace("NAME ...", "").replace("DIR", "runs/x")
    args = re.sub(r"\bN\b", "1", args)                                  # a count or a seed
    return shlex.split(args)


def test_readme_has_poselab_lines():
    assert len(_poselab_lines()) >= 8


@pytest.mark.parametrize("args", _poselab_lines())
def test_documented_poselab_line_parses(args):
    parser = cli.build_parser()
    try:
        parser.parse_args(_example(args))
    except SystemExit as exc:
        pytest.fail(f"`poselab {args}` does not parse (exit {exc.code})")


def test_tasks_and_fetch_lines_parse():
    tasks = (ROOT / "tasks.py").read_text()
    for line in _code_lines((ROOT / "README.md").read_text()):
        m = re.match(r"^(?:\S+=\S+\s+)*python3? tasks\.py (\w+)", line)
        if m:
            assert f'"{m.group(1)}"' in tasks, line
        m = re.match(r"^\S*python3? data_scripts/fetch_coco\.py (.*)$", line)
        if m:
            fetch_parser().parse_args(shlex.split(m.group(1)))


def test_cheap_documented_commands_run(capsys):
    assert cli.main(["list"]) == 0
    assert "00_basics" in capsys.readouterr().out
    assert cli.main(["recipes"]) == 0
    assert "mse" in capsys.readouterr().out
