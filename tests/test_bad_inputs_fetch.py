"""Hostile servers and options for the COCO fetcher (reliability probe, issue 10).

Every server here is a local ThreadingHTTPServer on 127.0.0.1 serving a made-up miniature COCO
site; every loop is bounded (a trickling handler stops after a fixed number of bytes).
"""
from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from poselab.cli.data import fetch_main as main
from poselab.data.fetch import ANNOTATION_ZIP, FetchError, fetch_coco

NAME = "000000000001.jpg"


def _coco_json() -> bytes:
    return json.dumps({
        "info": {}, "licenses": [],
        "images": [{"id": 1, "file_name": NAME, "height": 50, "width": 40}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 600.0,
                         "bbox": [5, 5, 20, 30], "num_keypoints": 17,
                         "keypoints": [10, 12, 2] * 17}],
        "categories": [{"id": 1, "name": "person"}]}).encode()


def _zip(member_body: bytes, extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations/person_keypoints_val2017.json", member_body)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 50), (10, 120, 200)).save(buf, format="JPEG")
    return buf.getvalue()


class Site:
    def __init__(self):
        self.bodies = {ANNOTATION_ZIP: _zip(_coco_json()), f"val2017/{NAME}": _jpeg()}
        self.queue: dict[str, list[bytes]] = {}  # path -> bodies served first, one per request
        self.slow: set[str] = set()  # paths trickled one byte per 20 ms (at most 400 bytes)
        self.slow_headers: set[str] = set()  # the status line and headers trickled the same way
        self.cut_once: set[str] = set()
        self.counts: dict[str, int] = {}
        self.ranges: list[int] = []
        self.lock = threading.Lock()


def _handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = unquote(urlsplit(self.path).path).lstrip("/")
            with site.lock:
                site.counts[path] = site.counts.get(path, 0) + 1
                queued = site.queue.get(path)
                body = queued.pop(0) if queued else site.bodies.get(path)
                cut = path in site.cut_once
                site.cut_once.discard(path)
            if body is None:
                self.send_error(404)
                return
            if path in site.slow_headers:
                raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Pad: " + b"a" * 400 + b"\r\n\r\n"
                try:
                    for i in range(400):  # bounded trickle: never reaches the end of the headers
                        self.wfile.write(raw[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.02)
                except OSError:
                    pass
                self.close_connection = True
                return
            start = 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].split("-")[0])
                site.ranges.append(start)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if path in site.slow:
                try:
                    for i in range(min(400, len(payload))):  # bounded trickle
                        self.wfile.write(payload[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.02)
                except OSError:
                    pass
                self.close_connection = True
                return
            if cut:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture()
def site(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    state = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def _fetch(site, out, **kw):
    return fetch_coco(out, "val2017", base_url=site.url, progress=False, timeout=5, **kw)


def _cli(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main([*map(str, args), "--no-progress"])
        except SystemExit as exc:  # argparse
            rc = exc.code
    return rc, err.getvalue()


def test_good_site_works(site, tmp_path):
    report = _fetch(site, tmp_path / "coco")
    assert report.n_images == 1 and (tmp_path / "coco" / "val2017" / NAME).is_file()


def test_trickling_server_hits_the_low_speed_deadline(site, tmp_path):
    """One byte per 20 ms never trips the per-read timeout; the low-speed limit ends it."""
    site.slow.add(ANNOTATION_ZIP)
    start = time.monotonic()
    with pytest.raises(FetchError) as e:
        _fetch(site, tmp_path / "coco", low_speed_limit=1000, low_speed_time=0.3)
    assert time.monotonic() - start < 15
    assert "low-speed limit" in str(e.value) and "re-run" in str(e.value)
    assert site.counts[ANNOTATION_ZIP] == 3  # MAX_ATTEMPTS, each resumed


def test_trickling_headers_hit_the_response_deadline(site, tmp_path):
    """Headers at one byte per 20 ms: neither the per-read timeout nor the body's low-speed check
    sees it; the connection's own deadline (max(timeout, low_speed_time)) ends each attempt."""
    site.slow_headers.add(ANNOTATION_ZIP)
    start = time.monotonic()
    with pytest.raises(FetchError) as e:
        fetch_coco(tmp_path / "coco", "val2017", base_url=site.url, progress=False, timeout=0.3,
                   low_speed_time=0.3)
    assert time.monotonic() - start < 15
    assert "no complete response headers within 0.3 s" in str(e.value)
    assert site.counts[ANNOTATION_ZIP] == 3


def test_trickling_image_through_the_cli(site, tmp_path):
    site.slow.add(f"val2017/{NAME}")
    rc, err = _cli("--out", tmp_path / "coco", "--base-url", site.url, "--timeout", "5",
                   "--low-speed-limit", "1000", "--low-speed-time", "0.3")
    assert rc == 1 and "low-speed limit" in err and err.startswith("fetch_coco: error:")


@pytest.mark.parametrize("value", ["-1", "nan", "0", "inf", "soon"])
def test_bad_timeout_is_an_argparse_error(tmp_path, value):
    rc, err = _cli("--out", tmp_path / "coco", "--timeout", value)
    assert rc == 2 and "--timeout" in err and "positive number of seconds" in err


@pytest.mark.parametrize("kwargs, words", [
    ({"timeout": 0}, "timeout"), ({"timeout": float("nan")}, "timeout"),
    ({"timeout": -1}, "timeout"), ({"workers": 0}, "workers"),
    ({"low_speed_time": 0}, "low_speed_time"), ({"low_speed_limit": -5}, "low_speed_limit"),
])
def test_bad_numbers_in_the_python_api(tmp_path, kwargs, words):
    with pytest.raises(FetchError, match=words):
        fetch_coco(tmp_path / "coco", "val2017", base_url="http://127.0.0.1:9", progress=False,
                   **kwargs)
    assert not (tmp_path / "coco").exists()


def test_corrupt_json_in_a_good_zip_is_refetched_not_looped(site, tmp_path):
    out = tmp_path / "coco"
    site.bodies[ANNOTATION_ZIP] = _zip(b'{"images": [')  # CRC fine, json truncated
    with pytest.raises(FetchError) as e:
        _fetch(site, out)
    assert "damaged json twice" in str(e.value) and "--base-url" in str(e.value)
    assert not list((out / ".cache").glob("*.zip"))  # removed: a re-run downloads again
    site.bodies[ANNOTATION_ZIP] = _zip(_coco_json())  # the mirror is fixed
    assert _fetch(site, out).n_images == 1  # the re-run works (was: the same error forever)


def test_corrupt_json_once_is_repaired_in_the_same_run(site, tmp_path):
    site.queue[ANNOTATION_ZIP] = [_zip(b"not json at all")]
    assert _fetch(site, tmp_path / "coco").n_images == 1
    assert site.counts[ANNOTATION_ZIP] == 2


def test_zip_slip_archive_is_refused(site, tmp_path):
    site.bodies[ANNOTATION_ZIP] = _zip(_coco_json(), {"../../evil.txt": b"x"})
    with pytest.raises(FetchError, match="refusing to extract"):
        _fetch(site, tmp_path / "out" / "coco")
    assert not list(tmp_path.rglob("evil.txt"))


def test_cut_download_resumes(site, tmp_path):
    site.cut_once.add(ANNOTATION_ZIP)
    assert _fetch(site, tmp_path / "coco").n_images == 1
    assert site.ranges and site.ranges[0] > 0


def test_html_instead_of_an_image_is_a_clear_error(site, tmp_path):
    site.bodies[f"val2017/{NAME}"] = b"<html>login required</html>"
    with pytest.raises(FetchError, match="does not decode as an image"):
        _fetch(site, tmp_path / "coco")


def test_file_name_escaping_the_output_is_refused(site, tmp_path):
    data = json.loads(_coco_json())
    data["images"][0]["file_name"] = "../../x.jpg"
    site.bodies[ANNOTATION_ZIP] = _zip(json.dumps(data).encode())
    with pytest.raises(FetchError, match="not a plain file name"):
        _fetch(site, tmp_path / "coco")


def test_out_naming_a_file_and_a_non_http_base_url(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    rc, err = _cli("--out", target, "--base-url", "http://127.0.0.1:9")
    assert rc == 1 and "not a folder" in err and target.read_text() == "x"
    rc, err = _cli("--out", tmp_path / "coco", "--base-url", "ftp://example.org")
    assert rc == 1 and "not an http(s) URL" in err


def test_from_dir_with_a_broken_json_blames_the_source_not_the_cache(tmp_path):
    src = tmp_path / "src"
    (src / "annotations").mkdir(parents=True)
    (src / "annotations" / "person_keypoints_val2017.json").write_text('{"images": [')
    rc, err = _cli("--out", tmp_path / "coco", "--from-dir", src)
    assert rc == 1 and "--from-dir folder is damaged" in err and "delete it" not in err


@pytest.mark.parametrize("field, value, words", [
    ("num_keypoints", "17", "wrong type"),
    ("image_id", None, "it is not a COCO file"),
])
def test_select_subset_field_types(field, value, words):
    from poselab.data.fetch import select_subset
    coco = json.loads(_coco_json())
    coco["annotations"][0][field] = value
    if value is None:
        del coco["annotations"][0][field]
    with pytest.raises(FetchError, match=words):
        select_subset(coco, 1)
