"""Output folders checked before any work: a folder that cannot take a file fails at once, with
its name and the reason, not after minutes of training.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     writable_folder(pathlib.Path(tmp) / "a" / "b", "--out").is_dir()
True
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["writable_folder"]

#: bytes written (and synced) by the probe: a full disk refuses them
PROBE_BYTES = 64 * 1024


def writable_folder(path: str | os.PathLike, what: str) -> Path:
    """Create the folder ``path`` (and its parents) if needed and prove that a file can be written
    and synced in it; return it as a ``Path``.

    Raises ``ValueError`` naming ``what`` (e.g. ``"--out"``, ``"the run cache"``) when a part of
    the path is a file, the folder cannot be created, is not writable, or its disk is full.
    """
    folder = Path(path)
    for part in (folder, *folder.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                where = "is" if part == folder else f"is under {part}, which is"
                raise ValueError(f"{what} {folder} {where} a file, not a folder; choose a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".poselab-write-probe-", dir=folder)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                  errno.EACCES: "no write permission", errno.EPERM: "no write permission",
                  errno.EROFS: "a read-only file system"}.get(exc.errno, exc.strerror or str(exc))
        raise ValueError(f"{what} {folder} cannot be written ({reason}); free space or choose "
                         "another folder") from None
    return folder
