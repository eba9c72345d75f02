"""Typed paths in a served app: only under the allowed roots, and nothing said about the rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sodviz.serving.access import NOT_ALLOWED, Access, PathNotAllowed, access_from_env


@pytest.fixture
def tree(tmp_path):
    """roots/models/m (a model folder), roots/data, and outside/secret beside the root."""
    (tmp_path / "root" / "models" / "m").mkdir(parents=True)
    (tmp_path / "root" / "models" / "m" / "config.json").write_text("{}")
    (tmp_path / "data").mkdir()
    (tmp_path / "outside" / "secret").mkdir(parents=True)
    return tmp_path


def _served(tree) -> Access:
    return access_from_env({"SODVIZ_ROOTS": str(tree / "root"), "SODVIZ_DATA": str(tree / "data")})


def test_inside_a_root_is_readable_absolute_or_relative(tree):
    access = _served(tree)
    assert access.served
    assert access.readable(str(tree / "root" / "models" / "m")) == (tree / "root" / "models" / "m").resolve()
    assert access.readable("models/m") == (tree / "root" / "models" / "m").resolve()  # relative to the root
    assert (
        access.readable(tree / "root" / "models" / "not yet")
        == (tree / "root" / "models" / "not yet").resolve()
    )
    assert access.readable(str(tree / "data")) == (tree / "data").resolve()  # the data folder too


@pytest.mark.parametrize(
    "typed",
    ["{tree}/outside/secret", "{tree}/root/../outside/secret", "models/../../outside", "~", "~/.ssh",
     "/etc/passwd", "/", "", "  "],
)  # fmt: skip
def test_outside_every_root_says_only_that_it_is_not_allowed(tree, typed):
    with pytest.raises(PathNotAllowed) as refused:
        _served(tree).readable(typed.format(tree=tree))
    assert str(refused.value) == NOT_ALLOWED  # not "does not exist", "is a file", ...


def test_a_symlink_out_of_a_root_is_out(tree):
    link = tree / "root" / "escape"
    link.symlink_to(tree / "outside")
    with pytest.raises(PathNotAllowed):
        _served(tree).readable(str(link / "secret"))
    inner = tree / "root" / "shortcut"
    inner.symlink_to(tree / "root" / "models")  # a link that stays inside is fine
    assert _served(tree).readable(str(inner / "m")) == (tree / "root" / "models" / "m").resolve()


def test_writes_only_under_the_data_folder(tree):
    access = _served(tree)
    assert access.writable(str(tree / "data" / "store")) == (tree / "data" / "store").resolve()
    with pytest.raises(PathNotAllowed):
        access.writable(str(tree / "root" / "store"))  # readable, but not for writing
    assert (
        access_from_env({"SODVIZ_ROOTS": str(tree / "root")}).writable("store")
        == (tree / "root" / "store").resolve()
    )  # no data folder given: the first root


def test_on_loopback_a_path_is_taken_as_typed(tree, monkeypatch):
    monkeypatch.setenv("HOME", str(tree / "outside"))
    access = access_from_env({})
    assert not access.served
    assert access.readable("~/secret") == tree / "outside" / "secret"
    assert access.readable("/etc/passwd") == Path("/etc/passwd") and access.writable("runs/x") == Path(
        "runs/x"
    )


def test_several_roots_and_the_upload_limit_from_the_environment(tree):
    (tree / "second").mkdir()
    roots = os.pathsep.join([str(tree / "root"), str(tree / "second")])
    access = access_from_env({"SODVIZ_ROOTS": roots, "SODVIZ_MAX_UPLOAD_MB": "12"})
    assert access.readable(str(tree / "second")) == (tree / "second").resolve()
    assert access.max_upload_mb == 12
    with pytest.raises(ValueError, match="at least 1"):
        access_from_env({"SODVIZ_MAX_UPLOAD_MB": "0"})


def test_odd_paths_are_refused_with_the_same_sentence(tree):
    access = _served(tree)
    loop = tree / "root" / "loop"
    loop.symlink_to(loop)  # a link to itself
    for typed in ("models/m\x00/../../../outside", str(loop / "x")):
        with pytest.raises(PathNotAllowed):
            access.readable(typed)
    assert access.writable("store") == (tree / "data" / "store").resolve()  # relative to the data folder
    with pytest.raises(ValueError, match="whole number"):
        access_from_env({"SODVIZ_MAX_UPLOAD_MB": "lots"})


def test_the_reaper_lets_a_closed_session_go_only_once_it_cannot_come_back():
    from sodviz.serving.sessions import SessionReaper

    now, connected, released = [0.0], {"a": True, "b": True}, []
    reaper = SessionReaper(lambda sid, state: released.append((sid, state)), lambda sid: connected[sid],
                           ttl=120, clock=lambda: now[0])  # fmt: skip
    reaper.seen("a", "state of a")
    reaper.seen("b", "state of b")
    assert reaper.sweep() == 0
    connected["a"] = connected["b"] = False
    now[0] = 10
    assert reaper.sweep() == 0  # a's and b's absence noticed from here
    now[0] = 100
    connected["b"] = True  # b comes back within the two minutes: kept, and its clock starts over
    assert reaper.sweep() == 0
    connected["b"] = False
    now[0] = 129
    assert reaper.sweep() == 0 and not released  # a gone 119 s
    now[0] = 130
    assert reaper.sweep() == 1 and released == [("a", "state of a")]
    assert len(reaper) == 1  # a forgotten, b still waited for
    now[0] = 300
    assert reaper.sweep() == 1 and released[-1] == ("b", "state of b")
    assert reaper.sweep() == 0 and len(reaper) == 0


def test_the_apps_release_drops_a_sessions_whole_state():
    from streamlit.runtime.state import SafeSessionState, SessionState

    from pages import _keys as keys
    from pages import _loaders as loaders

    state = SafeSessionState(SessionState(), lambda: None)
    held = {keys.IMAGE_UPLOAD: ("big.png", object()), keys.ANNOTATIONS_UPLOAD: b"{}", keys.THRESHOLD: 0.3,
            keys.REPORT: {"Detections": "<img src='data:image/png;base64,...'>"}}  # fmt: skip
    for key, value in held.items():
        state[key] = value
    assert state.filtered_state.keys() == held.keys()
    loaders._release("gone", state)
    assert state.filtered_state == {}


def test_a_session_counts_as_connected_while_streamlit_could_resume_it(monkeypatch):
    from streamlit.runtime import Runtime
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    from pages import _loaders as loaders

    assert hasattr(WebsocketSessionManager, "get_session_info")  # what `_connected` asks
    known = {"active": object(), "kept for a reconnect": object()}  # the store hides expired ones

    class Manager:
        def get_session_info(self, session_id):
            return known.get(session_id)

    runtime = type("FakeRuntime", (), {"_session_mgr": Manager()})()
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(lambda: runtime))
    assert loaders._connected("active") and loaders._connected("kept for a reconnect")
    assert not loaders._connected("expired")
    runtime._session_mgr = object()  # Streamlit's internals moved: kept rather than released early
    assert loaders._connected("expired")


def test_one_failed_release_does_not_keep_the_other_sessions():
    from sodviz.serving.sessions import SessionReaper

    now, released = [0.0], []

    def release(sid, state):
        if sid == "a":
            raise RuntimeError("a's state could not be written")
        released.append(sid)

    reaper = SessionReaper(release, lambda sid: False, ttl=10, clock=lambda: now[0])
    reaper.seen("a", {})
    reaper.seen("b", {})
    reaper.sweep()
    now[0] = 20
    assert reaper.sweep() == 2 and released == ["b"] and len(reaper) == 0
