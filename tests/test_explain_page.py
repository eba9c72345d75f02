"""The Explain page under Streamlit's AppTest, on tiny detectors of a deformable and a dense family."""

from __future__ import annotations

from pages import _keys as keys
from pages import _loaders as loaders
from tests.test_app import _no_errors, app  # noqa: F401 (the fixture)


def test_explain_page_shows_each_method_its_curves_and_numbers(app):  # noqa: F811
    app.switch_page("pages/explain.py").run()
    _no_errors(app)
    assert app.title[0].value == "Explain"
    offered = app.multiselect(key=keys.EXPLAIN_METHODS).options
    deformable = loaders.load_detector("demo").family.deformable
    assert ("relevance" in offered) != deformable, "relevance for dense attention only"
    assert len(app.get("image")) == 3  # attention, ODAM, random
    table = app.dataframe[0].value
    assert list(table["method"]) == ["attention", "odam", "random"]
    assert {"deletion AUC", "insertion AUC", "pointing", "energy in box", "seconds"} <= set(table.columns)
    assert len(app.get("plotly_chart")) == 1  # the deletion and insertion curves
    assert "Explain" in app.session_state[keys.REPORT]
    score_panel = app.session_state[keys.REPORT]["Explain"].images[1][1]  # ODAM's
    app.selectbox(key=keys.EXPLAIN_OUTPUT).set_value("x0").run()
    x0_panel = app.session_state[keys.REPORT]["Explain"].images[1][1]
    assert score_panel.shape != x0_panel.shape or (score_panel != x0_panel).any(), "ODAM's x0 map is shown"
    app.toggle(key=keys.EXPLAIN_ZOOM).set_value(False).run()
    app.slider(key=keys.EXPLAIN_MASKS).set_value(100).run()
    app.multiselect(key=keys.EXPLAIN_METHODS).set_value(["odam", "drise"]).run()
    _no_errors(app)
    assert list(app.dataframe[0].value["method"]) == ["odam", "drise"]
    captions = [caption for caption, _ in app.session_state[keys.REPORT]["Explain"].images]
    assert captions[0].startswith("odam") and "100 masks" in captions[1], captions
    app.toggle(key=keys.EXPLAIN_CURVES).set_value(False).run()
    _no_errors(app)
    assert not app.get("plotly_chart") and "deletion AUC" not in app.dataframe[0].value.columns
    app.multiselect(key=keys.EXPLAIN_METHODS).set_value([]).run()
    assert any("at least one method" in w.value for w in app.warning)


def test_explain_page_follows_a_missed_object_through_its_nearest_query(app):  # noqa: F811
    app.switch_page("pages/explain.py").run()
    app.radio(key=keys.EXPLAIN_KIND).set_value("missed").run()
    _no_errors(app)
    objects = app.selectbox(key=keys.EXPLAIN_OBJECT).options
    assert objects and all(o.startswith("object ") for o in objects)  # tiny random boxes miss the scene
    last = int(objects[-1].split()[1])
    app.selectbox(key=keys.EXPLAIN_OBJECT).set_value(last).run()
    _no_errors(app)
    assert any(f"object {last}" in s.value and "through query" in s.value for s in app.subheader)
    assert len(app.dataframe[0].value) == 3


def test_explain_page_says_when_there_is_nothing_to_explain(app):  # noqa: F811
    app.session_state[keys.THRESHOLD] = 1.01
    app.switch_page("pages/explain.py").run()
    _no_errors(app)
    assert any("No detection above" in w.value for w in app.warning)
