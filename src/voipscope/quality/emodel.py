"""MOS of a media stream by the E-model (ITU-T G.107 (06/2015), wideband G.107.1).

R = Ro − Is − Id − Ie,eff + A (G.107 §7.1, eq. 7-1). A capture measures packet loss, its
burstiness and, at best, the one-way delay; everything else (loudness ratings, sidetone,
room and circuit noise, echo losses) is taken at its G.107 Table 3 default, and the
defaults are computed through the full formulas below rather than folded into a constant,
so the familiar 93.2 is a result here, not an input.

G.107 is the narrowband (300-3400 Hz) model, R on 0..100. G.107.1 is the wideband
(50-7000 Hz) model on its own scale, Ro,WB = 129; wideband codecs (Ie,WB from G.113
Appendix IV) are scored there and the result is marked `band="wideband"`: the two MOS
values come from different scales and must not be averaged or compared.

Whenever an input needed for the number is missing the result has `mos=None` and a
reason; a default used in place of a measurement is listed in `assumptions`. MOS never
falls back to a best case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from voipscope.quality import codec_impairments
from voipscope.quality.codec_impairments import Band, CodecImpairment

__all__ = [
    "MosResult",
    "absolute_delay_impairment",
    "delay_impairment",
    "effective_equipment_impairment",
    "measured_burst_ratio",
    "mos",
    "narrowband_r",
    "r_to_mos",
    "r_wb_to_mos",
]

# -- G.107 (06/2015) Table 3 defaults, used for every parameter a capture does not measure --
SLR_DB = 8.0  # send loudness rating
RLR_DB = 2.0  # receive loudness rating
STMR_DB = 15.0  # sidetone masking rating
LSTR_DB = 18.0  # listener sidetone rating
DS = 3.0  # D-value of telephone, send side
TELR_DB = 65.0  # talker echo loudness rating (echo well controlled)
WEPL_DB = 110.0  # weighted echo path loss
QDU = 1.0  # number of quantization distortion units
NC_DBM0 = -70.0  # circuit noise referred to the 0 dBr point
NFOR_DBMP = -64.0  # noise floor at the receive side
PS_DBA = 35.0  # room noise at the send side
PR_DBA = 35.0  # room noise at the receive side
ADVANTAGE_A = 0.0  # advantage factor A (§7.6: 0 for wirebound access)
MT_MS = 100.0  # minimum perceivable delay mT (sT = 1 and mT = 100: the "normal" user)
ST = 1.0  # delay sensitivity sT
BURST_RATIO_RANDOM = 1.0  # §7.5: BurstR = 1 for random (independent) loss
BURST_RATIO_MAX = 8.0  # Table 3: BurstR's permitted range is 1 to 8
# §7.5 eq. 7-29: 95 is the ceiling Ie,eff approaches as loss grows. G.107.1 eq. 7-15 keeps the
# same 95 on the wideband scale (as transcribed by NormB/sipnab src/rtp/emodel_wb.rs); no
# wideband row has a Bpl yet, so that branch only ever sees 0 % loss today.
IE_EFF_CEILING = 95.0

# -- G.107.1 §7.2 and Annex A --
RO_WB = 129.0  # basic signal-to-noise ratio on the wideband scale
WB_TO_NB_SCALE = 1.29  # Annex A: R_WB / 1.29 is mapped by the narrowband MOS formula

# G.107 Annex B: MOS_CQE = 1 below R 0, 4.5 above R 100.
MOS_MIN = 1.0
MOS_MAX = 4.5
R_MOS_MAX = 100.0


@dataclass(frozen=True, slots=True)
class MosResult:
    mos: float | None  # MOS_CQE (narrowband) or MOS_CQE from R_WB / 1.29 (wideband)
    r_factor: float | None  # on 0..100 (narrowband) or 0..129 (wideband): see band
    reason: str | None  # why mos is None; None when it is known
    assumptions: list[str] = field(default_factory=list)
    band: Band | None = None  # which E-model scale r_factor is on


def r_to_mos(r: float) -> float:
    """MOS_CQE from narrowband R (G.107 Annex B).

    The cubic dips just under 1 for 0 < R < 6.5 (its minimum, 0.99, is at R 3.2); the
    result is held at the scale floor there so MOS never rises as R falls.
    """
    if r < 0:
        return MOS_MIN
    if r > R_MOS_MAX:
        return MOS_MAX
    return max(MOS_MIN, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


def r_wb_to_mos(r_wb: float) -> float:
    """MOS from wideband R (G.107.1 Annex A: R_WB / 1.29 through G.107 Annex B)."""
    return r_to_mos(r_wb / WB_TO_NB_SCALE)


def effective_equipment_impairment(
    ie: float, loss_pct: float, bpl: float, burst_ratio: float = BURST_RATIO_RANDOM
) -> float:
    """Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl), Ppl in percent (§7.5, eq. 7-29).

    At most 95: with bursty loss (BurstR > 1) the fraction passes 1 once Ppl / Bpl grows
    (heavy loss, or a codec without concealment), and an impairment beyond "nothing
    heard" means nothing."""
    ie_eff = ie + (IE_EFF_CEILING - ie) * loss_pct / (loss_pct / burst_ratio + bpl)
    return min(ie_eff, IE_EFF_CEILING)


