"""D-RISE (Petsiuk et al., CVPR 2021): black-box saliency of one detection from random masks.

Each of N masks is a random binary grid (`cells` x `cells`, each cell kept with probability
`keep`), upsampled bilinearly to a little more than the image and cut at a random offset, so
its edges are soft and fall anywhere. The masked copies (the image where the mask is 1, black
where 0, in the model's input space: `perturb.mix`) run through the detector in batches; each
mask is weighted by how strongly the masked copy still detects the target (`matched_response`),
and the saliency is the weighted mean of the masks. Seeded: the same seed gives the same map.
Batches of 4 by default: on the 2-core CPU bigger batches cost more per mask (58-67 ms a mask
at batches of 1-4, 102 ms at 16, 149 ms at 32; `benchmarks/bench_explain.py`, 2026-12-03).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from sodviz.detector.loading import Detector
from sodviz.explain.perturb import ModelInput, detect_copies, matched_response, mix, model_input
from sodviz.explain.targets import ExplainTarget, InstanceMaps


def random_masks(
    count: int, hw: tuple[int, int], *, cells: int = 16, keep: float = 0.5, seed: int = 0
) -> np.ndarray:
    """float32 `(count, h, w)` RISE masks in [0, 1] (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    height, width = hw
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    up_h, up_w = (cells + 1) * cell_h, (cells + 1) * cell_w
    masks = np.empty((count, height, width), np.float32)
    for i in range(count):
        grid = (rng.random((cells, cells)) < keep).astype(np.float32)
        big = cv2.resize(grid, (up_w, up_h), interpolation=cv2.INTER_LINEAR)
        dy, dx = int(rng.integers(0, cell_h)), int(rng.integers(0, cell_w))
        masks[i] = big[dy : dy + height, dx : dx + width]
    return masks


def drise_map(
    detector: Detector,
    image: np.ndarray,
    target: ExplainTarget,
    *,
    masks: int = 1000,
    cells: int = 16,
    keep: float = 0.5,
    seed: int = 0,
    batch_size: int = 4,
    input_size: int | None = None,
    base: ModelInput | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> InstanceMaps:
    """The D-RISE saliency of `target` from `masks` random masks (`base`: the image already
    preprocessed by `model_input`, to share it with other methods)."""
    if masks < 1:
        raise ValueError(f"D-RISE needs at least one mask, got {masks}")
    started = time.perf_counter()
    base = base or model_input(detector, image, input_size=input_size)
    grid = random_masks(masks, base.valid_hw, cells=cells, keep=keep, seed=seed)
    as_tensor = torch.from_numpy(grid)

    def copies(start: int, stop: int) -> torch.Tensor:
        return mix(base, as_tensor[start:stop], base.black)

    boxes, probabilities = detect_copies(
        detector, base, copies, masks, batch_size=batch_size, on_progress=on_progress
    )
    weights, _, _ = matched_response(boxes, probabilities, target)
    saliency = np.tensordot(weights.astype(np.float32), grid, axes=1) / masks
    height, width = base.transform.image_hw
    on_image = cv2.resize(saliency, (width, height), interpolation=cv2.INTER_LINEAR)
    seconds = time.perf_counter() - started
    note = f"{masks} masks of {cells}x{cells} cells kept at p={keep}, seed {seed}: {seconds:.1f} s"
    return InstanceMaps("drise", ("score",), np.maximum(on_image, 0)[None], seconds, note)
