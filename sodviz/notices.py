"""What reading a user's data changed or left out, said once per case: `DataNotice` warnings.

The library warns (`warnings.warn(message, DataNotice)`); the CLI prints each on stderr as
`notice: ...`, the app shows it beside the image. Nothing is dropped or altered in silence.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable


class DataNotice(UserWarning):
    """A sentence about the user's data: a change made to it, or what was left out and why."""


def notify(notices: Iterable[str]) -> None:
    """Warn each notice as a `DataNotice` (the caller's caller is named as its origin)."""
    for notice in notices:
        warnings.warn(notice, DataNotice, stacklevel=3)


def name_some(values: Iterable[object], limit: int = 6) -> str:
    """'3, 7, 9' or '3, 7, 9, 11, 12, 15 and 4 more': offending ids, named but bounded."""
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit} more"
