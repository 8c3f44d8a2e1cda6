"""Generator speed: CPU seconds per generated person (the budget the README's data section
states: the default 2 513 persons in well under a minute). Run it alone:

    flock /tmp/poselab-timing.lock .venv/bin/python benchmarks/synth_speed.py [--images 100]

(Moved here from tests/test_data_synth.py: a timing is a measurement, not a unit test.)
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from poselab.data import synth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times, persons = [], 0
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.process_time()
            path = synth.generate(Path(tmp) / "d", args.images, seed=r)
            times.append(time.process_time() - start)
            persons = len(json.loads(path.read_text())["annotations"])
    best = min(times)
    print(f"{args.images} images, {persons} persons (last repeat): best CPU {best:.2f} s "
          f"= {1000 * best / max(persons, 1):.1f} ms per person (repeats: {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
