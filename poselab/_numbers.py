"""Checks of count-like hyper-parameters, shared by every layer (imports nothing of poselab).

A count (epochs, ``m`` of a top-m decode, chunk sizes, iterations) given as ``2.5`` used to be
truncated by ``int()`` to 2: the run silently trained with another value than the one asked for.
:func:`whole_number` accepts ints (and integral floats such as ``3.0``) and refuses the rest with
a ``ValueError`` naming the parameter and the accepted range.
"""
from __future__ import annotations

import math
import numbers

__all__ = ["whole_number", "positive_number"]


def whole_number(value, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; 2.5, "3", True, NaN raise ValueError.

    Example:
        >>> whole_number(3.0, "epochs", 1)
        3
        >>> whole_number(2.5, "epochs", 1)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be a whole number >= 1, got 2.5 (it would be truncated to 2)
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    hint = ""
    if ok:
        try:
            f = float(value)
            ok = math.isfinite(f) and f == int(value)
            if math.isfinite(f) and not ok:
                hint = f" (it would be truncated to {int(value)})"
        except (TypeError, ValueError, OverflowError):
            ok = False
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if not ok or int(value) < minimum or (maximum is not None and int(value) > maximum):
        raise ValueError(f"{name} must be a whole number {bound}, got {value!r}{hint}")
    return int(value)


def positive_number(value, name: str, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite real number > 0 (>= 0 with ``allow_zero``); a bool,
    a string, NaN, inf or a value out of range raise ValueError naming ``name``.

    Example:
        >>> positive_number(2, "sigma")
        2.0
        >>> positive_number(float("nan"), "sigma")
        Traceback (most recent call last):
        ...
        ValueError: sigma must be a finite number > 0, got nan
    """
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
          and (float(value) >= 0 if allow_zero else float(value) > 0))
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)
