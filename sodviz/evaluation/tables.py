"""Results written to disk: rows (dicts) as CSV and Markdown side by side, figures as HTML and PNG."""

from __future__ import annotations

import csv
from pathlib import Path


def markdown_table(rows: list[dict], columns: list[str], digits: int = 3) -> str:
    """A Markdown table of `rows` restricted to `columns`; floats rounded to `digits`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.{digits}f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_rows(rows: list[dict], out: Path, name: str, columns: list[str]) -> tuple[Path, Path]:
    """`<name>.csv` and `<name>.md` in `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / f"{name}.md").write_text(markdown_table(rows, columns))
    return out / f"{name}.csv", out / f"{name}.md"


def write_figure_files(figure, out: Path, name: str) -> list[Path]:
    """`<name>.html` (plotly's JavaScript inside, opens offline) always, and `<name>.png` when
    kaleido finds a Chrome or Chromium (else one line saying why not)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.html"]
    figure.write_html(written[0], include_plotlyjs=True)
    try:
        figure.write_image(out / f"{name}.png")
        written.append(out / f"{name}.png")
    except Exception as error:  # kaleido raises several kinds when no browser is found
        print(f"{name}.png not written ({type(error).__name__}: {error}); {name}.html has the figure")
    return written
