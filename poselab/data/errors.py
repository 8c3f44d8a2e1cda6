"""Exceptions of the data layer."""
from __future__ import annotations

__all__ = ["DatasetError", "DatasetNotFound", "HOW_TO_GET_DATA"]

HOW_TO_GET_DATA = ("run python data_scripts/fetch_coco.py --split val2017 --max-images 200 "
                   "--out DIR, or pass data='synth'")


class DatasetError(ValueError):
    """A dataset file exists but cannot be used (malformed json, wrong structure, no persons)."""


class DatasetNotFound(FileNotFoundError):
    """No dataset at the given place; the message says how to get one."""
