"""The ERF of FINE's Alignment-Aware Token Sampling tokens at several ratios r (FINE Fig. 6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sodviz.cache import DEFAULT_CACHE, InferenceCache, cached, image_hash
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.detector.threads import run_model_work
from sodviz.erf.fields import ErfResult, fitted_erf, gradient_maps, normalize_maps
from sodviz.hooks import ForwardHooks, StopForward
from sodviz.modules import FineConfig, hybrid_encoder, modules_of


def aats_erf(
    detector: Detector, image: np.ndarray, *, fusion: int = 1, ratios: Sequence[int] = (1, 2, 4),
    point_xy: tuple[float, float] | None = None, input_size: int | None = None,
    cache: InferenceCache | None = DEFAULT_CACHE,
) -> ErfResult:  # fmt: skip
    """ERF of one AATS token per ratio r (FINE Fig. 6): F_low of a top-down fusion average-pooled
    with kernel r*k (k of that fusion), the token's ERF at the point. Works on any RT-DETR-style
    hybrid encoder, with or without FINE inserted (F_low is read before any modulation).
    Kept in `cache`, so a page rerun for another control costs no gradient."""
    point_key = None if point_xy is None else tuple(float(v) for v in point_xy)
    options = dict(fusion=fusion, ratios=tuple(ratios), point_xy=point_xy, input_size=input_size)

    def key() -> tuple:
        return (
            "aats_erf",
            detector.content_hash,
            image_hash(image),
            fusion,
            tuple(ratios),
            point_key,
            input_size,
        )

    return cached(cache, key, lambda: _aats_erf(detector, image, **options))


def _aats_erf(
    detector: Detector, image: np.ndarray, *, fusion: int, ratios: Sequence[int],
    point_xy: tuple[float, float] | None, input_size: int | None,
) -> ErfResult:  # fmt: skip
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
            raise StopForward  # the rest of the model is not needed

        with ForwardHooks() as hooks:
            hooks.add_pre(fpn_blocks[fusion], keep_low, prepend=True)
            hooks.run(lambda: detector.model(pixel_values=pixels))
        low = captured["low"]
        return [
            F.avg_pool2d(low, r * kernel, r * kernel, ceil_mode=True) if r * kernel > 1 else low
            for r in ratios
        ]

    maps, strides, point = run_model_work(detector.lock, lambda: gradient_maps(tokens, pixels, point))
    return fitted_erf([f"aats_r{r}" for r in ratios], normalize_maps(maps), strides, point)
