"""`python -m sodviz serve`: the command line and environment it starts Streamlit with."""

from __future__ import annotations

import pytest

from sodviz.cli import build_parser, main
from sodviz.cli.serve import serve_command
from sodviz.serving import access_from_env


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


def test_a_root_that_is_not_a_folder_is_refused(tmp_path, capsys):
    assert (
        main(["serve", "--host", "0.0.0.0", "--root", str(tmp_path / "nowhere"), "--data", str(tmp_path)])
        == 2
    )
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _args("--max-upload-mb", "many")
