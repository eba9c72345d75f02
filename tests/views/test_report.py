"""The HTML report: one self-contained file (plotly.js inlined once, images inside), with the model,
image and settings recorded; the CLI writes the same sections as the app records."""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from sodviz.cli import main
from sodviz.crops.vicrop import ViCropConfig
from sodviz.imageio import save_image
from sodviz.views.report import ReportSection, report_html, settings_of


def _self_contained(text: str) -> None:
    from plotly.offline import get_plotlyjs

    assert text.count(get_plotlyjs()[:300]) == 1  # plotly.js inside, once
    assert not re.search(r"<script[^>]*\bsrc=", text) and "<link " not in text
    assert not re.search(r'\bsrc="(https?:)?//', text)  # no image or frame from the network


def test_report_is_one_self_contained_file_with_what_was_shown(image):
    figure = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="curve"))
    sections = [
        ReportSection(
            "Detections", figures=(("boxes", figure),), tables=(("counts", [{"size": "tiny", "tp": 3}]),),
            settings={"score threshold": 0.3},
        ),
        ReportSection("Attention", images=(("map of q7", image),), notes=("a note",)),
    ]  # fmt: skip
    text = report_html(sections, meta={"model": "demo", "image": "scene.jpg"})
    _self_contained(text)
    assert (
        text.count("plotly.js v") >= 1 and text.count('<script type="text/javascript">') == 1
    )  # inlined once
    for expected in ("<h2>Detections</h2>", "<h2>Attention</h2>", "score threshold", "scene.jpg", "a note"):
        assert expected in text
    assert "<td>tiny</td>" in text and "map of q7" in text and 'src="data:image/jpeg;base64,' in text
    assert text.index("<h2>Detections</h2>") < text.index("<h2>Attention</h2>")  # in the order shown
    assert "No page was shown" in report_html([], meta={})


def test_settings_of_flattens_nested_configs():
    settings = settings_of(ViCropConfig(k=3))
    assert settings["k"] == 3 and settings["fusion.merge"] == "nms" and "fusion" not in settings


def test_report_command_writes_the_pages_asked_for(tiny_model_dirs, image, tmp_path, capsys):
    path = tmp_path / "scene.png"
    save_image(path, image)
    out = tmp_path / "scene.html"
    argv = ["report", str(path), "--model", str(tiny_model_dirs["rt_detr"]), "--threshold", "0.0"]
    assert main([*argv, "--out", str(out), "--k", "2"]) == 0
    assert "Detections, Attention, ViCrop-Det" in capsys.readouterr().out
    text = out.read_text()
    _self_contained(text)
    assert all(f"<h2>{t}</h2>" in text for t in ("Detections", "Attention", "ViCrop-Det"))
    assert str(tiny_model_dirs["rt_detr"]) in text and "scene.png" in text and "squashed" in text
    assert main([*argv, "--pages", "detections,erf", "--out", str(out)]) == 2
    assert "--pages: unknown ['erf']" in capsys.readouterr().err
    assert main([*argv, "--pages", "", "--out", str(out)]) == 2
    assert "--pages is empty" in capsys.readouterr().err
    high = [
        "report",
        str(path),
        "--model",
        str(tiny_model_dirs["rt_detr"]),
        "--threshold",
        "1.1",
        "--out",
        str(out),
    ]
    assert main([*high, "--pages", "attention"]) == 0
    assert "No detection above the score threshold 1.1" in out.read_text()
    assert main([*high, "--query", "3"]) == 2
    assert "--query 3 is not a detection" in capsys.readouterr().err


@pytest.mark.parametrize("pages", ["detections", "vicrop"])
def test_report_command_with_only_some_pages(tiny_model_dirs, image, tmp_path, pages):
    path = tmp_path / "scene.png"
    save_image(path, np.ascontiguousarray(image))
    assert main(["report", str(path), "--model", str(tiny_model_dirs["detr"]), "--pages", pages]) == 0
    text = (tmp_path / "scene.sodviz.html").read_text()
    assert ("<h2>Detections</h2>" in text) == (pages == "detections")
    assert ("<h2>ViCrop-Det</h2>" in text) == (pages == "vicrop")