def measured_burst_ratio(lost: int, loss_runs: int, expected: int) -> float | None:
    """G.107 §7.5 BurstR of a stream: the mean length of its runs of lost packets over
    the mean length random loss at the same rate would give, 1 / (1 − Ppl).

    The same as 1 / (p + q) of the two-state Markov model G.107 describes (p: a packet
    lost after one received, q: received after one lost; p = runs / received, q = runs /
    lost). None where there is no loss to measure, or a run count the loss cannot have."""
    if expected <= 0 or lost <= 0 or not 0 < loss_runs <= lost:
        return None
    return (lost / loss_runs) * (1.0 - lost / expected)


# -- Ro and Is (G.107 §7.2, §7.3) from the defaults. None of their inputs is measurable
# from a capture, so they are the same for every stream; T (the echo delay) only enters Is
# through STMRo, where e^(−T/4) makes it vanish above a few ms. --


def _noise_sum_dbm0() -> float:
    """No, the sum of all noise sources at the 0 dBr point (§7.2)."""
    olr = SLR_DB + RLR_DB
    nos = PS_DBA - SLR_DB - DS - 100 + 0.004 * (PS_DBA - olr - DS - 14) ** 2
    pre = PR_DBA + 10 * math.log10(1 + 10 ** ((10 - LSTR_DB) / 10))
    nor = RLR_DB - 121 + pre + 0.008 * (pre - 35) ** 2
    nfo = NFOR_DBMP + RLR_DB
    return 10 * math.log10(sum(10 ** (n / 10) for n in (NC_DBM0, nos, nor, nfo)))


NO_DBM0 = _noise_sum_dbm0()
RO = 15 - 1.5 * (SLR_DB + NO_DBM0)  # §7.2


def _simultaneous_impairment(t_ms: float) -> float:
    """Is = Iolr + Ist + Iq (§7.3)."""
    olr = SLR_DB + RLR_DB
    xolr = olr + 0.2 * (64 + NO_DBM0 - RLR_DB)
    iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8)
    stmro = -10 * math.log10(10 ** (-STMR_DB / 10) + math.exp(-t_ms / 4) * 10 ** (-TELR_DB / 10))
    ist = (
        12 * (1 + ((stmro - 13) / 6) ** 8) ** (1 / 8)
        - 28 * (1 + ((stmro + 1) / 19.4) ** 35) ** (1 / 35)
        - 13 * (1 + ((stmro - 3) / 33) ** 13) ** (1 / 13)
        + 29
    )
    q = 37 - 15 * math.log10(QDU)
    g = 1.07 + 0.258 * q + 0.0602 * q**2
    y = (RO - 100) / 15 + 46 / 8.4 - g / 9
    z = 46 / 30 - g / 40
    iq = 15 * math.log10(1 + 10**y + 10**z)
    return iolr + ist + iq


# -- Id (G.107 §7.4) --


def _talker_echo_impairment(t_ms: float) -> float:
    """Idte (§7.4); 0 for T < 1 ms, where echo is heard as sidetone.

    The STMR < 9 dB and STMR > 20 dB variants of §7.4 do not apply: STMR is its default 15.
    """
    if t_ms < 1:
        return 0.0
    roe = -1.5 * (NO_DBM0 - RLR_DB)
    terv = (
        TELR_DB - 40 * math.log10((1 + t_ms / 10) / (1 + t_ms / 150)) + 6 * math.exp(-0.3 * t_ms**2)
    )
    re = 80 + 2.5 * (terv - 14)
    d = roe - re
    return (d / 2 + math.sqrt(d**2 / 4 + 100) - 1) * (1 - math.exp(-t_ms))


