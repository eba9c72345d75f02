"""Command-line values parsed into what the library takes: budgets and merges."""

from __future__ import annotations

from sodviz.cli.parser import MERGES_CHOICES


def parse_budgets(text: str) -> tuple[int, ...]:
    """ "1-8" -> (1, ..., 8); "1,3,5" -> (1, 3, 5); "1-3,10" -> (1, 2, 3, 10)."""
    budgets = []
    for part in text.split(","):
        if "-" in part:
            low, high = (int(v) for v in part.split("-", 1))
            budgets += range(low, high + 1)
        else:
            budgets.append(int(part))
    return tuple(budgets)


def parse_merges(text: str) -> tuple[str, ...]:
    """ "nms,wbf" -> ("nms", "wbf"); "" -> (); a merge not in `MERGES_CHOICES` is refused."""
    merges = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(merges) - set(MERGES_CHOICES))
    if unknown:
        raise ValueError(f"unknown merges {unknown}; choose from {', '.join(MERGES_CHOICES)}")
    return merges
