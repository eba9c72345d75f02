"""The ERF of AATS tokens."""

from __future__ import annotations

import numpy as np
import pytest

from sodviz.erf.aats import aats_erf


def test_aats_tokens_see_wider_as_r_grows_and_ignore_the_modulation(tiny_module_detector, tiny_detectors):
    image = np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    erf = aats_erf(tiny_module_detector, image, input_size=128)
    assert erf.stages == ("aats_r1", "aats_r2", "aats_r4")
    assert list(erf.strides) == [16, 32, 64]  # the stride-8 fusion's F_low pooled by r * k, k = 2
    assert np.allclose(erf.maps.sum(axis=(1, 2)), 1)
    assert np.all(np.diff(erf.sigmas) > 0)
    # the same weights without modules: the same F_low
    plain = aats_erf(tiny_detectors["rt_detr"], image, input_size=128)
    np.testing.assert_allclose(plain.maps, erf.maps, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="fusion 2"):
        aats_erf(tiny_module_detector, image, fusion=2)
