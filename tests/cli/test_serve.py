"""`python -m sodviz serve`: the command line and environment it starts Streamlit with."""

from __future__ import annotations

import pytest

from sodviz.cli import build_parser, main
from sodviz.cli.serve import APP, serve_command
from sodviz.serving.access import access_from_env


def _args(*argv):
    return build_parser().parse_args(["serve", *argv])


def test_beyond_loopback_only_the_data_folder_is_readable_by_default(tmp_path):
    command, env = serve_command(
        _args("--host", "0.0.0.0", "--data", str(tmp_path / "d"), "--max-upload-mb", "20")
    )
    access = access_from_env(env)
    assert access.served and access.roots == ((tmp_path / "d").resolve(),) and access.max_upload_mb == 20
    assert env["SODVIZ_STORE"] == str((tmp_path / "d" / "store").resolve())
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
    assert command[command.index("--server.maxUploadSize") + 1] == "20"


def test_on_loopback_paths_stay_as_typed_unless_roots_are_given(tmp_path):
    _, env = serve_command(_args("--data", str(tmp_path / "d")))
    assert not access_from_env(env).served
    (tmp_path / "models").mkdir()
    _, env = serve_command(_args("--root", str(tmp_path / "models"), "--data", str(tmp_path / "d")))
    access = access_from_env(env)
    assert access.roots == ((tmp_path / "models").resolve(), (tmp_path / "d").resolve())
    assert access.data == (tmp_path / "d").resolve()


def test_a_root_that_is_not_a_folder_is_refused_before_anything_is_made(tmp_path, capsys):
    data = tmp_path / "served"
    assert main(["serve", "--host", "0.0.0.0", "--root", str(tmp_path / "nowhere"), "--data", str(data)]) == 2
    assert "is not a folder" in capsys.readouterr().err and not data.exists()
    with pytest.raises(SystemExit):
        _args("--max-upload-mb", "many")


def test_the_server_gets_a_memory_budget_and_two_malloc_arenas(tmp_path, monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("SODVIZ_MEMORY_MB", raising=False)
    _, env = serve_command(_args("--data", str(tmp_path)))
    assert env["SODVIZ_MEMORY_MB"] == "2048" and env["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the operator's own choices stand
    monkeypatch.setenv("SODVIZ_MEMORY_MB", "3000")
    _, env = serve_command(_args())
    assert env["SODVIZ_MEMORY_MB"] == "3000" and env["MALLOC_ARENA_MAX"] == "4"
    _, env = serve_command(_args("--memory-mb", "513"))  # the flag over the environment
    assert env["SODVIZ_MEMORY_MB"] == "513"
    _, env = serve_command(_args("--memory-mb", "0"))
    assert env["SODVIZ_MEMORY_MB"] == "0"
    monkeypatch.setenv("SODVIZ_MEMORY_MB", " ")  # exported empty: the default, not no budget
    _, env = serve_command(_args())
    assert env["SODVIZ_MEMORY_MB"] == "2048"


@pytest.mark.parametrize("bad", ["512", "-1"])  # no room beside one pass's working memory; negative
def test_a_budget_with_no_room_is_refused_before_anything_is_made(tmp_path, bad, capsys):
    data = tmp_path / "served"
    assert main(["serve", "--host", "0.0.0.0", "--data", str(data), "--memory-mb", bad]) == 2
    assert "above 512 MiB" in capsys.readouterr().err and not data.exists()


@pytest.mark.parametrize(("bad", "said"), [("300", "above 512 MiB"), ("lots", "whole number of MiB")])
def test_a_bad_exported_budget_is_refused_before_anything_is_made(tmp_path, bad, said, monkeypatch, capsys):
    monkeypatch.setenv("SODVIZ_MEMORY_MB", bad)
    data = tmp_path / "served"
    assert main(["serve", "--host", "0.0.0.0", "--data", str(data)]) == 2
    assert said in capsys.readouterr().err and not data.exists()


def test_serve_becomes_the_streamlit_process(monkeypatch, capsys):
    started = {}
    monkeypatch.setattr("os.execve", lambda path, argv, env: started.update(path=path, argv=argv, env=env))
    monkeypatch.setattr("os.chdir", lambda folder: started.update(folder=folder))
    assert main(["serve", "--port", "8765", "--memory-mb", "3000"]) == 0
    assert started["path"] == started["argv"][0] and started["argv"][1:4] == ["-m", "streamlit", "run"]
    assert started["argv"][started["argv"].index("--server.port") + 1] == "8765"
    assert started["env"]["SODVIZ_MEMORY_MB"] == "3000" and started["folder"] == APP.parent
    assert "memory budget 3000 MiB" in capsys.readouterr().out
