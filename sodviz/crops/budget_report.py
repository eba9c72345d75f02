"""The benchmark's outputs: its table (CSV, Markdown) and figures: AP50 against forward passes,
and AP50 and AP_vt against GFLOPs, per method (HTML, and PNG when kaleido finds a browser)."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from sodviz.crops.budget_study import COLUMNS
from sodviz.evaluation.tables import write_rows


def write_tables(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """`benchmark.csv` and `benchmark.md` in `out`."""
    return write_rows(rows, out, "benchmark", COLUMNS)


def budget_figure(rows: list[dict]) -> go.Figure:
    """AP50 against mean forward passes, one line per method."""
    traces = []
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = sorted((r for r in rows if r["method"] in (method, "base")), key=lambda r: r["forward_passes"])
        traces.append(
            dict(
                type="scatter",
                mode="lines+markers",
                name=method,
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


def compute_figure(rows: list[dict]) -> go.Figure:
    """AP50 and AP_vt against GFLOPs (multiples of the full-image pass), one line per method."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("AP50", "AP_vt (objects under 8 input px)"))
    colours = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = sorted((r for r in rows if r["method"] in (method, "base")), key=lambda r: r["gflops_ratio"])
        colour = colours.setdefault(method, _PALETTE[len(colours) % len(_PALETTE)])
        for column, metric in enumerate(("AP50", "AP_vt"), start=1):
            figure.add_trace(
                go.Scatter(
                    x=[r["gflops_ratio"] for r in mine], y=[r[metric] for r in mine], mode="lines+markers",
                    name=method, legendgroup=method, showlegend=column == 1, line=dict(color=colour),
                ),
                row=1, col=column,
            )  # fmt: skip
    figure.update_xaxes(title_text="GFLOPs per image (x the full-image pass)")
    figure.update_layout(height=460, width=1100, template="plotly_white")
    return figure


_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def write_figure(rows: list[dict], out: Path) -> list[Path]:
    """`benchmark.html` (AP50 against passes) and `benchmark_gflops.html` (AP50 and AP_vt against
    GFLOPs) always; their PNGs when kaleido finds a Chrome or Chromium."""
    written = []
    for name, figure in (("benchmark", budget_figure(rows)), ("benchmark_gflops", compute_figure(rows))):
        written.append(out / f"{name}.html")
        figure.write_html(written[-1], include_plotlyjs=True)
        try:
            figure.write_image(out / f"{name}.png")
            written.append(out / f"{name}.png")
        except Exception as error:  # kaleido raises several kinds when no browser is found
            print(f"{name}.png not written ({type(error).__name__}: {error}); {name}.html has the figure")
    return written
