"""The house rules, checked on the source: one door, one owner of SQL, no import loops."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clipphotos"
# Core modules the faces (cli.py, gui/) must reach only through Library.
BEHIND_THE_DOOR = {"catalog", "indexer", "vector_index", "embedder", "loader", "scanner", "fingerprint", "weights",
                   "preprocess", "raw"}
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+"
                 r"(TABLE|INDEX|VIRTUAL|TRIGGER)|DROP\s+TABLE|PRAGMA\s+\w+)", re.IGNORECASE | re.DOTALL)


def modules() -> dict[str, ast.Module]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): ast.parse(p.read_text(), str(p))
            for p in PACKAGE.rglob("*.py")}


def imported(tree: ast.Module) -> set[str]:
    """Every clipphotos module this one imports, at the top, in functions or for type checking."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clipphotos"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("clipphotos"))
    return names


def test_the_cli_and_the_gui_talk_to_library_only():
    faces = {name: tree for name, tree in modules().items()
             if name == "clipphotos.cli" or name.startswith("clipphotos.gui")}
    assert "clipphotos.cli" in faces and len(faces) > 10
    leaks = []
    for name, tree in faces.items():
        leaks += [f"{name} imports {m}" for m in imported(tree) if m.split(".")[1:2] and m.split(".")[1] in BEHIND_THE_DOOR]
        leaks += [f"{name}:{node.lineno} touches .catalog" for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and node.attr == "catalog"]
    assert not leaks, "\n".join(leaks)


def test_no_sql_outside_the_catalog():
    found = []
    for name, tree in modules().items():
        if name == "clipphotos.catalog":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert not found, "\n".join(found)


def test_the_core_has_no_import_loop():
    trees = {name: tree for name, tree in modules().items() if not name.startswith("clipphotos.gui")}
    graph = {name: {m for m in imported(tree) if m in trees and m != name} for name, tree in trees.items()}
    state: dict[str, int] = {}
    loops: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                loops.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2
    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not loops, "\n".join(" -> ".join(loop) for loop in loops)
