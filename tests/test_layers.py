"""The layers of DESIGN.md hold: what each package may import, and no import circle inside a package."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "advent_sweep"
FORBIDDEN = {
    "data": {"ray", "optuna", "advent_sweep.model", "advent_sweep.advent"},
    "model": {"ray", "optuna", "advent_sweep.data"},
    "advent": {"ray", "optuna", "pandas"},
    "analysis": {"ray", "torch", "torchvision"},
    "sweep": {"advent_sweep.cli"},
}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_it_must_not(layer):
    found = {f"{path.name}: {name}" for path in (PACKAGE / layer).glob("*.py") for name in imports(path)
             if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])}
    assert not found


def test_the_analysis_modules_import_each_other_without_a_circle():
    modules = {path.stem: path for path in (PACKAGE / "analysis").glob("*.py") if path.stem != "__init__"}
    edges = {name: {other.removeprefix("advent_sweep.analysis.") for other in imports(path)} & set(modules)
             for name, path in modules.items()}
    assert edges["confirmed"] >= {"best", "markdown"}, "the graph is read (confirmed imports best and markdown)"

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(step == goal or (step not in seen and reaches(step, goal, seen | {step})) for step in edges[start])

    circles = sorted(name for name in modules if reaches(name, name, {name}))
    assert circles == []
