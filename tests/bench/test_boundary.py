"""The bench is a client of the library's public API: no module of ``frugalseg.bench`` imports the command line.

It trains through ``frugalseg.train.train_run`` (build a method by name, then train it), the library's entry
point for training, not through ``frugalseg.commands``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import frugalseg.bench

FORBIDDEN = ("frugalseg.commands", "frugalseg.cli")


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_bench_module_imports_the_commands_or_the_cli():
    folder = Path(frugalseg.bench.__file__).parent
    modules = sorted(folder.glob("*.py"))
    assert len(modules) > 10
    offending = {p.name: sorted(n for n in _imported(p) if n.startswith(FORBIDDEN)) for p in modules}
    assert {k: v for k, v in offending.items() if v} == {}
