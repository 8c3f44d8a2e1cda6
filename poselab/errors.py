"""``CliError``: an expected user error of the ``poselab`` command (one line, exit code 2).

Its own module so that every command module (``poselab.cli``, ``poselab.experiments.cli``, ...)
raises it without importing the command tree."""
from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """An expected user error: printed as one line, exit code 2."""
