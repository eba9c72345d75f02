"""Every colour sodviz draws with, once: match status, feature levels, ACS methods, the picked
query, and the colour maps of heat maps (RGB tuples; `hex_color` for plotly)."""

from __future__ import annotations

import cv2
import numpy as np

RGB = tuple[int, int, int]

STATUS_RGB: dict[str, RGB] = {
    "": (0, 213, 255),
    "TP": (44, 160, 44),
    "FP": (214, 39, 40),
    "FN": (255, 159, 28),
}
LEVEL_RGB: tuple[RGB, ...] = ((255, 59, 48), (255, 204, 0), (52, 199, 89), (10, 132, 255), (191, 90, 242))
SELECTED_RGB: RGB = (255, 43, 214)  # the picked query or crop, on every figure
POINT_RGB: RGB = (0, 229, 255)  # the ERF's chosen point
METHOD_RGB: dict[str, RGB] = {
    "confidence": STATUS_RGB[""],
    "ACS-Free": STATUS_RGB["FN"],
    "ACS-Learned": LEVEL_RGB[4],
}
# Why an object was missed (sodviz.analysis.errors.MISS_TYPES), and a comparison's gains and losses.
MISS_RGB: dict[str, RGB] = {
    "classification": (148, 103, 189), "score": (255, 204, 0), "localisation": (10, 132, 255),
    "never attended": (214, 39, 40),
}  # fmt: skip
CHANGE_RGB: dict[str, RGB] = {"gained": STATUS_RGB["TP"], "lost": STATUS_RGB["FP"]}
# The instance-map methods (sodviz.explain.methods.EXPLAIN_METHODS); the random floor grey.
EXPLAIN_RGB: dict[str, RGB] = {
    "attention": STATUS_RGB[""], "odam": LEVEL_RGB[4], "drise": STATUS_RGB["FN"],
    "relevance": STATUS_RGB["TP"], "random": (140, 140, 140),
}  # fmt: skip
# Crop i of ViCrop-Det has one colour everywhere: overview, mosaic, table (plotly's D3 colours).
CROP_RGB: tuple[RGB, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
# Colour maps: attention heat maps, ERFs, module feature maps.
COLORMAPS = {"jet": cv2.COLORMAP_JET, "inferno": cv2.COLORMAP_INFERNO, "viridis": cv2.COLORMAP_VIRIDIS}


def hex_color(rgb: RGB) -> str:
    """`"#rrggbb"` of an RGB tuple, for plotly."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def level_rgb(level: int) -> RGB:
    """The colour of a feature level (cycling past the fifth)."""
    return LEVEL_RGB[int(level) % len(LEVEL_RGB)]


def crop_rgb(index: int) -> RGB:
    """The colour of ViCrop-Det's crop `index` (cycling past the tenth)."""
    return CROP_RGB[int(index) % len(CROP_RGB)]


def colorize(unit: np.ndarray, colormap: str) -> np.ndarray:
    """uint8 `(h, w, 3)` RGB: a float map in [0, 1] through one of `COLORMAPS`."""
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap must be one of {sorted(COLORMAPS)}, got {colormap!r}")
    colored = cv2.applyColorMap((np.asarray(unit) * 255).astype(np.uint8), COLORMAPS[colormap])
    return cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
