"""The shape of lib/ (DESIGN §8): imports point one way, functions stay short, the library never
imports transformers."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every lib module `path` imports, at the top or inside a function (TYPE_CHECKING aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in LIB.rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in modules and m != name and m != "lib"}
        for name, path in modules.items()
    }


def test_lib_imports_are_acyclic():
    edges = graph()
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_lib_never_imports_transformers():
    for path in LIB.rglob("*.py"):
        assert not any(m.split(".")[0] == "transformers" for m in imports_of(path)), path


def test_no_function_in_lib_is_over_100_lines():
    long = []
    for path in LIB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 100:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
    assert not long, long


def test_the_corpus_checker_starts_without_torch():
    """`python -m lib.data` (load, align, split, report) needs no torch until a semantic
    alignment computes vectors: its --help and a verbatim corpus start fast, and Ctrl-C during
    start-up is run_cli's one line, not a traceback from inside torch's import."""
    import subprocess
    import sys

    code = "import sys, lib.data.dataset, lib.errors; print('torch' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=LIB.parent, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "False", proc.stderr[-2000:]
