"""Lifecycle hooks for the stages after the flow table (dissectors, quality, ...).

Hooks are columnar like the rest of the hot path: they are called once per batch with
arrays, never once per packet, so a hook that only cares about a few flows can select
them with numpy before touching Python objects.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from voipscope.decode.batch import DecodedBatch
from voipscope.flows.table import FlowAssignment


class FlowHooks(Protocol):
    def on_init(self, d: DecodedBatch, a: FlowAssignment, first_packets: np.ndarray) -> None:
        """Flows began in this batch; ``first_packets`` are the rows of their first packets."""

    def on_update(self, d: DecodedBatch, a: FlowAssignment) -> None:
        """Every packet of the batch has been accounted to its flow (``a.slot`` >= 0)."""

    def on_expire(self, ended: np.ndarray) -> None:
        """Flows ended; ``ended`` is a matrix with the F_* columns of flows.kernels."""

    def on_flow_records(self, batch: object) -> None:
        """The Flow records (a pyarrow RecordBatch, verdicts filled) of flows that ended,
        after ``on_expire``. Optional for a hook."""

    def on_messages(self, messages: list[object]) -> None:
        """Signalling messages the dissectors parsed in this batch, in capture order
        (``voipscope.dissect.base.MessageEvent``). Optional for a hook."""

    def on_clock(self, now_ns: int) -> None:
        """Live capture only: capture time reached ``now_ns`` even if no packet says so
        (an idle link); called after the batch's other hooks. Optional for a hook."""


class NoHooks:
    """The do-nothing hook set; subclass it and override what you need."""

    def on_init(self, d: DecodedBatch, a: FlowAssignment, first_packets: np.ndarray) -> None:
        return None

    def on_update(self, d: DecodedBatch, a: FlowAssignment) -> None:
        return None

    def on_expire(self, ended: np.ndarray) -> None:
        return None

    def on_messages(self, messages: list[object]) -> None:
        return None

    def on_flow_records(self, batch: object) -> None:
        return None

    def on_clock(self, now_ns: int) -> None:
        return None
