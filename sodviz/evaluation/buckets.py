"""Size buckets, one table each, and the one `size_bucket` that reads them.

A box's size is sqrt(its area) in pixels of whatever frame the caller measured it in (model input
or original image). Every bucket is `[low, high)`.
"""

from __future__ import annotations

import math

import numpy as np

Buckets = dict[str, tuple[float, float]]

# AI-TOD: very tiny < 8, tiny 8-16, small 16-32, medium >= 32 (model-input pixels by default).
AITOD_BUCKETS: Buckets = {"vt": (0, 8), "t": (8, 16), "s": (16, 32), "m": (32, math.inf)}
# COCO's AP_S / AP_M / AP_L.
COCO_BUCKETS: Buckets = {"S": (0, 32), "M": (32, 96), "L": (96, math.inf)}
# The app's display buckets, original pixels: tiny < 16, small < 32, medium < 96, large.
APP_BUCKETS: Buckets = {"tiny": (0, 16), "small": (16, 32), "medium": (32, 96), "large": (96, math.inf)}
# Finer bins of the score-against-size curve (Cross-DINO Fig. 3), model-input pixels.
SCORE_SIZE_EDGES = (0, 4, 6, 8, 10, 12, 16, 24, 32, 64, 1e9)


def size_bucket(sizes: np.ndarray | float, buckets: Buckets) -> np.ndarray:
    """str `(N,)`: the name of the bucket `[low, high)` of `buckets` that holds each size.

    Args:
        sizes: sqrt(area) of each box `(N,)` (or one number), in the frame `buckets` is meant for.
        buckets: one of the tables above (contiguous, from 0 to infinity).
    """
    values = np.atleast_1d(np.asarray(sizes, np.float64))
    edges = [low for low, _ in buckets.values()][1:]
    names = np.array(list(buckets), dtype=object)
    return names[np.searchsorted(edges, values, side="right")].astype(str)


def bucket_masks(sizes: np.ndarray, buckets: Buckets) -> dict[str, np.ndarray]:
    """{name: bool `(N,)`} of the sizes inside each bucket."""
    values = np.asarray(sizes, np.float64)
    return {name: (values >= low) & (values < high) for name, (low, high) in buckets.items()}
