"""One check for every COCO input (evaluate, benchmark, errors, acs, train, the app's upload).

`check_coco` refuses, with a sentence naming ids and counts, what cannot be used (no `images`,
repeated image or category ids, ...), and returns the usable rest with one notice per kind of
annotation it dropped or changed (unknown image or category, missing or non-positive box,
box outside its image: clipped). Nothing is dropped without saying how many and why.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

from sodviz.notices import name_some

REQUIRED_LISTS = ("images", "annotations", "categories")
_ORPHAN = "image_id not in 'images'"
_NO_CATEGORY = "category_id not in 'categories'"


@dataclass(frozen=True, slots=True)
class CocoCheck:
    """A COCO dataset dict that is safe to use, and what was done to get it.

    Attributes:
        coco: the dataset with only usable annotations (boxes clipped to their image where the
            image has `width` / `height`; ids assigned where missing or repeated).
        notices: one sentence per kind of change, with counts and the ids involved.
        dropped: number of annotations left out.
        clipped: number of boxes clipped to their image.
    """

    coco: dict
    notices: tuple[str, ...]
    dropped: int
    clipped: int


def check_coco(
    coco: object, *, source: str = "the annotations", need_files: bool = True, require_objects: bool = True
) -> CocoCheck:
    """Validate a COCO-format dict; see the module docstring.

    Args:
        coco: the parsed JSON.
        source: how to name the input in sentences (a path or "the uploaded annotations").
        need_files: every image needs a `file_name` (datasets read images by it).
        require_objects: refuse a dataset with no usable annotation (AP needs objects).

    Raises:
        ValueError: the input cannot be used; the message says why, naming ids.
    """
    if not isinstance(coco, dict):
        raise ValueError(
            f"{source} is not COCO format: the top level must be an object, got {type(coco).__name__}."
        )
    missing = [key for key in REQUIRED_LISTS if not isinstance(coco.get(key), list)]
    if missing:
        raise ValueError(
            f"{source} is not COCO format: {' and '.join(repr(k) for k in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing or not a list "
            "(COCO needs 'images', 'annotations' and 'categories')."
        )
    images = _check_images(coco["images"], source, need_files=need_files)
    categories = _check_categories(coco["categories"], source)
    annotations, notices, dropped, clipped = _check_annotations(coco["annotations"], images, categories)
    if not coco["annotations"] and require_objects:
        raise ValueError(f"{source} annotates no objects ('annotations' is empty); AP needs ground truth.")
    if not annotations and require_objects:
        raise ValueError(f"{source} has no usable annotation: " + " ".join(notices))
    crowd = [a.get("id") for a in annotations if a.get("iscrowd", 0) == 1]
    if crowd and len(crowd) == len(annotations) and require_objects:
        raise ValueError(
            f"{source}: all {len(crowd)} usable annotations are crowd regions (iscrowd 1), which AP ignores."
        )
    if crowd:
        notices.append(
            f"{len(crowd)} annotation{'s are crowd regions' if len(crowd) > 1 else ' is a crowd region'} "
            f"(iscrowd 1), ignored by AP as in COCO: annotation ids {name_some(crowd)}."
        )
    if not coco["annotations"]:
        notices.append(f"{source} annotates no objects; every detection counts as a false positive.")
    cleaned = coco | {"annotations": annotations}
    return CocoCheck(coco=cleaned, notices=tuple(notices), dropped=dropped, clipped=clipped)


def _check_images(images: list, source: str, *, need_files: bool) -> dict:
    """Image id -> image record; raises on entries that cannot be used."""
    bad = [i for i, image in enumerate(images) if not isinstance(image, dict) or "id" not in image]
    if bad:
        raise ValueError(f"{source}: images at positions {name_some(bad)} have no 'id'.")
    odd = [i for i, image in enumerate(images) if not _id_like(image["id"])]
    kinds = {type(_key(image["id"])) for image in images if _id_like(image["id"])}
    if len(kinds) > 1:
        raise ValueError(f"{source}: image ids mix integers and strings; use one kind.")
    if odd:
        raise ValueError(
            f"{source}: images at positions {name_some(odd)} have an 'id' that is not a number or a string."
        )
    if need_files:
        nameless = [image["id"] for image in images if not isinstance(image.get("file_name"), str)]
        if nameless:
            raise ValueError(f"{source}: images {name_some(nameless)} have no 'file_name'.")
    repeated = [key for key, n in Counter(_key(image["id"]) for image in images).items() if n > 1]
    if repeated:
        raise ValueError(f"{source}: image ids {name_some(repeated)} are used by more than one image.")
    return {_key(image["id"]): image for image in images}


def _check_categories(categories: list, source: str) -> set:
    bad = [
        i for i, category in enumerate(categories) if not isinstance(category, dict) or "id" not in category
    ]
    if bad:
        raise ValueError(f"{source}: categories at positions {name_some(bad)} have no 'id'.")
    if not all(_id_like(c["id"]) and not isinstance(c["id"], str) for c in categories):
        raise ValueError(
            f"{source}: category ids must be integers; got "
            f"{name_some(sorted({repr(c['id']) for c in categories}))}."
        )
    repeated = [key for key, n in Counter(_key(c["id"]) for c in categories).items() if n > 1]
    if repeated:
        raise ValueError(f"{source}: category ids {name_some(repeated)} are used by more than one category.")
    return {_key(category["id"]) for category in categories}


def _check_annotations(annotations: list, images: dict, categories: set) -> tuple[list, list[str], int, int]:
    """The usable annotations (copies), a notice per kind of problem, and the drop / clip counts."""
    reasons: dict[str, list] = defaultdict(list)  # reason -> annotation labels
    kept, clipped = [], []
    unknown_images, unknown_categories = set(), set()
    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            reasons["not a JSON object"].append(f"#{position}")
            continue
        label = annotation.get("id", f"#{position}")
        image = images.get(_key(annotation.get("image_id")))
        if image is None:
            reasons[_ORPHAN].append(label)
            unknown_images.add(str(annotation.get("image_id")))
            continue
        if _key(annotation.get("category_id")) not in categories:
            reasons[_NO_CATEGORY].append(label)
            unknown_categories.add(str(annotation.get("category_id")))
            continue
        if annotation.get("iscrowd", 0) not in (0, 1):  # also False / True
            reasons["iscrowd not 0 or 1"].append(label)
            continue
        box = _box(annotation.get("bbox"))
        if box is None:
            reasons["no bbox of four finite numbers [x, y, w, h]"].append(label)
            continue
        if box[2] <= 0 or box[3] <= 0:
            reasons["box width or height not positive"].append(label)
            continue
        inside = _clip(box, image)
        if inside is None:
            reasons["box entirely outside its image"].append(label)
            continue
        if inside != box:
            clipped.append(label)
        kept.append(annotation | {"bbox": inside})
    details = {
        _ORPHAN: f"; image ids {name_some(sorted(unknown_images))}",
        _NO_CATEGORY: f"; category ids {name_some(sorted(unknown_categories))}",
    }
    notices = [
        f"{len(labels)} annotation{'s' if len(labels) > 1 else ''} left out ({reason}): "
        f"annotation ids {name_some(labels)}{details.get(reason, '')}."
        for reason, labels in reasons.items()
    ]
    if clipped:
        notices.append(
            f"{len(clipped)} box{'es' if len(clipped) > 1 else ''} clipped to the image "
            f"(reaching outside it): annotation ids {name_some(clipped)}."
        )
    kept, renumbered = _unique_ids(kept)
    if renumbered:
        notices.append(renumbered)
    return kept, notices, sum(len(v) for v in reasons.values()), len(clipped)


def _unique_ids(annotations: list[dict]) -> tuple[list[dict], str | None]:
    """Annotations with unique ids (pycocotools indexes by id: a repeat would hide an object)."""
    ids = [a.get("id") for a in annotations]
    # pycocotools matches annotation ids as positive numbers: 0 reads as "unmatched"
    odd = [i for i in ids if i is not None and not (_id_like(i) and not isinstance(i, str) and _key(i) > 0)]
    counts = Counter(_key(i) for i in ids if i is not None and i not in odd)
    repeated = [key for key, n in counts.items() if n > 1]
    missing = sum(i is None for i in ids)
    if not repeated and not missing and not odd:
        return annotations, None
    renumbered = [a | {"id": n} for n, a in enumerate(annotations, start=1)]
    why = []
    if repeated:
        why.append(f"ids {name_some(repeated)} repeat")
    if missing:
        why.append(f"{missing} have no id")
    if odd:
        why.append(f"ids {name_some(map(repr, odd))} are not positive integers")
    return renumbered, f"annotations renumbered 1..{len(renumbered)}: {' and '.join(why)}."


def _id_like(value) -> bool:
    """An id pycocotools can index and sort: an integer (or integral float) or a string."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int | str) or (isinstance(value, float) and value.is_integer())


def _box(value) -> list[float] | None:
    if not isinstance(value, list | tuple) or len(value) != 4 or any(isinstance(v, bool) for v in value):
        return None
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return box if all(math.isfinite(v) for v in box) else None


def _clip(box: list[float], image: dict) -> list[float] | None:
    """The box clipped to the image when it has a size; None when nothing is left inside."""
    width, height = image.get("width"), image.get("height")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        return box
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
    if x1 <= x0 or y1 <= y0:
        return None
    return (
        box
        if (x0, y0, x1, y1) == (box[0], box[1], box[0] + box[2], box[1] + box[3])
        else [x0, y0, x1 - x0, y1 - y0]
    )


def _key(value):
    """Ids compared as COCO files write them (1 and 1.0 are the same image; '1' is not); an id
    that is no number or string (a list, an object) matches nothing."""
    if not _id_like(value):
        return _UNUSABLE
    return int(value) if isinstance(value, float) else value


_UNUSABLE = object()
