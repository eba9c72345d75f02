"""`python -m sodviz serve`: the app for an audience, typed paths only under the given roots."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sodviz.serving.access import DATA_ENV, ROOTS_ENV, UPLOAD_ENV
from sodviz.serving.memory import (
    DEFAULT_MEMORY_MB,
    MEMORY_ENV,
    SERVER_MALLOC_ENV,
    memory_mb,
    served_memory_mb,
)

APP = Path(__file__).resolve().parents[2] / "app.py"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The `streamlit run` command line and environment `serve` starts: served mode (roots, the
    data folder, stores under it) unless on loopback with no root given."""
    env = dict(os.environ)
    env[MEMORY_ENV] = str(served_memory_mb(args.memory_mb, env))  # checked before anything is made
    roots = [Path(r).expanduser().resolve() for r in args.root]
    data = Path(args.data).expanduser().resolve()
    if args.host not in LOOPBACK and not roots:
        roots = [data]  # reachable by others: nothing outside the data folder unless a root says so
    if roots:
        for root in roots:
            if root != data and not root.is_dir():
                raise ValueError(f"--root {root} is not a folder")
        data.mkdir(parents=True, exist_ok=True)  # only once the command is known to start
        env |= {ROOTS_ENV: os.pathsep.join(map(str, roots)), DATA_ENV: str(data),
                "SODVIZ_STORE": str(data / "store")}  # fmt: skip
    env[UPLOAD_ENV] = str(args.max_upload_mb)
    env = SERVER_MALLOC_ENV | env  # glibc's arenas, unless the environment already says
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", args.host,
        "--server.port", str(args.port), "--server.maxUploadSize", str(args.max_upload_mb),
        "--server.headless", "true",
    ]  # fmt: skip
    return command, env


def serve(args: argparse.Namespace) -> None:
    command, env = serve_command(args)
    mode = (
        f"roots {env[ROOTS_ENV]}, writes under {env[DATA_ENV]}" if ROOTS_ENV in env else "loopback, any path"
    )
    memory = f"memory budget {env[MEMORY_ENV]} MiB" if memory_mb(env) else "no memory budget"
    print(f"sodviz on http://{args.host}:{args.port} ({mode}; uploads <= {args.max_upload_mb} MB; {memory})")
    sys.stdout.flush()
    os.chdir(APP.parent)
    os.execve(command[0], command, env)  # Streamlit in this process: one pid to signal and measure


def add_serve(commands) -> None:
    serve_parser = commands.add_parser(
        "serve", help="start the app for others: typed paths only under --root, writes under --data"
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    serve_parser.add_argument("--port", type=int, default=8501)
    serve_parser.add_argument(
        "--root", action="append", default=[], type=Path,
        help="a folder typed model and dataset paths may lie in (repeat for more); beyond loopback "
        "the default is --data alone",
    )  # fmt: skip
    serve_parser.add_argument("--data", type=Path, default=Path("runs/served"), help="where the app writes")
    serve_parser.add_argument("--max-upload-mb", type=int, default=50, help="largest upload (default 50 MB)")
    serve_parser.add_argument(
        "--memory-mb", type=int, default=None,
        help=f"the server's memory budget: cached results give way to stay within it (default "
        f"SODVIZ_MEMORY_MB, else {DEFAULT_MEMORY_MB} MiB; 0: none, the caches' own bounds only)",
    )  # fmt: skip
