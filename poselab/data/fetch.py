"""Fetch a person-keypoint subset of COCO 2017 in the standard COCO layout.

Two sources, one result::

    DIR/annotations/person_keypoints_<split>.json   info, licenses, categories + the kept
                                                    images and *every* annotation of them
    DIR/<split>/<file_name>                         the kept images, verified with PIL
    DIR/.cache/                                     the tool's own folder (annotation zip,
                                                    extracted official json, verify marker)

* :func:`fetch_coco` downloads from the official COCO 2017 site
  (``<base>/annotations/annotations_trainval2017.zip`` and ``<base>/<split>/<file_name>``).
* :func:`build_from_dir` builds the same subset from a local COCO folder (copies images).

Which images are kept (:func:`select_subset`): images that have at least one annotation with
``num_keypoints > 0``, sorted by COCO image id, the first ``max_images`` of them. A kept image
keeps *all* its annotations (crowd regions and ``num_keypoints == 0`` persons included), so
pycocotools' OKS evaluation on the subset is exactly the official one restricted to those images.

Robustness: downloads go to ``<name>.part`` and are renamed when complete (byte count equal to
Content-Length); an interrupted ``.part`` is continued with an HTTP ``Range`` request when the
server supports it, otherwise downloaded again. A transfer slower than ``low_speed_limit`` bytes/s
over ``low_speed_time`` seconds (default 1024 B/s over 30 s) is abandoned and resumed the same
way, and the connection plus response headers must arrive within ``max(timeout,
low_speed_time)`` seconds, so a trickling server cannot hang the tool. A final file counts as
finished when it verifies:
images decode with PIL and have the json's width/height; the zip passes ``zipfile.testzip``
(remembered in a marker so re-runs do not re-check 241 MB). Re-runs therefore make no request for
finished files. Nothing the user made is deleted: only ``.part`` files and files under
``DIR/.cache`` are ever removed, an existing different json is kept unless ``force=True``, and an
existing invalid image is reported, not replaced (unless ``force=True``).

Expected failures raise :class:`FetchError` whose one-line message says what to do; the command
line (``poselab data fetch``, ``data_scripts/fetch_coco.py``: :mod:`poselab.cli.data`) prints it
and exits with status 1.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from PIL import Image
from tqdm.auto import tqdm

__all__ = [
    "DEFAULT_BASE_URL",
    "ANNOTATION_ZIP",
    "SPLITS",
    "FetchError",
    "FetchReport",
    "select_subset",
    "fetch_coco",
    "build_from_dir",
]

DEFAULT_BASE_URL = "http://images.cocodataset.org"
ANNOTATION_ZIP = "annotations/annotations_trainval2017.zip"
SPLITS = ("val2017", "train2017")
CACHE_DIR = ".cache"
MAX_ATTEMPTS = 3  # per file: first try + two resumes/redos after a cut connection
#: Low-speed deadline (like curl's --speed-limit/--speed-time): an attempt that receives fewer
#: than LOW_SPEED_LIMIT bytes/s averaged over LOW_SPEED_TIME seconds is abandoned (and resumed).
LOW_SPEED_LIMIT = 1024
LOW_SPEED_TIME = 30.0
_CHUNK = 1 << 20
_USER_AGENT = "poselab-fetch-coco/1.0 (+python urllib)"


class FetchError(RuntimeError):
    """An expected failure (network, HTTP, corrupt data, refusing to overwrite).

    The message is one line and says what to do; the CLI prints it without a traceback.
    """


class _Transient(Exception):
    """A download attempt that may succeed when retried (cut connection, short body)."""


@dataclass
class FetchReport:
    """What a fetch/build did.

    Attributes: ``annotation_file`` (the written json), ``image_dir``, ``n_images`` kept,
    ``n_annotations`` written (all of the kept images), ``n_with_keypoints`` (annotations with
    ``num_keypoints > 0``), ``n_transferred`` images downloaded/copied in this run,
    ``n_present`` images already there and valid, ``json_written`` (False when an identical json
    was already there).
    """

    annotation_file: Path
    image_dir: Path
    n_images: int
    n_annotations: int
    n_with_keypoints: int
    n_transferred: int
    n_present: int
    json_written: bool

    def summary(self) -> str:
        verb = "wrote" if self.json_written else "kept identical"
        return (
            f"{self.n_images} images ({self.n_transferred} fetched, {self.n_present} already "
            f"present) in {self.image_dir}; {self.n_annotations} annotations "
            f"({self.n_with_keypoints} with keypoints); {verb} {self.annotation_file}"
        )


# --------------------------------------------------------------------------- subset selection


def _safe_file_name(name: object) -> str:
    """A json ``file_name`` must be a plain file name (it is joined to the output folder)."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
    ):
        raise FetchError(
            f"image file_name {name!r} in the annotation json is not a plain file name; "
            "the json is not a genuine COCO file"
        )
    return name


