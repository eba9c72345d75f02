"""What an analysis run computes: the settings that, with the model, key its stored rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from sodviz.crops.budget import METHODS
from sodviz.crops.vicrop import ViCropConfig

REFINEMENTS = tuple(m for m in METHODS if m in ("vicrop", "vicrop_gated", "slicing"))  # not the baselines yet


@dataclass(frozen=True)
class AnalysisSettings:
    """Every setting that changes an analysis row (the run key hashes all of them).

    Attributes:
        score_threshold: detections at or above it are kept; matches, misses and error types
            are taken at it.
        keep_score: detections down to this score are stored too (for AP), marked "below".
        input_size: model input size (None: the detector's default).
        methods: refinements run after the full-image pass (`REFINEMENTS`); each at each budget.
        budgets: forward passes per image, the full image included (as `benchmark`).
        gate_min_uncertain: ViCrop-Det's gate (the image is refined when at least this many
            queries score inside its band); "vicrop_gated" uses it, the gate columns report it.
        vicrop: every other knob of ViCrop-Det and of the fusion (defaults: `ViCropConfig()`).
    """

    score_threshold: float = 0.3
    keep_score: float = 0.01
    input_size: int | None = None
    methods: tuple[str, ...] = ()
    budgets: tuple[int, ...] = (3,)
    gate_min_uncertain: int = 0
    vicrop: ViCropConfig = ViCropConfig()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(REFINEMENTS))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; choose from base and {', '.join(REFINEMENTS)}")
        if any(budget < 2 for budget in self.budgets):
            raise ValueError(
                f"budgets count forward passes with the full image: each must be >= 2, got {self.budgets}"
            )
        # one spelling per run: the same methods and budgets in any order are the same run
        object.__setattr__(self, "methods", tuple(m for m in REFINEMENTS if m in self.methods))
        object.__setattr__(self, "budgets", tuple(sorted(set(self.budgets))))
        if not 0 <= self.keep_score <= self.score_threshold:
            raise ValueError("keep_score must lie between 0 and score_threshold")

    @property
    def runs(self) -> tuple[tuple[str, int], ...]:
        """(method, budget) of every refinement, in order."""
        return tuple((method, budget) for method in self.methods for budget in self.budgets)

    def vicrop_config(self) -> ViCropConfig:
        """ViCrop-Det's configuration: its knobs, this gate, and detections down to `keep_score`."""
        return replace(
            self.vicrop, gate_min_uncertain=self.gate_min_uncertain, score_threshold=self.keep_score
        )

    def as_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        """A stable hash of every setting (JSON with sorted keys)."""
        text = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def method_name(method: str, budget: int) -> str:
    """How a refinement at a budget is named in the store: "vicrop@3"; "base" for the full image."""
    return "base" if method == "base" else f"{method}@{budget}"
