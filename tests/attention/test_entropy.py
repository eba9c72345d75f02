"""Every entropy from one formula: of maps, of a whole map (the gate), of distributions."""

from __future__ import annotations

import numpy as np
import pytest

from sodviz.attention.entropy import attention_entropy, distribution_entropy, map_entropy


def test_map_entropy_bounds():
    assert map_entropy(np.ones((4, 4))) == pytest.approx(1.0)
    assert map_entropy(np.eye(4)[:1]) == 0.0
    assert map_entropy(np.zeros((4, 4))) == 0.0


@pytest.mark.parametrize(
    ("weights", "nats", "normalised"),
    [
        ([1, 1, 0, 0], np.log(2), 0.5),  # two of four cells
        ([3, 0, 0], 0.0, 0.0),  # one cell
        ([0, 0], 0.0, 0.0),  # no mass
        ([5], 0.0, 0.0),  # a single cell cannot be normalised: 0
    ],
)
def test_distribution_entropy(weights, nats, normalised):
    assert distribution_entropy(np.array(weights, float)) == pytest.approx(nats)
    assert distribution_entropy(np.array(weights, float), normalize=True) == pytest.approx(normalised)


def test_map_and_distribution_entropy_agree():
    rng = np.random.default_rng(1)
    maps = rng.random((3, 4, 5))
    np.testing.assert_allclose(
        attention_entropy(maps, normalize=True),
        distribution_entropy(maps.reshape(3, -1), normalize=True),
        rtol=1e-6,
    )
