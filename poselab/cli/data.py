"""``poselab data synth`` (the generated dataset every chapter can use), ``poselab data generate``
(a generated dataset with your own controls, :func:`poselab.data.synth.generate`) and ``poselab
data fetch`` (a COCO 2017 person-keypoint subset, the logic in :mod:`poselab.data.fetch`).

``data_scripts/fetch_coco.py`` and ``data_scripts/generate_synth.py`` are :func:`fetch_main` and
:func:`generate_main`: the same rows of the table under their own program names
(``fetch_coco: error: ...`` on stderr).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Iterable

from ._common import (FAILED, INTERRUPTED, OK, Command, CliError, Parser, non_negative,
                      positive_int, run_script, seconds, seed)

# poselab.data loads numpy and PIL (about 0.35 s): poselab.data.synth and poselab.data.fetch are
# imported in the handlers ("deferred"), so `poselab --help` stays fast. Options that are not given
# take fetch_coco's and generate's own defaults; a test keeps the values named below equal to them.

__all__ = ["COMMANDS", "SPLITS", "fetch_parser", "fetch_main", "generate_main"]

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
    p.add_argument("--workers", type=positive_int, default=4, metavar="N",
                   help="parallel image downloads (default 4)")
    p.add_argument("--timeout", type=seconds, default=60.0,
                   help="network timeout in seconds for each wait (default 60)")
    p.add_argument("--low-speed-limit", type=non_negative, default=None, metavar="BYTES",
                   help=f"abandon (and resume) a transfer slower than BYTES/s ... (default "
                        f"{_LOW_SPEED_LIMIT}; 0 disables)")
    p.add_argument("--low-speed-time", type=seconds, default=None, metavar="S",
                   help=f"... for S seconds (default {_LOW_SPEED_TIME:g})")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def _fetch(args: argparse.Namespace) -> int:
    """1 when the fetch ran and failed (one line on stderr saying what to do), 130 on Ctrl-C
    (re-run the same command to resume)."""
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
        print(f"{args.prog}: error: {err}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print(f"{args.prog}: interrupted; re-run the same command to resume", file=sys.stderr)
        return INTERRUPTED
    print(f"{args.prog}: {report.summary()}")
    return OK


def fetch_parser(prog: str = "fetch_coco.py") -> argparse.ArgumentParser:
    """The parser of ``data_scripts/fetch_coco.py``: ``poselab data fetch``'s arguments."""
    parser = Parser(prog=prog, description=FETCH_DESCRIPTION)
    _add_fetch(parser)
    return parser


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--n-images", type=positive_int, required=True, metavar="N",
                   help="images to generate (about 1.5 persons each with the default controls)")
    p.add_argument("--seed", type=seed, default=0, metavar="N",
                   help="the one seed of the dataset (default 0)")
    p.add_argument("--split", default="train", help="split name (train, val, ...; default train)")
    controls = p.add_argument_group(
        "controls", "each one not given takes its value in poselab.data.synth.DEFAULT_CONTROLS")
    controls.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"))
    controls.add_argument("--persons-per-image", type=int, nargs=2, metavar=("MIN", "MAX"))
    controls.add_argument("--scale-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                          help="body height / image height")
    controls.add_argument("--occlusion-prob", type=float, metavar="P")
    controls.add_argument("--truncation-prob", type=float, metavar="P")
    controls.add_argument("--sigma-true", type=float, metavar="S",
                          help="label noise in OKS-sigma units")
    controls.add_argument("--pose-jitter-deg", type=float, metavar="DEG")
    controls.add_argument("--background-clutter", type=int, nargs=2, metavar=("MIN", "MAX"))
    controls.add_argument("--noise-std", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="rendering processes (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a split this command wrote before (only its own files are "
                        "deleted; a folder holding anything else is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


_CONTROLS = ("image_size", "persons_per_image", "scale_range", "occlusion_prob", "truncation_prob",
             "sigma_true", "pose_jitter_deg", "background_clutter", "noise_std")


def _generate(args: argparse.Namespace) -> int:
    """2 for bad controls or a split it will not replace (nothing written), 1 when writing
    failed (disk full, permission denied)."""
    from poselab.data.synth import generate  # deferred: numpy
    controls = {name: tuple(value) if isinstance(value, list) else value
                for name in _CONTROLS if (value := getattr(args, name)) is not None}
    start = time.perf_counter()
    try:
        path = generate(args.out, args.n_images, args.seed, split=args.split,
                        progress=not args.quiet, workers=args.workers, overwrite=args.overwrite,
                        **controls)
    except (ValueError, FileExistsError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        print(f"{args.prog}: error: {exc}", file=sys.stderr)
        return FAILED
    print(f"{path}  ({time.perf_counter() - start:.1f} s)")
    return OK


COMMANDS = {
    "data": Command("make datasets", subcommands={
        "synth": Command("generate the default synthetic dataset", _add_synth, _synth),
        "generate": Command("generate a COCO-format folder of people with your own controls",
                            _add_generate, _generate),
        "fetch": Command("download (or copy) a COCO 2017 person-keypoint subset",
                         _add_fetch, _fetch),
    }),
}


def fetch_main(argv: Iterable[str] | None = None) -> int:
    """``data_scripts/fetch_coco.py``: ``poselab data fetch`` under that name."""
    return run_script(COMMANDS["data"].subcommands["fetch"], "fetch_coco.py", argv,
                      FETCH_DESCRIPTION)


def generate_main(argv: Iterable[str] | None = None) -> int:
    """``data_scripts/generate_synth.py``: ``poselab data generate`` under that name."""
    return run_script(COMMANDS["data"].subcommands["generate"], "generate_synth.py", argv)
