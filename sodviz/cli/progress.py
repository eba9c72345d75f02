"""The one progress helper of the CLI: a tqdm bar handed to the library as `on_progress`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(desc: str, total: int = 100) -> Iterator[Callable[[float], None]]:
    """A tqdm bar of `total` steps; yields `on_progress(fraction)`, which moves it to that fraction."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc) as bar:
        yield lambda fraction: bar.update(round(total * fraction) - bar.n)
