"""The chapter harness, on small throwaway chapters (the real ones run in test_chapters.py)."""
import json
import subprocess
import sys

import nbformat
import pytest

from poselab import cli

PARAMS = 'fast = False\nseed = 0\nrate = 0.5\ndata = "synth"\nout_dir = ""\n'


def make_chapter(folder, name, body):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), params,
                nbformat.v4.new_code_cell(f"from poselab import claims\nclaims.start({name!r}, out_dir=out_dir)"),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture
def labs(tmp_path, monkeypatch):
    folder = tmp_path / "labs"
    folder.mkdir()
    make_chapter(folder, "00_good", "claims.record('demo.fast', value=fast, paper='', kind='math', holds=fast == True)\n"
                 "claims.record('demo.seed', value=seed, paper='', kind='empirical', holds=seed > 100)")
    make_chapter(folder, "01_badmath", "claims.record('demo.false', value=1, paper='', kind='math', holds=1 > 2)")
    make_chapter(folder, "02_crash", "x = 1\nraise RuntimeError('boom in chapter')")
    (folder / "notes.ipynb").write_text("{}")  # not a chapter: no number
    monkeypatch.setenv("POSELAB_LABS", str(folder))
    return folder


def test_chapter_names_resolve(labs):
    names = [p.stem for p in cli.resolve_chapters(["0", "00", "good", "01_badmath", "crash.ipynb"])]
    assert names == ["00_good", "01_badmath", "02_crash"]
    assert [p.stem for p in cli.resolve_chapters([])] == ["00_good", "01_badmath", "02_crash"]
    with pytest.raises(cli.CliError, match="unknown chapter 'hdmm'.*available: 00_good"):
        cli.resolve_chapters(["hdmm"])


def test_parameter_parsing_and_type_checks(labs):
    assert cli.parse_parameters(["seed=3", "fast=True", "data=coco", "rate=1e-3", "x=[1, 2]"]) == {
        "seed": 3, "fast": True, "data": "coco", "rate": 1e-3, "x": [1, 2]}
    nb = labs / "00_good.ipynb"
    assert cli.check_parameters(nb, {"seed": 3, "rate": 1}) == {"seed": 3, "rate": 1}
    with pytest.raises(cli.CliError, match="parameter 'seed' of 00_good expects int"):
        cli.check_parameters(nb, {"seed": "abc"})
    with pytest.raises(cli.CliError, match="expects bool"):
        cli.check_parameters(nb, {"fast": 3})
    with pytest.raises(cli.CliError, match="has no parameter 'epochz'"):
        cli.check_parameters(nb, {"epochz": 3})
    with pytest.raises(cli.CliError, match="name=value"):
        cli.parse_parameters(["seed"])


def test_run_good_chapter_writes_ledger(labs, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "0", "--fast", "--out", str(out), "-p", "seed=7"]) == 0
    ledger = json.loads((out / "claims.json").read_text())
    assert {(c["id"], c["holds"]) for c in ledger} == {("demo.fast", True), ("demo.seed", False)}
    assert all(c["chapter"] == "00_good" for c in ledger)
    assert (out / "00_good.ipynb").exists()
    assert ledger[1]["value"] == 7  # the parameter reached the chapter


def test_failing_math_claim_and_crash_give_nonzero_exit(labs, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["run", "badmath", "crash", "--fast", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    assert "math claims that do not hold: demo.false" in text
    assert "RuntimeError: boom in chapter" in text and "cell 4" in text
    assert "failed chapters: 02_crash" in text


def test_user_errors_exit_2_with_one_line(labs, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "poselab.cli", "run", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("poselab: error: unknown chapter 'nope'") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "poselab.cli", "run", "0", "-p", "seed=abc",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "expects int" in proc.stderr


def test_lab_command_serves_the_chapters(tmp_path):
    """`poselab lab` starts JupyterLab with labs/ as its root: the contents API lists chapters."""
    import os
    import secrets
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(8)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    env.pop("POSELAB_LABS", None)
    proc = subprocess.Popen([sys.executable, "-m", "poselab.cli", "lab", "--port", str(port), "--no-browser",
                             "--", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 60
        listing = None
        while time.time() < deadline and listing is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2) as r:
                    listing = json.load(r)
            except OSError:
                time.sleep(0.5)
        assert listing is not None, "JupyterLab did not answer within 60 s"
        names = {item["name"] for item in listing["content"]}
        assert {p.name for p in cli.list_chapters()} <= names and names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        leftover = _session_alive(proc.pid)
        try:  # nothing of the session may outlive the test
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)
    assert not leftover, "a process of `poselab lab` (JupyterLab) outlived terminate()"


def _session_alive(sid: int) -> bool:
    """Any process left in session ``sid`` (Linux /proc; False where /proc is missing)."""
    import os
    from pathlib import Path
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            return True
    return False