def _listener_echo_impairment(tr_ms: float) -> float:
    """Idle (§7.4)."""
    rle = 10.5 * (WEPL_DB + 7) * (tr_ms + 1) ** -0.25
    return (RO - rle) / 2 + math.sqrt((RO - rle) ** 2 / 4 + 169)


def absolute_delay_impairment(ta_ms: float) -> float:
    """Idd (§7.4, eqs. 7-27, 7-28): 0 up to mT, then rising with log2(Ta / mT)."""
    if ta_ms <= MT_MS:
        return 0.0
    x = math.log10(ta_ms / MT_MS) / math.log10(2)
    k = 6 * ST
    return 25 * ((1 + x**k) ** (1 / k) - 3 * (1 + (x / 3) ** k) ** (1 / k) + 2)


def delay_impairment(one_way_delay_ms: float) -> float:
    """Id = Idte + Idle + Idd for a symmetric connection.

    The capture gives at most one delay, so the echo paths are taken to follow the media
    path: T = Ta = the one-way delay, Tr = twice it. Echo losses stay at their defaults
    (TELR 65 dB, WEPL 110 dB: echo cancellers doing their job), so Idte and Idle stay small
    and Idd carries the effect of a long path.
    """
    return (
        _talker_echo_impairment(one_way_delay_ms)
        + _listener_echo_impairment(2 * one_way_delay_ms)
        + absolute_delay_impairment(one_way_delay_ms)
    )


def narrowband_r(ie_eff: float, one_way_delay_ms: float = 0.0) -> float:
    """R = Ro − Is − Id − Ie,eff + A (eq. 7-1); with everything at default, 93.2."""
    return (
        RO
        - _simultaneous_impairment(one_way_delay_ms)
        - delay_impairment(one_way_delay_ms)
        - ie_eff
        + ADVANTAGE_A
    )


def _delay_cost(one_way_delay_ms: float) -> float:
    return delay_impairment(one_way_delay_ms) - delay_impairment(0.0)


# Said whenever the delay is unknown, so a reader sees what the default leaves out.
_UNMEASURED_DELAY_NB = (
    "one-way delay not measured: G.107 default T = Ta = 0 ms used; a real path lowers R "
    f"(by {_delay_cost(100):.1f} at 100 ms, {_delay_cost(200):.1f} at 200 ms one-way)"
)


def _bad_number(value: float, low: float, high: float) -> bool:
    return not math.isfinite(value) or not low <= value <= high


