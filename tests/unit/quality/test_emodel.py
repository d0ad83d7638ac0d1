"""E-model MOS (G.107 / G.107.1): reference points, codec table, unknowns, properties."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voipscope.quality import codec_impairments as ci
from voipscope.quality import emodel
from voipscope.quality.emodel import (
    absolute_delay_impairment,
    effective_equipment_impairment,
    mos,
    r_to_mos,
    r_wb_to_mos,
)


def annex_b(r: float) -> float:
    """G.107 Annex B, written out independently of the module."""
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


# -- G.107 reference points --


def test_default_parameters_give_the_g107_intermediate_values() -> None:
    # G.107 §7.7: all defaults give Ro 94.77, Is 1.41, Id 0.15 and R 93.2.
    ro = emodel.RO
    assert ro == pytest.approx(94.77, abs=0.005)
    assert emodel._simultaneous_impairment(0.0) == pytest.approx(1.41, abs=0.005)
    assert emodel.delay_impairment(0.0) == pytest.approx(0.15, abs=0.005)
    assert emodel.narrowband_r(ie_eff=0.0) == pytest.approx(93.2, abs=0.01)


def test_default_parameters_give_mos_4_41() -> None:
    assert r_to_mos(emodel.narrowband_r(0.0)) == pytest.approx(4.41, abs=0.005)


@pytest.mark.parametrize(
    ("r", "expected"),
    [(50, 2.575), (60, 3.1), (70, 3.597), (80, 4.024), (90, 4.339), (93.2, 4.409)],
)
def test_r_to_mos_matches_annex_b(r: float, expected: float) -> None:
    assert r_to_mos(r) == pytest.approx(annex_b(r))
    assert r_to_mos(r) == pytest.approx(expected, abs=0.0005)


@pytest.mark.parametrize(("r", "expected"), [(-5, 1.0), (0, 1.0), (100, 4.5), (120, 4.5)])
def test_r_to_mos_ends_of_the_scale(r: float, expected: float) -> None:
    assert r_to_mos(r) == expected


def test_r_to_mos_holds_the_floor_where_the_cubic_dips_below_one() -> None:
    assert annex_b(3.0) < 1.0  # the standard's cubic itself
    assert r_to_mos(3.0) == 1.0
    grid = [i / 10 for i in range(-50, 1300)]
    values = [r_to_mos(r) for r in grid]
    assert values == sorted(values)


def test_g711_without_loss_is_r_93_2() -> None:
    result = mos("PCMU", 0.0)
    assert result.r_factor == pytest.approx(93.2, abs=0.01)
    assert result.mos == pytest.approx(4.41, abs=0.005)
    assert result.reason is None
    assert result.band == "narrowband"


def test_g729a_without_loss_is_r_82_2() -> None:
    assert mos("G729", 0.0).r_factor == pytest.approx(82.2, abs=0.01)
    assert mos("G.729A", 0.0).r_factor == pytest.approx(82.2, abs=0.01)


@pytest.mark.parametrize(
    ("codec", "r"),
    [("G723", 78.2), ("GSM", 73.2), ("G726-32", 86.2), ("G728", 86.2), ("GSM-EFR", 88.2)],
)
def test_other_narrowband_codecs_without_loss(codec: str, r: float) -> None:
    assert mos(codec, 0.0).r_factor == pytest.approx(r, abs=0.01)


def test_g723_rates() -> None:
    assert mos("G723", 0.0, bitrate_kbps=5.3).r_factor == pytest.approx(74.2, abs=0.01)
    assert mos("G723", 0.0, bitrate_kbps=6.3).r_factor == pytest.approx(78.2, abs=0.01)
    assert "6.3 kbit/s assumed" in " ".join(mos("G723", 0.0).assumptions)
    assert mos("G723", 0.0, bitrate_kbps=8).mos is None


# -- Ie,eff and loss --


def test_ie_eff_formula_g729a_and_g711() -> None:
    # G.729A + VAD at 2 %: 11 + 84 * 2 / (2 + 19) = 19 (G.113's own planning example value).
    assert effective_equipment_impairment(11, 2.0, 19.0) == pytest.approx(19.0)
    assert effective_equipment_impairment(0, 2.0, 25.1) == pytest.approx(95 * 2 / 27.1)
    assert effective_equipment_impairment(0, 2.0, 25.1, burst_ratio=2) == pytest.approx(
        95 * 2 / (1 + 25.1)
    )


def test_loss_lowers_r_by_ie_eff() -> None:
    base = mos("PCMA", 0.0).r_factor
    lossy = mos("PCMA", 2.0).r_factor
    assert base is not None and lossy is not None
    assert base - lossy == pytest.approx(95 * 2 / 27.1)


@pytest.mark.parametrize("codec", ["PCMU", "G729", "G723"])
def test_mos_falls_strictly_with_loss(codec: str) -> None:
    values = [mos(codec, loss / 2).mos for loss in range(201)]
    assert all(v is not None for v in values)
    assert all(a > b for a, b in itertools.pairwise(values))  # type: ignore[operator]


def test_burst_loss_is_worse_than_random_loss() -> None:
    random_ = mos("PCMU", 3.0, burst_ratio=1.0).mos
    bursty = mos("PCMU", 3.0, burst_ratio=2.5).mos
    assert random_ is not None and bursty is not None
    assert bursty < random_
    assert mos("PCMU", 3.0).mos == random_  # unmeasured BurstR is random loss...
    assert "random loss assumed" in " ".join(mos("PCMU", 3.0).assumptions)  # ...and says so


def test_burst_ratio_below_one_is_not_better_than_random() -> None:
    smooth = mos("PCMU", 3.0, burst_ratio=0.5)
    assert smooth.mos == mos("PCMU", 3.0, burst_ratio=1.0).mos
    assert any("< 1 taken as 1" in a for a in smooth.assumptions)


def test_g711_without_plc_is_worse() -> None:
    with_plc = mos("PCMU", 1.0).mos
    without = mos("PCMU", 1.0, plc=False)
    assert with_plc is not None and without.r_factor is not None
    assert without.mos is not None and without.mos < with_plc
    assert without.r_factor == pytest.approx(emodel.narrowband_r(95 * 1 / (1 + 4.3)))


# -- delay --


def test_idd_is_zero_up_to_100_ms_then_follows_eq_7_27() -> None:
    assert absolute_delay_impairment(100.0) == 0.0
    x = math.log2(200 / 100)
    expected = 25 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
    assert absolute_delay_impairment(200.0) == pytest.approx(expected)
    assert absolute_delay_impairment(400.0) == pytest.approx(24.07, abs=0.01)


def test_longer_delay_lowers_mos() -> None:
    values = [mos("PCMU", 0.0, one_way_delay_ms=d).mos for d in (0, 100, 150, 200, 300, 500)]
    assert all(a > b for a, b in itertools.pairwise(values))  # type: ignore[operator]


def test_unmeasured_delay_uses_the_g107_default_and_says_so() -> None:
    result = mos("PCMU", 0.0)
    assert result.r_factor == mos("PCMU", 0.0, one_way_delay_ms=0.0).r_factor
    assert any("delay not measured" in a for a in result.assumptions)


# -- codec names and payload types --


@pytest.mark.parametrize("codec", ["PCMU", "pcmu", "PCMA", "PCMU/8000", " pcma/8000/1 ", 0, 8, "0"])
def test_g711_spellings(codec: str | int) -> None:
    assert mos(codec, 0.0).r_factor == pytest.approx(93.2, abs=0.01)


@pytest.mark.parametrize(
    ("pt", "name"), [(0, "PCMU"), (3, "GSM"), (4, "G723"), (8, "PCMA"), (9, "G722"), (18, "G729")]
)
def test_static_payload_types_map_to_their_codec(pt: int, name: str) -> None:
    assert mos(pt, 1.0) == mos(name, 1.0)


@pytest.mark.parametrize(
    ("codec", "reason"),
    [
        (None, "codec unknown"),
        ("", "codec unknown"),
        (96, "codec unknown: dynamic payload type 96 without rtpmap"),
        ("opus", "no published impairment factor for codec opus"),
        ("OPUS/48000/2", "no published impairment factor for codec opus"),
        ("AMR", "no published impairment factor for codec AMR"),
        ("SPEEX", "no impairment factor on file for codec SPEEX"),
        ("iLBC", "impairment factor for codec iLBC not verified against ITU-T G.113"),
        ("G722", "impairment factor for codec G722 not verified against ITU-T G.113"),
        ("AMR-WB", "AMR-WB mode (bit rate) unknown"),
    ],
)
def test_unknown_codec_gives_none_and_reason(codec: str | int | None, reason: str) -> None:
    result = mos(codec, 0.0)
    assert result.mos is None and result.r_factor is None
    assert result.reason == reason


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"loss_pct": None}, "loss unknown"),
        ({"loss_pct": math.nan}, "loss_pct out of range: nan"),
        ({"loss_pct": -1.0}, "loss_pct out of range: -1.0"),
        ({"loss_pct": 100.5}, "loss_pct out of range: 100.5"),
        ({"loss_pct": 1.0, "burst_ratio": 0.0}, "burst_ratio out of range: 0.0"),
        ({"loss_pct": 1.0, "one_way_delay_ms": -3.0}, "one_way_delay_ms out of range: -3.0"),
    ],
)
def test_unknown_or_invalid_measurements_give_none(kwargs: dict, reason: str) -> None:
    result = mos("PCMU", **kwargs)
    assert result.mos is None and result.r_factor is None
    assert result.reason == reason


def test_codec_without_published_bpl_is_only_known_without_loss() -> None:
    assert mos("GSM", 0.0).mos is not None
    lossy = mos("GSM", 0.5)
    assert lossy.mos is None
    assert lossy.reason == "no published packet-loss robustness factor (Bpl) for codec GSM-FR"


# -- wideband (G.107.1) --


@pytest.mark.parametrize(
    ("kbps", "r_wb", "expected_mos"),
    [(12.65, 116.0, 4.3371), (23.05, 128.0, 4.4940), (23.85, 121.0, 4.4206), (6.6, 88.0, 3.5123)],
)
def test_amr_wb_modes_on_the_wideband_scale(kbps: float, r_wb: float, expected_mos: float) -> None:
    result = mos("AMR-WB/16000/1", 0.0, bitrate_kbps=kbps)
    assert result.band == "wideband"
    assert result.r_factor == pytest.approx(r_wb)
    assert result.mos == pytest.approx(annex_b(r_wb / 1.29))
    assert result.mos == pytest.approx(expected_mos, abs=0.0005)


def test_wideband_scale_ends() -> None:
    assert r_wb_to_mos(129.0) == 4.5
    assert r_wb_to_mos(0.0) == 1.0


def test_wideband_unknowns_give_none() -> None:
    assert mos("AMR-WB", 0.0, bitrate_kbps=13.0).reason == "AMR-WB has no 13 kbit/s mode"
    lossy = mos("AMR-WB", 1.0, bitrate_kbps=12.65)
    assert lossy.mos is None
    assert lossy.reason is not None and "Bpl" in lossy.reason
    far = mos("AMR-WB", 0.0, bitrate_kbps=12.65, one_way_delay_ms=250.0)
    assert far.mos is None
    assert far.reason is not None and "Id,WB" in far.reason
    near = mos("AMR-WB", 0.0, bitrate_kbps=12.65, one_way_delay_ms=80.0)
    assert near.r_factor == pytest.approx(116.0)


# -- the table itself --


def test_every_row_has_a_source_and_a_plausible_value() -> None:
    rows = [ci.G711, ci.G729A, ci.G723_63, ci.G723_53, ci.G726_32, ci.G728, ci.GSM_FR]
    rows += [ci.GSM_EFR] + [ci._amr_wb(k) for k in ci.AMR_WB_IE_WB]
    for row in rows:
        assert row.source
        assert 0 <= row.ie < 95
        assert row.bpl is None or row.bpl > 0


# -- properties --

NARROWBAND = ["PCMU", "PCMA", "G729", "G723", 0, 8, 18, 4]
losses = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
bursts = st.none() | st.floats(min_value=0.01, max_value=50.0, allow_nan=False)
delays = st.none() | st.floats(min_value=0.0, max_value=2000.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NARROWBAND), losses, bursts, delays, st.booleans())
def test_mos_stays_on_the_scale(
    codec: str | int, loss: float, burst: float | None, delay: float | None, plc: bool
) -> None:
    result = mos(codec, loss, burst, delay, plc)
    assert result.mos is not None and result.r_factor is not None
    assert 1.0 <= result.mos <= 4.5
    assert math.isfinite(result.r_factor)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NARROWBAND), losses, losses, bursts, delays, st.booleans())
def test_mos_is_monotone_in_loss(
    codec: str | int, a: float, b: float, burst: float | None, delay: float | None, plc: bool
) -> None:
    low, high = sorted((a, b))
    better = mos(codec, low, burst, delay, plc).mos
    worse = mos(codec, high, burst, delay, plc).mos
    assert better is not None and worse is not None
    assert worse <= better


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=12), st.integers(0, 127)), st.none() | losses)
@example(codec="0\x1f", loss=None)  # str.strip() removes \x1f, int() does not (a crash)
def test_mos_is_never_a_default_best_case(codec: str | int | None, loss: float | None) -> None:
    result = mos(codec, loss)
    if result.mos is None:
        assert result.reason
        assert result.r_factor is None
    else:
        assert loss is not None and result.mos < 4.5
