"""Loaded by every Python process started with this folder on PYTHONPATH (tests/test_binder.py):
the top-level modules named in POSELAB_BLOCKED_MODULES cannot be imported, as on Binder, where
only binder/requirements.txt (and what it pulls in) is installed. ``None`` in ``sys.modules``
makes ``import X`` raise ModuleNotFoundError and ``importlib.util.find_spec(X)`` answer None,
exactly as for a package that is not installed."""
import os
import sys

for _name in filter(None, os.environ.get("POSELAB_BLOCKED_MODULES", "").split(",")):
    sys.modules.setdefault(_name, None)
