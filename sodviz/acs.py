"""ACS for DETR-family detectors: candidate boxes per object, attention features per (layer, head),
their correlation with IoU, and candidate selection by attention entropy (ACS-Free) or by a
learned IoU regressor (ACS-Learned). After "Self-Improving Small Object Grounding in LVLMs"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv
from scipy import stats

from sodviz.types import DeformableAttention, InferenceResult

FEATURES = ("entropy", "mass", "spread")  # per (layer, head); see `query_features`


@dataclass(frozen=True, slots=True)
class Candidates:
    """Candidate boxes grouped by object, over one or more images.

    Attributes:
        object_index: int64 `(N,)`, the object each candidate proposes a box for: the index of its
            ground-truth box, or of its cluster (objects with no candidate do not appear).
        image_index: int64 `(N,)`, the image it comes from.
        query_index: int64 `(N,)`, its decoder query in that image's result.
        boxes_xyxy: float32 `(N, 4)`, original-image pixels.
        confidence: float32 `(N,)`, the query's best class score.
        iou: float32 `(N,)`, IoU with the object's ground-truth box (NaN without ground truth).
        object_size: float32 `(N,)`, sqrt area of the object's box in model-input pixels.
        features: float32 `(N, layers, heads, 3)`, `FEATURES` per (layer, head).
    """

    object_index: np.ndarray
    image_index: np.ndarray
    query_index: np.ndarray
    boxes_xyxy: np.ndarray
    confidence: np.ndarray
    iou: np.ndarray
    object_size: np.ndarray
    features: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.object_index)
        for name in ("image_index", "query_index", "confidence", "iou", "object_size"):
            if getattr(self, name).shape != (count,):
                raise ValueError(f"{name} must be ({count},), got {getattr(self, name).shape}")
        if self.boxes_xyxy.shape != (count, 4) or self.features.shape[0] != count or self.features.ndim != 4:
            raise ValueError(f"boxes (N, 4) and features (N, layers, heads, 3) for N = {count}")

    def __len__(self) -> int:
        return len(self.object_index)

    @property
    def num_objects(self) -> int:
        return int(self.object_index.max()) + 1 if len(self) else 0

    @staticmethod
    def concatenate(parts: list[Candidates], *, renumber: bool = True) -> Candidates:
        """One set from several; with `renumber`, object and image indices are offset to stay
        distinct (without, they are kept as they are)."""
        if not any(len(p) for p in parts):
            return parts[0] if parts else empty_candidates(layers=0, heads=0)
        parts = [p for p in parts if len(p)]
        objects = np.cumsum([0] + [p.num_objects for p in parts[:-1]]) * renumber
        images = np.cumsum([0] + [int(p.image_index.max()) + 1 for p in parts[:-1]]) * renumber
        return Candidates(
            object_index=np.concatenate([p.object_index + o for p, o in zip(parts, objects, strict=True)]),
            image_index=np.concatenate([p.image_index + i for p, i in zip(parts, images, strict=True)]),
            **{name: np.concatenate([getattr(p, name) for p in parts])
               for name in ("query_index", "boxes_xyxy", "confidence", "iou", "object_size", "features")},
        )  # fmt: skip


def empty_candidates(*, layers: int, heads: int) -> Candidates:
    index, value = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return Candidates(
        object_index=index,
        image_index=index,
        query_index=index,
        boxes_xyxy=np.zeros((0, 4), np.float32),
        confidence=value,
        iou=value,
        object_size=value,
        features=np.zeros((0, layers, heads, len(FEATURES)), np.float32),
    )


def query_features(result: InferenceResult, queries: np.ndarray) -> np.ndarray:
    """float32 `(N, layers, heads, 3)` for each query, per (layer, head), relative to its own box:

    - entropy: of the attention distribution (deformable: over its levels x points; dense: over
      the grid cells), divided by the log of their count, so 0 = one point, 1 = uniform;
    - mass: the share of the weight inside the query's box;
    - spread: the weighted standard deviation of the attended positions (sqrt of the summed x and
      y variances) divided by the box's sqrt area, both in model-input pixels.
    """
    queries = np.asarray(queries, np.int64)
    attention = result.attention
    if not len(queries):
        return np.zeros((0, attention.num_layers, attention.num_heads, len(FEATURES)), np.float32)
    input_h, input_w = result.transform.input_hw
    boxes = result.transform.image_to_input(result.boxes_xyxy[queries].astype(np.float64))  # [N, 4]
    if isinstance(attention, DeformableAttention):
        weights = attention.weights[:, queries].astype(np.float64)  # [L, N, H, levels, points]
        weights = weights.reshape(*weights.shape[:3], -1).transpose(1, 0, 2, 3)  # [N, L, H, S]
        xy = attention.locations[:, queries].astype(np.float64)
        xy = xy.reshape(*xy.shape[:3], -1, 2).transpose(1, 0, 2, 3, 4) * (input_w, input_h)  # [N, L, H, S, 2]
    else:
        layers, heads, _, grid_h, grid_w = attention.weights.shape
        weights = attention.weights[:, :, queries].astype(np.float64).reshape(layers, heads, len(queries), -1)
        weights = weights.transpose(2, 0, 1, 3)  # [N, L, H, S]
        rows = (np.arange(grid_h) + 0.5) * input_h / grid_h
        cols = (np.arange(grid_w) + 0.5) * input_w / grid_w
        ys, xs = np.meshgrid(rows, cols, indexing="ij")
        xy = np.broadcast_to(np.stack([xs.ravel(), ys.ravel()], -1), (*weights.shape, 2))
    total = np.maximum(weights.sum(-1, keepdims=True), 1e-12)
    p = weights / total
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(-1) / np.log(max(p.shape[-1], 2))
    b = boxes[:, None, None, None, :]
    inside = (
        (xy[..., 0] >= b[..., 0])
        & (xy[..., 0] <= b[..., 2])
        & (xy[..., 1] >= b[..., 1])
        & (xy[..., 1] <= b[..., 3])
    )
    mass = (p * inside).sum(-1)
    mean = (p[..., None] * xy).sum(-2, keepdims=True)
    spread = np.sqrt((p * ((xy - mean) ** 2).sum(-1)).sum(-1))
    size = np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6))
    spread = spread / size[:, None, None]
    return np.stack([entropy, mass, spread], axis=-1).astype(np.float32)


def candidates_for_objects(
    result: InferenceResult, objects_xyxy: np.ndarray | None = None, *, min_iou: float = 0.1,
    score_threshold: float = 0.3, image_index: int = 0,
) -> Candidates:  # fmt: skip
    """Every query whose box overlaps an object at `min_iou` or more, grouped by object.

    With `objects_xyxy` (ground truth, original pixels) each candidate carries its IoU to its
    object; a query overlapping several objects proposes for the one it overlaps most. Without,
    objects are clusters: detections above `score_threshold`, greedily by score, each taking the
    overlapping queries not yet taken (IoU is then NaN).
    """
    boxes = result.boxes_xyxy.astype(np.float32)
    scores = result.scores
    truth = objects_xyxy is not None
    if truth:
        objects = np.asarray(objects_xyxy, np.float32).reshape(-1, 4)
    else:
        kept = np.flatnonzero(scores >= score_threshold)
        objects = boxes[kept[np.argsort(-scores[kept], kind="stable")]]
    if not len(objects):
        layers, heads = _layers_heads(result)
        return empty_candidates(layers=layers, heads=heads)
    overlap = sv.box_iou_batch(objects, boxes)  # [objects, Q]
    owner = np.full(len(boxes), -1)
    if truth:
        best = overlap.argmax(axis=0)
        owner = np.where(overlap[best, np.arange(len(boxes))] >= min_iou, best, -1)
    else:
        for index in range(len(objects)):
            owner[(owner < 0) & (overlap[index] >= min_iou)] = index
    queries = np.flatnonzero(owner >= 0)
    queries = queries[np.lexsort((queries, owner[queries]))]
    object_index = owner[queries]
    scale = result.transform.length_scale
    sizes = np.sqrt(np.maximum((objects[:, 2] - objects[:, 0]) * (objects[:, 3] - objects[:, 1]), 0)) * scale
    iou = overlap[object_index, queries] if truth else np.full(len(queries), np.nan)
    return Candidates(
        object_index=object_index.astype(np.int64),
        image_index=np.full(len(queries), image_index, np.int64),
        query_index=queries.astype(np.int64),
        boxes_xyxy=boxes[queries],
        confidence=scores[queries].astype(np.float32),
        iou=np.asarray(iou, np.float32),
        object_size=sizes[object_index].astype(np.float32),
        features=query_features(result, queries),
    )


def _layers_heads(result: InferenceResult) -> tuple[int, int]:
    return result.attention.num_layers, result.attention.num_heads


def feature_correlations(candidates: Candidates, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Pearson and Spearman correlation of each (layer, head, feature) with IoU.

    Returns:
        {"pearson", "spearman"}: float64 `(layers, heads, 3)`; NaN where a feature is constant or
        fewer than three candidates are selected.
    """
    features, iou = candidates.features, candidates.iou
    if mask is not None:
        features, iou = features[mask], iou[mask]
    shape = features.shape[1:]
    flat = features.reshape(len(features), int(np.prod(shape))).astype(np.float64)
    pearson, spearman = np.full(flat.shape[1], np.nan), np.full(flat.shape[1], np.nan)
    if len(iou) >= 3 and np.ptp(iou) > 0:
        for column in range(flat.shape[1]):
            if np.ptp(flat[:, column]) > 0:
                pearson[column] = stats.pearsonr(flat[:, column], iou).statistic
                spearman[column] = stats.spearmanr(flat[:, column], iou).statistic
    return {"pearson": pearson.reshape(shape), "spearman": spearman.reshape(shape)}


