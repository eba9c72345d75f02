"""Effective receptive fields: |d feature / d input pixels| per stage, and a 2-D Gaussian fit.

The ERF of one feature activation (channel-summed, at one point of a stage's grid) is the
absolute gradient of that activation with respect to the model's input pixels, summed over
colour channels (Luo et al. 2016; FINE, appendix F). Gradients come from `torch.autograd.grad`
with the input as the only target, so no parameter gets a `.grad` and the model is not changed.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from sodviz.cache import InferenceCache
from sodviz.inference import image_hash, prepare_inputs
from sodviz.models import Detector

BACKBONE_STAGES = ("stage1", "stage2", "stage3", "stage4")


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


@dataclass(frozen=True, slots=True)
class ErfResult:
    """ERF maps of several stages for one image (or averaged over images).

    Attributes:
        stages: stage names, shallow to deep.
        maps: float32 `(S, H, W)`, |grad| summed over colour channels, in model-input pixels,
            each map normalised to sum 1.
        strides: float64 `(S,)`, input pixels per cell of each stage's grid.
        point_xy: float64 `(2,)`, the chosen point in model-input pixels.
        fits: one `GaussianFit` per stage.
        images: how many images were averaged.
    """

    stages: tuple[str, ...]
    maps: np.ndarray
    strides: np.ndarray
    point_xy: np.ndarray
    fits: tuple[GaussianFit, ...]
    images: int = 1

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        return int(self.maps.nbytes)

    @property
    def sigmas(self) -> np.ndarray:
        return np.array([fit.sigma for fit in self.fits])

    def sigma_ratios(self) -> np.ndarray:
        """float64 `(S - 1,)`: sigma of each stage over the one before (NaN across groups, e.g.
        from `stage4` to `encoder0`)."""
        sigmas = self.sigmas
        return np.where(self._same_group(), sigmas[1:] / np.maximum(sigmas[:-1], 1e-12), np.nan)

    def stride_ratios(self) -> np.ndarray:
        return np.where(self._same_group(), self.strides[1:] / self.strides[:-1], np.nan)

    def _same_group(self) -> np.ndarray:
        groups = [stage.rstrip("0123456789") for stage in self.stages]
        return np.array([a == b for a, b in itertools.pairwise(groups)], bool)

    def table(self) -> list[dict]:
        """One row per stage: sigma, sigma_x, sigma_y, R^2, stride, ratios to the stage before."""
        rows = []
        for index, (stage, fit) in enumerate(zip(self.stages, self.fits, strict=True)):
            rows.append(
                {
                    "stage": stage,
                    "sigma": fit.sigma,
                    "sigma_x": float(fit.sigma_xy[0]),
                    "sigma_y": float(fit.sigma_xy[1]),
                    "r2": fit.r2,
                    "stride": float(self.strides[index]),
                    "sigma_ratio": float(self.sigma_ratios()[index - 1]) if index else math.nan,
                    "stride_ratio": float(self.stride_ratios()[index - 1]) if index else math.nan,
                }
            )
        return rows


def available_stages(detector: Detector) -> tuple[str, ...]:
    """Backbone stages for every family, then the encoder's outputs, shallow to deep: the hybrid
    encoder's feature maps (RT-DETR, D-FINE), the multi-scale tokens of Deformable DETR (one
    `encoderN` per level), or the single stride-32 token grid of DETR-style models (`encoder0`)."""
    config = detector.model.config
    if detector.family.model_type in ("rt_detr", "rt_detr_v2", "d_fine"):
        levels = len(getattr(config, "encoder_in_channels", ()))
    elif detector.family.model_type == "deformable_detr":
        levels = int(getattr(config, "num_feature_levels", 0))
    else:
        levels = 1
    return BACKBONE_STAGES + tuple(f"encoder{i}" for i in range(levels))


def random_twin(detector: Detector, *, seed: int = 0) -> Detector:
    """The same architecture and processor with freshly initialised weights (eval mode), to set a
    trained ERF beside an untrained one."""
    torch.manual_seed(seed)
    model = type(detector.model)(detector.model.config).eval()
    model.requires_grad_(False)
    return replace(
        detector, model=model, content_hash=f"{detector.content_hash}:random{seed}", lock=threading.Lock()
    )


def _backbone(model) -> torch.nn.Module:
    outer = model.model.backbone
    inner = getattr(outer, "model", None) or getattr(getattr(outer, "conv_encoder", None), "model", None)
    if inner is None:
        raise ValueError(f"no backbone found in {type(model).__name__}")
    return inner


def _stage_features(detector: Detector, pixels: torch.Tensor, stages: Sequence[str]) -> list[torch.Tensor]:
    """`[1, C, h, w]` feature maps of the asked stages, on a graph back to `pixels`."""
    features: dict[str, torch.Tensor] = {}
    if any(s in BACKBONE_STAGES for s in stages):
        hidden = _backbone(detector.model)(pixels, output_hidden_states=True).hidden_states
        if hidden is None or len(hidden) < len(BACKBONE_STAGES) + 1:
            raise ValueError("the backbone does not return its stages' hidden states")
        for index, name in enumerate(BACKBONE_STAGES, start=1):
            features[name] = hidden[index]
    if any(s.startswith("encoder") for s in stages):
        for index, level in enumerate(_encoder_maps(detector, pixels)):
            features[f"encoder{index}"] = level
    unknown = [s for s in stages if s not in features]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; this detector has {available_stages(detector)}")
    return [features[s] for s in stages]


def _encoder_maps(detector: Detector, pixels: torch.Tensor) -> list[torch.Tensor]:
    """The encoder's outputs as `[1, C, h, w]` maps, from one full forward with hooks: feature
    maps as they are; tokens cut by the deformable encoder's `spatial_shapes`, or laid on the
    backbone's last grid for single-level DETR-style encoders."""
    captured = {}

    def keep_output(module, args, kwargs, output) -> None:  # returns None: the output is kept as is
        captured["out"] = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        captured["shapes"] = kwargs.get("spatial_shapes")

    def keep_grid(module, args, output) -> None:
        captured["grid"] = tuple(output.feature_maps[-1].shape[-2:])

    hooks = [
        detector.model.model.encoder.register_forward_hook(keep_output, with_kwargs=True),
        _backbone(detector.model).register_forward_hook(keep_grid),
    ]
    try:
        detector.model(pixel_values=pixels)
    finally:
        for hook in hooks:
            hook.remove()
    out = captured["out"]
    if isinstance(out, (list, tuple)):
        return list(out)
    shapes = captured["shapes"]
    shapes = [tuple(int(v) for v in hw) for hw in shapes] if shapes is not None else [captured["grid"]]
    if sum(h * w for h, w in shapes) != out.shape[1]:
        raise ValueError(f"cannot lay {out.shape[1]} encoder tokens on grids {shapes}")
    maps, start = [], 0
    for h, w in shapes:
        maps.append(out[:, start : start + h * w].transpose(1, 2).reshape(out.shape[0], -1, h, w))
        start += h * w
    return maps


