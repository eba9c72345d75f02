"""The package's shape: subpackages import downwards only (so there is no cycle), modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sodviz"
# Lower ranks are used by higher ones, never the reverse; a unit may import itself freely.
RANKS = {
    "types": 0, "boxes": 0, "cache": 0, "imageio": 0, "hooks": 0,
    "modules": 1, "synth": 1,
    "detector": 2,
    "attention": 3,
    "evaluation": 4,
    "samples": 5, "crops": 5, "erf": 5,
    "acs": 6, "training": 6,
    "views": 7,
    "cli": 8,
    "__init__": 9, "__main__": 9,
}  # fmt: skip


def _unit(module: str) -> str:
    """`sodviz.crops.vicrop` -> "crops"; `sodviz.types` -> "types"; `sodviz` -> "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, str]]:
    """(file, importing unit, imported sodviz module) for every import, function-level ones too."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(part for part in relative.parts if part != "__init__")
        if path.name == "__init__.py" and path.parent == PACKAGE:
            module = "sodviz"
        unit = "__main__" if path.name == "__main__.py" else _unit(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sodviz"):
                found.append((str(relative), unit, node.module))
            elif isinstance(node, ast.Import):
                found += [(str(relative), unit, a.name) for a in node.names if a.name.startswith("sodviz")]
    return found


def test_every_unit_has_a_rank():
    units = {_unit(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.glob("*")}
    units = {u.removesuffix(".py") for u in units if not u.startswith("__pycache__")}
    assert units - {"__init__", "__main__"} <= set(RANKS), units - set(RANKS)


def test_subpackages_import_downwards_only():
    upward = [
        f"{file} ({unit}) imports {target}"
        for file, unit, target in _imports()
        if _unit(target) != unit and RANKS[_unit(target)] >= RANKS[unit]
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_under_300_lines(path):
    assert len(path.read_text().splitlines()) <= 300
