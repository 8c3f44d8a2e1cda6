"""Every ``Example:`` in a poselab docstring runs and prints what it says (doctest).

One test per module; a module whose docstrings hold no examples is skipped. Examples run in the
module's own namespace with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``; torch's and numpy's global
state is reset before each module so the examples do not depend on test order.
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import poselab

SKIP = {"poselab.__main__"}  # runs the command line when imported


def _module_names() -> list[str]:
    names = ["poselab"]
    for info in pkgutil.walk_packages(poselab.__path__, prefix="poselab."):
        if info.name not in SKIP:
            names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def test_modules_found():
    assert "poselab.claims" in MODULES and "poselab.losses" in MODULES and len(MODULES) > 30


def _run_examples(module) -> tuple[int, int, str]:
    """(failed, attempted, report) of the module's own docstring examples."""
    import numpy as np
    import torch
    name = module.__name__
    finder = doctest.DocTestFinder(exclude_empty=True)
    # only the module's own objects (re-exports are tested in the module that defines them)
    tests = [t for t in finder.find(module, name) if t.examples and _defined_here(t, module)]
    torch.manual_seed(0)
    np.random.seed(0)
    failed = attempted = 0
    report = []
    for t in tests:
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        chunks: list[str] = []
        runner.run(t, out=chunks.append)
        failed += runner.failures
        attempted += runner.tries
        if runner.failures:
            report.append("".join(chunks))
    return failed, attempted, "\n".join(report)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    failed, attempted, report = _run_examples(importlib.import_module(name))
    if not attempted:
        pytest.skip("no examples")
    assert not failed, f"{failed} of {attempted} doctest examples failed in {name}:\n{report[:6000]}"


def test_a_wrong_example_fails():
    import types
    fake = types.ModuleType("fake_examples")
    source = 'def add(a, b):\n    """Example:\n        >>> add(1, 2)\n        4\n    """\n    return a + b\n'
    exec(compile(source, "fake_examples.py", "exec"), fake.__dict__)
    failed, attempted, report = _run_examples(fake)
    assert (failed, attempted) == (1, 1) and "Expected" in report


def _defined_here(test: doctest.DocTest, module) -> bool:
    """True for the module docstring and objects whose ``__module__`` is this module."""
    if test.name == module.__name__:
        return True
    obj = module
    for part in test.name[len(module.__name__) + 1:].split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    owner = getattr(obj, "__module__", None)
    if owner is None and hasattr(obj, "__func__"):
        owner = getattr(obj.__func__, "__module__", None)
    return owner in (None, module.__name__)
