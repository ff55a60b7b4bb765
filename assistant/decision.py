"""The decision: how strongly a unit states the answer to a part, and whether a part is answered.

A logistic model over the features of evidence.py. Its weights and every threshold are data
(data/decision.json), fitted on the dev question sets by `assistant calibrate`, which stores
the figures that chose them beside them. Hand-set parameters are named there too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from assistant.evidence import FEATURES

# Whether a part is answered at all is a second, smaller model over its best unit: how likely that
# unit is, and how well it covers the part (an unanswerable part's best unit can still be "likely"
# among poor candidates).
PART_FEATURES = (
    "best_probability",
    "dense",
    "lexical",
    "support_mean",
    "support_min",
    "unseen",
    "foreign",
    "type_match",
)

DATA_FILE = "data/decision.json"


@dataclass(frozen=True)
class Parameters:
    """Hand-set parameters (not fitted)."""

    synonym_credit: float  # credit for a synonym the vocabulary gives, against the word itself
    heading_credit: float  # credit for a word found only in the title or section headings
    dense_candidates: int  # units taken by vector similarity over the whole material, per part
    max_units_patient: int  # quotes in a patient answer (per question)
    max_units_clinician: int  # quotes in a clinician answer
    context_weight: float  # weight of an earlier question's words in a follow-up


@dataclass(frozen=True)
class DecisionModel:
    parameters: Parameters
    mean_: np.ndarray
    scale_: np.ndarray
    coef_: np.ndarray
    intercept_: float
    answer_threshold_: float  # a part is answered when the part model gives at least this
    keep_threshold_: float  # a further unit is quoted when it reaches this probability ...
    keep_ratio_: float  # ... and this share of the best unit's probability
    part_mean_: np.ndarray = field(default_factory=lambda: np.zeros(len(PART_FEATURES), dtype=np.float32))
    part_scale_: np.ndarray = field(default_factory=lambda: np.ones(len(PART_FEATURES), dtype=np.float32))
    part_coef_: np.ndarray = field(default_factory=lambda: np.zeros(len(PART_FEATURES), dtype=np.float32))
    part_intercept_: float = 0.0
    fitted: dict[str, Any] = field(default_factory=dict)  # what chose the values above

    def part_features(self, features: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        best = int(probabilities.argmax())
        row = features[best]
        index = {name: i for i, name in enumerate(FEATURES)}
        values = [float(probabilities[best])] + [float(row[index[name]]) for name in PART_FEATURES[1:]]
        return np.asarray(values, dtype=np.float32)

    def answerable(self, features: np.ndarray, probabilities: np.ndarray) -> float:
        """Probability that the part is answered by the material at all."""
        if len(probabilities) == 0:
            return 0.0
        x = (self.part_features(features, probabilities) - self.part_mean_) / self.part_scale_
        return float(1.0 / (1.0 + np.exp(-(x @ self.part_coef_ + self.part_intercept_))))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0, dtype=np.float32)
        z = ((features - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def as_json(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "parameters": self.parameters.__dict__,
            "mean_": self.mean_.round(6).tolist(),
            "scale_": self.scale_.round(6).tolist(),
            "coef_": self.coef_.round(6).tolist(),
            "intercept_": round(float(self.intercept_), 6),
            "answer_threshold_": round(float(self.answer_threshold_), 4),
            "keep_threshold_": round(float(self.keep_threshold_), 4),
            "keep_ratio_": round(float(self.keep_ratio_), 4),
            "part_features": list(PART_FEATURES),
            "part_mean_": self.part_mean_.round(6).tolist(),
            "part_scale_": self.part_scale_.round(6).tolist(),
            "part_coef_": self.part_coef_.round(6).tolist(),
            "part_intercept_": round(float(self.part_intercept_), 6),
            "fitted": self.fitted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], strict: bool = True) -> DecisionModel:
        """The model in ``data``. Fitted on other features, it is an error, unless ``strict`` is off
        (for `assistant calibrate`, which refits): then only its hand-set parameters and thresholds
        are kept, with neutral coefficients until the refit replaces them."""
        if list(data.get("features", [])) != list(FEATURES) or list(data.get("part_features", PART_FEATURES)) != list(
            PART_FEATURES
        ):
            if not strict:
                return cls(
                    parameters=Parameters(**data["parameters"]),
                    mean_=np.zeros(len(FEATURES), dtype=np.float32),
                    scale_=np.ones(len(FEATURES), dtype=np.float32),
                    coef_=np.zeros(len(FEATURES), dtype=np.float32),
                    intercept_=0.0,
                    answer_threshold_=float(data["answer_threshold_"]),
                    keep_threshold_=float(data["keep_threshold_"]),
                    keep_ratio_=float(data["keep_ratio_"]),
                )
            raise ValueError(
                "decision model was fitted on other features; run `assistant calibrate` "
                f"(file has {data.get('features')}, code has {list(FEATURES)})"
            )
        return cls(
            parameters=Parameters(**data["parameters"]),
            mean_=np.asarray(data["mean_"], dtype=np.float32),
            scale_=np.asarray(data["scale_"], dtype=np.float32),
            coef_=np.asarray(data["coef_"], dtype=np.float32),
            intercept_=float(data["intercept_"]),
            answer_threshold_=float(data["answer_threshold_"]),
            keep_threshold_=float(data["keep_threshold_"]),
            keep_ratio_=float(data["keep_ratio_"]),
            part_mean_=np.asarray(data.get("part_mean_", [0.0] * len(PART_FEATURES)), dtype=np.float32),
            part_scale_=np.asarray(data.get("part_scale_", [1.0] * len(PART_FEATURES)), dtype=np.float32),
            part_coef_=np.asarray(data.get("part_coef_", [1.0] + [0.0] * (len(PART_FEATURES) - 1)), dtype=np.float32),
            part_intercept_=float(data.get("part_intercept_", 0.0)),
            fitted=dict(data.get("fitted", {})),
        )


def load_model(path: Path | None = None, strict: bool = True) -> DecisionModel:
    text = (
        path.read_text(encoding="utf-8")
        if path is not None
        else resources.files("assistant").joinpath(DATA_FILE).read_text(encoding="utf-8")
    )
    return DecisionModel.from_json(json.loads(text), strict=strict)


def save_model(model: DecisionModel, path: Path) -> None:
    path.write_text(json.dumps(model.as_json(), indent=1) + "\n", encoding="utf-8")
