"""poselab's import graph has no cycle, module-level and function-level imports alike (an import
hidden in a function body still ties the two modules together). Two circles were found by an
audit: experiments/builtin <-> analysis/hdm_training (HDM's codec, head and loss adapter lived on
the analysis floor, now chapters/) and cli <-> experiments/cli (CliError); both are gone, and this walk fails on
any new one (shown on a constructed graph).

The core library (skeleton, data, codecs, models, losses, metrics, train, experiments) imports no
chapter, directly or through other modules: the chapters build on the core, never the reverse
(shown failing on a constructed graph too)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "poselab"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target
                           for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != mod:
                    deps.add(t)
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


CORE = ("skeleton", "data", "codecs", "models", "losses", "metrics", "train", "experiments",
        "_numbers", "_version", "_hooks", "paths", "errors")


def is_core(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[0] == "poselab" and parts[1] in CORE


def core_reaching_chapters(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Core module → an import path from it to a ``poselab.chapters`` module (for each core module
    that reaches one, through any chain of imports)."""
    found = {}
    for start in sorted(m for m in graph if is_core(m)):
        seen, todo = {start: [start]}, [start]
        while todo:
            mod = todo.pop()
            for dep in sorted(graph.get(mod, ())):
                if dep in seen:
                    continue
                seen[dep] = seen[mod] + [dep]
                if dep == "poselab.chapters" or dep.startswith("poselab.chapters."):
                    found.setdefault(start, seen[dep])
                todo.append(dep)
    return found


def test_the_core_check_fails_on_a_constructed_graph():
    bad = {"poselab.losses.x": {"poselab.codecs"}, "poselab.codecs": {"poselab.claims"},
           "poselab.claims": {"poselab.chapters.hdm.analysis"}, "poselab.chapters.hdm.analysis": set(),
           "poselab.chapters.hdm.recipes": {"poselab.losses.x"}, "poselab.scorecard": {"poselab.chapters"}}
    found = core_reaching_chapters(bad)
    assert found["poselab.losses.x"] == ["poselab.losses.x", "poselab.codecs", "poselab.claims",
                                         "poselab.chapters.hdm.analysis"]
    assert "poselab.scorecard" not in found  # not core: allowed
    assert core_reaching_chapters({"poselab.losses.x": {"poselab.codecs"}, "poselab.codecs": set(),
                                   "poselab.chapters.hdm.recipes": {"poselab.losses.x"}}) == {}
    # the package façade (poselab/__init__) is not core; a core module importing it would reach
    # the chapters through it
    assert core_reaching_chapters({"poselab.experiments.runner": {"poselab"},
                                   "poselab": {"poselab.chapters"}})


def test_no_core_module_imports_a_chapter():
    graph = import_graph()
    assert "poselab.chapters.hdm" in graph and "poselab.experiments.runner" in graph
    found = core_reaching_chapters(graph)
    assert not found, "core modules reaching poselab.chapters: " + "; ".join(
        " -> ".join(path) for path in found.values())


def test_the_walk_finds_a_constructed_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_poselab_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 100 and "poselab.experiments.builtin" in graph
    assert "poselab.chapters.hdm.training" not in graph["poselab.experiments.builtin"]
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def undeclared_function_imports(source: str) -> list[int]:
    """Lines of the imports inside a function body that are not marked ``# deferred`` (on the
    import's own line, or in the comment lines directly above it)."""
    lines = source.splitlines()
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in found:
                continue
            above, i = [], node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#"):
                above.append(lines[i])
                i -= 1
            if not any("# deferred" in line for line in [lines[node.lineno - 1], *above]):
                found.append(node.lineno)
    return sorted(found)


def test_function_level_imports_are_deliberately_deferred():
    """Imports sit at the top of a module; one inside a function is a heavy or optional import
    deferred on purpose (torch under `poselab --help`, plotly for one figure, POT, otter) and
    says so with a ``# deferred: why`` comment."""
    bad = {str(path.relative_to(PACKAGE.parent)): lines for path in sorted(PACKAGE.rglob("*.py"))
           if (lines := undeclared_function_imports(path.read_text()))}
    assert not bad, f"function-level imports without a '# deferred: why' comment: {bad}"


def test_the_deferred_import_check_fails_on_a_constructed_module():
    source = ("import os\n\n\ndef f():\n    import json\n    return json\n\n\n"
              "class C:\n    def g(self):\n        import torch  # deferred: heavy\n"
              "        # deferred: plotly, one figure\n        import plotly\n"
              "        from math import pi\n        return pi\n\n\n"
              "def outer():\n    def inner():\n        import re\n    return inner\n")
    assert undeclared_function_imports(source) == [5, 14, 20]
    assert undeclared_function_imports("import os\ntry:\n    import json\nexcept ImportError:\n"
                                       "    json = None\n") == []
