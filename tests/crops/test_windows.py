"""Window saliency and Spatial Attention Entropy: invariants, a brute-force check, image attention modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sodviz.attention.maps import image_attention
from sodviz.crops.windows import score_windows, sliding_windows
from sodviz.detector.inference import run_inference


def _all_windows(grid=(8, 12)):
    return sliding_windows(grid, scales=(0.25, 0.5, 1.0), overlap=0.5)


def test_uniform_attention_has_maximal_entropy_everywhere():
    cells, scale = _all_windows()
    scores = score_windows(np.ones((8, 12)), cells, scale)
    np.testing.assert_allclose(scores.entropy[scores.intensity > 0], 1.0, atol=1e-6)
    count = (cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1])
    np.testing.assert_allclose(scores.intensity, count / 96, atol=1e-6)


def test_window_entropy_is_normalised_and_the_joint_score_weights_each_term_by_its_exponent():
    """Hand-worked windows of a 1 x 8 map with three equal cells; alpha != beta, so a swap shows."""
    heat = np.array([[1.0, 1, 1, 0, 0, 0, 0, 0]])
    cells = np.array([[0, 0, 1, 4], [0, 1, 1, 3], [0, 2, 1, 6], [0, 0, 1, 8]])
    scores = score_windows(heat, cells, np.ones(4, np.float32), alpha=2.0, beta=1.0)
    # entropy of the attention inside / log(cells): 3 of 4 cells, 2 of 2, 1 of 4, 3 of 8
    entropy = [math.log(3) / math.log(4), 1.0, 0.0, math.log(3) / math.log(8)]
    intensity = [1.0, 2 / 3, 1 / 3, 1.0]
    np.testing.assert_allclose(scores.entropy, entropy, atol=1e-6)
    np.testing.assert_allclose(scores.intensity, intensity, atol=1e-6)
    np.testing.assert_allclose(scores.score, np.square(entropy) * np.array(intensity), atol=1e-6)


def test_one_hot_attention_has_zero_entropy_and_all_mass_where_it_is():
    heat = np.zeros((8, 12))
    heat[3, 7] = 5.0
    cells, scale = _all_windows()
    scores = score_windows(heat, cells, scale)
    inside = (cells[:, 0] <= 3) & (cells[:, 2] > 3) & (cells[:, 1] <= 7) & (cells[:, 3] > 7)
    np.testing.assert_allclose(scores.entropy, 0.0, atol=1e-9)
    np.testing.assert_allclose(scores.intensity, inside.astype(float), atol=1e-9)
    assert (scores.score == 0).all()  # certain everywhere: nothing ambiguous to look at again


def test_scores_follow_the_windows_under_permutation():
    rng = np.random.default_rng(0)
    heat = rng.random((8, 12))
    cells, scale = _all_windows()
    permutation = rng.permutation(len(cells))
    direct = score_windows(heat, cells, scale, alpha=0.5, beta=2.0)
    permuted = score_windows(heat, cells[permutation], scale[permutation], alpha=0.5, beta=2.0)
    for field in ("intensity", "entropy", "score", "scale"):
        np.testing.assert_allclose(getattr(permuted, field), getattr(direct, field)[permutation], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 9),
    st.integers(2, 9),
    st.floats(0.2, 1.0),
    st.floats(0.0, 0.9),
    st.integers(0, 2**31 - 1),
)
def test_summed_area_scores_equal_brute_force(height, width, scale, overlap, seed):
    rng = np.random.default_rng(seed)
    heat = rng.random((height, width)) * (rng.random((height, width)) < 0.6)
    cells, scales = sliding_windows((height, width), scales=(scale,), overlap=overlap)
    scores = score_windows(heat, cells, scales, alpha=1.5, beta=0.5)
    total = heat.sum()
    for (r0, c0, r1, c1), intensity, entropy in zip(cells, scores.intensity, scores.entropy, strict=True):
        window = heat[r0:r1, c0:c1]
        mass = window.sum()
        assert intensity == pytest.approx(mass / total if total else 0.0, abs=1e-5)
        if mass > 0 and window.size > 1:
            q = window[window > 0] / mass
            assert entropy == pytest.approx(-(q * np.log(q)).sum() / math.log(window.size), abs=1e-5)
        else:
            assert entropy == 0.0


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.75])
def test_sliding_windows_cover_the_grid_and_stay_inside(overlap):
    cells, scale = sliding_windows((10, 17), scales=(0.3, 0.6), overlap=overlap)
    assert (cells[:, :2] >= 0).all() and (cells[:, 2] <= 10).all() and (cells[:, 3] <= 17).all()
    for value in (0.3, 0.6):
        covered = np.zeros((10, 17), bool)
        for r0, c0, r1, c1 in cells[scale == np.float32(value)]:
            covered[r0:r1, c0:c1] = True
        assert covered.all()
    with pytest.raises(ValueError, match="overlap"):
        sliding_windows((10, 10), overlap=1.0)


def test_image_attention_modes(tiny_detectors, image):
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    everything = image_attention(result)
    assert everything.sum() == pytest.approx(1.0, abs=1e-4)
    nobody = image_attention(result, mode="uncertain", score_band=(2.0, 3.0))
    assert nobody.shape == everything.shape and not nobody.any()
    one = image_attention(result, mode="queries", queries=np.array([3]))
    assert one.sum() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="mode"):
        image_attention(result, mode="loud")