def erf_maps(
    detector: Detector,
    image: np.ndarray,
    *,
    stages: Sequence[str] = BACKBONE_STAGES,
    point_xy: tuple[float, float] | None = None,
    input_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw ERF maps of one image: float32 `(S, H, W)` |grad| over model-input pixels, the
    strides `(S,)`, and the point in input pixels (default: the centre)."""
    inputs, _ = prepare_inputs(detector, [image], input_size=input_size)
    pixels = inputs["pixel_values"]
    height, width = pixels.shape[-2:]
    x, y = (width / 2, height / 2) if point_xy is None else point_xy
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"point {point_xy} lies outside the {width}x{height} model input")
    with detector.lock:
        return gradient_maps(lambda p: _stage_features(detector, p, stages), pixels, (x, y))


def gradient_maps(
    forward: Callable[[torch.Tensor], list[torch.Tensor]], pixels: torch.Tensor, point_xy: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each `[1, C, h, w]` map that `forward(pixels)` returns: |d (channel sum at the cell
    holding `point_xy`) / d pixels| summed over the input's channels. Works on any module.

    Returns:
        float32 `(S, H, W)` maps, float64 `(S,)` strides (input rows per grid row), the point.
    """
    pixels = pixels.detach().clone().requires_grad_(True)
    height, width = pixels.shape[-2:]
    x, y = point_xy
    with torch.enable_grad():
        features = forward(pixels)
        maps, strides = [], []
        for index, feature in enumerate(features):
            grid_h, grid_w = feature.shape[-2:]
            row = min(int(y * grid_h / height), grid_h - 1)
            col = min(int(x * grid_w / width), grid_w - 1)
            target = feature[0, :, row, col].sum()
            (grad,) = torch.autograd.grad(target, pixels, retain_graph=index < len(features) - 1)
            maps.append(grad[0].abs().sum(0).float().cpu().numpy())
            strides.append(height / grid_h)
    return np.stack(maps).astype(np.float32), np.array(strides), np.array([x, y], np.float64)


def compute_erf(
    detector: Detector,
    images: Sequence[np.ndarray],
    *,
    stages: Sequence[str] = BACKBONE_STAGES,
    point_xy: tuple[float, float] | None = None,
    input_size: int | None = None,
    on_progress: Callable[[float], None] | None = None,
    cache: InferenceCache | None = None,
) -> ErfResult:
    """ERF of each stage at one point, averaged over `images` (each map normalised to sum 1
    first), with a Gaussian fit per stage. Images must share the model-input shape; square
    input families resize every image to the same side, so this holds for them.

    With a `cache`, the result is kept under (detector, images, stages, point, input size), so
    a control that only changes how it is drawn costs no gradient (`on_progress` runs on a miss).
    """
    if not images:
        raise ValueError("compute_erf needs at least one image")
    if cache is not None:
        point_key = None if point_xy is None else tuple(float(v) for v in point_xy)
        key = ("erf", detector.content_hash, tuple(image_hash(i) for i in images), tuple(stages), point_key,
               input_size)  # fmt: skip
        return cache.get_or_compute(
            key,
            lambda: compute_erf(
                detector,
                images,
                stages=stages,
                point_xy=point_xy,
                input_size=input_size,
                on_progress=on_progress,
            ),
        )
    total, strides, point = None, None, None
    for done, image in enumerate(images, start=1):
        maps, strides, point = erf_maps(
            detector, image, stages=stages, point_xy=point_xy, input_size=input_size
        )
        maps = maps / np.maximum(maps.sum(axis=(1, 2), keepdims=True), 1e-30)
        if total is not None and total.shape != maps.shape:
            raise ValueError(f"image {done} gives a {maps.shape[1:]} input, the first {total.shape[1:]}")
        total = maps if total is None else total + maps
        if on_progress is not None:
            on_progress(done / len(images))
    mean = (total / len(images)).astype(np.float32)
    fits = tuple(fit_gaussian(m) for m in mean)
    return ErfResult(tuple(stages), mean, strides, point, fits, images=len(images))


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
