"""Episodes at their edges (found by review): a flood on a key that is never quiet, a
scanner that keeps probing targets it already knows, and a password found after the
guessing stopped for longer than the quiet time."""

from voipscope.detect.alerts import AlertBook
from voipscope.detect.sip_bruteforce import SipBruteforceDetector
from voipscope.detect.sip_facts import SipFacts
from voipscope.detect.sip_flood import SipFloodDetector
from voipscope.detect.sip_scan import SipScanDetector

T0 = 1_700_000_000.0
ATTACKER, SERVER = "203.0.113.66", "192.0.2.10"


def req(t: float, src: str, dst: str, method: str = "INVITE", call_id: str | None = None,
        auth: str | None = None) -> SipFacts:  # fmt: skip
    return SipFacts(t, src, 5070, dst, 5060, 17, True, method, None, call_id, 1, "100", auth,
                    None)  # fmt: skip


def resp(t: float, r: SipFacts, status: int) -> SipFacts:
    return SipFacts(t, r.dst_ip, r.dst_port, r.src_ip, r.src_port, 17, False, r.method, status,
                    r.call_id, 1, None, None, None)  # fmt: skip


def test_a_flood_counts_its_own_requests_on_a_key_that_is_never_quiet() -> None:
    """A busy server's ordinary INVITEs (1/s, from many sources) keep its 'many sources'
    key alive for two hours; two floods of 3,000 INVITEs an hour apart are two alerts
    of about 3,000 each (the window's share at the start included), not 3,000 and 9,700."""
    book = AlertBook()
    detector = SipFloodDetector(book)
    events = [req(T0 + s, f"10.1.1.{s % 50}", SERVER) for s in range(7200)]
    for start in (100, 3700):
        events += [req(T0 + start + k / 150, f"198.51.100.{k % 200}", SERVER)
                   for k in range(3000)]  # fmt: skip
    for event in sorted(events, key=lambda e: e.ts_s):
        detector.on_sip(event)
    floods = [a for a in book.finish() if a.src_ip is None]
    assert len(floods) == 2
    assert all(3000 <= a.count <= 3050 for a in floods), [a.count for a in floods]


def test_a_scanner_probing_known_targets_again_is_one_alert() -> None:
    book = AlertBook()
    detector = SipScanDetector(book)
    for sweep in range(40):  # the same 12 hosts every 30 s for 20 minutes
        for h in range(12):
            detector.on_sip(req(T0 + sweep * 30 + h * 0.1, ATTACKER, f"192.0.2.{h + 1}",
                                "OPTIONS"))  # fmt: skip
    (alert,) = book.finish()
    assert (alert.ts, alert.count) == (T0, 12)
    assert alert.last_ts is not None and alert.last_ts > T0 + 1170


def test_credentials_accepted_after_a_pause_are_a_find() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    for k in range(12):
        r = req(T0 + k, ATTACKER, SERVER, "REGISTER", call_id=f"c{k}", auth="100")
        detector.on_sip(r)
        detector.on_sip(resp(T0 + k + 0.05, r, 403))
    login = req(T0 + 420, ATTACKER, SERVER, "REGISTER", call_id="login", auth="100")
    detector.on_sip(login)
    detector.on_sip(resp(T0 + 420.05, login, 200))
    guessing, found = sorted(book.finish(), key=lambda a: a.ts)
    assert (guessing.severity, guessing.count) == ("medium", 12)
    assert (found.ts, found.severity, found.data["cracked_users"]) == (T0 + 420, "high", ["100"])
    assert found.data["refused_earlier"] == {"100": 12}
    assert any("earlier episode" in e for e in found.evidence)
