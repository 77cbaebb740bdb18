"""The layers of docs/architecture.md, kept true: no module imports a layer above its own.

Every ``import frugalseg...`` in ``src/frugalseg`` (at the top of a module or inside a function: a late import
is still a dependency) is checked against the table below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import frugalseg

SRC = Path(frugalseg.__file__).parent

LAYERS: dict[str, int] = {
    # 0: the foundation every layer may use
    "errors": 0, "files": 0, "choices": 0, "config": 0, "py": 0,
    "config_types": 0, "strict_yaml": 0, "resume_check": 0, "run_folder": 0, "locks": 0,
    # 1: the parts: data, networks, losses, evaluation
    "data": 1, "nets": 1, "losses": 1, "evaluation": 1,
    # LiteMedSAM pseudo-labels for an annotation file (data preparation beside data/)
    "pseudolabels": 1,
    # 2: the training core below the methods and the loop
    "training": 2,
    # 3: the methods (and their registry), and the loop; neither imports the other
    "methods": 3, "engine": 3,
    # 4: the commands, the bench and the command line, which assemble the rest; evaluate_checkpoint too, which
    # rebuilds a method by name to score it (its module lives in evaluation/, beside what it drives)
    "commands": 4, "bench": 4, "train": 4, "cli": 4, "__main__": 4, "__init__": 4, "evaluation.checkpoint": 4,
    # and the checks before a run (#22), which build a method and a dataset to see that a config can train
    "preflight": 4,
    # and active learning (#24): it scores slices with a trained method (methods.restore) for suggest and the bench
    "active": 4,
    # and the annotation page (#23): data sources and the annotation file below it, the bench's cost model for fit_cost
    "annotate": 4,
}
"""The layer of each package or top-level module of ``frugalseg`` (a module named here overrides its package)."""

APART = {frozenset({"methods", "engine"})}
"""Packages of one layer that must not import each other."""

ALLOWED = {
    ("config", "methods"): "build_config validates method.options with the method registry before any work, "
                           "inside the function, so importing config loads no method",
    ("config", "preflight"): "build_config checks what the network, the method and the device need (#22) when the "
                             "config is loaded, inside the function, by building the method on the meta device",
}
"""Imports of a higher layer that are allowed, each with its reason (docs/architecture.md says why)."""


def package_of(module: str) -> str:
    """``frugalseg.engine.trainer`` -> ``engine``; ``frugalseg`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def unit_of(module: str) -> str:
    """The key of :data:`LAYERS` for ``module``: the module itself where it is named there, else its package."""
    named = ".".join(module.split(".")[1:3])
    return named if named in LAYERS else package_of(module)


def imports_of(path: Path, src: Path = SRC) -> set[str]:
    """Every ``frugalseg`` module ``path`` imports, resolving relative imports."""
    module = ".".join(("frugalseg", *path.relative_to(src).with_suffix("").parts))
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("frugalseg")}
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                name = ".".join([*base, name] if name else base)
            if name.startswith("frugalseg"):
                found.add(name)
    return found


def violations(src: Path = SRC) -> list[str]:
    """One line per import of ``src``'s modules that the layers forbid."""
    bad = []
    for path in sorted(src.rglob("*.py")):
        importer = unit_of(".".join(("frugalseg", *path.relative_to(src).with_suffix("").parts)))
        for name in sorted(imports_of(path, src)):
            imported = unit_of(name)
            if imported == importer or (importer, imported) in ALLOWED:
                continue
            higher = LAYERS[imported] > LAYERS[importer]
            if higher or frozenset({importer, imported}) in APART:
                bad.append(f"{path.relative_to(src)} (layer {LAYERS[importer]}) imports {name} "
                           f"(layer {LAYERS[imported]})")
    return bad


def test_every_package_has_a_layer():
    packages = {p.name if p.is_dir() else p.stem for p in SRC.iterdir()
                if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def test_no_module_imports_a_layer_above_its_own():
    assert violations() == []


def test_the_loop_and_the_core_import_no_method():
    """The issue's check, literally: ``grep -r frugalseg.methods`` finds nothing in the engine or the core."""
    for package in ("engine", "training"):
        for path in (SRC / package).rglob("*.py"):
            assert "frugalseg.methods" not in path.read_text(encoding="utf-8"), path


def test_the_checker_sees_late_and_relative_imports(tmp_path):
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "late.py").write_text("def f():\n    from frugalseg.methods import METHODS\n")
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "rel.py").write_text("from ..engine import trainer\n")
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "ok.py").write_text("from frugalseg.training import Method\nimport frugalseg.config\n")
    found = violations(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("nets/rel.py (layer 1) imports frugalseg.engine (layer 3)")
    assert found[1].startswith("training/late.py (layer 2) imports frugalseg.methods (layer 3)")
