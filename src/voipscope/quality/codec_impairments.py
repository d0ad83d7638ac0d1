"""Codec impairment factors for the E-model: Ie and Bpl per codec, each with its source.

Narrowband rows are on the G.107 scale (R up to 100, Ro = 93.2 by default); wideband rows
are Ie,WB on the G.107.1 scale (R up to 129). The two must never be mixed: a wideband
Ie,WB dropped into the narrowband formula is off by the 129 − 93.2 scale offset.

Only values checked against a published source are here. ITU-T G.113 itself could not be
read while writing this table, so every row names G.113's table as the origin and the
public copy it was checked against. A codec whose value could not be checked has no row:
the E-model then says "unknown" instead of a number (DESIGN §3: `mos` is null when it
cannot be known).

Bpl is the packet-loss robustness factor for *random* loss with the codec's own
concealment (G.113 Table I.3); None means no value is published for the codec, so its MOS
is only known at 0 % loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voipscope.dissect.rtp import STATIC_PAYLOAD_TYPES
from voipscope.text_fields import is_decimal

Band = Literal["narrowband", "wideband"]

# RFC 3551 §3: payload types 96-127 are dynamic; their codec is only known from SDP.
DYNAMIC_PT_FIRST = 96

__all__ = [
    "Band",
    "CodecImpairment",
    "CodecLookup",
    "lookup",
]


@dataclass(frozen=True, slots=True)
class CodecImpairment:
    name: str  # canonical name, e.g. "G.729A"
    band: Band
    ie: float  # Ie (G.107 scale) or Ie,WB (G.107.1 scale), at 0 % loss
    bpl: float | None  # random loss, codec's own concealment; None: not published
    source: str
    bpl_no_plc: float | None = None  # only where a no-concealment value is published


@dataclass(frozen=True, slots=True)
class CodecLookup:
    row: CodecImpairment | None  # None: reason says why
    reason: str | None
    assumptions: tuple[str, ...] = ()


_G113_T11 = "ITU-T G.113 Appendix I Table I.1"
_G113_T13 = "ITU-T G.113 Appendix I Table I.3"
# Public copies the narrowband values were checked against:
_AMPLET2 = "wandnz/amplet2 src/tests/udpstream/mos.h (cites Table I.3/G.113)"
_VENDOR = "Nortel NN43001-563 Table 29; Mitel MX-ONE 7.8 planning guide Table 1"
_SIPNAB = "NormB/sipnab src/rtp/emodel_wb.rs (cites G.113 (09/2024) Table IV.1)"

G711 = CodecImpairment(
    "G.711", "narrowband", ie=0.0, bpl=25.1, bpl_no_plc=4.3,
    source=f"Ie: {_G113_T11}; Bpl 25.1 with G.711 App. I PLC, 4.3 without: {_G113_T13}; "
    f"checked against {_AMPLET2}",
)  # fmt: skip
G729A = CodecImpairment(
    "G.729A", "narrowband", ie=11.0, bpl=19.0,
    source=f"G.729A + VAD, 2 frames per packet: Ie {_G113_T11}, Bpl {_G113_T13}; Ie checked "
    f"against {_VENDOR}",
)  # fmt: skip
G723_63 = CodecImpairment(
    "G.723.1 6.3 kbit/s", "narrowband", ie=15.0, bpl=16.1,
    source=f"G.723.1 + VAD, 30 ms packets: Ie {_G113_T11}, Bpl {_G113_T13}; Ie checked "
    f"against {_VENDOR}",
)  # fmt: skip
G723_53 = CodecImpairment(
    "G.723.1 5.3 kbit/s", "narrowband", ie=19.0, bpl=None,
    source=f"Ie {_G113_T11} (no Bpl published for 5.3 kbit/s); checked against Nortel "
    "NN43001-563 Table 29",
)  # fmt: skip
G726_32 = CodecImpairment(
    "G.726 32 kbit/s", "narrowband", ie=7.0, bpl=None,
    source=f"ADPCM 32 kbit/s (G.726/G.727): Ie {_G113_T11}; checked against Mitel MX-ONE "
    "7.8 planning guide Table 1",
)  # fmt: skip
G728 = CodecImpairment(
    "G.728 16 kbit/s", "narrowband", ie=7.0, bpl=None,
    source=f"LD-CELP 16 kbit/s: Ie {_G113_T11}",
)  # fmt: skip
GSM_FR = CodecImpairment(
    "GSM-FR", "narrowband", ie=20.0, bpl=None,
    source=f"GSM 06.10 RPE-LTP 13 kbit/s: Ie {_G113_T11}",
)  # fmt: skip
GSM_EFR = CodecImpairment(
    "GSM-EFR", "narrowband", ie=5.0, bpl=None,
    source=f"GSM 06.60 ACELP 12.2 kbit/s: Ie {_G113_T11}, as quoted by NormB/sipnab "
    "src/rtp/emodel_wb.rs",
)  # fmt: skip

# G.113 Table IV.1 (monotic listening, i.e. a handset: the E-model's reference case).
# 23.85 kbit/s scoring worse than 23.05 is as published, not a typo to smooth out. No
# monotic Bpl,WB is published for any mode (only diotic, Table IV.4), so these rows give a
# MOS at 0 % loss only.
AMR_WB_IE_WB: dict[float, float] = {
    6.6: 41.0, 8.85: 26.0, 12.65: 13.0, 14.25: 10.0, 15.85: 7.0,
    18.25: 5.0, 19.85: 3.0, 23.05: 1.0, 23.85: 8.0,
}  # fmt: skip


def _amr_wb(kbps: float) -> CodecImpairment:
    return CodecImpairment(
        f"AMR-WB {kbps:g} kbit/s",
        "wideband",
        ie=AMR_WB_IE_WB[kbps],
        bpl=None,
        source=f"Ie,WB: {_SIPNAB}; no monotic Bpl,WB published",
    )


# SDP rtpmap encoding names (RFC 3551 §6, RFC 4867, RFC 7587), upper-cased, and the
# spellings of the ITU names people type.
_ALIASES: dict[str, str] = {
    **dict.fromkeys(["PCMU", "PCMA", "G711", "G.711", "G711U", "G711A"], "G711"),
    **dict.fromkeys(["G729", "G.729"], "G729"),
    **dict.fromkeys(["G729A", "G.729A", "G729AB", "G.729AB", "G729A+VAD"], "G729A"),
    **dict.fromkeys(["G723", "G.723", "G7231", "G723.1", "G.723.1"], "G723"),
    **dict.fromkeys(["G726", "G.726", "G727", "G.727"], "G726"),
    **dict.fromkeys(["G726-32", "G.726-32", "AAL2-G726-32", "G721", "G.721"], "G726-32"),
    **dict.fromkeys(["G728", "G.728"], "G728"),
    **dict.fromkeys(["GSM", "GSM-FR", "GSMFR"], "GSM-FR"),
    **dict.fromkeys(["GSM-EFR", "GSMEFR"], "GSM-EFR"),
    **dict.fromkeys(["AMR-WB", "AMRWB", "G722.2", "G.722.2"], "AMR-WB"),
}

# Codecs G.113 publishes no factor for (evidence in the comment): a number would be made up.
_NOT_PUBLISHED: dict[str, str] = {
    # G.113 Table I.1 has no AMR (narrowband) row (NormB/sipnab emodel_wb.rs, which
    # searched G.113 (09/2024)); AMR 12.2 is bit-exact GSM-EFR but borrowing EFR's Ie for
    # every AMR mode would be a guess.
    "AMR": "AMR",
    # No Ie, Ie,WB or Ie,FB for Opus in G.113 (DAGA paper "Derivation of Equipment
    # Impairment Factors from ITU-T P.863 for Fullband Speech Codecs": "Opus ... for which
    # currently no Ie,FB values are available").
    "OPUS": "opus",
}
# Codecs G.113 may well cover but whose values could not be checked here (open question).
_UNVERIFIED = {"G722", "G.722", "ILBC", "G726-16", "G726-24", "G726-40"}


def _normalise(codec: str) -> str:
    # "PCMU/8000" and "AMR-WB/16000/1" are rtpmap spellings: the clock rate is not the codec.
    return codec.strip().split("/", 1)[0].strip().upper().replace("_", "-").replace(" ", "")


def _kbps_key(kbps: float) -> float:
    # Bit rates arrive from SDP text and arithmetic; 12.65 does not round-trip as a float.
    return round(kbps, 2)


def lookup(codec: str | int | None, bitrate_kbps: float | None = None) -> CodecLookup:
    """The impairment row for an SDP encoding name or static RTP payload type number."""
    if codec is None or (isinstance(codec, str) and not codec.strip()):
        return CodecLookup(None, "codec unknown")
    if isinstance(codec, int) or is_decimal(codec.strip()):
        # int() strips less than str.strip() does ("0\x1f"): parse what was tested. More
        # than 19 digits (int() refuses over 4300) is no payload type: a name, unknown.
        pt = codec if isinstance(codec, int) else int(codec.strip())
        static = STATIC_PAYLOAD_TYPES.get(pt)
        if static is None:
            if pt >= DYNAMIC_PT_FIRST:
                return CodecLookup(None, f"codec unknown: dynamic payload type {pt} without rtpmap")
            return CodecLookup(None, f"codec unknown: payload type {pt} is unassigned")
        codec = static[0]
    name = _normalise(codec)
    key = _ALIASES.get(name, name)
    if key in _NOT_PUBLISHED:
        return CodecLookup(None, f"no published impairment factor for codec {_NOT_PUBLISHED[key]}")
    if key in _UNVERIFIED:
        return CodecLookup(
            None, f"impairment factor for codec {codec.strip()} not verified against ITU-T G.113"
        )
    kbps = None if bitrate_kbps is None else _kbps_key(bitrate_kbps)
    return _row_for(key, codec.strip(), kbps)


def _row_for(key: str, given: str, kbps: float | None) -> CodecLookup:
    if key == "G711":
        return CodecLookup(G711, None)
    if key == "G729A":
        return CodecLookup(G729A, None)
    if key == "G729":
        # SDP "G729" covers G.729 and its interoperable Annex A (RFC 3551 §4.5.6); only the
        # Annex A + VAD row has a Bpl, and its Ie (11) is the more cautious of the two.
        return CodecLookup(
            G729A, None, ("G729 taken as G.729A + VAD (Ie 11; plain G.729 has Ie 10)",)
        )
    if key == "G723":
        if kbps is None:
            # RFC 3551 §4.5.3: either rate may be used, frame by frame; 6.3 is the one with
            # a published Bpl.
            return CodecLookup(G723_63, None, ("G.723.1 bit rate not given: 6.3 kbit/s assumed",))
        if kbps == 6.3:
            return CodecLookup(G723_63, None)
        if kbps == 5.3:
            return CodecLookup(G723_53, None)
        return CodecLookup(None, f"G.723.1 has no {kbps:g} kbit/s mode")
    if key == "G726":
        if kbps == 32:
            return CodecLookup(G726_32, None)
        rate = "unknown" if kbps is None else f"{kbps:g} kbit/s"
        return CodecLookup(None, f"impairment factor for G.726 at {rate} not verified")
    if key == "G726-32":
        return CodecLookup(G726_32, None)
    if key == "G728":
        return CodecLookup(G728, None)
    if key == "GSM-FR":
        return CodecLookup(GSM_FR, None)
    if key == "GSM-EFR":
        return CodecLookup(GSM_EFR, None)
    if key == "AMR-WB":
        if kbps is None:
            # Ie,WB spans 1..41 over the nine modes: the name alone is a full MOS point wide.
            return CodecLookup(None, "AMR-WB mode (bit rate) unknown")
        if kbps not in AMR_WB_IE_WB:
            return CodecLookup(None, f"AMR-WB has no {kbps:g} kbit/s mode")
        return CodecLookup(_amr_wb(kbps), None, ("AMR-WB heard on a handset (monotic)",))
    return CodecLookup(None, f"no impairment factor on file for codec {given}")
