"""The package's shape: subpackages import downwards only (so there is no cycle), modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sodviz"
# Lower ranks are used by higher ones, never the reverse; a unit may import itself freely.
RANKS = {
    "notices": 0,
    "types": 1, "boxes": 1, "cache": 1, "imageio": 1, "hooks": 1,
    "modules": 2, "synth": 2, "serving": 2,
    "detector": 3,
    "attention": 4,
    "evaluation": 5,
    "samples": 6, "crops": 6, "erf": 6, "explain": 6,
    "acs": 7, "training": 7, "analysis": 7,
    "views": 8,
    "cli": 9,
    "__init__": 10, "__main__": 10,
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
