"""End-to-end tests of the COCO download path (poselab.data.fetch, data_scripts/fetch_coco.py).

A local ThreadingHTTPServer on 127.0.0.1 serves an official-layout miniature of the COCO site
built from ../shared/coco_sample: annotations/annotations_trainval2017.zip (holding
annotations/person_keypoints_{val,train}2017.json) and {val,train}2017/*.jpg (symlinks). The
handler supports Range requests and can count requests, cut a connection mid-file, ignore
Range, answer an error status or serve a corrupt body.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from poselab.cli.data import fetch_main as main
from poselab.data.fetch import build_from_dir

REPO = Path(__file__).resolve().parent.parent
SAMPLE = Path(os.environ.get("POSELAB_COCO_SAMPLE", REPO.parent / "shared" / "coco_sample"))
ZIP = "annotations/annotations_trainval2017.zip"

pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"COCO sample not found at {SAMPLE}")


# --------------------------------------------------------------------------- local COCO site


class SiteState:
    def __init__(self, root: Path):
        self.root = root
        self.counts: Counter = Counter()
        self.ranges: list[tuple[str, int]] = []  # (path, start) of every Range request
        self.cut_once: set[str] = set()  # send half the body then drop the connection, once
        self.status: dict[str, int] = {}  # path -> forced HTTP status
        self.corrupt: dict[str, bytes] = {}  # path -> body to serve instead (every time)
        self.corrupt_once: dict[str, bytes] = {}  # path -> body to serve the first time only
        self.no_range = False  # behave like a server without Range support
        self.lock = threading.Lock()


def make_handler(state: SiteState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            path = unquote(urlsplit(self.path).path).lstrip("/")
            with state.lock:
                state.counts[path] += 1
                cut = path in state.cut_once
                state.cut_once.discard(path)
                body = state.corrupt_once.pop(path, None)
            if path in state.status:
                self.send_error(state.status[path])
                return
            if body is None:
                body = state.corrupt.get(path)
            if body is None:
                f = state.root / path
                if not f.is_file():
                    self.send_error(404)
                    return
                body = f.read_bytes()
            rng = self.headers.get("Range")
            start = 0
            if rng and not state.no_range:
                start = int(rng.split("=")[1].split("-")[0])
                with state.lock:
                    state.ranges.append((path, start))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if cut:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)

    return Handler


@contextlib.contextmanager
def serve(root: Path):
    state = SiteState(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def build_zip(path: Path, extra: dict[str, bytes] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for split in ("val2017", "train2017"):
            member = f"annotations/person_keypoints_{split}.json"
            zf.write(SAMPLE / member, member)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coco_site")
    build_zip(root / ZIP)
    for split in ("val2017", "train2017"):
        (root / split).mkdir()
        for jpg in (SAMPLE / split).glob("*.jpg"):
            (root / split / jpg.name).symlink_to(jpg)
    return root


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def expected_subset(split: str, n: int):
    """Independent selection from the source json: ids of keypoint images, ascending, first n."""
    coco = json.loads((SAMPLE / "annotations" / f"person_keypoints_{split}.json").read_text())
    counts: dict[int, int] = {}
    for a in coco["annotations"]:
        if a["num_keypoints"] > 0:
            counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    ids = sorted(counts)[:n]
    by_id = {im["id"]: im for im in coco["images"]}
    return coco, ids, [by_id[i]["file_name"] for i in ids]


def run(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*map(str, args), "--no-progress"])
    return rc, out.getvalue(), err.getvalue()


def gt_as_results_ap(ann_file: Path) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dets = [{"image_id": a["image_id"], "category_id": a["category_id"],
                 "keypoints": a["keypoints"], "score": 1.0}
                for a in gt.dataset["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_download_layout_subset_ap_and_rerun_skips(site, tmp_path, split):
    out = tmp_path / "coco"
    coco, ids, names = expected_subset(split, 5)
    with serve(site) as (url, state):
        rc, stdout, stderr = run("--split", split, "--max-images", 5, "--out", out, "--base-url", url)
        assert rc == 0, stderr
        assert state.counts[ZIP] == 1
        assert sorted(p for p in state.counts if p != ZIP) == sorted(f"{split}/{n}" for n in names)

        ann_file = out / "annotations" / f"person_keypoints_{split}.json"
        got = json.loads(ann_file.read_text())
        assert [im["id"] for im in got["images"]] == ids
        want_anns = [a for a in coco["annotations"] if a["image_id"] in set(ids)]
        assert got["annotations"] == want_anns  # every annotation of a kept image, crowd too
        for key in ("info", "licenses", "categories"):
            assert got[key] == coco[key]
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(names)
        for name in names:
            assert (out / split / name).read_bytes() == (SAMPLE / split / name).read_bytes()
        assert gt_as_results_ap(ann_file) == pytest.approx(1.0)

        # re-run: everything is finished, so no request at all and the json is left alone
        mtime = ann_file.stat().st_mtime_ns
        state.counts.clear()
        rc, stdout, stderr = run("--split", split, "--max-images", 5, "--out", out, "--base-url", url)
        assert rc == 0, stderr
        assert sum(state.counts.values()) == 0
        assert ann_file.stat().st_mtime_ns == mtime
        assert "0 fetched, 5 already present" in stdout


@pytest.mark.parametrize("no_range", [False, True])
def test_cut_connection_is_resumed_or_redone(site, tmp_path, no_range):
    out = tmp_path / "coco"
    _, _, names = expected_subset("val2017", 3)
    victim = f"val2017/{names[1]}"
    with serve(site) as (url, state):
        state.no_range = no_range
        state.cut_once.add(victim)
        state.cut_once.add(ZIP)
        rc, _, stderr = run("--max-images", 3, "--out", out, "--base-url", url)
        assert rc == 0, stderr
        assert state.counts[victim] == 2 and state.counts[ZIP] == 2
        if no_range:
            assert state.ranges == []
        else:  # resumed from where the cut left the .part
            half = (site / victim).stat().st_size // 2
            assert (victim, half) in state.ranges
    assert (out / victim).read_bytes() == (SAMPLE / victim).read_bytes()
    assert not list(out.rglob("*.part"))


def test_leftover_part_resumed_by_next_run(site, tmp_path):
    out = tmp_path / "coco"
    _, _, names = expected_subset("val2017", 2)
    with serve(site) as (url, state):
        assert run("--max-images", 2, "--out", out, "--base-url", url)[0] == 0
        victim = out / "val2017" / names[0]
        data = victim.read_bytes()
        victim.unlink()
        (out / "val2017" / (names[0] + ".part")).write_bytes(data[:1000])
        state.counts.clear()
        rc, _, stderr = run("--max-images", 2, "--out", out, "--base-url", url)
        assert rc == 0, stderr
        assert dict(state.counts) == {f"val2017/{names[0]}": 1}
        assert state.ranges == [(f"val2017/{names[0]}", 1000)]
    assert victim.read_bytes() == data


def test_corrupt_zip_redownloaded_once_then_clear_error(site, tmp_path):
    good = (site / ZIP).read_bytes()
    flipped = bytearray(good)
    for i in range(200, 260):  # inside the first member's deflate data: CRC/decompression fails
        flipped[i] ^= 0xFF
    with serve(site) as (url, state):
        # corrupt (truncated) the first time only: re-downloaded, then success
        state.corrupt_once[ZIP] = good[: len(good) // 3]
        out = tmp_path / "a"
        rc, _, stderr = run("--max-images", 1, "--out", out, "--base-url", url)
        assert rc == 0, stderr
        assert state.counts[ZIP] == 2
        # corrupt every time: two downloads, then a clear error and no zip left behind
        state.counts.clear()
        state.corrupt[ZIP] = bytes(flipped)
        out = tmp_path / "b"
        rc, _, stderr = run("--max-images", 1, "--out", out, "--base-url", url)
        assert rc == 1
        assert state.counts[ZIP] == 2
        assert "corrupt" in stderr and url in stderr and "Traceback" not in stderr
        assert not (out / ".cache" / "annotations_trainval2017.zip").exists()
        assert not (out / "annotations").exists()


@pytest.mark.parametrize("evil", ["../evil.txt", "/abs_evil.txt", "annotations/../../evil2.txt"])
def test_zip_with_escaping_member_refused(site, tmp_path, evil):
    bad_site = tmp_path / "site"
    build_zip(bad_site / ZIP, extra={evil: b"pwned"})
    (bad_site / "val2017").symlink_to(site / "val2017")
    out = tmp_path / "deep" / "coco"
    with serve(bad_site) as (url, state):
        rc, _, stderr = run("--max-images", 1, "--out", out, "--base-url", url)
    assert rc == 1
    assert "refusing to extract" in stderr and evil in stderr
    assert not [p for p in tmp_path.rglob("*evil*") if "site" not in p.parts]
    assert not (out / "annotations").exists()
    assert not (out / "val2017").exists() or not any((out / "val2017").iterdir())
    assert state.counts.keys() == {ZIP}


@pytest.mark.parametrize("target,code,words", [
    ("zip", 404, ["HTTP 404", "base URL is wrong"]),
    ("zip", 500, ["HTTP 500", "try again later"]),
    ("image", 404, ["HTTP 404", "image is not on the server"]),
    ("image", 500, ["HTTP 500", "try again later"]),
])
def test_http_errors_are_clear(site, tmp_path, target, code, words):
    _, _, names = expected_subset("val2017", 2)
    path = ZIP if target == "zip" else f"val2017/{names[1]}"
    out = tmp_path / "coco"
    with serve(site) as (url, state):
        state.status[path] = code
        rc, _, stderr = run("--max-images", 2, "--out", out, "--base-url", url)
    assert rc == 1
    assert f"{url}/{path}" in stderr and "Traceback" not in stderr
    for w in words:
        assert w in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (out / "annotations" / "person_keypoints_val2017.json").exists()


def test_connection_refused(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, _, stderr = run("--max-images", 2, "--out", tmp_path / "coco", "--base-url",
                        f"http://127.0.0.1:{port}")
    assert rc == 1
    assert "connection refused" in stderr and f"127.0.0.1:{port}" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_from_dir_matches_download(site, tmp_path):
    out_dl, out_dir = tmp_path / "dl", tmp_path / "local"
    with serve(site) as (url, _):
        assert run("--max-images", 4, "--out", out_dl, "--base-url", url)[0] == 0
    rc, stdout, stderr = run("--max-images", 4, "--out", out_dir, "--from-dir", SAMPLE)
    assert rc == 0, stderr
    rel = "annotations/person_keypoints_val2017.json"
    assert json.loads((out_dir / rel).read_text()) == json.loads((out_dl / rel).read_text())
    _, _, names = expected_subset("val2017", 4)
    for name in names:
        assert (out_dir / "val2017" / name).read_bytes() == (SAMPLE / "val2017" / name).read_bytes()
        assert not (out_dir / "val2017" / name).is_symlink()
    assert not (out_dir / ".cache").exists()
    rep = build_from_dir(SAMPLE, out_dir, "val2017", 4, progress=False)  # re-run: nothing copied
    assert (rep.n_transferred, rep.n_present, rep.json_written) == (0, 4, False)
    # missing source folder / same folder: clear errors
    rc, _, stderr = run("--max-images", 1, "--out", tmp_path / "x", "--from-dir", tmp_path / "nope")
    assert rc == 1 and "no COCO annotations" in stderr
    rc, _, stderr = run("--out", out_dir, "--from-dir", out_dir)
    assert rc == 1 and "same folder" in stderr


def test_user_files_never_lost(site, tmp_path):
    out = tmp_path / "coco"
    _, _, names = expected_subset("val2017", 3)
    (out / "annotations").mkdir(parents=True)
    (out / "val2017").mkdir()
    user_json = out / "annotations" / "person_keypoints_val2017.json"
    user_json.write_text('{"images": [], "annotations": [], "mine": true}')
    (out / "notes.txt").write_text("my notes")
    (out / "val2017" / "mine.jpg").write_bytes(b"not even a jpeg")
    with serve(site) as (url, state):
        rc, _, stderr = run("--max-images", 3, "--out", out, "--base-url", url)
        assert rc == 1 and "--force" in stderr and str(user_json) in stderr
        assert json.loads(user_json.read_text())["mine"] is True
        assert not any(p.startswith("val2017/") for p in state.counts)  # refused before downloading

        # a damaged image with a kept name is reported, not replaced, without --force
        user_json.unlink()
        bad = out / "val2017" / names[0]
        bad.write_bytes(b"garbage")
        rc, _, stderr = run("--max-images", 3, "--out", out, "--base-url", url)
        assert rc == 1 and "move it away" in stderr and str(bad) in stderr
        assert bad.read_bytes() == b"garbage"

        user_json.write_text('{"images": [], "annotations": [], "mine": true}')
        rc, _, stderr = run("--max-images", 3, "--out", out, "--base-url", url, "--force")
        assert rc == 0, stderr
    assert [im["id"] for im in json.loads(user_json.read_text())["images"]] == expected_subset("val2017", 3)[1]
    assert bad.read_bytes() == (SAMPLE / "val2017" / names[0]).read_bytes()
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "val2017" / "mine.jpg").read_bytes() == b"not even a jpeg"


def test_size_mismatch_with_json_is_an_error(site, tmp_path):
    """A server image whose size disagrees with the json is downloaded twice, then refused."""
    _, _, names = expected_subset("val2017", 1)
    other = sorted((SAMPLE / "val2017").glob("*.jpg"))
    wrong = next(p for p in other if p.name != names[0])
    with serve(site) as (url, state):
        state.corrupt[f"val2017/{names[0]}"] = wrong.read_bytes()
        rc, _, stderr = run("--max-images", 1, "--out", tmp_path / "coco", "--base-url", url)
        assert state.counts[f"val2017/{names[0]}"] == 2
    assert rc == 1 and "json says" in stderr
    assert not (tmp_path / "coco" / "val2017" / names[0]).exists()


def test_cli_subprocess_exit_code_and_stderr(site, tmp_path):
    with serve(site) as (url, state):
        state.status[ZIP] = 404
        proc = subprocess.run(
            [sys.executable, str(REPO / "data_scripts" / "fetch_coco.py"), "--split", "val2017",
             "--max-images", "2", "--out", str(tmp_path / "coco"), "--base-url", url],
            capture_output=True, text=True, timeout=60, env={**os.environ},
        )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fetch_coco: error: HTTP 404") and "base URL is wrong" in lines[0]
    assert "Traceback" not in proc.stderr
    # argparse usage errors: exit code 2
    proc = subprocess.run([sys.executable, str(REPO / "data_scripts" / "fetch_coco.py"),
                           "--out", str(tmp_path), "--max-images", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "positive integer" in proc.stderr


def test_python_api_with_progress_bars(site, tmp_path, capsys):
    from poselab.data.fetch import FetchError, fetch_coco

    _, ids, names = expected_subset("val2017", 3)
    with serve(site) as (url, state):
        state.cut_once.add(f"val2017/{names[2]}")
        rep = fetch_coco(tmp_path / "coco", "val2017", 3, base_url=url + "/", workers=1,
                         progress=True)
    assert (rep.n_images, rep.n_transferred, rep.n_present, rep.json_written) == (3, 3, 0, True)
    assert rep.annotation_file == tmp_path / "coco" / "annotations" / "person_keypoints_val2017.json"
    assert "val2017" in capsys.readouterr().err  # the tqdm bar went to stderr
    with pytest.raises(FetchError, match="unknown split"):
        fetch_coco(tmp_path / "x", "val2014")
    with pytest.raises(FetchError, match="not an http"):
        fetch_coco(tmp_path / "x", base_url="ftp://example.org")
