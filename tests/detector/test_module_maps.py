"""Module maps for display: recorded CCTM / FINE maps, channel reductions, AATS-token ERFs, class
score against object size and the CS curve, and what the page draws from them."""

from __future__ import annotations

import pytest

from sodviz.detector.module_maps import CCTM_MAPS, FINE_MAPS, fusion_maps


def test_fusion_maps_of_every_level_and_fusion(tiny_module_detector, image):
    maps = fusion_maps(tiny_module_detector, image, cache=None)
    assert len(maps.cctm) == 3 and len(maps.fine) == 2
    assert [m["gate"].shape[-1] for m in maps.cctm] == [12, 6, 3]  # 96 px input, strides 8 to 32
    assert all(set(m) == set(CCTM_MAPS) for m in maps.cctm) and all(
        set(m) == set(FINE_MAPS) for m in maps.fine
    )
    assert maps.fine[1]["M"].shape == maps.fine[1]["F_low"].shape == maps.cctm[0]["E"].shape
    assert maps.nbytes > 0 and maps.input_hw == (96, 96)


def test_fusion_maps_need_modules(tiny_detectors, image):
    with pytest.raises(ValueError, match="no CCTM / FINE"):
        fusion_maps(tiny_detectors["rt_detr"], image, cache=None)