def mos(
    codec: str | int | None,
    loss_pct: float | None,
    burst_ratio: float | None = None,
    one_way_delay_ms: float | None = None,
    plc: bool = True,
    *,
    bitrate_kbps: float | None = None,
) -> MosResult:
    """MOS of one stream direction, or None with the reason it cannot be known.

    codec: SDP rtpmap encoding name ("PCMU", "G729", "AMR-WB/16000", ...) or a static RTP
    payload type number. loss_pct: packet loss in percent (Ppl; packets discarded by the
    jitter buffer count as lost if they are known). burst_ratio: G.107 BurstR, measured
    mean burst length over the one expected for random loss (None: random loss assumed).
    one_way_delay_ms: mouth-to-ear delay (network + packetisation + jitter buffer + codec).
    plc: whether the receiver conceals lost G.711 packets (G.711 Appendix I); other codecs
    conceal inside their decoder. bitrate_kbps: the mode of multi-rate codecs (G.723.1,
    G.726, AMR-WB), e.g. from an SDP fmtp that pins a single mode.
    """
    found = codec_impairments.lookup(codec, bitrate_kbps)
    assumptions = list(found.assumptions)
    if found.row is None:
        return MosResult(None, None, found.reason, assumptions)
    row = found.row

    if loss_pct is None:
        return MosResult(None, None, "loss unknown", assumptions, row.band)
    if _bad_number(loss_pct, 0.0, 100.0):
        return MosResult(None, None, f"loss_pct out of range: {loss_pct}", assumptions, row.band)
    if burst_ratio is not None and (not math.isfinite(burst_ratio) or burst_ratio <= 0):
        return MosResult(
            None, None, f"burst_ratio out of range: {burst_ratio}", assumptions, row.band
        )
    if one_way_delay_ms is not None and _bad_number(one_way_delay_ms, 0.0, math.inf):
        return MosResult(
            None, None, f"one_way_delay_ms out of range: {one_way_delay_ms}", assumptions, row.band
        )

    ie_eff = row.ie
    if loss_pct > 0:
        bpl = _robustness(row, plc, assumptions)
        if bpl is None:
            reason = f"no published packet-loss robustness factor (Bpl) for codec {row.name}"
            return MosResult(None, None, reason, assumptions, row.band)
        ie_eff = effective_equipment_impairment(
            row.ie, loss_pct, bpl, _burst_ratio(burst_ratio, assumptions)
        )

    if row.band == "wideband":
        return _wideband(ie_eff, one_way_delay_ms, assumptions)
    if one_way_delay_ms is None:
        assumptions.append(_UNMEASURED_DELAY_NB)
        delay_ms = 0.0
    else:
        assumptions.append(
            f"echo paths follow the media path: T = Ta = {one_way_delay_ms:g} ms, Tr = "
            f"{2 * one_way_delay_ms:g} ms, TELR 65 dB, WEPL 110 dB (G.107 defaults)"
        )
        delay_ms = one_way_delay_ms
    r = narrowband_r(ie_eff, delay_ms)
    return MosResult(r_to_mos(r), r, None, assumptions, "narrowband")


def _robustness(row: CodecImpairment, plc: bool, assumptions: list[str]) -> float | None:
    if row.bpl_no_plc is None:
        return row.bpl
    if plc:
        assumptions.append(f"{row.name} receiver conceals lost packets (Bpl {row.bpl:g})")
        return row.bpl
    return row.bpl_no_plc


def _burst_ratio(burst_ratio: float | None, assumptions: list[str]) -> float:
    if burst_ratio is None:
        assumptions.append("burst ratio not measured: random loss assumed (BurstR = 1)")
        return BURST_RATIO_RANDOM
    if burst_ratio < BURST_RATIO_RANDOM:
        # G.107 §7.5 defines BurstR = 1 for random and > 1 for bursty loss; "smoother than
        # random" would lower Ie,eff below the random-loss value, which G.107 never claims.
        assumptions.append(f"burst ratio {burst_ratio:.3g} < 1 taken as 1 (random loss)")
        return BURST_RATIO_RANDOM
    if burst_ratio > BURST_RATIO_MAX:
        # One long outage measures far above the range G.107 was fitted on.
        assumptions.append(
            f"burst ratio {burst_ratio:.3g} above G.107's range: {BURST_RATIO_MAX:g} used"
        )
        return BURST_RATIO_MAX
    return burst_ratio


def _wideband(
    ie_eff_wb: float, one_way_delay_ms: float | None, assumptions: list[str]
) -> MosResult:
    """R_WB = Ro,WB − Is,WB − Id,WB − Ie,eff,WB + A (G.107.1 eq. 7-1).

    Is,WB and A are 0 (G.107.1 defaults). Id,WB: only its absolute-delay part is known to
    be 0 (Ta ≤ mT = 100 ms); for a longer delay G.107.1's Id,WB is not implemented here,
    so the MOS is unknown rather than computed without it.
    """
    if one_way_delay_ms is not None and one_way_delay_ms > MT_MS:
        reason = (
            f"wideband delay impairment Id,WB (G.107.1) not implemented: one-way delay "
            f"{one_way_delay_ms:g} ms exceeds {MT_MS:g} ms"
        )
        return MosResult(None, None, reason, assumptions, "wideband")
    if one_way_delay_ms is None:
        assumptions.append("one-way delay not measured: taken as at most 100 ms (Idd,WB = 0)")
    assumptions.append("wideband: Is,WB and echo impairments taken as 0 (G.107.1 defaults)")
    r_wb = RO_WB - ie_eff_wb + ADVANTAGE_A
    return MosResult(r_wb_to_mos(r_wb), r_wb, None, assumptions, "wideband")
