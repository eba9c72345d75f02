"""ACS for DETR-family detectors: the correlation of each (layer, head)'s attention features with a
candidate box's IoU, and candidate selection by attention entropy (ACS-Free) or by a learned IoU
regressor (ACS-Learned). After "Self-Improving Small Object Grounding in LVLMs". The candidates
and their features come from `sodviz.acs.candidates`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from sodviz.acs.candidates import FEATURES, Candidates
from sodviz.evaluation.buckets import bucket_masks
from sodviz.evaluation.intervals import bootstrap_interval


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


def within_object_pearson(candidates: Candidates, values: np.ndarray) -> float:
    """Pearson r of `values` with IoU after subtracting each object's mean from both, over objects
    with two or more candidates: how well `values` rank an object's own candidates, which is what
    picking needs (the plain r also rewards telling good objects from bad ones). NaN when undefined."""
    values = np.asarray(values, np.float64)
    objects, inverse, counts = np.unique(candidates.object_index, return_inverse=True, return_counts=True)
    several = counts[inverse] >= 2
    if several.sum() < 3:
        return float("nan")
    centred = []
    for column in (values, candidates.iou.astype(np.float64)):
        means = np.bincount(inverse, column, minlength=len(objects)) / counts
        centred.append((column - means[inverse])[several])
    return pearson_or_nan(*centred)


def pearson_or_nan(values: np.ndarray, iou: np.ndarray) -> float:
    """Pearson r, NaN where either side is constant (e.g. a regressor fitted on too few candidates)."""
    if np.ptp(values) == 0 or np.ptp(iou) == 0:
        return float("nan")
    return float(stats.pearsonr(values, iou).statistic)


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


REGRESSORS = ("ridge", "boosting")  # ACS-Learned's regressor kinds, see `IouRegressor`


class IouRegressor:
    """ACS-Learned: a regressor (scikit-learn) from every (layer, head) feature to a candidate's IoU.

    `kind` "ridge": ridge regression on standardised inputs (`alpha`); "boosting": histogram
    gradient-boosted trees (200 rounds, early stopping on a held-out tenth for more than 10,000
    candidates). Deterministic for the same data.
    """

    def __init__(self, kind: str = "ridge", *, alpha: float = 10.0) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if kind not in REGRESSORS:
            raise ValueError(f"kind must be one of {REGRESSORS}, got {kind!r}")
        self.kind = kind
        if kind == "ridge":
            self.model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        else:
            self.model = HistGradientBoostingRegressor(max_iter=200, random_state=0)

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


def fit_selectors(candidates: Candidates, *, top_heads: int = 4, regressor: str = "ridge") -> FittedAcs:
    """ACS-Free's heads and ACS-Learned's regressor (`IouRegressor` of that kind) from candidates
    with ground-truth IoU. Raises ValueError with fewer than three candidates."""
    if len(candidates) < 3:
        raise ValueError(f"only {len(candidates)} candidate boxes overlap a labelled object: nothing to fit")
    correlations = feature_correlations(candidates)
    heads = discriminative_heads(correlations, top=top_heads)
    return FittedAcs(heads, IouRegressor(regressor).fit(candidates), correlations, candidates)


SELECTION_COLUMNS = [
    "method",
    "bucket",
    "objects",
    "mean_iou",
    "acc50",
    "vs_reference",
    "ci95_low",
    "ci95_high",
]


def selection_rows(
    candidates: Candidates, choices: dict[str, np.ndarray], buckets: dict[str, tuple], *,
    reference: str = "confidence", resamples: int = 1000, seed: int = 0,
) -> list[dict]:  # fmt: skip
    """Mean IoU and accuracy at IoU 0.5 of each method's chosen candidates, per object-size bucket
    (model-input pixels) and overall ("all"), with the mean paired IoU difference to the
    `reference` method's picks on the same objects and its bootstrap 95 % interval (`resamples`
    draws of the objects, seeded)."""
    rng = np.random.default_rng(seed)
    base = candidates.iou[choices[reference]].astype(np.float64)
    rows = []
    for method, chosen in choices.items():
        iou, size = candidates.iou[chosen].astype(np.float64), candidates.object_size[chosen]
        for bucket, mask in bucket_masks(size, {"all": (0, np.inf)} | buckets).items():
            row = dict.fromkeys(SELECTION_COLUMNS, float("nan"))
            row |= {"method": method, "bucket": bucket, "objects": int(mask.sum())}
            if mask.any():
                difference = iou[mask] - base[mask]
                low_ci, high_ci = bootstrap_interval(difference, resamples=resamples, rng=rng)
                row |= {"mean_iou": float(iou[mask].mean()), "acc50": float((iou[mask] >= 0.5).mean()),
                        "vs_reference": float(difference.mean()), "ci95_low": float(low_ci),
                        "ci95_high": float(high_ci)}  # fmt: skip
            rows.append(row)
    return rows
