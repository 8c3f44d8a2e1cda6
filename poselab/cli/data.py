"""``poselab data synth`` (the generated dataset every chapter can use) and ``poselab data fetch``
(a COCO 2017 person-keypoint subset, the logic in :mod:`poselab.data.fetch`).

``data_scripts/fetch_coco.py`` is :func:`fetch_main`: the same arguments and handler as ``poselab
data fetch``, under its own program name (``fetch_coco: error: ...`` on stderr).
"""
from __future__ import annotations

import argparse
import sys
from typing import Iterable

from ._common import (FAILED, INTERRUPTED, OK, USAGE, Command, CliError, Parser, non_negative,
                      positive_int, seconds)

# poselab.data loads numpy and PIL (about 0.35 s): poselab.data.synth and poselab.data.fetch are
# imported in the handlers ("deferred"), so `poselab --help` stays fast. The fetch options that
# are not given take fetch_coco's own defaults; a test keeps the values named below equal to them.

__all__ = ["COMMANDS", "SPLITS", "fetch_parser", "fetch_main"]

SPLITS = ("val2017", "train2017")  # == poselab.data.fetch.SPLITS (tests/test_cli_package.py)
_BASE_URL, _LOW_SPEED_LIMIT, _LOW_SPEED_TIME = "http://images.cocodataset.org", 1024, 30


def _add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=None, help="cache folder (default: data/synth)")
    p.add_argument("--split", action="append", default=None, choices=["train", "val"])


def _synth(args: argparse.Namespace) -> int:
    from poselab.data import synth  # deferred: numpy
    try:
        for split in args.split or ["train", "val"]:
            print(synth.default_dataset(split, root=args.root))
    except (OSError, ValueError) as exc:  # --root naming a file, no permission, ...
        raise CliError(f"cannot generate data in {synth.default_root(args.root)}: {exc}; "
                       "choose another --root") from None
    return OK


FETCH_DESCRIPTION = (
    "Build a COCO 2017 person-keypoint subset in the standard layout "
    "(DIR/annotations/person_keypoints_<split>.json, DIR/<split>/<file_name>). Keeps the "
    "first N images (by image id) that have a person with keypoints, and every "
    "annotation of those images. Resumable: re-run the same command after an interruption.")


def _add_fetch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=SPLITS, default="val2017", help="COCO split (default val2017)")
    p.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                   help="keep the first N keypoint images by id (default: all of them)")
    p.add_argument("--out", required=True, metavar="DIR", help="output COCO folder")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--base-url", default=None, metavar="URL",
                     help=f"COCO site or mirror with the official layout (default {_BASE_URL})")
    src.add_argument("--from-dir", metavar="DIR2", default=None,
                     help="build from a local COCO folder instead of downloading (copies images)")
    p.add_argument("--force", action="store_true",
                   help="overwrite a different existing json (and replace invalid existing images)")
    p.add_argument("--workers", type=positive_int, default=4,
                   help="parallel image downloads (default 4)")
    p.add_argument("--timeout", type=seconds, default=60.0,
                   help="network timeout in seconds for each wait (default 60)")
    p.add_argument("--low-speed-limit", type=non_negative, default=None, metavar="BYTES",
                   help=f"abandon (and resume) a transfer slower than BYTES/s ... (default "
                        f"{_LOW_SPEED_LIMIT}; 0 disables)")
    p.add_argument("--low-speed-time", type=seconds, default=None, metavar="S",
                   help=f"... for S seconds (default {_LOW_SPEED_TIME:g})")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def _fetch(args: argparse.Namespace, prog: str = "poselab") -> int:
    """Exit codes as every poselab command: 1 when the fetch ran and failed (one line on stderr
    saying what to do), 130 on Ctrl-C (re-run to resume)."""
    from poselab.data import fetch  # deferred: numpy
    try:
        if args.from_dir is not None:
            report = fetch.build_from_dir(args.from_dir, args.out, args.split, args.max_images,
                                          force=args.force, progress=not args.no_progress)
        else:
            given = {"base_url": args.base_url, "low_speed_limit": args.low_speed_limit,
                     "low_speed_time": args.low_speed_time}
            report = fetch.fetch_coco(args.out, args.split, args.max_images, force=args.force,
                                      workers=args.workers, timeout=args.timeout,
                                      progress=not args.no_progress,
                                      **{k: v for k, v in given.items() if v is not None})
    except (fetch.FetchError, OSError) as err:  # OSError: disk full, permission denied, ...
        print(f"{prog}: error: {err}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; re-run the same command to resume", file=sys.stderr)
        return INTERRUPTED
    print(f"{prog}: {report.summary()}")
    return OK


def fetch_parser(prog: str = "fetch_coco.py") -> argparse.ArgumentParser:
    """The parser of ``data_scripts/fetch_coco.py``: ``poselab data fetch``'s arguments."""
    parser = Parser(prog=prog, description=FETCH_DESCRIPTION)
    _add_fetch(parser)
    return parser


def fetch_main(argv: Iterable[str] | None = None) -> int:
    """``data_scripts/fetch_coco.py``: returns 0, 1 (the fetch failed), 2 (usage) or 130."""
    try:
        args = fetch_parser().parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # argparse printed the usage error (2) or the help (0)
        return USAGE if exc.code else OK
    return _fetch(args, prog="fetch_coco")


COMMANDS = {
    "data": Command("make datasets", subcommands={
        "synth": Command("generate the default synthetic dataset", _add_synth, _synth),
        "fetch": Command("download (or copy) a COCO 2017 person-keypoint subset",
                         _add_fetch, _fetch),
    }),
}
