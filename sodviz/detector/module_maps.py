"""CCTM's and FINE's feature maps of one image: one forward pass with the modules recording."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sodviz.cache import DEFAULT_CACHE, InferenceCache, cached, image_hash
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.detector.threads import run_model_work
from sodviz.modules import modules_of, record_maps

CCTM_MAPS = ("B", "E", "gate", "E_cf")  # Cross-DINO Fig. 6: backbone, encoder, gating map, fused
FINE_MAPS = ("F_high", "F_low", "M", "aligned")  # FINE Fig. 8


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
    def num_channels(self) -> int:
        """Channels of every map (the hybrid encoder's width)."""
        return next(iter((self.cctm or self.fine)[0].values())).shape[0]

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
    return cached(
        cache,
        lambda: ("fusion_maps", detector.content_hash, image_hash(image), input_size),
        lambda: _recorded_maps(detector, image, input_size=input_size),
    )


def _recorded_maps(detector: Detector, image: np.ndarray, *, input_size: int | None) -> FusionMaps:
    inputs, _ = prepare_inputs(detector, [image], input_size=input_size)

    def forward() -> dict:
        with torch.no_grad(), record_maps(detector.model) as recorded:
            detector.model(**inputs)
        return recorded

    recorded = run_model_work(detector.lock, forward)
    levels = sorted(k for k in recorded if k.startswith("cctm"))
    fusions = sorted(k for k in recorded if k.startswith("fine"))
    return FusionMaps(
        cctm=tuple({n: recorded[k][n][0].float().numpy() for n in CCTM_MAPS} for k in levels),
        fine=tuple({n: recorded[k][n][0].float().numpy() for n in FINE_MAPS} for k in fusions),
        input_hw=tuple(inputs["pixel_values"].shape[-2:]),
    )