def select_subset(coco: dict, max_images: int | None = None) -> dict:
    """Keep the first ``max_images`` keypoint-annotated images (by image id) and all their annotations.

    coco: a COCO person_keypoints dict (keys ``images``, ``annotations``, optional ``info``,
    ``licenses``, ``categories``). An image qualifies when one of its annotations has
    ``num_keypoints > 0``. Qualifying images are sorted by ``id`` (deterministic, independent of
    the file's order) and the first ``max_images`` are kept (all when ``None``). Every
    annotation whose ``image_id`` is kept is written, in the source order. Returns a new dict
    with keys info, licenses, images, annotations, categories (info/licenses/categories are
    copied through unchanged).
    """
    if max_images is not None and (isinstance(max_images, bool) or int(max_images) != max_images
                                   or max_images < 1):
        raise FetchError(f"max_images must be a positive integer or None, got {max_images!r}")
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) or not isinstance(
        coco.get("annotations"), list
    ):
        raise FetchError("the annotation json has no 'images'/'annotations' lists; it is not a COCO file")
    try:
        with_kp = {a["image_id"] for a in coco["annotations"] if (a.get("num_keypoints") or 0) > 0}
        candidates = sorted((im for im in coco["images"] if im["id"] in with_kp), key=lambda im: im["id"])
    except KeyError as err:
        raise FetchError(f"malformed COCO annotation json (missing field {err}); it is not a COCO file") from None
    except TypeError as err:
        raise FetchError(f"malformed COCO annotation json (a field has the wrong type: {err}; e.g. "
                         "num_keypoints must be a number); it is not a COCO file") from None
    if max_images is not None:
        candidates = candidates[: int(max_images)]
    names = [_safe_file_name(im.get("file_name")) for im in candidates]
    if len(set(names)) != len(names):
        raise FetchError("two kept images share a file_name in the annotation json; it is not a COCO file")
    keep = {im["id"] for im in candidates}
    subset: dict = {}
    for key in ("info", "licenses"):
        if key in coco:
            subset[key] = coco[key]
    subset["images"] = candidates
    subset["annotations"] = [a for a in coco["annotations"] if a.get("image_id") in keep]
    subset["categories"] = coco.get("categories", [])
    return subset


