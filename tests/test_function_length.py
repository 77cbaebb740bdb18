"""Functions short enough to read at once: none in ``src/frugalseg`` reaches :data:`LIMIT` lines.

A function is counted from its ``def`` line to its last line, docstring and comments included (a long
docstring is still a long read at once); decorators are not counted. Methods and nested functions count
on their own, and a nested function's lines also count towards the function around it. A function that
grows past the limit is split into named steps, each with a docstring that says why it is a step.
"""

from __future__ import annotations

import ast
from pathlib import Path

import frugalseg

SRC = Path(frugalseg.__file__).parent

LIMIT = 60
"""The fewest lines that make a function too long."""


def long_functions(src: Path = SRC, limit: int = LIMIT) -> list[str]:
    """``path:line name (N lines)`` for every function of ``src`` of ``limit`` lines or more."""
    found = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines >= limit:
                    found.append(f"{path.relative_to(src)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_src_reaches_the_limit():
    assert long_functions() == []


def _function(name: str, docstring_lines: int, body_lines: int, indent: str = "") -> str:
    doc = [f'{indent}    """Summary.', *(f"{indent}    more" for _ in range(docstring_lines - 2)), f'{indent}    """']
    body = [f"{indent}    x = {i}" for i in range(body_lines)]
    return "\n".join([f"{indent}def {name}():", *doc, *body]) + "\n"


def test_the_count_includes_the_docstring_and_sees_methods(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(_function("mostly_docstring", 50, 9) + _function("just_short", 50, 8))
    (tmp_path / "b.py").write_text("class C:\n" + _function("method", 2, 60, indent="    "))
    assert long_functions(tmp_path) == ["b.py:2 method (63 lines)", "pkg/a.py:1 mostly_docstring (60 lines)"]
