"""The detectors' configuration: one frozen section per detector, with defaults that are
documented where they are defined (later config keys ``detect.<detector>.<field>``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.detect.policy import PolicyConfig
from voipscope.detect.sip_bruteforce import SipBruteforceConfig
from voipscope.detect.sip_enumeration import SipEnumerationConfig
from voipscope.detect.sip_flood import SipFloodConfig
from voipscope.detect.sip_scan import SipScanConfig
from voipscope.detect.spit import SpitConfig
from voipscope.detect.toll_fraud import TollFraudConfig

DETECTORS = (
    "sip_scan",
    "sip_enumeration",
    "sip_bruteforce",
    "toll_fraud",
    "sip_flood",
    "spit",
    "policy",
)


@dataclass(frozen=True, slots=True)
class DetectConfig:
    # An attack with no new evidence for this long (capture time) ends its alert; more
    # later is a new alert.
    alert_quiet_s: float = 300.0
    max_open_alerts: int = 100_000
    enabled: tuple[str, ...] = DETECTORS
    sip_scan: SipScanConfig = field(default_factory=SipScanConfig)
    sip_enumeration: SipEnumerationConfig = field(default_factory=SipEnumerationConfig)
    sip_bruteforce: SipBruteforceConfig = field(default_factory=SipBruteforceConfig)
    toll_fraud: TollFraudConfig = field(default_factory=TollFraudConfig)
    sip_flood: SipFloodConfig = field(default_factory=SipFloodConfig)
    spit: SpitConfig = field(default_factory=SpitConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
