"""``python -m poselab.cli`` is the ``poselab`` command (as ``python -m poselab`` is)."""
import sys

from poselab.cli import main

if __name__ == "__main__":
    sys.exit(main())
