"""The behavioural media models: two logistic regressions over behaviour_features, one
for a flow's head (its first 24 payload packets, or all of a flow that ends with 12-23)
and one for its 48-packet windows, each with its own threshold; a flow is media when a
window says so, or, for a flow that ends before a full window, when its head does.

Fitted by ``bench/fit_behaviour.py`` (numpy only, deterministic) from the shared captures
with the project's labels and from traffic the project's scripts generate; it ships as a
few numbers in ``classify/data/behaviour_model.json``; nothing is downloaded at run time.

Why a linear model rather than trees: the first version (boosted trees over fine size
and gap histograms) learned each app's packet sizes and missed the app left out of
fitting (leave-one-app-out recall 44 %). Six scale-free features (four for the head
model, whose other two weights are 0) and one weight each cannot memorise an app; its
output is a probability by construction (logistic loss), and the thresholds in the file
are chosen on held-out predictions.

Why two models over the same features: the first packets of a flow and its steady state
differ (setup packets, a first talk spurt, bursts before the codec settles; a head has
too few gaps to show a mean clock), so one set of weights for both fits neither; with a
head model of its own, leave-one-app-out recall on the shared captures rose from 34 to
50 % at the same false-positive rate; with the head on the clock and sizes only and the
thresholds for no false positive on the non-VoIP UDP flows, 45 % (docs/identification.md).
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
    """p(voip-media | x) = sigmoid(intercept + coef . (x - mean) / scale)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float  # p at or above this is a media verdict
    info: dict[str, Any] = field(default_factory=dict)

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return np.asarray(self.intercept + z @ self.coef, np.float64)

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.log_odds(x), -40.0, 40.0)))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "logistic",
            "features": list(NAMES),
            "mean": [round(v, 9) for v in self.mean.tolist()],
            "scale": [round(v, 9) for v in self.scale.tolist()],
            "coef": [round(v, 9) for v in self.coef.tolist()],
            "intercept": round(self.intercept, 9),
            "threshold": self.threshold,
            "info": self.info,
        }


@dataclass(frozen=True, slots=True)
class BehaviourModels:
    """The head model and the window model, as shipped in one file."""

    head: BehaviourModel
    window: BehaviourModel
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "behaviour-head-window",
            "head": self.head.to_json(),
            "window": self.window.to_json(),
            "info": self.info,
        }


def models_from_json(data: dict[str, Any]) -> BehaviourModels:
    if data.get("kind") != "behaviour-head-window":
        raise ValueError("behaviour model file has no head and window models: refit it")
    return BehaviourModels(
        model_from_json(data["head"]), model_from_json(data["window"]), dict(data["info"])
    )


def model_from_json(data: dict[str, Any]) -> BehaviourModel:
    if data.get("kind") != "logistic" or tuple(data["features"]) != NAMES:
        raise ValueError("behaviour model was fitted on other features: refit it")
    return BehaviourModel(
        mean=np.array(data["mean"], np.float64),
        scale=np.array(data["scale"], np.float64),
        coef=np.array(data["coef"], np.float64),
        intercept=float(data["intercept"]),
        threshold=float(data["threshold"]),
        info=dict(data.get("info", {})),
    )


def constant_model(log_odds: float, threshold: float = 0.5) -> BehaviourModel:
    """A model that gives every window the same log-odds (tests; a placeholder)."""
    zeros = np.zeros(len(NAMES))
    return BehaviourModel(zeros, np.ones(len(NAMES)), zeros, log_odds, threshold)


def constant_models(
    head_log_odds: float, window_log_odds: float | None = None, threshold: float = 0.5
) -> BehaviourModels:
    """Head and window models that each give one log-odds to everything (tests)."""
    window = head_log_odds if window_log_odds is None else window_log_odds
    return BehaviourModels(
        constant_model(head_log_odds, threshold), constant_model(window, threshold)
    )


@functools.cache
def shipped_model() -> BehaviourModels | None:
    """The models in the package (None when they have not been fitted yet)."""
    path = resources.files("voipscope.classify").joinpath("data", MODEL_FILE)
    if not path.is_file():
        return None
    return models_from_json(json.loads(path.read_text(encoding="utf-8")))
