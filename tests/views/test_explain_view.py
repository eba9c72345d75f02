"""The Explain page's figures: maps on one scale with colour bars, curves, numbers, the study."""

from __future__ import annotations

import numpy as np

from sodviz.explain.faithfulness import FaithfulnessCurves
from sodviz.explain.targets import ExplainTarget, InstanceMaps
from sodviz.views.explain import curves_figure, map_panels, number_rows, study_figure
from sodviz.views.palette import SELECTED_RGB, STATUS_RGB


def _maps(height=120, width=200):
    peak = np.zeros((1, height, width), np.float32)
    peak[0, 38:43, 58:63] = 5.0  # in its own units: the panel shows it as 1 of its maximum
    spread = np.full((1, height, width), 0.01, np.float32)
    spread[0, 98:103, 148:153] = 0.02
    return {
        "odam": InstanceMaps("odam", ("score",), peak),
        "drise": InstanceMaps("drise", ("score",), spread),
    }


def test_maps_share_one_scale_and_carry_a_colour_bar(image):
    target = ExplainTarget(3, 0, np.array([50.0, 30.0, 70.0, 50.0]))
    panels = map_panels(image, _maps(), target, least=0)
    assert set(panels) == {"odam", "drise"}
    first, second = panels["odam"], panels["drise"]
    assert first.shape == second.shape and first.shape[0] == image.shape[0]
    assert first.shape[1] > image.shape[1], "a colour bar on the right"
    # each map is scaled to its own maximum: both peaks are drawn in the top colour of the bar
    flat = map_panels(np.full_like(image, 90), _maps(), target, least=0)
    np.testing.assert_array_equal(flat["odam"][42, 62], flat["drise"][102, 152])  # off the peak's cross
    assert (first[30, 50:70] == SELECTED_RGB).all(axis=-1).any(), "the detection's box in magenta"
    missed = map_panels(image, _maps(), ExplainTarget(3, 0, target.box_xyxy, missed=True), least=0)
    assert (missed["odam"][30, 50:70] == STATUS_RGB["FN"]).all(axis=-1).any(), "a missed object in orange"


def test_zoom_shows_the_window_about_the_box_enlarged(image):
    target = ExplainTarget(3, 0, np.array([50.0, 30.0, 58.0, 38.0]))
    whole = map_panels(image, _maps(), target, least=0)["odam"]
    zoomed = map_panels(image, _maps(), target, zoom=True, least=320)["odam"]
    assert zoomed.shape[0] == 320 and zoomed.shape[0] > whole.shape[0]


def _curves(deletion, insertion):
    fractions = np.array([0.0, 0.25, 1.0])
    response = np.array([deletion, insertion], np.float64)
    return FaithfulnessCurves(fractions, response, response, np.ones_like(response))


def test_curves_and_numbers_per_method():
    curves = {
        "odam": _curves([0.9, 0.1, 0.0], [0.0, 0.8, 0.9]),
        "random": _curves([0.9, 0.6, 0.0], [0.0, 0.3, 0.9]),
    }
    figure = curves_figure(curves)
    assert len(figure.data) == 4 and figure.data[0].name == "odam, deletion AUC 0.163"  # 0.125 + 0.0375
    target = ExplainTarget(3, 0, np.array([50.0, 30.0, 70.0, 50.0]))
    rows = number_rows(_maps(), {"odam": curves["odam"]}, target)
    assert rows[0]["method"] == "odam" and rows[0]["pointing"] == "hit" and rows[0]["energy in box"] == 1.0
    assert rows[0]["deletion AUC"] == curves["odam"].auc("deletion") and "deletion AUC" not in rows[1]
    assert rows[1]["pointing"] == "miss"


def test_study_figure_has_one_bar_set_per_method_and_metric():
    row = {
        f"{m}{p}": 0.5
        for m in ("deletion_auc", "insertion_auc", "pointing", "energy")
        for p in ("", "_low", "_high")
    }
    summary = [
        {"bucket": b, "method": m, "objects": 6, "missed": 0} | row
        for b in ("vt", "t")
        for m in ("odam", "random")
    ]
    figure = study_figure(summary)
    assert len(figure.data) == 2 * 3 and list(figure.data[0].x) == ["very tiny < 8", "tiny 8-16"]
