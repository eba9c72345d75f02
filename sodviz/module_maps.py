"""What CCTM, FINE and the Boost loss do inside a detector, as arrays: their feature maps, channel
reductions for display, the ERF of AATS tokens, class score against object size, the CS curve."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv
import torch
import torch.nn.functional as F

from sodviz.cache import DEFAULT_CACHE, InferenceCache
from sodviz.erf import ErfResult, fit_gaussian, gradient_maps
from sodviz.ground_truth import GroundTruth, box_size
from sodviz.inference import image_hash, prepare_inputs, run_inference, to_detections
from sodviz.losses import size_boost
from sodviz.models import Detector
from sodviz.modules import FineConfig, hybrid_encoder, modules_of, record_maps

CCTM_MAPS = ("B", "E", "gate", "E_cf")  # Cross-DINO Fig. 6: backbone, encoder, gating map, fused
FINE_MAPS = ("F_high", "F_low", "M", "aligned")  # FINE Fig. 8
SIZE_EDGES = (0, 4, 6, 8, 10, 12, 16, 24, 32, 64, 1e9)  # object size bins, model-input pixels


@dataclass(frozen=True, slots=True)
class FusionMaps:
    """CCTM and FINE maps of one image (empty tuples for a module the detector lacks).

    Attributes:
        cctm: per level, stride 8 to 32: {name in CCTM_MAPS: float32 `(C, h, w)`}.
        fine: per top-down fusion, stride 16 then stride 8: {name in FINE_MAPS: float32 `(C, h, w)`}.
        input_hw: the model input the maps come from, pixels.
    """

    cctm: tuple[dict[str, np.ndarray], ...]
    fine: tuple[dict[str, np.ndarray], ...]
    input_hw: tuple[int, int]

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        return sum(a.nbytes for group in (self.cctm, self.fine) for maps in group for a in maps.values())


def fusion_maps(
    detector: Detector, image: np.ndarray, *, input_size: int | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> FusionMaps:  # fmt: skip
    """Run the detector once with its modules recording. Raises ValueError without modules."""
    if modules_of(detector.model) is None:
        raise ValueError(f"{detector.source!r} carries no CCTM / FINE modules (see `sodviz.modules`)")
    if cache is not None:
        key = ("fusion_maps", detector.content_hash, image_hash(image), input_size)
        return cache.get_or_compute(
            key, lambda: fusion_maps(detector, image, input_size=input_size, cache=None)
        )
    inputs, _ = prepare_inputs(detector, [image], input_size=input_size)
    with detector.lock, torch.no_grad(), record_maps(detector.model) as recorded:
        detector.model(**inputs)
    levels = sorted(k for k in recorded if k.startswith("cctm"))
    fusions = sorted(k for k in recorded if k.startswith("fine"))
    return FusionMaps(
        cctm=tuple({n: recorded[k][n][0].float().numpy() for n in CCTM_MAPS} for k in levels),
        fine=tuple({n: recorded[k][n][0].float().numpy() for n in FINE_MAPS} for k in fusions),
        input_hw=tuple(inputs["pixel_values"].shape[-2:]),
    )


def reduce_channels(feature: np.ndarray, mode: str = "mean", channel: int = 0) -> np.ndarray:
    """A `(C, h, w)` map for display: "mean" or "channel" -> float32 `(h, w)` in [0, 1];
    "pca" -> float32 `(h, w, 3)`, the first three principal components as RGB, each in [0, 1]."""
    if feature.ndim != 3:
        raise ValueError(f"expected a (C, h, w) map, got shape {feature.shape}")
    if mode == "mean":
        return _unit(feature.mean(axis=0))
    if mode == "channel":
        if not 0 <= channel < feature.shape[0]:
            raise ValueError(f"channel {channel} outside 0..{feature.shape[0] - 1}")
        return _unit(feature[channel])
    if mode != "pca":
        raise ValueError(f"mode must be 'mean', 'channel' or 'pca', got {mode!r}")
    channels, height, width = feature.shape
    pixels = feature.reshape(channels, -1).T.astype(np.float64)  # [h*w, C]
    pixels -= pixels.mean(axis=0)
    _, _, components = np.linalg.svd(pixels, full_matrices=False)
    projected = pixels @ components[:3].T  # [h*w, <=3]
    rgb = np.zeros((height * width, 3))
    rgb[:, : projected.shape[1]] = projected
    return (
        np.stack([_unit(rgb[:, i]) for i in range(3)], axis=-1).reshape(height, width, 3).astype(np.float32)
    )


def _unit(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] between the 1st and 99th percentiles (a flat map gives zeros)."""
    low, high = np.percentile(values, [1, 99])
    if high <= low:
        return np.zeros(values.shape, np.float32)
    return np.clip((values - low) / (high - low), 0, 1).astype(np.float32)


