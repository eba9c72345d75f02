"""A 2-D Gaussian fitted to a non-negative map (an ERF): axis-aligned and isotropic sigma, R^2."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class GaussianFit:
    """A 2-D Gaussian fitted to a map (in the map's pixels).

    Attributes:
        center_xy: float64 `(2,)`, the fitted centre.
        sigma: the isotropic fit's sigma.
        sigma_xy: float64 `(2,)`, the axis-aligned fit's sigma_x and sigma_y.
        r2: coefficient of determination of the axis-aligned fit.
    """

    center_xy: np.ndarray
    sigma: float
    sigma_xy: np.ndarray
    r2: float


def _gaussian(coords, amplitude, x0, y0, sigma_x, sigma_y):
    x, y = coords
    return amplitude * np.exp(-((x - x0) ** 2) / (2 * sigma_x**2) - ((y - y0) ** 2) / (2 * sigma_y**2))


def _moments(values: np.ndarray) -> tuple[float, float, float, float]:
    total = values.sum()
    ys, xs = np.mgrid[0 : values.shape[0], 0 : values.shape[1]].astype(np.float64)
    mx, my = (values * xs).sum() / total, (values * ys).sum() / total
    sx = math.sqrt(max((values * (xs - mx) ** 2).sum() / total, 0.25))
    sy = math.sqrt(max((values * (ys - my) ** 2).sum() / total, 0.25))
    return mx, my, sx, sy


def fit_gaussian(erf_map: np.ndarray, *, max_side: int = 64) -> GaussianFit:
    """Least-squares 2-D Gaussian (axis-aligned, and isotropic) fitted to a non-negative map,
    started from its moments. The fit sees the window of 5 moment-sigmas around the moment
    centre, block-averaged to at most `max_side` cells a side; R^2 is over that window."""
    from scipy.optimize import curve_fit  # imported here: scipy is slow to import and only fits need it

    values = np.asarray(erf_map, np.float64)
    if values.sum() <= 0:
        nan = float("nan")
        return GaussianFit(np.array([nan, nan]), nan, np.array([nan, nan]), nan)
    mx, my, sx, sy = _moments(values)
    x0, y0 = max(0, math.floor(mx - 5 * sx)), max(0, math.floor(my - 5 * sy))
    x1 = min(values.shape[1], math.ceil(mx + 5 * sx) + 1)
    y1 = min(values.shape[0], math.ceil(my + 5 * sy) + 1)
    values = values[y0:y1, x0:x1]
    factor = max(1, math.ceil(max(values.shape) / max_side))
    if factor > 1:
        h, w = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
        values = values[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    mx, my, sx, sy = _moments(values)
    ys, xs = np.mgrid[0 : values.shape[0], 0 : values.shape[1]].astype(np.float64)
    coords = (xs.ravel(), ys.ravel())
    target = values.ravel() / values.max()
    start = (1.0, mx, my, sx, sy)
    bounds = ([0, -np.inf, -np.inf, 0.1, 0.1], [np.inf, np.inf, np.inf, np.inf, np.inf])
    # scipy's trust-region solver divides by ~0 on flat maps; R^2 below says how good the fit is
    with np.errstate(divide="ignore", invalid="ignore"):
        try:
            params, _ = curve_fit(_gaussian, coords, target, p0=start, bounds=bounds, maxfev=4000)
            iso, _ = curve_fit(
                lambda c, a, cx, cy, s: _gaussian(c, a, cx, cy, s, s),
                coords,
                target,
                p0=(1.0, mx, my, math.sqrt(sx * sy)),
                bounds=(bounds[0][:4], bounds[1][:4]),
                maxfev=4000,
            )
        except RuntimeError:  # no convergence: fall back to the moments
            params, iso = np.array(start), np.array([1.0, mx, my, math.sqrt(sx * sy)])
    residual = target - _gaussian(coords, *params)
    r2 = 1.0 - (residual**2).sum() / max(((target - target.mean()) ** 2).sum(), 1e-30)
    scale = float(factor)
    center = (params[1:3] + 0.5) * scale - 0.5 + np.array([x0, y0])
    return GaussianFit(center, float(iso[3] * scale), np.abs(params[3:5]) * scale, float(r2))
