"""One self-contained HTML report of an image's analysis: interactive plotly figures, images and
tables of each page shown, with the model, the image and the settings recorded. It opens offline:
plotly's JavaScript and every image are inside the file.

The app records a `ReportSection` per page the user visits; the CLI (`sodviz report`) builds the
same sections with the `*_section` functions from the same views.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from sodviz.views.figures import detections_figure, entropy_figure, image_data_uri, image_figure_height
from sodviz.views.render import shrink
from sodviz.views.vicrop import counts_table

MAX_IMAGE_SIDE = 1600  # pixels: images in a report are downscaled to this (a report stays a few MB)


@dataclass(frozen=True)
class ReportSection:
    """What one page showed: titled figures, images and tables, and the settings behind them."""

    title: str
    figures: tuple[tuple[str, go.Figure], ...] = ()
    images: tuple[tuple[str, np.ndarray], ...] = ()
    tables: tuple[tuple[str, list[dict]], ...] = ()
    settings: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def report_image(image: np.ndarray) -> np.ndarray:
    """`image` downscaled so its longer side is at most `MAX_IMAGE_SIDE` (area-averaged)."""
    return shrink(image, max_side=MAX_IMAGE_SIDE)


def report_html(sections: Sequence[ReportSection], *, meta: dict, title: str = "sodviz report") -> str:
    """The report as one HTML document (plotly.js inlined once; images as data URIs)."""
    created = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='created'>Made by sodviz on {html.escape(created)}.</p>",
        _table("Model, image and input", [{"": key, "value": _text(value)} for key, value in meta.items()]),
    ]
    if not sections:
        parts.append("<p>No page was shown: open a page of the app (or pass --pages) to add it.</p>")
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(note)}</p>" for note in section.notes]
        if section.settings:
            parts.append(
                _table("Settings", [{"": k, "value": _text(v)} for k, v in section.settings.items()])
            )
        for caption, figure in section.figures:
            body = pio.to_html(figure, full_html=False, include_plotlyjs=False, config={"responsive": True})
            parts.append(f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>")
        for caption, image in section.images:
            uri = image_data_uri(report_image(image))
            parts.append(f'<figure><img src="{uri}" alt="{html.escape(caption)}">')
            parts.append(f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts += [_table(caption, rows) for caption, rows in section.tables]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def report_meta(
    detector, image_name: str, image: np.ndarray, result, *, truth=None, letterbox: bool = False
) -> dict:
    """What a report records of the model, the image and the input."""
    from sodviz.detector.preprocess import input_summary

    return {
        "model": detector.source,
        "family": detector.family.name,
        "classes": ", ".join(detector.class_names),
        "weights sha256": detector.content_hash[:16],
        "image": image_name,
        "image size": f"{image.shape[1]}x{image.shape[0]} px",
        "ground truth": "none" if truth is None else f"{len(truth)} objects",
        "input": input_summary(result.transform).replace("**", ""),
        "letterbox": bool(letterbox and result.transform.letterboxed),
        "queries": result.num_queries,
    }


def detections_section(
    image: np.ndarray, view, *, truth=None, settings: dict | None = None, selected_query: int | None = None,
    height: int | None = None,
) -> ReportSection:  # fmt: skip
    """The Detections page: boxes (TP / FP / FN with ground truth), counts by size, the table.
    Its figure is the one the page shows (`selected_query`, `height` as the page draws it)."""
    match = view.match
    missed = None if match is None or truth is None else truth.boxes_xyxy[match.missed]
    figure = detections_figure(
        image, view.detections, status=None if match is None else match.status, missed_xyxy=missed,
        selected_query=selected_query,
        height=height or image_figure_height(image, cap=900),
    )  # fmt: skip
    tables = []
    if match is not None:
        tables.append(("TP / FP / FN by size (IoU 0.5)", [{"size": k} | c for k, c in match.counts.items()]))
    tables.append((f"{len(view.detections)} detections", view.table))
    return ReportSection(
        "Detections", figures=(("detections", figure),), tables=tuple(tables), settings=settings or {}
    )


def attention_section(view, found, *, label: str, settings: dict | None = None) -> ReportSection:
    """The Attention page: one query's map and heads, and entropy against score for every detection."""
    status = None if found.match is None else found.match.status
    images = [(f"attention of {label} · entropy {view.entropy:.2f} nats", view.heat_overlay)]
    if view.points_overlay is not None:
        images.append((f"sampling points of {label} (area ~ weight, colour = level)", view.points_overlay))
    images.append((f"each head of {label}, around it (one colour scale)", view.heads_grid))
    figure = entropy_figure(found.detections, found.entropy, status=status)
    return ReportSection(
        "Attention", figures=(("attention entropy against score", figure),), images=tuple(images),
        settings=settings or {},
    )  # fmt: skip


def vicrop_section(view, plan, *, passes: int, settings: dict | None = None) -> ReportSection:
    """The ViCrop-Det page: window maps, crops, before / after and counts."""
    images = [(f"windows: {name}", heat) for name, heat in view.heatmaps.items()]
    if view.crops is not None:
        images.append(("each crop with its own detections", view.crops))
    images += [
        ("original, 1 forward pass", view.before),
        (f"ViCrop-Det, {passes} forward passes", view.after),
    ]
    tables = [("chosen crops", [{k: v for k, v in row.items() if k != "colour"} for row in view.crop_rows])]
    if view.before_match is not None:
        tables.append(
            (
                "TP / FP / FN by size",
                counts_table({"original": view.before_match, "ViCrop": view.after_match}),
            )
        )
    notes = (
        f"Gate: {plan.reason}.",
        f"From the crops: {view.added} added, {view.replaced} replaced, {view.removed} removed.",
    )
    return ReportSection(
        "ViCrop-Det", images=tuple(images), tables=tuple(tables), settings=settings or {}, notes=notes
    )


def settings_of(config) -> dict:
    """A dataclass config's fields as report settings (nested dataclasses flattened by name)."""
    out = {}
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(value):
            out |= {f"{item.name}.{k}": v for k, v in settings_of(value).items()}
        else:
            out[item.name] = value
    return out


def _table(caption: str, rows: list[dict]) -> str:
    if not rows:
        return f"<p><b>{html.escape(caption)}</b>: none.</p>"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(row.get(c, '')))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _text(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .created { color: #666; margin-top: 0; }
section { border-top: 1px solid #ddd; margin-top: 2em; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
th { background: #f4f4f4; }
"""