def aats_erf(
    detector: Detector, image: np.ndarray, *, fusion: int = 1, ratios: Sequence[int] = (1, 2, 4),
    point_xy: tuple[float, float] | None = None, input_size: int | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> ErfResult:  # fmt: skip
    """ERF of one AATS token per ratio r (FINE Fig. 6): F_low of a top-down fusion average-pooled
    with kernel r*k (k of that fusion), the token's ERF at the point. Works on any RT-DETR-style
    hybrid encoder, with or without FINE inserted (F_low is read before any modulation).
    Kept in `cache`, so a page rerun for another control costs no gradient."""
    if cache is not None:
        point_key = None if point_xy is None else tuple(float(v) for v in point_xy)
        key = (
            "aats_erf",
            detector.content_hash,
            image_hash(image),
            fusion,
            tuple(ratios),
            point_key,
            input_size,
        )
        options = dict(fusion=fusion, ratios=ratios, point_xy=point_xy, input_size=input_size)
        return cache.get_or_compute(key, lambda: aats_erf(detector, image, **options, cache=None))
    fpn_blocks = hybrid_encoder(detector.model).fpn_blocks
    if not 0 <= fusion < len(fpn_blocks):
        raise ValueError(f"fusion {fusion} outside 0..{len(fpn_blocks) - 1}")
    modules = modules_of(detector.model)
    config = modules.fine.config if modules is not None and modules.fine is not None else FineConfig()
    kernel = config.kernels[fusion]
    inputs, _ = prepare_inputs(detector, [image], input_size=input_size)
    pixels = inputs["pixel_values"]
    height, width = pixels.shape[-2:]
    point = (width / 2, height / 2) if point_xy is None else point_xy

    def tokens(pixels: torch.Tensor) -> list[torch.Tensor]:
        captured = {}

        def keep_low(module, args):
            captured["low"] = args[0].chunk(2, dim=1)[1]
            raise _Captured

        hook = fpn_blocks[fusion].register_forward_pre_hook(keep_low, prepend=True)
        try:
            detector.model(pixel_values=pixels)
        except _Captured:
            pass
        finally:
            hook.remove()
        low = captured["low"]
        return [
            F.avg_pool2d(low, r * kernel, r * kernel, ceil_mode=True) if r * kernel > 1 else low
            for r in ratios
        ]

    with detector.lock:
        maps, strides, point = gradient_maps(tokens, pixels, point)
    maps = maps / np.maximum(maps.sum(axis=(1, 2), keepdims=True), 1e-30)
    fits = tuple(fit_gaussian(m) for m in maps)
    return ErfResult(tuple(f"aats_r{r}" for r in ratios), maps.astype(np.float32), strides, point, fits)


class _Captured(Exception):
    """Stops the forward pass once the fusion's input is seen."""


def score_by_size(
    detections: Sequence[sv.Detections], truths: Sequence[GroundTruth], scales: Sequence[float],
    class_names: tuple[str, ...], *, iou: float = 0.5, edges: Sequence[float] = SIZE_EDGES,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Average class score of objects by size (Cross-DINO Fig. 3). Each object's score is the
    highest confidence of a same-class detection overlapping it at `iou` (0 when none does);
    sizes are sqrt(area) times `scales` (model-input pixels per image pixel).

    Returns:
        {"low", "high": bin edges `(B,)`, "mean_score": float64 `(B,)` (NaN for an empty bin),
        "count": int64 `(B,)`}.
    """
    sizes, scores = [], []
    for found, truth, scale in zip(detections, truths, scales, strict=True):
        if len(truth) == 0:
            continue
        best = np.zeros(len(truth))
        if len(found):
            overlap = sv.box_iou_batch(truth.boxes_xyxy, found.xyxy)  # [N, D]
            names = np.array(class_names)[found.class_id]
            same = truth.class_names[:, None] == names[None, :]
            best = np.where((overlap >= iou) & same, found.confidence[None, :], 0).max(axis=1)
        sizes.append(box_size(truth.boxes_xyxy) * scale)
        scores.append(best)
    sizes = np.concatenate(sizes) if sizes else np.zeros(0)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    edges = np.asarray(edges, np.float64)
    index = np.digitize(sizes, edges[1:-1])
    count = np.bincount(index, minlength=len(edges) - 1)
    total = np.bincount(index, weights=scores, minlength=len(edges) - 1)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return {"low": edges[:-1], "high": edges[1:], "mean_score": mean, "count": count}


def score_curve(
    detector: Detector, scenes: Sequence[tuple[np.ndarray, GroundTruth]], *, input_size: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """`score_by_size` of one detector over labelled scenes (each forward pass cached)."""
    found, truths, scales = [], [], []
    for done, (image, truth) in enumerate(scenes, start=1):
        result = run_inference(detector, image, input_size=input_size)
        found.append(to_detections(result))
        truths.append(truth)
        scales.append(result.transform.length_scale)
        if on_progress is not None:
            on_progress(done / len(scenes))
    return score_by_size(found, truths, scales, detector.class_names)


def cs_curve(sizes_px: np.ndarray, image_side: float, beta: float) -> dict[str, np.ndarray]:
    """The Category-Size soft label of square objects of `sizes_px` in an `image_side` square image,
    and the Boost loss's weight on such a positive, 1 + (1 - cs**beta)."""
    cs = np.asarray(sizes_px, np.float64) / image_side
    boost = size_boost(torch.as_tensor(cs), beta).numpy()
    return {"size": np.asarray(sizes_px, np.float64), "cs": cs, "weight": 1 + boost}
