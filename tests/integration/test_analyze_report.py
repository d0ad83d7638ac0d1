"""`voipscope analyze` writes report.html beside the records, and the report shows the
records: its calls, registrations, flow counts, streams and alerts equal the files."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.reportread import Report, read_report
from voipscope.cli.main import app

runner = CliRunner()

CAPTURES = [
    "sip.pcap",  # SIP calls and registrations, one RTP stream with a MOS
    "h323.pcap",  # H.323 calls, no media
    "rtp.pcapng",  # RTP without signalling: streams whose MOS is unknown, talk spurts
    "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",  # SIP with T.38
    "dns.pcap",  # no VoIP at all
]
EXTERNAL = re.compile(r"^\s*(https?:|//|ftp:|data:text/html)", re.I)


def analyze(capture: Path, out: Path, *extra: str) -> Report:
    result = runner.invoke(app, ["analyze", str(capture), "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    return read_report(out / "report.html")


def cell(value: object) -> str:
    return "—" if value is None else str(value)


def check_offline(report: Report) -> None:
    """Nothing fetched at view time: no script at all, no external src/href, no CSS import."""
    assert not [
        tag
        for tag, _ in report.elements
        if tag in ("script", "iframe", "object", "embed", "link", "img")
    ]
    for tag, attrs in report.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href", "xlink:href", "action", "srcset", "xmlns") and value:
                assert not EXTERNAL.match(value) and "://" not in value, (tag, name, value)
    meta = [a for tag, a in report.elements if tag == "meta" and a.get("http-equiv")]
    assert any("default-src 'none'" in (a.get("content") or "") for a in meta)


@pytest.mark.parametrize("name", CAPTURES)
def test_report_shows_the_records(shared_captures: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    report = analyze(shared_captures / name, out)
    html = (out / "report.html").read_text()
    check_offline(report)
    assert "@import" not in html and "url(" not in html
    # Not even an SVG namespace: no URL at all in the page (these captures quote none).
    assert "http://" not in html and "https://" not in html

    flows = pl.read_parquet(out / "flows.parquet")
    shown = {
        row["category"]: int(row["flows"].replace(",", ""))
        for row in report.tables["flow-categories"]
    }
    expected = Counter(flows["category"].fill_null("unknown").to_list())
    assert shown == {c: expected.get(c, 0) for c in shown} and sum(shown.values()) == len(flows)
    voip = flows.filter(pl.col("category").is_in(["voip-signaling", "voip-media"]))
    assert len(report.tables.get("voip-flows", [])) == len(voip)

    calls = pl.read_parquet(out / "calls.parquet").with_columns(pl.col("kind").fill_null("call"))
    for table, frame in (
        ("calls", calls.filter(pl.col("kind") != "registration")),
        ("registrations", calls.filter(pl.col("kind") == "registration")),
    ):
        frame = frame.sort("start", "call_id", nulls_last=True)
        rows = [(r["caller"], r["callee"], r["state"]) for r in report.tables.get(table, [])]
        want = [tuple(cell(r[k]) for k in ("caller", "callee", "state")) for r in frame.to_dicts()]
        assert rows == want, table

    streams = pl.read_parquet(out / "streams.parquet")
    shown_mos = Counter(row["mos"] for row in report.tables.get("streams", []))
    want_mos = Counter(
        "unknown" + (s["mos_reason"] or "no reason given")
        if s["mos"] is None
        else f"{s['mos']:.2f}"
        for s in streams.to_dicts()
    )
    assert shown_mos == want_mos
    if not len(voip):
        assert "no VoIP flow" in report.text
    summary = json.loads((out / "summary.json").read_text())
    assert f"{summary['run']['packets']:,}" in report.text


def test_sip_report_has_its_call_mos_and_alert(shared_captures: Path, tmp_path: Path) -> None:
    # A strict brute-force threshold makes the sample's failed digest attempts alerts, one
    # per episode (three bursts of guesses more than alert_quiet_s apart).
    out = tmp_path / "out"
    report = analyze(
        shared_captures / "sip.pcap", out, "-c", "detect.sip_bruteforce.min_failures=2"
    )
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert [a["kind"] for a in alerts] == ["sip-bruteforce"] * 3
    rows = report.tables["alerts"]
    assert sorted((r["kind"], r["src"], r["dst"], r["summary"]) for r in rows) == sorted(
        (a["kind"], cell(a["src_ip"]), cell(a["dst_ip"]), a["summary"]) for a in alerts
    )
    by_summary = {a["summary"]: a for a in alerts}
    for row in rows:
        alert = by_summary[row["summary"]]
        assert row["severity"] == alert["severity"]
        assert all(e in row["evidence"] for e in alert["evidence"][:5])
    # The one call with RTP shows its stream's MOS; the others say why there is none.
    mos = {r["caller"] + " " + r["callee"]: r["mos"] for r in report.tables["calls"]}
    assert mos["sip:35104723@sip.cybercity.dk sip:35104724@sip.cybercity.dk"] == "4.41"
    assert Counter(v for v in mos.values()) == Counter(
        {"4.41": 1, "unknownno RTP stream in the capture": 3}
    )


def test_report_size_and_cli_line(shared_captures: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(shared_captures / "sip.pcap"), "-o", str(out)])
    assert result.exit_code == 0
    size = (out / "report.html").stat().st_size
    assert 5_000 < size < 200_000  # inline SVG, no bundled plotting runtime
    assert f"  report: {out / 'report.html'} ({size / 1024:,.0f} kB)\n" in result.stdout
