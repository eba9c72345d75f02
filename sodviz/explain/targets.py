"""What an instance map explains: one query's score for one class, and its box.

A detection is explained through its own query; a missed ground-truth object through its
nearest query (the highest IoU, as `analysis.errors.miss_types` says), for the object's class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sodviz.boxes import overlap_matrix
from sodviz.types import InferenceResult


@dataclass(frozen=True, slots=True)
class ExplainTarget:
    """One query, one class, and the box whose detection is followed.

    Attributes:
        query_index: the query explained.
        class_id: the class whose score is explained (an index into the detector's classes).
        box_xyxy: float64 `(4,)` original pixels: the query's box for a detection, the object's
            for a missed object (deletion and insertion follow the detection matching it).
        missed: the target is a missed object seen through its nearest query.
    """

    query_index: int
    class_id: int
    box_xyxy: np.ndarray
    missed: bool = False

    def __post_init__(self) -> None:
        if self.query_index < 0 or self.class_id < 0:
            raise ValueError("a target needs a query and a class (non-negative indices)")


def detection_target(result: InferenceResult, query_index: int, class_id: int | None = None) -> ExplainTarget:
    """A detection: its query, its best class unless another is given, its box."""
    if not 0 <= query_index < len(result.boxes_xyxy):
        raise ValueError(f"query {query_index} does not exist (the model has {len(result.boxes_xyxy)})")
    label = int(result.labels[query_index]) if class_id is None else int(class_id)
    return ExplainTarget(int(query_index), label, result.boxes_xyxy[query_index].astype(np.float64))


def missed_target(result: InferenceResult, box_xyxy, class_id: int | None = None) -> ExplainTarget:
    """A missed object: the query whose box overlaps it most, for the object's class (its
    nearest query's best class when the class is not one of the model's)."""
    box = np.asarray(box_xyxy, np.float64).reshape(4)
    iou = overlap_matrix(box[None], result.boxes_xyxy.astype(np.float64))[0]
    query = int(iou.argmax())
    label = int(result.labels[query]) if class_id is None else int(class_id)
    return ExplainTarget(query, label, box, missed=True)


@dataclass(frozen=True, slots=True)
class InstanceMaps:
    """What one method says drives one target: one or more maps over the original image.

    Attributes:
        method: "attention", "odam", "drise", "relevance" or "random".
        names: what each map explains ("score", "x0", "y0", "x1", "y1" for ODAM; "score" else).
        maps: float32 `(len(names), H, W)`, non-negative, in the map's own units (not normalised).
        seconds: what computing them took.
        note: how they were made (the feature map, the masks), for captions.
    """

    method: str
    names: tuple[str, ...]
    maps: np.ndarray
    seconds: float = 0.0
    note: str = ""

    def __post_init__(self) -> None:
        if self.maps.ndim != 3 or len(self.maps) != len(self.names):
            raise ValueError(f"maps must be (len(names), H, W), got {self.maps.shape} for {self.names}")

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        return int(self.maps.nbytes)

    def map(self, name: str = "score") -> np.ndarray:
        """The `(H, W)` map explaining `name`."""
        if name not in self.names:
            raise ValueError(f"{self.method} has maps for {self.names}, not {name!r}")
        return self.maps[self.names.index(name)]
