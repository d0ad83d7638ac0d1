"""The detectors' configuration: one frozen section per detector, with defaults that are
documented where they are defined (later config keys ``detect.<detector>.<field>``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from voipscope.config import coerce_value
from voipscope.detect.policy import PolicyConfig
from voipscope.detect.rtp_injection import RtpInjectionConfig
from voipscope.detect.sip_bruteforce import SipBruteforceConfig
from voipscope.detect.sip_enumeration import SipEnumerationConfig
from voipscope.detect.sip_flood import SipFloodConfig
from voipscope.detect.sip_scan import SipScanConfig
from voipscope.detect.skype_supernode import SkypeSupernodeConfig
from voipscope.detect.spit import SpitConfig
from voipscope.detect.timing_channel import TimingChannelConfig
from voipscope.detect.toll_fraud import TollFraudConfig
from voipscope.detect.tone_exfil import ToneExfilConfig
from voipscope.detect.vlan_hopping import VlanHoppingConfig
from voipscope.errors import ConfigError

DETECTORS = (
    "sip_scan",
    "sip_enumeration",
    "sip_bruteforce",
    "toll_fraud",
    "sip_flood",
    "spit",
    "policy",
    "tone_exfil",
    "timing_channel",
    "rtp_injection",
    "vlan_hopping",
    "skype_supernode",
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
    tone_exfil: ToneExfilConfig = field(default_factory=ToneExfilConfig)
    timing_channel: TimingChannelConfig = field(default_factory=TimingChannelConfig)
    rtp_injection: RtpInjectionConfig = field(default_factory=RtpInjectionConfig)
    vlan_hopping: VlanHoppingConfig = field(default_factory=VlanHoppingConfig)
    skype_supernode: SkypeSupernodeConfig = field(default_factory=SkypeSupernodeConfig)


def with_detect_value(cfg: DetectConfig, key: str, value: Any) -> DetectConfig:
    """``detect.alert_quiet_s=600`` or ``detect.sip_scan.min_destinations=20``: the
    ``-c`` keys of `voipscope alerts`. Lists (``enabled``, policy allow-lists) take
    comma-separated text."""
    parts = key.split(".")
    if parts[0] != "detect" or len(parts) not in (2, 3):
        raise ConfigError(f"unknown configuration key {key!r}")
    if len(parts) == 2:
        return _replace(cfg, parts[1], key, value)
    section = getattr(cfg, parts[1], None)
    if section is None or not dataclasses.is_dataclass(section):
        raise ConfigError(f"unknown configuration key {key!r}")
    return dataclasses.replace(cfg, **{parts[1]: _replace(section, parts[2], key, value)})


def _replace(section: Any, name: str, key: str, value: Any) -> Any:
    names = {f.name for f in dataclasses.fields(section)}
    if name not in names or dataclasses.is_dataclass(getattr(section, name)):
        raise ConfigError(f"unknown configuration key {key!r}")
    current = getattr(section, name)
    if isinstance(current, tuple | frozenset):
        items = [v.strip() for v in str(value).split(",") if v.strip()]
        value = type(current)(items)
    else:
        value = coerce_value(key, current, value)
    return dataclasses.replace(section, **{name: value})
