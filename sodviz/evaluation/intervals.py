"""Bootstrap intervals of a mean over objects: the one place studies draw them."""

from __future__ import annotations

import numpy as np


def bootstrap_interval(
    values: np.ndarray, *, resamples: int = 1000, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """The percentile bootstrap interval (`level`, two-sided) of the mean of `values` `(N,)`:
    `resamples` draws of N values with replacement from `rng`; (nan, nan) for no values."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    draws = rng.integers(0, values.size, (resamples, values.size))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values[draws].mean(axis=1), [tail, 100 - tail])
    return float(low), float(high)
