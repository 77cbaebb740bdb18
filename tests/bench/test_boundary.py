"""The bench is a client of the library's public API: no module of ``frugalseg.bench`` imports the command line.

One exception, named here so that it cannot grow: ``train_run`` (build a method by name, then train it) lives
in ``frugalseg.commands.train`` since #20 stage A put the building of methods on the command side, and the
bench's runner trains through it. When ``train_run`` moves below the commands, drop the exception.
"""

from __future__ import annotations

import ast
from pathlib import Path

import frugalseg.bench

FORBIDDEN = ("frugalseg.commands", "frugalseg.cli")
ALLOWED = {"runner.py": ["frugalseg.commands.train"]}


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
    assert {k: v for k, v in offending.items() if v} == ALLOWED
