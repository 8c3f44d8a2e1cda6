"""``CliError``: an expected user error of the ``poselab`` command (one line, exit code 2).

Its own module so that every command module of :mod:`poselab.cli` (and :mod:`poselab.labs`)
raises it without importing the command tree. Exit codes: see :mod:`poselab.cli`."""
from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """An expected user error: printed as one line, exit code 2."""
