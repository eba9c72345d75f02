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

from sodviz.cache import InferenceCache, cached, image_hash
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.detector.threads import run_model_work
from sodviz.erf.gaussian import GaussianFit, fit_gaussian
from sodviz.erf.stages import BACKBONE_STAGES, available_stages, default_stages, is_vit, vit_stage_features
from sodviz.hooks import ForwardHooks


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
    outer = getattr(model.model, "backbone", None) or model.model.conv_encoder  # DEIMv2: conv_encoder
    inner = getattr(outer, "model", None) or getattr(getattr(outer, "conv_encoder", None), "model", None)
    if inner is None:
        raise ValueError(f"no backbone found in {type(model).__name__}")
    return inner


def _stage_features(detector: Detector, pixels: torch.Tensor, stages: Sequence[str]) -> list[torch.Tensor]:
    """`[1, C, h, w]` feature maps of the asked stages, on a graph back to `pixels`."""
    features: dict[str, torch.Tensor] = {}
    if is_vit(detector):
        features.update(vit_stage_features(detector, pixels, stages))
    elif any(s in BACKBONE_STAGES for s in stages):
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

    with ForwardHooks() as hooks:
        hooks.add(detector.model.model.encoder, keep_output, with_kwargs=True)
        hooks.add(_backbone(detector.model), keep_grid)
        text = detector.prompt.model_inputs(len(pixels), pixels.device) if detector.prompt else {}
        detector.model(pixel_values=pixels, **text)
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
    stages: Sequence[str] | None = None,
    point_xy: tuple[float, float] | None = None,
    input_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw ERF maps of one image: float32 `(S, H, W)` |grad| over model-input pixels, the
    strides `(S,)`, and the point in input pixels (default: the centre)."""
    stages = default_stages(detector) if stages is None else tuple(stages)
    inputs, _ = prepare_inputs(detector, [image], input_size=input_size)
    pixels = inputs["pixel_values"]
    height, width = pixels.shape[-2:]
    x, y = (width / 2, height / 2) if point_xy is None else point_xy
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"point {point_xy} lies outside the {width}x{height} model input")
    return run_model_work(
        detector.lock, lambda: gradient_maps(lambda p: _stage_features(detector, p, stages), pixels, (x, y))
    )


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
    stages: Sequence[str] | None = None,
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
    stages = default_stages(detector) if stages is None else tuple(stages)
    point_key = None if point_xy is None else tuple(float(v) for v in point_xy)
    options = dict(stages=stages, point_xy=point_xy, input_size=input_size, on_progress=on_progress)

    def key() -> tuple:
        hashes = tuple(image_hash(i) for i in images)
        return ("erf", detector.content_hash, hashes, tuple(stages), point_key, input_size)

    return cached(cache, key, lambda: _mean_erf(detector, images, **options))


def _mean_erf(detector: Detector, images: Sequence[np.ndarray], *, stages, point_xy, input_size, on_progress):
    total, strides, point = None, None, None
    for done, image in enumerate(images, start=1):
        maps, strides, point = erf_maps(
            detector, image, stages=stages, point_xy=point_xy, input_size=input_size
        )
        maps = normalize_maps(maps)
        if total is not None and total.shape != maps.shape:
            raise ValueError(f"image {done} gives a {maps.shape[1:]} input, the first {total.shape[1:]}")
        total = maps if total is None else total + maps
        if on_progress is not None:
            on_progress(done / len(images))
    return fitted_erf(stages, total / len(images), strides, point, images=len(images))


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """`(S, H, W)` ERF maps, each divided by its sum (an all-zero map stays zero)."""
    return maps / np.maximum(maps.sum(axis=(1, 2), keepdims=True), 1e-30)


def fitted_erf(
    stages: Sequence[str], maps: np.ndarray, strides: np.ndarray, point: np.ndarray, *, images: int = 1
) -> ErfResult:
    """An `ErfResult` of normalised `maps`, with a Gaussian fitted to each."""
    maps = maps.astype(np.float32)
    return ErfResult(tuple(stages), maps, strides, point, tuple(fit_gaussian(m) for m in maps), images=images)
