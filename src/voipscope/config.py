"""Configuration: frozen dataclasses, one section per stage, units in the names.

Keys are addressed as ``section.field`` (``flows.idle_timeout_s``) or, where the field
name is unique across sections, by the bare field name (``idle_timeout_s``), so that
``read_flows(path, idle_timeout_s=60)`` works.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from voipscope.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SourceConfig:
    # Bytes of the capture mapped (or read) at once. Peak RSS grows with it, speed barely.
    window_bytes: int = 8 << 20
    # Packets per columnar batch handed down the pipeline (DESIGN §2: ~64k).
    batch_packets: int = 65536
    # A record claiming more than this many captured bytes is corruption, not a packet
    # (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD is 256 KiB; we allow jumbo/TSO captures).
    max_packet_bytes: int = 1 << 20
    # Batches read and decoded ahead in a second thread while the flow table works on the
    # current one (0: everything in the calling thread).
    prefetch_batches: int = 1


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """`voipscope live` (docs/live.md)."""

    # Bytes kept of each packet (-s of tcpdump); SIP over UDP fits in 64 KiB.
    snaplen_bytes: int = 65535
    # The kernel ring the packets wait in while the pipeline is busy: bursts up to this
    # size are not dropped. Packets beyond it are, and are reported (kernel drops).
    ring_bytes: int = 64 << 20
    # A batch is handed to the pipeline when full or this often (wall clock), so records
    # come out within about this much of the packets that make them final.
    flush_interval_s: float = 0.5
    # With no packet waiting, the capture clock follows the wall clock less this much:
    # packets the kernel still holds in a half-full block are never older than this.
    clock_slack_s: float = 1.0
    # Put the interface in promiscuous mode (see traffic not addressed to this host).
    promiscuous: bool = True


@dataclass(frozen=True, slots=True)
class DecodeConfig:
    # IP fragments are reassembled (see docs/flows.md); these bound the reassembler,
    # which holds attacker-controlled state.
    reassemble_fragments: bool = True
    fragment_timeout_s: float = 30.0
    max_pending_datagrams: int = 4096
    max_datagram_bytes: int = 65535 + 40
    # All fragment data held at once, over all pending datagrams.
    max_pending_fragment_bytes: int = 32 << 20
    # GTP-U (UDP 2152, mobile core): account user packets to the flow they carry, as
    # nfstream's decode_tunnels does; false keeps them in the tunnel's flow.
    decapsulate_gtp: bool = True


@dataclass(frozen=True, slots=True)
class FlowConfig:
    # A flow with no packet for this long (capture time) ends. 120 s like nfstream and
    # most NetFlow exporters: long enough for RTP silence suppression and SIP keep-alives.
    idle_timeout_s: float = 120.0
    # A flow older than this ends and the next packet starts a new record, as NetFlow's
    # active timeout does. 0 disables it. 30 min: a record per half hour keeps live
    # reporting of long flows possible (call media has its own, below).
    active_timeout_s: float = 1800.0
    # The active timeout of call media: flows a dissector found RTP, SRTP, RTCP, T.38 or
    # app voice on, or that signalling announced as media. A call longer than
    # active_timeout_s stays one flow, so each of its streams is one record with its
    # loss, jitter and talk spurts over the whole call (NetFlow-style tools cut it: FIELD
    # §5.10); its records come when it ends. Never shorter than active_timeout_s; 0 here
    # or there: none. Signalling flows are cut as any flow.
    media_active_timeout_s: float = 14_400.0
    # A TCP flow that saw RST or FIN in both directions ends after this much idle time;
    # a new SYN on the same 5-tuple ends it at once.
    tcp_closed_timeout_s: float = 10.0
    # Live flows held at once. When full, the least recently seen 1/64 are evicted and
    # the eviction is reported as the anomaly ``flow_table_overflow``.
    max_flows: int = 1_000_000


@dataclass(frozen=True, slots=True)
class DissectConfig:
    # Identify protocols and apps (False: flow accounting only, as nfpcapd does).
    enabled: bool = True
    # Payload packets of a flow offered to the dissectors while none has matched
    # (nDPI-style budget: unrecognised flows stop costing work early). Each dissector
    # also has its own, smaller budget.
    max_probe_packets: int = 32
    # The same once a protocol of the RFC 7983 family matched (STUN, DTLS): the media
    # multiplexed beside it may start only after dozens of handshake packets.
    max_multiplexed_probe_packets: int = 32
    # Hard cap on packets given to a dissector that follows a flow after its match
    # (SIP follows every message of a dialog).
    max_follow_packets: int = 100_000
    # Bytes buffered per TCP direction to reassemble messages split over segments
    # (SIP, H.323, SCCP); more without a complete message is an anomaly.
    max_stream_buffer_bytes: int = 64 << 10
    # The behavioural media detector (classify/behaviour*) for flows the dissectors leave
    # unknown. Off by default until it meets its held-out recall target (48 % of the media
    # flows of an app left out of fitting, at no false positive on the shared non-VoIP
    # UDP flows; docs/identification.md).
    behaviour: bool = False
    # Cross-flow facts (SDP/STUN expectations, DNS/SNI host names), attacker-controlled.
    max_expectations: int = 65536
    max_host_names: int = 65536
    expectation_ttl_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class CallsConfig:
    """`voipscope calls` (docs/calls.md). Seconds are capture time."""

    # SIP dialogs open at once (attacker-controlled, DESIGN §4); more: the least recently
    # active is handed out early (anomaly sip_dialog_table_full).
    max_open_dialogs: int = 100_000
    # H.323, MGCP, IAX2 and SCCP calls held at once, per protocol; more: the least
    # recently active is handed out early as it stands (anomaly <protocol>_call_table_full).
    max_open_calls: int = 100_000
    # A finished exchange (SIP) or call (H.323, MGCP, IAX2, SCCP) waits this long for late
    # copies (RFC 3261 timer 64*T1).
    finished_linger_s: float = 32.0
    # A 401/407 answered this much later is still the same attempt (people type passwords).
    auth_retry_gap_s: float = 120.0
    # An answered call without BYE stays open this long after its last message.
    answered_idle_s: float = 7200.0
    # A 3xx Contact called within this is one story with the redirect.
    redirect_follow_s: float = 32.0
    # Legs of one call through a B2BUA start this close together.
    b2bua_window_s: float = 2.0
    # OPTIONS/MESSAGE/SUBSCRIBE... exchanges as records of their own.
    out_of_dialog_records: bool = True
    # App calls: a user's media flows of one app this close together are one call.
    app_join_gap_s: float = 30.0
    # Calls waiting for their media flows to end (and media waiting for its call).
    max_held_calls: int = 100_000


@dataclass(frozen=True, slots=True)
class FlowRecordConfig:
    """Flow-record input: NetFlow v5/v9 and IPFIX (docs/flow_records.md)."""

    # Records of one 5-tuple (both directions, and the pieces an exporter's active or idle
    # timeout cut) are one flow while the next starts at most this long after the last
    # ended; a merged flow is written once the exporter's records have moved this far
    # past its last record (export time, never the wall clock). Like flows.idle_timeout_s.
    merge_idle_timeout_s: float = 120.0
    # Templates held, over all exporters and observation domains (attacker-controlled when
    # anyone can send to the collector); more: the least recently defined is forgotten
    # (anomaly flow_export_template_cache_full).
    max_templates: int = 16384
    # Data sets that arrived before their template are held for it up to this many bytes
    # in all; beyond, the oldest are dropped (anomaly <family>_data_without_template).
    max_pending_set_bytes: int = 8 << 20


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    max_records_per_name: int = 100


@dataclass(frozen=True, slots=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    flows: FlowConfig = field(default_factory=FlowConfig)
    dissect: DissectConfig = field(default_factory=DissectConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    anomalies: AnomalyConfig = field(default_factory=AnomalyConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    flow_records: FlowRecordConfig = field(default_factory=FlowRecordConfig)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None = None) -> Config:
        """Build a config from ``{"flows.idle_timeout_s": 60, "max_flows": 10}``-style keys."""
        cfg = cls()
        for key, value in (overrides or {}).items():
            cfg = cfg.with_value(key, value)
        return cfg

    def with_value(self, key: str, value: Any) -> Config:
        section_name, field_name = _resolve_key(key)
        section = getattr(self, section_name)
        current = getattr(section, field_name)
        value = _coerce(key, current, value)
        return dataclasses.replace(
            self, **{section_name: dataclasses.replace(section, **{field_name: value})}
        )


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def _resolve_key(key: str) -> tuple[str, str]:
    sections = _sections()
    if "." in key:
        section_name, field_name = key.split(".", 1)
        section_type = sections.get(section_name)
        if section_type is None or field_name not in {
            f.name for f in dataclasses.fields(section_type)
        }:
            raise ConfigError(f"unknown configuration key {key!r}")
        return section_name, field_name
    owners = [s for s, t in sections.items() if key in {f.name for f in dataclasses.fields(t)}]
    if len(owners) != 1:
        problem = "unknown" if not owners else "ambiguous"
        raise ConfigError(f"{problem} configuration key {key!r}")
    return owners[0], key


def coerce_value(key: str, current: Any, value: Any) -> Any:
    """A setting's value from the command line, in the type of its default."""
    return _coerce(key, current, value)


def _coerce(key: str, current: Any, value: Any) -> Any:
    """Accept strings from the command line; refuse values of the wrong kind or sign."""
    kind = type(current)
    try:
        if kind is bool:
            if isinstance(value, str):
                value = value.strip().lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            value = int(value)
        elif kind is float:
            value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"configuration key {key!r} needs a {kind.__name__}, got {value!r}"
        ) from None
    if isinstance(value, int | float) and value < 0:
        raise ConfigError(f"configuration key {key!r} must not be negative, got {value!r}")
    return value
