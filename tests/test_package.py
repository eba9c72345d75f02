"""The package's front door: public names and submodules load on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_a_bare_import_loads_no_torch_and_names_load_on_use():
    out = _run(
        "import sys, sodviz; print('torch' in sys.modules);"
        "from sodviz import load_detector, run_inference, to_detections, query_attention_map,"
        " aggregate_attention_map; print(callable(load_detector), sodviz.cache.DEFAULT_CACHE is not None)"
    )
    assert out.split() == ["False", "True", "True"]


def test_an_unknown_name_is_an_attribute_error():
    import sodviz

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        sodviz.nothing_here  # noqa: B018


def test_the_readme_lists_every_family_and_hub_preset():
    from sodviz.detector.families import FAMILIES, HUB_PRESETS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Families")[1].split("## ")[0]
    for family in FAMILIES.values():
        assert f"| {family.name} | `{family.model_type}` |" in table, family.name
    for hub_id, model_type in HUB_PRESETS:
        row = next(line for line in table.splitlines() if f"`{model_type}`" in line)
        assert f"`{hub_id}`" in row, hub_id
