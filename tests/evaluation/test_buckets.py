"""The size-bucket tables and the one `size_bucket`: each bound belongs to the bucket above it."""

from __future__ import annotations

import numpy as np
import pytest

from sodviz.evaluation.buckets import AITOD_BUCKETS, APP_BUCKETS, COCO_BUCKETS, bucket_masks, size_bucket


@pytest.mark.parametrize(
    ("buckets", "sizes", "names"),
    [
        # AI-TOD: just below and at each bound
        (AITOD_BUCKETS, [0, 7.99, 8, 15.99, 16, 31.99, 32, 1e6], ["vt", "vt", "t", "t", "s", "s", "m", "m"]),
        # COCO
        (COCO_BUCKETS, [31.99, 32, 95.99, 96], ["S", "M", "M", "L"]),
        # the app's display buckets
        (
            APP_BUCKETS,
            [15.99, 16, 31.99, 32, 95.99, 96],
            ["tiny", "small", "small", "medium", "medium", "large"],
        ),
        # the empty case
        (AITOD_BUCKETS, [], []),
    ],
)
def test_size_bucket(buckets, sizes, names):
    assert size_bucket(np.array(sizes), buckets).tolist() == names


def test_masks_partition_the_sizes():
    sizes = np.array([1.0, 8.0, 20.0, 50.0])
    masks = bucket_masks(sizes, AITOD_BUCKETS)
    assert np.sum(list(masks.values()), axis=0).tolist() == [1, 1, 1, 1]
    assert masks["t"].tolist() == [False, True, False, False]
