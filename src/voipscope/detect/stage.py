"""The detect stage: one FlowHooks that hands every detector the records it reads —
SIP messages as they are parsed, Call records as the calls stage finishes them, Flow
records as flows end, named anomalies as the run's log counts them — and gives out
Alert records once their attack has gone quiet (DESIGN §1: records, never packets).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from voipscope.anomalies import Anomaly, AnomalyLog
from voipscope.decode.batch import DecodedBatch
from voipscope.detect.alerts import SEVERITIES, Alert, AlertBook
from voipscope.detect.base import Detector
from voipscope.detect.config import DetectConfig
from voipscope.detect.policy import VOIP_CATEGORIES, PolicyDetector
from voipscope.detect.rtp_injection import RtpInjectionDetector
from voipscope.detect.sip_bruteforce import SipBruteforceDetector
from voipscope.detect.sip_enumeration import SipEnumerationDetector
from voipscope.detect.sip_facts import sip_facts
from voipscope.detect.sip_flood import SipFloodDetector
from voipscope.detect.sip_scan import SipScanDetector
from voipscope.detect.skype_supernode import SkypeSupernodeDetector
from voipscope.detect.spit import SpitDetector
from voipscope.detect.timing_channel import TimingChannelDetector
from voipscope.detect.toll_fraud import TollFraudDetector
from voipscope.detect.tone_exfil import ToneExfil
from voipscope.detect.vlan_hopping import VlanHoppingDetector
from voipscope.dissect.base import MessageEvent
from voipscope.flows.hooks import NoHooks
from voipscope.flows.table import FlowAssignment


def build_detectors(book: AlertBook, config: DetectConfig) -> list[Detector]:
    made: dict[str, Detector] = {
        "sip_scan": SipScanDetector(book, config.sip_scan),
        "sip_enumeration": SipEnumerationDetector(book, config.sip_enumeration),
        "sip_bruteforce": SipBruteforceDetector(book, config.sip_bruteforce),
        "toll_fraud": TollFraudDetector(book, config.toll_fraud),
        "sip_flood": SipFloodDetector(book, config.sip_flood),
        "spit": SpitDetector(book, config.spit),
        "policy": PolicyDetector(book, config.policy),
        "tone_exfil": ToneExfil(book, config.tone_exfil),
        "timing_channel": TimingChannelDetector(book, config.timing_channel),
        "rtp_injection": RtpInjectionDetector(book, config.rtp_injection),
        "vlan_hopping": VlanHoppingDetector(book, config.vlan_hopping),
        "skype_supernode": SkypeSupernodeDetector(book, config.skype_supernode),
    }
    return [made[name] for name in config.enabled if name in made]


class DetectStage(NoHooks):
    def __init__(
        self, config: DetectConfig | None = None, anomalies: AnomalyLog | None = None
    ) -> None:
        self.config = config or DetectConfig()
        self.book = AlertBook(self.config.alert_quiet_s, self.config.max_open_alerts)
        self.detectors = build_detectors(self.book, self.config)
        self.now_s: float | None = None  # capture time of the latest packet seen
        # Only the detectors that read anomalies are told them (a storm names one a packet).
        self._anomaly_readers = [
            d for d in self.detectors if type(d).on_anomaly is not Detector.on_anomaly
        ]
        if anomalies is not None and self._anomaly_readers:
            anomalies.observers.append(self._on_anomaly)
        # Open alerts already handed out by ``raised`` (by identity), with the severity
        # they had then.
        self._announced: dict[int, tuple[Alert, str]] = {}

    # -- FlowHooks ------------------------------------------------------------------------

    def on_update(self, d: DecodedBatch, a: FlowAssignment) -> None:
        if len(d):
            self.tick(int(d.ts_ns[-1]) / 1e9)

    def on_clock(self, now_ns: int) -> None:
        """Live capture: capture time moved on without packets (an idle link)."""
        self.tick(now_ns / 1e9)

    def on_messages(self, messages: list[object]) -> None:
        for event in messages:
            if not isinstance(event, MessageEvent):
                continue
            facts = sip_facts(event)
            if facts is None:
                continue
            for detector in self.detectors:
                detector.on_sip(facts)

    def on_flow_records(self, batch: object) -> None:
        assert isinstance(batch, pa.RecordBatch)
        voip = pc.is_in(batch.column("category"), pa.array(sorted(VOIP_CATEGORIES)))
        self.add_flows(batch.filter(voip).to_pylist())
        # Who is in a VLAN matters to the VLAN detectors whatever the flow carries.
        wanting = [d for d in self.detectors if d.wants_tagged_flows]
        if wanting:
            tagged = pc.and_(pc.invert(voip), pc.greater_equal(batch.column("vlan"), 0))
            for flow in batch.filter(pc.fill_null(tagged, False)).to_pylist():
                for detector in wanting:
                    detector.on_flow(flow)

    def _on_anomaly(self, anomaly: Anomaly, count: int) -> None:
        if anomaly.ts is None and self.now_s is not None:
            # Named when a flow ended, not at a packet: as of the latest capture time.
            anomaly = dataclasses.replace(anomaly, ts=self.now_s)
        for detector in self._anomaly_readers:
            detector.on_anomaly(anomaly, count)

    # -- records from elsewhere -----------------------------------------------------------

    def tick(self, now_s: float) -> None:
        self.now_s = now_s if self.now_s is None else max(self.now_s, now_s)

    def add_calls(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            for detector in self.detectors:
                detector.on_call(record)

    def add_flows(self, flows: list[dict[str, Any]]) -> None:
        for flow in flows:
            for detector in self.detectors:
                detector.on_flow(flow)

    # -- output ---------------------------------------------------------------------------

    def ready(self) -> list[dict[str, Any]]:
        """Alert records whose attack has gone quiet, oldest first."""
        if self.now_s is None:
            return []
        return [a.to_record() for a in self.book.ready(self.now_s)]

    def raised(self) -> list[dict[str, Any]]:
        """Open alerts that are new since the last call, or whose severity rose: what a
        live watcher acts on while the attack goes on (the Alert record proper comes from
        ``ready``/``finish`` once it has gone quiet). Costs one pass over the open alerts
        (at most ``max_open_alerts``)."""
        out = []
        announced: dict[int, tuple[Alert, str]] = {}
        for alert in self.book.open_alerts():
            before = self._announced.get(id(alert))
            new = before is None or before[0] is not alert
            if new or SEVERITIES.index(alert.severity) > SEVERITIES.index(before[1]):
                out.append(alert.to_record())
            announced[id(alert)] = (alert, alert.severity)
        # Only open alerts are kept: the table is bounded like the book.
        self._announced = announced
        return sorted(out, key=lambda r: r["ts"])

    def finish(self) -> list[dict[str, Any]]:
        for detector in self.detectors:
            detector.finish(self.now_s)
        return [a.to_record() for a in self.book.finish()]

    def state_sizes(self) -> dict[str, dict[str, tuple[int, int]]]:
        return {d.name: d.state_sizes() for d in self.detectors}

    @property
    def overflow(self) -> dict[str, int]:
        return {d.name: d.overflow for d in self.detectors}
