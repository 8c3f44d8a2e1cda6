"""What Binder installs, worked out from the installed distributions' metadata: the closure of
binder/requirements.txt (requirements, and what they require, markers evaluated, no extras) and,
from it, the top-level modules present here but absent there (the test extra, POT, scipy if it
were not listed, ...). Used by tests/test_binder.py and tests/test_chapters.py to run code as a
Binder student would, without a network."""
from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent.parent
FOLDER = Path(__file__).resolve().parent


def requirement_lines(path: Path) -> list[Requirement]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


def closure(roots: list[Requirement]) -> set[str]:
    """Canonical names of the distributions ``roots`` install, transitively (installed ones)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue  # an optional platform dependency not installed here
        seen.add(name)
        wanted_extras = set(req.extras)
        for text in dist.requires or []:
            try:
                sub = Requirement(text)
            except InvalidRequirement:
                continue
            if sub.marker is None:
                todo.append(sub)
                continue
            envs = [{"extra": e} for e in wanted_extras] or [{"extra": ""}]
            if any(sub.marker.evaluate(env) for env in envs):
                todo.append(sub)
    return seen


def binder_distributions() -> set[str]:
    return closure(requirement_lines(ROOT / "binder" / "requirements.txt")) | {"poselab"}


def blocked_modules() -> set[str]:
    """Top-level import names whose every installed distribution is outside Binder's closure."""
    allowed = binder_distributions()
    providers = md.packages_distributions()
    blocked = set()
    for module, dists in providers.items():
        if module.startswith("_") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", module):
            continue
        if not {canonicalize_name(d) for d in dists} & allowed:
            blocked.add(module)
    return blocked


def binder_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` with the Binder blocker on: every Python process started with it (papermill
    kernels included) fails to import what Binder does not install."""
    env = dict(base)
    env["PYTHONPATH"] = str(FOLDER) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["POSELAB_BLOCKED_MODULES"] = ",".join(sorted(blocked_modules()))
    return env