def pick(candidates: Candidates, values: np.ndarray) -> np.ndarray:
    """Index of the chosen candidate for each object present (highest `values`; ties go to the
    higher confidence, then the lower query index), in order of object."""
    values = np.asarray(values, np.float64)
    if values.shape != (len(candidates),):
        raise ValueError(f"values must be ({len(candidates)},), got {values.shape}")
    order = np.lexsort((candidates.query_index, -candidates.confidence, -values, candidates.object_index))
    objects = candidates.object_index[order]
    first = np.ones(len(order), bool)
    first[1:] = objects[1:] != objects[:-1]
    return order[first]


def discriminative_heads(correlations: dict[str, np.ndarray], *, top: int = 4) -> tuple[tuple[int, int], ...]:
    """The (layer, head) pairs whose attention entropy correlates most negatively with IoU (Pearson),
    best first: the heads ACS-Free reads."""
    entropy = correlations["pearson"][..., FEATURES.index("entropy")]
    order = np.argsort(np.where(np.isnan(entropy), np.inf, entropy), axis=None, kind="stable")[:top]
    return tuple(
        (int(layer), int(head)) for layer, head in zip(*np.unravel_index(order, entropy.shape), strict=True)
    )


def free_scores(candidates: Candidates, heads: tuple[tuple[int, int], ...]) -> np.ndarray:
    """ACS-Free: minus the mean attention entropy on `heads` (higher = more focused = chosen)."""
    if not heads:
        raise ValueError("ACS-Free needs at least one (layer, head)")
    layers, chosen = zip(*heads, strict=True)
    return -candidates.features[:, list(layers), list(chosen), FEATURES.index("entropy")].mean(axis=1)


