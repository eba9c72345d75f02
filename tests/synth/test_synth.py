"""The generated benchmark: deterministic, exact boxes on drawn pixels, loadable COCO files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from sodviz.synth.datasets import SPLIT_SEEDS, dataset_statistics, write_dataset
from sodviz.synth.scenes import CLASSES, SceneConfig, generate_scene

SMALL = SceneConfig(min_side=256, max_side=320)


def test_same_seed_same_scene():
    first, second = generate_scene(7, SMALL), generate_scene(7, SMALL)
    for a, b in zip(first, second, strict=True):
        assert a.tobytes() == b.tobytes()
    other = generate_scene(8, SMALL)
    assert other[0].shape != first[0].shape or other[0].tobytes() != first[0].tobytes()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_boxes_lie_inside_the_image_on_drawn_pixels(seed):
    config = SceneConfig(min_side=512, max_side=512)
    image, boxes, labels = generate_scene(seed, config)
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    assert len(boxes) > 10 and boxes.shape == (len(labels), 4)
    assert set(labels.tolist()) <= set(range(len(CLASSES)))
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 512).all() and (boxes[:, 3] <= 512).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) >= 2).all()
    # an object's box differs from the terrain around it: the box is on drawn pixels, not empty ground
    contrast = []
    for x0, y0, x1, y1 in boxes.astype(int):
        inside = image[y0:y1, x0:x1].reshape(-1, 3).astype(float)
        ring = image[max(y0 - 3, 0) : y1 + 3, max(x0 - 3, 0) : x1 + 3].reshape(-1, 3).astype(float)
        contrast.append(np.abs(inside.mean(0) - ring.mean(0)).max() + inside.std(0).max())
    assert np.median(contrast) > 10


def test_sizes_are_skewed_small():
    sizes = []
    for seed in range(4):
        _, boxes, _ = generate_scene(seed)
        sizes.append(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
    sizes = np.concatenate(sizes)
    assert (sizes < 16).mean() > 0.6  # most objects under 16 px
    assert sizes.max() > 48  # with a tail of larger ones


def test_written_dataset_loads_with_pycocotools(tmp_path):
    folder = write_dataset(tmp_path, "val", 3, config=SMALL)
    coco = COCO(str(folder / "annotations.json"))
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) > 0
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    first = coco.loadImgs(0)[0]
    assert first["seed"] == SPLIT_SEEDS["val"]
    assert (folder / "images" / first["file_name"]).is_file()
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["images"] == 3 and stats["objects"] == len(coco.getAnnIds())
    per_image = [len(coco.getAnnIds(imgIds=[i])) for i in coco.getImgIds()]
    assert stats["objects_per_image"]["min"] == min(per_image) > 0
    with pytest.raises(ValueError, match="split"):
        write_dataset(tmp_path, "holdout", 1)


def test_statistics_of_an_empty_dataset():
    stats = dataset_statistics(
        {"images": [], "annotations": [], "categories": [{"id": 0, "name": "vehicle"}]}
    )
    assert stats["objects"] == 0 and stats["median_size_px"] == 0.0


def test_fresh_scenes_come_from_seeds_no_other_split_uses(tmp_path):
    import json

    folder = write_dataset(tmp_path, "fresh", 1)
    seed = json.loads((folder / "annotations.json").read_text())["images"][0]["seed"]
    others = max(v for k, v in SPLIT_SEEDS.items() if k != "fresh")
    assert seed == SPLIT_SEEDS["fresh"] and seed > others + 640


def test_synth_leaves_a_split_asked_with_no_scenes_as_it_is(tmp_path, capsys):
    from sodviz.cli import main

    kept = tmp_path / "val" / "annotations.json"
    kept.parent.mkdir()
    kept.write_text('{"mine": true}')
    assert (
        main(["synth", "--out", str(tmp_path), "--train", "0", "--val", "0", "--test", "0", "--fresh", "1"])
        == 0
    )
    assert kept.read_text() == '{"mine": true}'
    assert not (tmp_path / "train").exists() and not (tmp_path / "test").exists()
    assert len(json.loads((tmp_path / "fresh" / "annotations.json").read_text())["images"]) == 1
