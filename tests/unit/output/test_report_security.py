"""Every string in the records can come from an attacker: the report shows it as text,
never as markup. No script element, no event handler, no way out of an attribute."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests import pcapbuild as pb
from tests.reportread import Report, read_report
from tests.unit.output.reportdir import alert, call, flow, stream, write_dir
from voipscope.anomalies import Anomaly
from voipscope.cli.main import app
from voipscope.output.report import write_report
from voipscope.output.report.text import MAX_CELL_CHARS

XSS = '"><script>alert(1)</script>'
A, B = "10.0.0.1", "10.0.0.2"
# Ways out of text, attributes, <style>, SVG and <script> data, and the JS line breaks.
HOSTILE = [
    XSS,
    "<img src=x onerror=alert(2)>",
    "' onmouseover='alert(3)",
    "</style><svg onload=alert(4)>",
    "</title></svg><script>alert(5)</script>",
    "\u2028\u2029</script>",
    "<!--",
    "]]><x>",
    "javascript:alert(6)",
    "&lt;script&gt;",
]


def sip(first_line: str, cseq: str, to_tag: str = "") -> bytes:
    return (
        f"{first_line}\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK1\r\n"
        f'From: "{XSS}" <sip:alice@{A}>;tag=a1\r\nTo: {XSS} <sip:bob@{B}>{to_tag}\r\n'
        f"Call-ID: {XSS}@{A}\r\nCSeq: {cseq}\r\nUser-Agent: {XSS}\r\n"
        f"Contact: <sip:alice@{A}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def assert_inert(report: Report, html: str) -> None:
    """No element or attribute that runs code; the hostile text never appears raw."""
    tags = {tag for tag, _ in report.elements}
    assert not tags & {"script", "img", "iframe", "object", "embed", "foreignobject", "a "}
    assert not report.script_text
    for tag, attrs in report.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src", "xlink:href", "action", "formaction"):
                assert (value or "").startswith("#") or "." in (value or ""), (tag, name, value)
                assert ":" not in (value or ""), (tag, name, value)
    assert "<script" not in html.lower()  # only as &lt;script: text
    assert "\u2028" not in html and "\u2029" not in html
    assert sum(1 for tag, _ in report.elements if tag == "style") == 1


def test_sip_invite_with_script_in_from_and_user_agent(write_pcap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    capture = write_pcap(
        [
            pb.udp_packet(1.0, A, 5060, B, 5060, sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE")),
            pb.udp_packet(
                1.5, B, 5060, A, 5060, sip("SIP/2.0 486 Busy Here", "1 INVITE", ";tag=b")
            ),
        ]
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["analyze", str(capture), "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    report = read_report(out / "report.html")
    assert_inert(report, html)
    (row,) = report.tables["calls"]
    # The hostile text is there, as text: the analyst sees what the attacker sent.
    assert row["user-agent"] == XSS and row["call-id"] == f"{XSS}@{A}"
    assert row["state"] == "failed" and row["code"] == "486"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_hostile_text_in_every_record_field(tmp_path: Path) -> None:
    bad = " ".join(HOSTILE)
    flows = [
        flow(app=bad, protocol=bad, evidence=HOSTILE, call_id=bad, src_ip=bad, category=bad),
        flow(category="voip-media", evidence=[bad]),
    ]
    calls = [
        call(
            0,
            caller=bad,
            callee=bad,
            call_id=bad,
            user_agents=HOSTILE,
            protocol=bad,
            app=bad,
            state=bad,
            kind=bad,
            streams=[
                stream(
                    codec=bad, ssrc=bad, mos=None, mos_reason=bad, talk_spurts=[[1.7e9, 1.7e9 + 1]]
                )
            ],
        ),
        call(1, kind="registration", caller=bad, auth_usernames=HOSTILE, result=bad),
    ]
    alerts = [
        alert(
            0,
            kind=bad,
            severity=bad,
            summary=bad,
            evidence=HOSTILE,
            src_ip=bad,
            data={"decoded_hex": "3c7363726970743e", bad: bad},
        )
    ]
    anomalies = [Anomaly(1.7e9, bad, bad, 1, bad, bad)]
    summary = {
        "run": {
            "packets": 1,
            "warnings": HOSTILE,
            "anomalies": {bad: 1},
            "inputs": [{"path": bad, "format": bad}],
        }
    }
    out = write_dir(tmp_path, flows, calls, alerts, anomalies, summary)
    html = write_report(out).read_text()
    report = read_report(out / "report.html")
    assert_inert(report, html)
    # Shown as the text it is (clipped to MAX_CELL_CHARS, U+2028 made visible).
    (caller,) = report.column("calls", "caller")
    assert caller.startswith(bad[:150]) and "\\u2028\\u2029</script>" in caller
    assert caller.endswith(f"… (+{len(bad) - MAX_CELL_CHARS} chars)")
    assert report.column("alerts", "summary") == [caller]
    assert XSS in report.column("alerts", "evidence")[0]
    assert "as text: <script>" in report.column("alerts", "data")[0]


def test_invisible_and_bidi_characters_are_made_visible(tmp_path: Path) -> None:
    # U+202E would show "evil\u202eexe.txt" as "eviltxt.exe"; NUL and ESC hide in a cell.
    calls = [call(0, caller="sip:evil\u202etxt.exe@x\x00\x1b[31m")]
    out = write_dir(tmp_path, [flow()], calls)
    report = read_report(write_report(out))
    assert report.column("calls", "caller") == ["sip:evil\\u202etxt.exe@x\\x00\\x1b[31m"]
