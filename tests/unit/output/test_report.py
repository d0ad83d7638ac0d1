"""report.html from an analyze directory: capped tables that say where the rest is,
bounded size, MOS never invented, decoded tone data, anomalies with exact counts."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from tests.reportread import read_report
from tests.unit.output.reportdir import T0, alert, call, flow, flows_table, stream, write_dir
from voipscope.anomalies import Anomaly
from voipscope.output.report import Limits, write_report
from voipscope.output.report.query import MAX_BINS

WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def report_of(out: Path, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    path = write_report(out, limits, generated_at=WHEN)
    return path, read_report(path)


def test_tables_are_capped_and_say_how_many_more_where(tmp_path: Path) -> None:
    limits = Limits()
    calls = [call(n) for n in range(limits.calls + 700)]
    calls += [
        call(10_000 + n, kind="registration", state="failed", final_code=401)
        for n in range(limits.registrations + 5)
    ]
    calls[0]["streams"] = [stream(mos=3.0 + n / 1000) for n in range(limits.streams + 20)]
    alerts = [alert(n, severity=("low", "high")[n % 2]) for n in range(limits.alerts + 40)]
    _, report = report_of(write_dir(tmp_path, [flow(last_seen=T0 + 20_000)], calls, alerts))

    assert len(report.tables["calls"]) == limits.calls
    assert report.column("calls", "caller")[:3] == ["sip:a0@x", "sip:a1@x", "sip:a2@x"]
    assert len(report.tables["registrations"]) == limits.registrations
    assert len(report.tables["streams"]) == limits.streams
    assert report.column("streams", "mos")[0] == "3.00"  # worst first
    assert len(report.tables["alerts"]) == limits.alerts
    assert set(report.column("alerts", "severity")[: (limits.alerts + 40) // 2]) == {"high"}
    capped = report.text_by_class["capped"]
    assert (
        "Showing the first 500 of 1,200 calls (by start time); the other 700 are in "
        "calls.parquet (kind other than registration)." in capped
    )
    assert any(
        "first 200 of 205 registrations" in c and "5 are in calls.parquet" in c for c in capped
    )
    assert any("first 300 of 320 media streams" in c and "streams.parquet" in c for c in capped)
    assert any("first 300 of 340 alerts" in c and "40 are in alerts.jsonl" in c for c in capped)
    assert any(
        "timeline (first 40 of 1,200 calls)" in t
        for _, a in report.elements
        for t in [a.get("aria-label") or ""]
    )


def test_small_limits_apply_everywhere(tmp_path: Path) -> None:
    limits = Limits(calls=2, registrations=1, streams=1, alerts=1, voip_flows=1, evidence_items=1)
    calls = [call(n, streams=[stream()]) for n in range(3)]
    flows = [flow(evidence=["a", "b", "c"]), flow(), flow(category="other")]
    alerts = [alert(n, evidence=["x", "y"]) for n in range(2)]
    _, report = report_of(write_dir(tmp_path, flows, calls, alerts), limits)
    assert [len(report.tables[t]) for t in ("calls", "streams", "alerts", "voip-flows")] == [
        2,
        1,
        1,
        1,
    ]
    assert "+2 more in flows.parquet (flow_id 0)" in report.column("voip-flows", "evidence")[0]
    assert "+1 more in alerts.jsonl" in report.column("alerts", "evidence")[0]


def test_100k_flows_give_a_small_report_with_exact_counts(tmp_path: Path) -> None:
    n = 100_000
    rng = random.Random(7)
    categories = [
        rng.choice(["voip-signaling", "voip-media", "other", "unknown"]) for _ in range(n)
    ]
    first = [T0 + rng.uniform(0, 7200) for _ in range(n)]
    flows = flows_table(
        {
            "first_seen": first,
            "last_seen": [t + 5 for t in first],
            "category": categories,
            "protocol": [f"P{rng.randrange(40)}" for _ in range(n)],
            "app": [rng.choice([None, "Zoom", "Teams"]) for _ in range(n)],
            "evidence": [["x" * 150] * 3 for _ in range(n)],
            "src_ip": [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n)],
        }
    )
    path, report = report_of(write_dir(tmp_path, flows))
    assert path.stat().st_size < 1_000_000
    shown = {
        r["category"]: int(r["flows"].replace(",", "")) for r in report.tables["flow-categories"]
    }
    assert shown == {c: categories.count(c) for c in shown} and sum(shown.values()) == n
    assert len(report.tables["voip-flows"]) == Limits().voip_flows
    voip = sum(c.startswith("voip") for c in categories)
    assert any(f"first 200 of {voip:,} VoIP flows" in c for c in report.text_by_class["capped"])
    # 40 protocols: 14 bars and one for the rest; the histogram has at most MAX_BINS + 1 bins.
    labels = [a.get("aria-label") for tag, a in report.elements if tag == "svg"]
    assert "Flows per protocol" in labels
    bars = [e for e in report.elements if e[0] == "rect"]
    assert len(bars) < 4 * (MAX_BINS + 1) + 200
    assert "26 other protocols" in report.text


def test_unknown_mos_is_shown_with_its_reason_never_invented(tmp_path: Path) -> None:
    calls = [
        call(
            0,
            streams=[
                stream(mos=None, mos_reason="codec unknown: dynamic payload type 96"),
                stream(mos=None, mos_reason=None),
            ],
        ),
        call(1),  # no stream at all
        call(2, streams=[stream(mos=3.2), stream(mos=None, mos_reason="too short")]),
    ]
    _, report = report_of(write_dir(tmp_path, [flow()], calls))
    assert report.column("calls", "mos") == [
        "unknowncodec unknown: dynamic payload type 96; no reason given",
        "unknownno RTP stream in the capture",
        "3.20",
    ]
    mos = report.column("streams", "mos")
    assert mos[0] == "3.20" and sorted(mos[1:]) == [
        "unknowncodec unknown: dynamic payload type 96",
        "unknownno reason given",
        "unknowntoo short",
    ]
    bands = [a.get("aria-label") for t, a in report.elements if t == "svg"]
    assert "Streams per MOS band (E-model)" in bands


def test_tone_exfiltration_shows_the_decoded_data(tmp_path: Path) -> None:
    secret = b"card 4111</script>\x00\x01"
    tone = alert(
        0,
        kind="tone-exfiltration",
        severity="high",
        summary="data in tones",
        data={"decoded_hex": secret.hex(), "decoded_bytes": len(secret)},
    )
    _, report = report_of(write_dir(tmp_path, [flow()], [call(0)], [tone, alert(1)]))
    (row, other) = report.tables["alerts"]
    assert row["kind"] == "tone-exfiltration" and row["severity"] == "high"
    assert f"decoded hex: {secret.hex()}" in row["data"]
    assert "as text: card 4111</script>.." in row["data"]
    assert '"decoded_bytes": 20' in row["data"]
    assert other["data"] == "—"
    assert not report.script_text and all(tag != "script" for tag, _ in report.elements)


def test_talk_spurts_timeline_and_anomalies(tmp_path: Path) -> None:
    spurts = [[T0 + k * 0.5, T0 + k * 0.5 + 0.3] for k in range(4000)]  # merge at pixel scale
    calls = [call(0, streams=[stream(talk_spurts=spurts, last_seen=T0 + 2000)])]
    anomalies = [
        Anomaly(T0, "sip_malformed", "bad start line", 3, "10.0.0.1", "10.0.0.2"),
        Anomaly(T0 + 1, "sip_malformed", "second", 3, "10.0.0.1", "10.0.0.2"),
    ]
    summary = {"run": {"packets": 5, "anomalies": {"sip_malformed": 12345}}}
    _, report = report_of(
        write_dir(tmp_path, [flow()], calls, anomalies=anomalies, summary=summary)
    )
    labels = [a.get("aria-label") or "" for t, a in report.elements if t == "svg"]
    assert "Who talked when: sip:a0@x → sip:b0@y (call-id call-0)" in labels
    assert len([e for e in report.elements if e[0] == "rect"]) < 1500
    assert report.tables["anomalies"] == [
        {
            "name": "sip_malformed",
            "count": "12,345",
            "example": "2023-11-14 22:13:20.000 10.0.0.1 → 10.0.0.2 (flow 3)bad start line",
        }
    ]
    assert "Anomalies: 12,345 anomalies" in report.text


def test_a_media_outage_is_shown_in_the_table_and_on_the_timeline(tmp_path: Path) -> None:
    outage = stream(
        longest_gap_ms=5000.0, outages=2, outage_s=6.5, longest_outage_ms=5000.0,
        longest_outage_start=T0 + 10, longest_outage_lost=250, burst_ratio=8.0,
        last_seen=T0 + 30, talk_spurts=[[T0 + 1, T0 + 4]], mos=1.0,
    )  # fmt: skip
    pause = stream(src_port=4002, longest_gap_ms=5000.0, outages=0, mos=4.0)
    calls = [call(0, streams=[outage, stream(src_ip="10.0.0.2", dst_ip="10.0.0.1")]),
             call(1, streams=[pause])]  # fmt: skip
    _, report = report_of(write_dir(tmp_path, [flow()], calls))
    gaps = report.column("streams", "gap")
    assert gaps[0] == "outage 5.00 s, 250 lost (2 outages, 6.50 s)"  # worst MOS first
    assert "5.00 s" in gaps and "—" in gaps  # a pause; a stream without a gap
    assert report.column("streams", "burst")[0] == "8.00"
    tip = "media outage 22:13:30.000–22:13:35.000 (5.00 s): 250 packets sent, never seen here"
    assert report.text.count(tip) == 1  # the red span's tooltip on the timeline
    assert ("rect", "#c0392b") in {(t, a.get("fill")) for t, a in report.elements}


def test_calls_whose_media_did_not_come_are_flagged(tmp_path: Path) -> None:
    calls = [
        call(0, evidence=["BYE from the caller", "no media seen: answered and up for 30.0 s"]),
        call(1, streams=[stream()], evidence=["one-way media: only 10.0.0.1:4000 -> ..."]),
        call(2, streams=[stream(), stream(src_ip="10.0.0.2", dst_ip="10.0.0.1")]),
    ]
    _, report = report_of(write_dir(tmp_path, [flow()], calls))
    assert report.column("calls", "streams") == ["0no media seen", "1one-way media", "2"]


def test_empty_directory_records(tmp_path: Path) -> None:
    summary = {"run": {"packets": 0, "inputs": [{"path": "e.pcap", "packets": 0}]}}
    _, report = report_of(write_dir(tmp_path, summary=summary))
    assert "The inputs hold no packets: there is nothing to report." in report.text
    assert "2026-01-02 03:04:05 UTC (wall clock, not capture time)" in report.text
    assert {r["category"]: r["flows"] for r in report.tables.pop("flow-categories")} == {
        "voip-signaling": "0",
        "voip-media": "0",
        "other": "0",
        "unknown": "0",
    }
    assert all(not rows for rows in report.tables.values())


@pytest.mark.parametrize("missing", ["summary.json", "anomalies.jsonl", "alerts.jsonl"])
def test_optional_files_may_be_missing(tmp_path: Path, missing: str) -> None:
    out = write_dir(tmp_path, [flow()], [call(0)], [alert(0)])
    (out / missing).unlink()
    _, report = report_of(out)
    assert report.column("calls", "caller") == ["sip:a0@x"]


def test_a_flow_from_a_clock_far_off_is_counted_but_not_drawn(tmp_path: Path) -> None:
    # One flow stamped 1970 (a device before NTP) beside an hour of traffic in 2023.
    flows = [flow(first_seen=42.0, last_seen=43.0, category="other")]
    flows += [flow(first_seen=T0 + 60 * k, last_seen=T0 + 60 * k + 5) for k in range(60)]
    _, report = report_of(write_dir(tmp_path, flows, [call(0)]))
    (notice,) = [t for t in report.text_by_class["notice"] if "charts over time" in t]
    assert notice.startswith(
        "The charts over time cover 2023-11-14 22:13:20.000 – "
        "2023-11-14 23:12:25.000 UTC: 1 flow far from all the others"
    )
    assert "capture spans 1970-01-01 00:00:42.000" in notice
    assert "2023-11-14 23:12:25.000 UTC (59 min 5 s)" not in report.text  # header: whole span
    assert "1970-01-01 00:00:42.000 – 2023-11-14 23:12:25.000 UTC" in report.text
    assert {r["category"]: r["flows"] for r in report.tables["flow-categories"]}["other"] == "1"
    labels = [a.get("aria-label") for t, a in report.elements if t == "svg"]
    assert "Flows started" in labels


def test_a_steady_capture_draws_everything(tmp_path: Path) -> None:
    flows = [flow(first_seen=T0 + 3600 * k, last_seen=T0 + 3600 * k + 1) for k in range(3)]
    _, report = report_of(write_dir(tmp_path, flows))
    assert not [t for t in report.text_by_class.get("notice", []) if "charts over time" in t]


def test_every_field_hostile_and_long_still_gives_a_bounded_page(tmp_path: Path) -> None:
    # Each value 1000 characters that escape to 6 each ("): cells are cut by characters
    # and by markup, rows by Limits, so the page stays a few MB (the records are ~30 MB).
    x = '"' * 1000
    limits = Limits()
    calls = [
        call(
            i,
            caller=x,
            callee=x,
            call_id=x,
            user_agents=[x] * 3,
            protocol=x,
            app=x,
            streams=[stream(codec=x, ssrc=x, mos=None, mos_reason=x)],
        )
        for i in range(limits.calls + 1)
    ]
    calls += [
        call(9_000 + i, kind="registration", caller=x, callee=x, auth_usernames=[x] * 9, result=x)
        for i in range(limits.registrations + 1)
    ]
    flows = [
        flow(category="voip-media", evidence=[x] * 9, app=x, protocol=x, call_id=x)
        for _ in range(limits.voip_flows + 1)
    ]
    alerts = [
        alert(
            i,
            summary=x,
            evidence=[x] * 9,
            kind=x,
            src_ip=x,
            data={"decoded_hex": "22" * 5000, x: x},
        )
        for i in range(limits.alerts + 1)
    ]
    summary = {
        "run": {
            "packets": 1,
            "warnings": [x] * 99,
            "inputs": [{"path": x}] * 99,
            "anomalies": {f"{i}{x}": 1 for i in range(limits.anomaly_names + 1)},
        }
    }
    path, report = report_of(write_dir(tmp_path, flows, calls, alerts, summary=summary))
    assert path.stat().st_size < 8_000_000
    (caller, *_) = report.column("calls", "caller")
    # 66 quotes are 396 characters of markup: the budget of a 200-character cell.
    assert caller == '"' * 66 + "… (+934 chars)"
    assert len(report.tables["anomalies"]) == limits.anomaly_names


def test_report_names_the_version_that_wrote_the_records() -> None:
    from voipscope._version import __version__
    from voipscope.output.report import _versions

    assert _versions({"voipscope_version": __version__}) == __version__
    assert _versions({}) == __version__  # a directory written before the field existed
    assert _versions({"voipscope_version": "0.1.0"}) == f"0.1.0 (records); report by {__version__}"
