"""The behavioural media model: gradient-boosted decision trees over behaviour_features.

The trees ship in ``classify/data/behaviour_model.json``, fitted by
``bench/fit_behaviour.py`` from the shared captures with the project's labels and from
traffic the project's scripts generate (fixed seeds; nothing is downloaded at run time).
They are evaluated here with numpy alone (scikit-learn is needed only to fit them).
Trees rather than one linear score because "media" is several shapes (two-way voice,
one-way video, talk turns) and the lookalikes sit between them: a constant-rate one-way
stream is stable like voice but lacks its two-way alternation, a game is two-way but
not on codec framing.

The output is the boosted log-odds squashed to 0..1; the file also records the threshold
chosen for at most ``target_fpr`` false positives on non-VoIP flows, and its data.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from voipscope.classify.behaviour_features import NAMES

MODEL_FILE = "behaviour_model.json"


@dataclass(frozen=True, slots=True)
class BehaviourModel:
    """p(voip-media | features) = sigmoid(init + rate * sum of the trees' leaf values).

    Trees are stacked and padded: ``feature[t, node]`` (-1: leaf), ``threshold``,
    ``left``, ``right`` (child node ids), ``value`` (leaf output)."""

    init: float
    learning_rate: float
    feature: np.ndarray  # int64 (trees, nodes)
    threshold_value: np.ndarray  # float64 (trees, nodes): go left when x <= this
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int
    threshold: float  # p at or above this is a media verdict
    info: dict[str, Any] = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> np.ndarray:
        # Trees were grown on float32 features (scikit-learn's convention): compare the same.
        x = np.asarray(x, np.float32).astype(np.float64)
        n = x.shape[0]
        rows = np.arange(n)
        raw = np.full(n, self.init)
        for t in range(self.feature.shape[0]):
            node = np.zeros(n, np.int64)
            for _ in range(self.depth):
                feat = self.feature[t, node]
                leaf = feat < 0
                go_left = x[rows, np.maximum(feat, 0)] <= self.threshold_value[t, node]
                node = np.where(leaf, node, np.where(go_left, self.left[t, node],
                                                     self.right[t, node]))  # fmt: skip
            raw += self.learning_rate * self.value[t, node]
        return 1.0 / (1.0 + np.exp(-np.clip(raw, -40.0, 40.0)))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(NAMES),
            "init": self.init,
            "learning_rate": self.learning_rate,
            "depth": self.depth,
            "threshold": self.threshold,
            "trees": [
                {
                    "feature": self.feature[t].tolist(),
                    "threshold": [round(v, 9) for v in self.threshold_value[t].tolist()],
                    "left": self.left[t].tolist(),
                    "right": self.right[t].tolist(),
                    "value": [round(v, 9) for v in self.value[t].tolist()],
                }
                for t in range(self.feature.shape[0])
            ],
            "info": self.info,
        }


def model_from_json(data: dict[str, Any]) -> BehaviourModel:
    if tuple(data["features"]) != NAMES:
        raise ValueError("behaviour model was fitted on other features: refit it")
    trees = data["trees"]
    nodes = max((len(t["feature"]) for t in trees), default=1)

    def stack(key: str, dtype: type, pad: float) -> np.ndarray:
        out = np.full((len(trees), nodes), pad, dtype)
        for k, t in enumerate(trees):
            out[k, : len(t[key])] = t[key]
        return out

    return BehaviourModel(
        init=float(data["init"]),
        learning_rate=float(data["learning_rate"]),
        feature=stack("feature", np.int64, -1),
        threshold_value=stack("threshold", np.float64, 0.0),
        left=stack("left", np.int64, 0),
        right=stack("right", np.int64, 0),
        value=stack("value", np.float64, 0.0),
        depth=int(data["depth"]),
        threshold=float(data["threshold"]),
        info=dict(data.get("info", {})),
    )


def constant_model(log_odds: float, threshold: float = 0.5) -> BehaviourModel:
    """A model without trees (tests; a placeholder)."""
    empty = np.zeros((0, 1), np.int64)
    return BehaviourModel(log_odds, 1.0, empty, empty.astype(np.float64), empty, empty,
                          empty.astype(np.float64), 0, threshold)  # fmt: skip


@functools.cache
def shipped_model() -> BehaviourModel | None:
    """The model in the package (None when it has not been fitted yet)."""
    path = resources.files("voipscope.classify").joinpath("data", MODEL_FILE)
    if not path.is_file():
        return None
    return model_from_json(json.loads(path.read_text(encoding="utf-8")))
