"""`check_coco`: what cannot be used is refused with ids named; what is left out is counted and said."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from sodviz.evaluation.coco import load_coco
from sodviz.evaluation.ground_truth import parse_annotations
from sodviz.evaluation.validation import check_coco
from sodviz.notices import DataNotice


def _dataset() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
            {"id": 2, "file_name": "b.jpg", "width": 60, "height": 60},
        ],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
        "annotations": [
            {"id": 10 + i, "image_id": 1 + i % 2, "category_id": 1 + i % 2, "bbox": [5 + i, 5, 10, 8]}
            for i in range(6)
        ],
    }


def test_a_clean_dataset_passes_unchanged_and_silent():
    coco = _dataset()
    check = check_coco(copy.deepcopy(coco))
    assert check.coco == coco and check.notices == () and check.dropped == check.clipped == 0


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (lambda c: c.pop("images"), "'images' is missing"),
        (lambda c: c.pop("categories"), "'categories' is missing"),
        (lambda c: c.__setitem__("annotations", {}), "'annotations' is missing or not a list"),
        (lambda c: c["images"][1].pop("id"), "images at positions 1 have no 'id'"),
        (lambda c: c["images"][0].pop("file_name"), "images 1 have no 'file_name'"),
        (lambda c: c["images"][1].__setitem__("id", 1), "image ids 1 are used by more than one image"),
        (lambda c: c["categories"][1].__setitem__("id", 1), "category ids 1 are used by more than one"),
        (lambda c: c.__setitem__("annotations", []), "annotates no objects"),
        (lambda c: [a.__setitem__("bbox", [0, 0, -1, 3]) for a in c["annotations"]], "no usable annotation"),
    ],
)
def test_what_cannot_be_used_is_refused_with_a_sentence(breaks, message):
    coco = _dataset()
    breaks(coco)
    with pytest.raises(ValueError, match=message):
        check_coco(coco, source="data.json")


@pytest.mark.parametrize(
    ("position", "change", "reason"),
    [
        (0, {"image_id": 99}, "image_id not in 'images'): annotation ids 10; image ids 99"),
        (1, {"bbox": None}, "no bbox of four finite numbers"),
        (2, {"bbox": [1, 1, -4, 3]}, "box width or height not positive"),
        (3, {"bbox": [1, 1, float("nan"), 3]}, "no bbox of four finite numbers"),
        (4, {"category_id": 42}, "category_id not in 'categories'): annotation ids 14; category ids 42"),
        (5, {"bbox": [70, 70, 5, 5]}, "box entirely outside its image"),  # image 2 is 60x60
    ],
)
def test_each_unusable_annotation_is_left_out_counted_and_named(position, change, reason):
    coco = _dataset()
    coco["annotations"][position] |= change
    if change.get("bbox", 0) is None:
        del coco["annotations"][position]["bbox"]
    check = check_coco(coco)
    assert check.dropped == 1 and len(check.coco["annotations"]) == 5
    assert len(check.notices) == 1 and check.notices[0].startswith("1 annotation left out")
    assert reason in check.notices[0]
    assert 10 + position not in [a["id"] for a in check.coco["annotations"]]


def test_boxes_reaching_outside_their_image_are_clipped_and_counted():
    coco = _dataset()
    coco["annotations"][0]["bbox"] = [-5, 70, 20, 30]  # image 1 is 100x80
    check = check_coco(coco)
    assert check.clipped == 1 and check.dropped == 0
    assert check.coco["annotations"][0]["bbox"] == [0.0, 70.0, 15.0, 10.0]
    assert check.notices == ("1 box clipped to the image (reaching outside it): annotation ids 10.",)


def test_repeated_or_missing_annotation_ids_are_renumbered_so_no_object_hides_another():
    coco = _dataset()
    coco["annotations"][1]["id"] = 10
    del coco["annotations"][2]["id"]
    check = check_coco(coco)
    assert [a["id"] for a in check.coco["annotations"]] == [1, 2, 3, 4, 5, 6]
    assert "ids 10 repeat" in check.notices[0] and "1 have no id" in check.notices[0]


def test_load_coco_warns_each_notice_and_returns_the_usable_rest(tmp_path):
    coco = _dataset()
    coco["annotations"][0]["image_id"] = 7
    path = tmp_path / "data.json"
    path.write_text(json.dumps(coco))
    with pytest.warns(DataNotice, match="image ids 7"):
        loaded = load_coco(path)
    assert len(loaded["annotations"]) == 5


def test_an_uploaded_file_gets_the_same_check_and_keeps_its_notices():
    coco = _dataset()
    coco["images"] = coco["images"][:1]
    coco["annotations"][0]["bbox"] = [90, 70, 20, 20]  # clipped to 100x80
    truth = parse_annotations(json.dumps(coco).encode(), scale=0.5)
    assert "image_id not in 'images'" in truth.notices[0] and "clipped" in truth.notices[1]
    np.testing.assert_allclose(truth.boxes_xyxy[0], [45, 35, 50, 40])
    with pytest.raises(ValueError, match="'categories' is missing"):
        parse_annotations(json.dumps({"images": [], "annotations": []}).encode())


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (lambda c: c["images"][0].__setitem__("id", [1]), "not a number or a string"),
        (lambda c: c["categories"][1].__setitem__("id", "2"), "category ids must be integers"),
        (lambda c: c["images"][1].__setitem__("id", "b"), "image ids mix integers and strings"),
        (lambda c: [a.__setitem__("iscrowd", 1) for a in c["annotations"]], "are crowd regions"),
    ],
)
def test_ids_pycocotools_cannot_use_and_all_crowd_data_are_refused(breaks, message):
    coco = _dataset()
    breaks(coco)
    with pytest.raises(ValueError, match=message):
        check_coco(coco)


def test_odd_annotation_fields_are_said_not_crashed_on():
    coco = _dataset()
    coco["annotations"][0]["iscrowd"] = "yes"
    coco["annotations"][1]["bbox"] = [True, 1, 2, 3]
    coco["annotations"][2]["iscrowd"] = 1
    for annotation in coco["annotations"]:
        annotation["id"] = f"a{annotation['id']}"
    check = check_coco(coco)
    assert len(check.coco["annotations"]) == 4 and check.dropped == 2
    said = " ".join(check.notices)
    assert "(iscrowd not 0 or 1): annotation ids a10" in said and "(no bbox" in said
    assert "1 annotation is a crowd region (iscrowd 1)" in said and "are not positive integers" in said
    assert [a["id"] for a in check.coco["annotations"]] == [1, 2, 3, 4]


def test_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "data.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_dataset()).encode())
    assert len(load_coco(path)["annotations"]) == 6
    assert (
        len(
            parse_annotations(
                b"\xef\xbb\xbf" + json.dumps(_dataset() | {"images": _dataset()["images"][:1]}).encode()
            )
        )
        == 3
    )


def test_annotation_id_zero_and_unhashable_ids_are_renumbered_or_left_out_not_crashed_on():
    coco = _dataset()
    coco["annotations"][0]["id"] = 0  # pycocotools reads a match to id 0 as "unmatched"
    coco["annotations"][1]["id"] = [5]
    coco["annotations"][2]["image_id"] = [1]
    coco["annotations"][3]["category_id"] = {"id": 1}
    check = check_coco(coco)
    assert [a["id"] for a in check.coco["annotations"]] == [1, 2, 3, 4]
    said = " ".join(check.notices)
    assert "(image_id not in 'images')" in said and "(category_id not in 'categories')" in said
    assert "ids 0, [5] are not positive integers" in said


def test_crowd_regions_count_nowhere_and_annotation_id_zero_scores_right():
    from sodviz.evaluation.coco import coco_metrics, match_detections

    coco = _dataset()
    coco["annotations"] = coco["annotations"][:2]
    coco["annotations"][0]["id"] = 0
    crowd = coco["annotations"][1] | {"id": 9, "iscrowd": 1, "bbox": [30, 30, 20, 20]}
    coco["annotations"].append(crowd)
    clean = check_coco(coco).coco
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in clean["annotations"][:2]
    ]
    assert coco_metrics(clean, perfect)["AP50"] == pytest.approx(1.0)
    counts, pairs = match_detections(clean, perfect, score_threshold=0.0)
    assert (
        sum(c["tp"] for c in counts.values()) == 2 == len(pairs)
        and sum(c["fp"] for c in counts.values()) == 0
    )
    missed, _ = match_detections(clean, [], score_threshold=0.0)
    assert sum(c["fn"] for c in missed.values()) == 2  # the crowd region is not a missed object
