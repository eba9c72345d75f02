"""Every entropy sodviz computes, in nats: of attention maps and distributions, of a whole map
(the gate), and of each window of a map (Spatial Attention Entropy), all from one formula."""

from __future__ import annotations

import numpy as np


def distribution_entropy(weights: np.ndarray, *, normalize: bool = False) -> np.ndarray:
    """float64 `(...)`: Shannon entropy of non-negative `weights (..., N)` taken as a distribution
    over the last axis. With `normalize`, divided by log(N): 1 for uniform, 0 for one cell.
    Weights with no mass have entropy 0."""
    flat = np.asarray(weights, dtype=np.float64)
    total = flat.sum(axis=-1, keepdims=True)
    probabilities = np.divide(flat, total, out=np.zeros_like(flat), where=total > 0)
    logs = np.log(probabilities, out=np.zeros_like(probabilities), where=probabilities > 0)
    entropy = -(probabilities * logs).sum(axis=-1)
    if normalize:
        cells = flat.shape[-1]
        entropy = entropy / np.log(cells) if cells > 1 else np.zeros_like(entropy)
    return entropy


def attention_entropy(maps: np.ndarray, *, normalize: bool = False) -> np.ndarray:
    """float32: Shannon entropy (nats) of each map `(..., h, w)` taken as a distribution over its cells.

    With `normalize`, divided by log(h * w): 1 for uniform attention, 0 for a single cell.
    A map with no mass has entropy 0.
    """
    maps = np.asarray(maps)
    flat = maps.reshape(*maps.shape[:-2], -1)
    return distribution_entropy(flat, normalize=normalize).astype(np.float32)


def map_entropy(attention_map: np.ndarray) -> float:
    """Normalised entropy in [0, 1] of a whole map (the gate's image-level uncertainty)."""
    return float(distribution_entropy(np.asarray(attention_map).ravel(), normalize=True))


def window_entropy(attention_map: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spatial Attention Entropy of windows of a map, from summed-area tables.

    Args:
        attention_map: float `(h, w)`, non-negative (normalised to sum 1 here).
        cells: int `(W, 4)` `[row0, col0, row1, col1)` windows on the map.

    Returns:
        float64 `(W,)` mass (the share of the map inside each window) and float64 `(W,)` entropy
        of the map restricted to each window, divided by log(cells in it): in [0, 1], 0 for a
        window without mass or of one cell.
    """
    p = np.asarray(attention_map, np.float64)
    total = p.sum()
    p = p / total if total > 0 else np.zeros_like(p)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    mass = window_sums(p, cells)
    mass_plogp = window_sums(plogp, cells)
    count = (cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        # entropy of q = p / m over the window: -(1/m) sum p log p + log m
        entropy = np.where(mass > 0, -mass_plogp / mass + np.log(np.where(mass > 0, mass, 1.0)), 0.0)
        normalised = np.where(count > 1, entropy / np.log(np.maximum(count, 2)), 0.0)
    return mass, np.clip(normalised, 0.0, 1.0)  # the clip only absorbs rounding


def window_sums(values: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """float64 `(W,)`: the sum of `values (h, w)` inside each `[row0, col0, row1, col1)` window."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = np.asarray(values, np.float64).cumsum(axis=0).cumsum(axis=1)
    r0, c0, r1, c1 = np.asarray(cells, np.int64).reshape(-1, 4).T
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