class IouRegressor:
    """ACS-Learned: ridge regression (scikit-learn, standardised inputs) from every (layer, head)
    feature to a candidate's IoU. Deterministic for the same data."""

    def __init__(self, alpha: float = 10.0) -> None:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))

    def fit(self, candidates: Candidates) -> IouRegressor:
        if len(candidates) < 2 or np.isnan(candidates.iou).any():
            raise ValueError("fitting needs at least two candidates with ground-truth IoU")
        self.model.fit(_design(candidates.features), candidates.iou)
        return self

    def predict(self, candidates: Candidates) -> np.ndarray:
        """float64 `(N,)` predicted IoU."""
        return self.predict_features(candidates.features)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """float64 `(N,)` predicted IoU of `(N, layers, heads, 3)` features (`query_features`)."""
        if not len(features):
            return np.zeros(0)
        return self.model.predict(_design(features))


def _design(features: np.ndarray) -> np.ndarray:
    """`(N, layers, heads, 3)` -> float64 `(N, layers * heads * 3)`."""
    return features.reshape(len(features), -1).astype(np.float64)


@dataclass(frozen=True)
class FittedAcs:
    """ACS fitted on labelled candidates: ACS-Free's heads, ACS-Learned's regressor, and the data."""

    heads: tuple[tuple[int, int], ...]
    regressor: IouRegressor
    correlations: dict[str, np.ndarray]  # see `feature_correlations`
    candidates: Candidates

    @property
    def nbytes(self) -> int:  # for `InferenceCache`
        return int(self.candidates.features.nbytes + self.candidates.boxes_xyxy.nbytes)


def fit_selectors(candidates: Candidates, *, top_heads: int = 4) -> FittedAcs:
    """ACS-Free's heads and ACS-Learned's regressor from candidates with ground-truth IoU. Raises
    ValueError with fewer than three candidates."""
    if len(candidates) < 3:
        raise ValueError(f"only {len(candidates)} candidate boxes overlap a labelled object: nothing to fit")
    correlations = feature_correlations(candidates)
    heads = discriminative_heads(correlations, top=top_heads)
    return FittedAcs(heads, IouRegressor().fit(candidates), correlations, candidates)


def selection_rows(
    candidates: Candidates, choices: dict[str, np.ndarray], buckets: dict[str, tuple]
) -> list[dict]:
    """Mean IoU and accuracy at IoU 0.5 of each method's chosen candidates, per object-size bucket
    (model-input pixels) and overall ("all")."""
    rows = []
    for method, chosen in choices.items():
        iou, size = candidates.iou[chosen], candidates.object_size[chosen]
        for bucket, (low, high) in [("all", (0, np.inf)), *buckets.items()]:
            mask = (size >= low) & (size < high)
            rows.append({
                "method": method, "bucket": bucket, "objects": int(mask.sum()),
                "mean_iou": float(iou[mask].mean()) if mask.any() else float("nan"),
                "acc50": float((iou[mask] >= 0.5).mean()) if mask.any() else float("nan"),
            })  # fmt: skip
    return rows
