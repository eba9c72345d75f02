"""Where a served app may read and write: typed paths only under the allowed roots.

On loopback (the default, no `SODVIZ_ROOTS`) a typed path is taken as typed, `~` expanded, as
convenient as a shell. Served to others (`python -m sodviz serve`, which sets the variables),
every typed path (a model folder, a dataset's annotations and images, a store) must resolve
inside one of the roots: `~` is refused rather than expanded to the server's home, `..` and
symlinks are resolved first (a link out of a root is out), a relative path is relative to the
first root. Outside, the answer is only that the path is not allowed: nothing about whether it
exists, is a file, or holds a model. What the app writes (stores) goes under the data folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOTS_ENV = "SODVIZ_ROOTS"  # os.pathsep-separated folders typed paths must lie in
DATA_ENV = "SODVIZ_DATA"  # the folder the served app writes under
UPLOAD_ENV = "SODVIZ_MAX_UPLOAD_MB"  # the upload limit, megabytes
DEFAULT_UPLOAD_MB = 50
NOT_ALLOWED = "this path is not allowed on this server"


class PathNotAllowed(ValueError):
    """A typed path outside the served app's roots (the message says no more than that)."""

    def __init__(self) -> None:
        super().__init__(NOT_ALLOWED)


@dataclass(frozen=True)
class Access:
    """The roots typed paths must lie in (none: loopback, any path) and the folder writes go to.

    Attributes:
        roots: resolved folders; empty on loopback.
        data: resolved folder the app writes under when served (None on loopback).
        max_upload_mb: the largest upload accepted, megabytes.
    """

    roots: tuple[Path, ...] = ()
    data: Path | None = None
    max_upload_mb: int = DEFAULT_UPLOAD_MB

    @property
    def served(self) -> bool:
        return bool(self.roots)

    def readable(self, typed: str | Path) -> Path:
        """The path `typed` names, if the app may read it (see the module's docstring)."""
        return self._inside(typed, self.roots)

    def writable(self, typed: str | Path) -> Path:
        """The path `typed` names, if the app may write there: under the data folder when served
        (a relative path is relative to it)."""
        return self._inside(typed, (self.data,) if self.data is not None else ())

    def _inside(self, typed: str | Path, roots: tuple[Path, ...]) -> Path:
        text = str(typed).strip()
        if not self.served:
            return Path(text).expanduser()
        if not text or text.startswith("~") or not roots:
            raise PathNotAllowed()
        path = Path(text)
        try:
            resolved = (path if path.is_absolute() else roots[0] / path).resolve()
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte: not a path it may use
            raise PathNotAllowed() from None
        if not any(resolved == root or root in resolved.parents for root in roots):
            raise PathNotAllowed()
        return resolved


def access_from_env(environ: Mapping[str, str] | None = None) -> Access:
    """The `Access` the environment asks for (`python -m sodviz serve` sets it)."""
    environ = os.environ if environ is None else environ
    roots = tuple(Path(p).expanduser().resolve() for p in environ.get(ROOTS_ENV, "").split(os.pathsep) if p)
    data = environ.get(DATA_ENV)
    data_path = Path(data).expanduser().resolve() if data else (roots[0] if roots else None)
    if data_path is not None and roots and not any(data_path == r or r in data_path.parents for r in roots):
        roots = (*roots, data_path)  # the data folder is readable too (its stores)
    text = environ.get(UPLOAD_ENV) or str(DEFAULT_UPLOAD_MB)
    if not text.strip().isdigit():
        raise ValueError(f"{UPLOAD_ENV} must be a whole number of megabytes, got {text!r}")
    upload = int(text)
    if upload < 1:
        raise ValueError(f"{UPLOAD_ENV} must be at least 1 (megabytes), got {upload}")
    return Access(roots=roots, data=data_path if roots else None, max_upload_mb=upload)