# --------------------------------------------------------------------------- small file helpers


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _write_json_atomic(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = _part(path)
    with open(part, "w", encoding="utf-8") as f:
        json.dump(obj, f, separators=(",", ":"), ensure_ascii=False)
    os.replace(part, path)


def _load_json(path: Path, what: str, hint: str = "delete it and re-run") -> dict:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise FetchError(f"{what} {path} is not valid json ({err}); {hint}") from None


def _image_problem(path: Path, width: object, height: object) -> str | None:
    """None when ``path`` is a decodable image of size (width, height), else what is wrong."""

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            if (width, height) != im.size:
                return f"is {im.size[0]}x{im.size[1]} but the json says {width}x{height}"
            if im.format == "JPEG":  # decode at 1/8 scale: reads the whole stream, 10x faster
                im.draft("RGB", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            im.load()
    except Exception as err:  # PIL raises many types for broken files
        return f"does not decode as an image ({type(err).__name__}: {err})"
    return None


# --------------------------------------------------------------------------- HTTP


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _network_error(reason: object, url: str) -> FetchError | _Transient:
    """Classify a connection-level failure: fatal ones become FetchError, others _Transient."""
    if isinstance(reason, ConnectionRefusedError):
        return FetchError(
            f"cannot connect to {_host(url)} (connection refused) for {url}; check --base-url "
            "and that the server is reachable"
        )
    if isinstance(reason, socket.gaierror):
        return FetchError(
            f"cannot resolve host {_host(url)} for {url} ({reason}); check your internet "
            "connection (or proxy settings http_proxy/https_proxy) and --base-url"
        )
    if isinstance(reason, (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException, OSError)):
        return _Transient(f"{type(reason).__name__}: {reason}")
    return FetchError(f"network error for {url}: {reason}; check your connection and re-run")


def _http_error(code: int, msg: str, url: str, what: str) -> FetchError:
    if code == 404 and what == "annotations":
        hint = ("the annotation archive is not there, so the base URL is wrong; use the default "
                f"--base-url {DEFAULT_BASE_URL} or a mirror with the same layout")
    elif code == 404:
        hint = "the image is not on the server; check --base-url and --split (or your mirror is incomplete)"
    elif code in (401, 403):
        hint = "the server refuses access; check --base-url (or your proxy)"
    elif code >= 500:
        hint = "the server failed; try again later (finished files are kept and a re-run resumes)"
    else:
        hint = "check --base-url and try again"
    return FetchError(f"HTTP {code} {msg} for {url}: {hint}")


class _DeadlineMixin:
    """An ``http.client`` connection whose connect + response headers must finish within
    ``deadline`` seconds in all: a server trickling its headers never trips the per-read timeout,
    so a watchdog shuts the socket down and ``getresponse`` raises ``TimeoutError``."""

    deadline = 60.0

    def connect(self):
        self._expired = False
        super().connect()
        self._watchdog = threading.Timer(self.deadline, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _expire(self):
        self._expired = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass

    def getresponse(self):
        late = TimeoutError(f"no complete response headers within {self.deadline:g} s")
        try:
            resp = super().getresponse()
        except (OSError, http.client.HTTPException):
            if getattr(self, "_expired", False):
                raise late from None
            raise
        finally:
            watchdog = getattr(self, "_watchdog", None)
            if watchdog is not None:
                watchdog.cancel()
        if getattr(self, "_expired", False):  # the shutdown may end the headers "cleanly"
            resp.close()
            raise late
        return resp


def _deadline_opener(deadline: float):
    """A urllib opener (proxies honoured as usual) whose connections use :class:`_DeadlineMixin`."""
    http_conn = type("_HTTPConnection", (_DeadlineMixin, http.client.HTTPConnection),
                     {"deadline": deadline})
    https_conn = type("_HTTPSConnection", (_DeadlineMixin, http.client.HTTPSConnection),
                      {"deadline": deadline})

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(http_conn, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            kwargs = {"context": self._context}
            if hasattr(self, "_check_hostname"):  # Python < 3.12
                kwargs["check_hostname"] = self._check_hostname
            return self.do_open(https_conn, req, **kwargs)

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def _open_url(url: str, start: int, timeout: float, what: str, deadline: float | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    try:
        return _deadline_opener(deadline or 2 * timeout).open(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and start > 0:
            return None  # our .part is at/over the end: start again from zero
        raise _http_error(err.code, str(err.reason), url, what) from None
    except urllib.error.URLError as err:
        raise _network_error(err.reason, url) from None
    except (OSError, http.client.HTTPException) as err:
        raise _network_error(err, url) from None


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _download(
    url: str,
    dest: Path,
    *,
    what: str,
    timeout: float,
    on_bytes: Callable[[int], None] | None = None,
    on_total: Callable[[int | None, int], None] | None = None,
    low_speed: tuple[float, float] = (LOW_SPEED_LIMIT, LOW_SPEED_TIME),
) -> None:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed with Range when possible).

    A body shorter than Content-Length (cut connection) or a mid-transfer socket error leaves
    the ``.part`` in place and is retried (with ``Range: bytes=<size>-``) up to MAX_ATTEMPTS
    times; a server that answers 200 instead of 206 makes us start the file from zero.
    ``on_total(total, already)`` is called once per attempt, ``on_bytes(n)`` per chunk.
    ``low_speed = (bytes_per_s, seconds)``: an attempt averaging fewer than ``bytes_per_s`` over
    any ``seconds``-long stretch is abandoned like a cut connection (a server trickling one byte
    per second never trips the per-read ``timeout``).
    """
    speed_limit, speed_time = low_speed
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part(dest)
    last = "unknown error"
    for _attempt in range(MAX_ATTEMPTS):
        start = part.stat().st_size if part.exists() else 0
        try:
            resp = _open_url(url, start, timeout, what, deadline=max(timeout, speed_time))
            if resp is None:  # 416: range beyond the end
                part.unlink(missing_ok=True)
                last = "server rejected the resume range"
                continue
            with resp:
                length = resp.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                if start > 0 and resp.status == 206:
                    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != start:
                        part.unlink(missing_ok=True)
                        last = "server sent an unexpected Content-Range"
                        continue
                    total = int(m.group(3)) if m.group(3) != "*" else (
                        start + length if length is not None else None)
                    mode = "ab"
                else:  # 200: full body (server ignored or did not get a Range)
                    start = 0
                    total = length
                    mode = "wb"
                if on_total is not None:
                    on_total(total, start)
                got = start
                read = getattr(resp, "read1", resp.read)  # returns what has arrived, not 1 MiB
                window_start, window_bytes = time.monotonic(), 0
                with open(part, mode) as f:
                    while True:
                        chunk = read(_CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        got += len(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
                        window_bytes += len(chunk)
                        elapsed = time.monotonic() - window_start
                        if elapsed >= speed_time:
                            if window_bytes < speed_limit * elapsed:
                                raise _Transient(
                                    f"the server sent {window_bytes / elapsed:.0f} B/s for "
                                    f"{elapsed:.0f} s, below the low-speed limit of "
                                    f"{speed_limit:g} B/s")
                            window_start, window_bytes = time.monotonic(), 0
            if total is not None and got != total:
                raise _Transient(f"connection closed after {got} of {total} bytes")
        except _Transient as err:
            last = str(err)
            continue
        except (OSError, http.client.HTTPException) as err:  # reset / timeout mid-body
            last = f"{type(err).__name__}: {err}"
            continue
        os.replace(part, dest)
        return
    raise FetchError(
        f"downloading {url} failed {MAX_ATTEMPTS} times (last: {last}); check your connection "
        "and re-run the same command: finished files are kept and partial ones resume"
    )


# --------------------------------------------------------------------------- annotation zip


def _zip_marker(zip_path: Path) -> Path:
    return zip_path.with_name(zip_path.name + ".verified")


def _zip_is_marked_ok(zip_path: Path) -> bool:
    marker = _zip_marker(zip_path)
    try:
        st = zip_path.stat()
        rec = json.loads(marker.read_text())
        return rec == {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except (OSError, ValueError):
        return False


def _zip_problem(zip_path: Path) -> str | None:
    """None when the zip opens and every member's CRC is right, else what is wrong."""
    if _zip_is_marked_ok(zip_path):
        return None
    try:
        with zipfile.ZipFile(zip_path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    if bad is not None:
        return f"member {bad!r} fails its CRC check"
    st = zip_path.stat()
    _zip_marker(zip_path).write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return None


def _remove_zip(zip_path: Path) -> None:
    for p in (zip_path, _zip_marker(zip_path), _part(zip_path)):
        p.unlink(missing_ok=True)


def _unsafe_member(name: str) -> bool:
    """True when a zip member name would land outside the extraction folder."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return any(part == ".." for part in re.split(r"[/\\]", name))


def _extract_member(zip_path: Path, member: str, target: Path) -> Path:
    """Extract only ``member`` of ``zip_path`` into ``target`` (refuses archives with escaping paths).

    Any member named with ``..``, an absolute path or a drive letter makes the whole archive
    suspect: it is deleted (it lives in the tool's cache) and FetchError is raised. The
    extracted file is reused on later runs when its size and CRC-32 match the archive entry.
    """
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        evil = [i.filename for i in infos if _unsafe_member(i.filename)]
        if evil:
            _remove_zip(zip_path)
            raise FetchError(
                f"refusing to extract {zip_path}: member {evil[0]!r} would be written outside "
                f"{target}; this is not a genuine COCO annotation archive (deleted it; check --base-url)"
            )
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise FetchError(
                f"{zip_path} has no member {member}; it is not the official "
                "annotations_trainval2017.zip (check --base-url)"
            ) from None
        dest = target.joinpath(*PurePosixPath(member).parts)
        root = target.resolve()
        if root not in dest.resolve().parents:
            raise FetchError(f"refusing to extract {member}: it would be written outside {target}")
        if dest.exists() and dest.stat().st_size == info.file_size and _crc32(dest) == info.CRC:
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = _part(dest)
        with zf.open(info) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        os.replace(part, dest)
        return dest


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _bytes_bar(desc: str, progress: bool):
    """(on_total, on_bytes, close) callbacks driving one tqdm byte bar.

    The bar appears only once the server answered (an HTTP error prints no empty bar) and is
    cleared instead of left on screen when ``close(ok=False)``.
    """

    holder: list = []

    def on_total(total: int | None, already: int) -> None:
        if not progress:
            return
        if not holder:
            holder.append(tqdm(desc=desc, total=total, initial=already, unit="B",
                               unit_scale=True, unit_divisor=1024))
        else:
            holder[0].reset(total=total)
            holder[0].update(already)

    def on_bytes(n: int) -> None:
        if holder:
            holder[0].update(n)

    def close(ok: bool = True) -> None:
        if holder:
            holder[0].leave = ok
            holder[0].close()

    return on_total, on_bytes, close


def _annotation_json(out: Path, split: str, base_url: str, timeout: float, progress: bool,
                     low_speed: tuple[float, float] = (LOW_SPEED_LIMIT, LOW_SPEED_TIME)) -> Path:
    """Download (or reuse) the annotation zip in out/.cache and extract the split's json."""
    cache = out / CACHE_DIR
    zip_path = cache / PurePosixPath(ANNOTATION_ZIP).name
    url = f"{base_url}/{ANNOTATION_ZIP}"
    if zip_path.exists():
        problem = _zip_problem(zip_path)
        if problem is None:
            return _extract_member(zip_path, f"annotations/person_keypoints_{split}.json", cache)
        _remove_zip(zip_path)  # a corrupt cache entry: ours, replace it
    problem = None
    for _ in range(2):  # download, and once more if the archive is corrupt
        on_total, on_bytes, close = _bytes_bar(zip_path.name, progress)
        try:
            _download(url, zip_path, what="annotations", timeout=timeout,
                      on_total=on_total, on_bytes=on_bytes, low_speed=low_speed)
        except BaseException:
            close(ok=False)
            raise
        close()
        problem = _zip_problem(zip_path)
        if problem is None:
            return _extract_member(zip_path, f"annotations/person_keypoints_{split}.json", cache)
        _remove_zip(zip_path)
    raise FetchError(
        f"the annotation archive from {url} was corrupt twice ({problem}); deleted it. Check "
        "--base-url, free disk space and your connection, then re-run"
    )


# --------------------------------------------------------------------------- building the layout


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FetchError(f"--out {out} exists and is not a folder; choose another --out")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise FetchError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def _prepare_json(out_json: Path, subset: dict, force: bool) -> bool:
    """True when the json must be (re)written; raises when a different one exists and not force."""
    if not out_json.exists():
        return True
    try:
        with open(out_json, "rb") as f:
            existing = json.load(f)
    except (ValueError, OSError):
        existing = None
    if existing == subset:
        return False
    if not force:
        n_old = len(existing["images"]) if isinstance(existing, dict) and isinstance(
            existing.get("images"), list) else "?"
        raise FetchError(
            f"{out_json} exists and differs from the requested subset ({n_old} images there, "
            f"{len(subset['images'])} requested); pass --force to overwrite it (images already there "
            "are reused) or choose another --out"
        )
    return True


def _prepare_output(out: Path, split: str, subset: dict, force: bool) -> tuple[bool, Path]:
    """Check the output json (:func:`_prepare_json`) and make the image folder ``out/<split>``.
    Returns (whether the json must be written, the image folder)."""
    write_json = _prepare_json(out / "annotations" / f"person_keypoints_{split}.json", subset, force)
    image_dir = out / split
    image_dir.mkdir(parents=True, exist_ok=True)
    return write_json, image_dir


def _run_images(
    images: list[dict],
    task: Callable[[dict], bool],
    *,
    workers: int,
    progress: bool,
    desc: str,
) -> tuple[int, int]:
    """Run ``task(image) -> transferred?`` over images with a progress bar; (n_transferred, n_present)."""

    transferred = present = 0
    bar = tqdm(total=len(images), desc=desc, unit="img", disable=not progress)
    try:
        if workers <= 1:
            for im in images:
                if task(im):
                    transferred += 1
                else:
                    present += 1
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                pending = {pool.submit(task, im) for im in images}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in done:
                        err = fut.exception()
                        if err is not None:
                            for p in pending:
                                p.cancel()
                            raise err
                        if fut.result():
                            transferred += 1
                        else:
                            present += 1
                        bar.update(1)
    except BaseException:
        bar.leave = False  # the error line, not a stale bar, is what the user should see last
        bar.close()
        raise
    bar.close()
    return transferred, present


def _existing_image_ok(dest: Path, im: dict, force: bool) -> bool:
    """True when dest is already a valid image of the right size; raises on a user's bad file."""
    if not dest.exists():
        return False
    problem = _image_problem(dest, im.get("width"), im.get("height"))
    if problem is None:
        return True
    if not force:
        raise FetchError(
            f"{dest} exists but {problem}; move it away (or pass --force to replace it) and re-run"
        )
    return False


def _finish(out: Path, split: str, subset: dict, write_json: bool,
            transferred: int, present: int) -> FetchReport:
    out_json = out / "annotations" / f"person_keypoints_{split}.json"
    if write_json:
        _write_json_atomic(out_json, subset)
    anns = subset["annotations"]
    return FetchReport(
        annotation_file=out_json,
        image_dir=out / split,
        n_images=len(subset["images"]),
        n_annotations=len(anns),
        n_with_keypoints=sum(1 for a in anns if (a.get("num_keypoints") or 0) > 0),
        n_transferred=transferred,
        n_present=present,
        json_written=write_json,
    )


def _normalise_base_url(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"--base-url {base_url!r} is not an http(s) URL; e.g. {DEFAULT_BASE_URL}")
    return base_url.rstrip("/")


def fetch_coco(
    out: str | os.PathLike,
    split: str = "val2017",
    max_images: int | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    force: bool = False,
    workers: int = 4,
    timeout: float = 60.0,
    progress: bool = True,
    low_speed_limit: float = LOW_SPEED_LIMIT,
    low_speed_time: float = LOW_SPEED_TIME,
) -> FetchReport:
    """Download a keypoint subset of COCO 2017 ``split`` into ``out`` (standard COCO layout).

    Steps: annotation zip → ``out/.cache`` (skipped when cached and verified) → extract
    ``annotations/person_keypoints_<split>.json`` → :func:`select_subset` → refuse early if a
    different json is already at ``out/annotations/person_keypoints_<split>.json`` (unless
    ``force``) → download missing images to ``out/<split>/`` (``workers`` threads, each verified)
    → write the json last (atomically), so a complete json means a complete subset.
    ``timeout`` (seconds, > 0) bounds each network wait; ``low_speed_limit`` bytes/s over
    ``low_speed_time`` seconds bounds a trickling transfer (abandoned, then resumed, at most
    MAX_ATTEMPTS times). An archive whose json does not parse is deleted from the cache and
    downloaded once more. Raises FetchError for every expected failure.
    """
    _check_split(split)
    base_url = _normalise_base_url(base_url)
    timeout = _positive_number(timeout, "--timeout (timeout)")
    low_speed = (_positive_number(low_speed_limit, "--low-speed-limit (low_speed_limit)", zero=True),
                 _positive_number(low_speed_time, "--low-speed-time (low_speed_time)"))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FetchError(f"--workers (workers) must be a positive integer, got {workers!r}")
    out = Path(out)
    _check_out(out)
    subset = None
    for attempt in range(2):
        src_json = _annotation_json(out, split, base_url, timeout, progress, low_speed)
        try:
            coco = _load_json(src_json, "extracted annotation json")
        except FetchError as err:
            # the archive passed its CRC check, so the damage was already there when it was
            # zipped: our cached copy is useless — remove it (ours) and fetch it again once
            _remove_zip(out / CACHE_DIR / PurePosixPath(ANNOTATION_ZIP).name)
            src_json.unlink(missing_ok=True)
            if attempt == 1:
                raise FetchError(
                    f"the annotation archive from {base_url}/{ANNOTATION_ZIP} holds a damaged "
                    f"json twice ({str(err)[:200]}); removed it from {out / CACHE_DIR}. The server "
                    "serves a broken file: check --base-url (or try later)") from None
            continue
        subset = select_subset(coco, max_images)
        break
    write_json, image_dir = _prepare_output(out, split, subset, force)

    def task(im: dict) -> bool:
        dest = image_dir / im["file_name"]
        if _existing_image_ok(dest, im, force):
            return False
        url = f"{base_url}/{split}/{urllib.parse.quote(im['file_name'])}"
        for _ in range(2):  # a body that does not decode is downloaded once more
            _download(url, dest, what="image", timeout=timeout, low_speed=low_speed)
            problem = _image_problem(dest, im.get("width"), im.get("height"))
            if problem is None:
                return True
            dest.unlink()  # we just wrote it
        raise FetchError(f"image downloaded from {url} {problem} (twice); check --base-url and re-run")

    transferred, present = _run_images(subset["images"], task, workers=workers,
                                       progress=progress, desc=split)
    return _finish(out, split, subset, write_json, transferred, present)


def build_from_dir(
    src: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "val2017",
    max_images: int | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> FetchReport:
    """Build the same subset as :func:`fetch_coco` from a local COCO folder ``src`` (copies images).

    ``src`` must hold ``annotations/person_keypoints_<split>.json`` and ``<split>/<file_name>``.
    ``src`` and ``out`` must be different folders (the source is never modified).
    """
    _check_split(split)
    src, out = Path(src), Path(out)
    _check_out(out)
    src_json = src / "annotations" / f"person_keypoints_{split}.json"
    if not src_json.is_file():
        raise FetchError(
            f"no COCO annotations at {src_json}; --from-dir must be a COCO folder with "
            f"annotations/person_keypoints_{split}.json and {split}/"
        )
    if out.exists() and out.resolve() == src.resolve():
        raise FetchError("--from-dir and --out are the same folder; choose another --out")
    subset = select_subset(_load_json(src_json, "annotation json", hint="the --from-dir folder "
                                      "is damaged; copy or download that json again"), max_images)
    write_json, image_dir = _prepare_output(out, split, subset, force)

    def task(im: dict) -> bool:
        dest = image_dir / im["file_name"]
        if _existing_image_ok(dest, im, force):
            return False
        source = src / split / im["file_name"]
        if not source.is_file():
            raise FetchError(f"{source} is missing; the --from-dir folder is incomplete")
        part = _part(dest)
        shutil.copyfile(source, part)
        problem = _image_problem(part, im.get("width"), im.get("height"))
        if problem is not None:
            part.unlink()
            raise FetchError(f"source image {source} {problem}; the --from-dir folder is damaged")
        os.replace(part, dest)
        return True

    transferred, present = _run_images(subset["images"], task, workers=1, progress=progress,
                                       desc=split)
    return _finish(out, split, subset, write_json, transferred, present)


# --------------------------------------------------------------------------- CLI


def _positive_number(value, name: str, zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``zero``) as float, else FetchError naming the option."""
    try:
        number = float(value)
        ok = not isinstance(value, (bool, str)) and math.isfinite(number) and (
            number >= 0 if zero else number > 0)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        floor = ">= 0" if zero else "> 0"
        raise FetchError(f"{name} must be a finite number {floor}, got {value!r}")
    return number
