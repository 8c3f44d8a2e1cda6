"""``python -m poselab`` is the ``poselab`` command."""
import sys

from poselab.cli import main

if __name__ == "__main__":
    sys.exit(main())
