"""The benchmark's outputs: its table (CSV, Markdown) and figures: AP50 against forward passes,
and AP50 and AP per small-size bucket against GFLOPs, per method and merge (HTML, and PNG when
kaleido finds a browser)."""

from __future__ import annotations

import csv
from pathlib import Path

import plotly.graph_objects as go

from sodviz.crops.budget_study import COLUMNS
from sodviz.evaluation.tables import write_figure_files, write_rows


def write_tables(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """`benchmark.csv` and `benchmark.md` in `out`."""
    return write_rows(rows, out, "benchmark", COLUMNS)


def read_table(path: Path) -> list[dict]:
    """The rows of a `benchmark.csv` as `run_benchmark` returned them (numbers as numbers); a
    file that is not a benchmark table is refused with a sentence naming what it lacks."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        missing = [
            c for c in ("method", "budget", "AP50", "gflops_ratio") if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise ValueError(f"{path} is not a benchmark table: it has no {', '.join(missing)} column")
        rows = list(reader)
    text = ("method", "merge", "unspent")
    return [
        {key: value if key in text else int(value) if key == "budget" else float(value or "nan")
         for key, value in row.items()}
        for row in rows
    ]  # fmt: skip


def series(rows: list[dict], x: str) -> dict[str, list[dict]]:
    """The rows of each line of a figure, sorted by `x`: the base row alone, then one line per
    method starting from it, or per method and merge where the table compares merges
    ("slicing nms/iou")."""
    merges: dict[str, set] = {}
    for row in rows:
        merges.setdefault(row["method"], set()).add(row.get("merge", ""))
    lines: dict[str, list[dict]] = {}
    for row in rows:
        method, merge = row["method"], row.get("merge", "")
        if method != "base":
            lines.setdefault(method if len(merges[method]) == 1 else f"{method} {merge}", []).append(row)
    bases = [row for row in rows if row["method"] == "base"]
    return {"base": bases} | {name: sorted(bases + mine, key=lambda r: r[x]) for name, mine in lines.items()}


def budget_figure(rows: list[dict]) -> go.Figure:
    """AP50 against mean forward passes, one line per method (and merge)."""
    traces = []
    for name, mine in series(rows, "forward_passes").items():
        traces.append(
            dict(
                type="scatter",
                mode="lines+markers",
                name=name,
                x=[r["forward_passes"] for r in mine],
                y=[r["AP50"] for r in mine],
            )
        )
    layout = dict(
        xaxis=dict(title="forward passes per image (full image included)"),
        yaxis=dict(title="AP50"),
        height=480,
        width=720,
        template="plotly_white",
    )
    return go.Figure(data=traces, layout=layout)


PANELS = {
    "AP50": "AP50",
    "AP_vt": "AP_vt (objects under 8 input px)",
    "AP_t": "AP_t (8-16 px)",
    "AP_s": "AP_s (16-32 px)",
}


def compute_figure(rows: list[dict]) -> go.Figure:
    """AP50 and the AP of each small-size bucket against GFLOPs (multiples of the full-image pass),
    one line per method (and merge)."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=2, subplot_titles=tuple(PANELS.values()), vertical_spacing=0.14)
    for index, (name, mine) in enumerate(series(rows, "gflops_ratio").items()):
        colour = _PALETTE[index % len(_PALETTE)]
        for panel, metric in enumerate(PANELS):
            figure.add_trace(
                go.Scatter(
                    x=[r["gflops_ratio"] for r in mine], y=[r[metric] for r in mine], mode="lines+markers",
                    name=name, legendgroup=name, showlegend=panel == 0, line=dict(color=colour),
                ),
                row=panel // 2 + 1, col=panel % 2 + 1,
            )  # fmt: skip
    figure.update_xaxes(title_text="GFLOPs per image (x the full-image pass)", row=2)
    figure.update_layout(height=760, width=1100, template="plotly_white")
    return figure


_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
            "#17becf", "#bcbd22", "#393b79", "#ad494a")  # fmt: skip


def write_figure(rows: list[dict], out: Path) -> list[Path]:
    """`benchmark.html` (AP50 against passes) and `benchmark_gflops.html` (AP50, AP_vt, AP_t and
    AP_s against GFLOPs) always; their PNGs when kaleido finds a Chrome or Chromium."""
    written = []
    for name, figure in (("benchmark", budget_figure(rows)), ("benchmark_gflops", compute_figure(rows))):
        written += write_figure_files(figure, out, name)
    return written
