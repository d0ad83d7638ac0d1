"""toll-fraud: premium/high-cost prefixes, bursts, concurrency, sequential numbers, hours."""

from tests.unit.detect.sipevents import T0_S, alerts, call_record
from voipscope.detect.alerts import AlertBook
from voipscope.detect.number_plan import costly_prefix, country_code, parse_dialled
from voipscope.detect.toll_fraud import TollFraudConfig, TollFraudDetector


def run(records, config: TollFraudConfig | None = None):
    book = AlertBook()
    detector = TollFraudDetector(book, config)
    for record in records:
        detector.on_call(record)
    detector.finish(None)
    return alerts(book), detector


def test_number_plan() -> None:
    assert country_code("4420712345") == "44" and country_code("12125550100") == "1"
    assert country_code("35312345678") == "353"  # three digits when not a short code
    assert costly_prefix("979123456789").prefix == "979"  # ITU IPRS
    assert costly_prefix("88161234567").kind == "high-cost"
    assert costly_prefix("4420712345") is None
    assert parse_dialled("alice") is None and parse_dialled("*97") is None
    assert parse_dialled("00 44 20 7123 4567").e164 == "442071234567"
    assert not parse_dialled("01132123456").international  # Leeds, not NANP 011
    national = parse_dialled("09001234567", home_country_code="49")
    assert national.e164 == "499001234567" and costly_prefix(national.e164).kind == "premium"


def test_premium_attempt_is_medium_and_answered_is_high() -> None:
    (alert,), _ = run([call_record("+979123456789", T0_S)])
    assert (alert["kind"], alert["src_ip"], alert["severity"]) == (
        "toll-fraud",
        "10.1.1.20",
        "medium",
    )
    assert alert["data"]["pattern"] == "costly"
    assert alert["data"]["prefixes"][0]["prefix"] == "979"
    (alert,), _ = run([call_record("0088161234567", T0_S, answer=T0_S + 3, end=T0_S + 60)])
    assert alert["severity"] == "high"


def test_ordinary_and_national_calls_are_nothing() -> None:
    records = [
        call_record(n, T0_S + i * 30, answer=T0_S + i * 30 + 2, end=T0_S + i * 30 + 90)
        for i, n in enumerate(["101", "102", "0207123456", "+442071234567", "alice"])
    ]
    found, _ = run(records)
    assert found == []


def test_burst_of_international_calls() -> None:
    numbers = [f"+{cc}7001234{i:02d}" for i, cc in enumerate(["44", "33", "49", "53", "252"] * 2)]
    found, _ = run([call_record(n, T0_S + i * 20) for i, n in enumerate(numbers)])
    burst = [a for a in found if a["data"].get("pattern") == "burst"]
    assert len(burst) == 1 and burst[0]["severity"] == "high"  # five countries
    assert len(burst[0]["data"]["countries"]) == 5


def test_nine_international_calls_are_no_burst() -> None:
    numbers = [f"+44700123{i:03d}" for i in range(0, 90, 10)]  # not sequential either
    found, _ = run([call_record(n, T0_S + i * 20) for i, n in enumerate(numbers)])
    assert found == []


def test_sequential_dialling() -> None:
    records = [call_record(f"+3222{i:06d}", T0_S + i * 5) for i in range(500, 505)]
    found, _ = run(records)
    (alert,) = found
    assert alert["data"]["pattern"] == "sequential" and alert["data"]["run_length"] == 5


def test_ring_group_to_consecutive_extensions_is_nothing() -> None:
    found, _ = run([call_record(str(101 + i), T0_S) for i in range(10)])
    assert found == []


def test_concurrent_answered_international_calls() -> None:
    records = [
        call_record(f"+4420712{i * 37:05d}", T0_S + i, answer=T0_S + i + 1, end=T0_S + 600)
        for i in range(5)
    ]
    found, _ = run(records)
    (alert,) = [a for a in found if a["data"].get("pattern") == "concurrent"]
    assert alert["severity"] == "high" and alert["data"]["max_concurrent"] == 5


def test_unusual_hours_against_the_capture_baseline() -> None:
    day = 86400.0
    office = [
        call_record("201", T0_S - T0_S % day + d * day + 9 * 3600 + k * 30)
        for d in range(4)
        for k in range(100)
    ]
    night = [
        call_record(f"+44207{k * 97:06d}", T0_S - T0_S % day + 2 * day + 3 * 3600 + k * 900)
        for k in range(3)
    ]
    found, _ = run(office + night)
    (alert,) = found
    assert alert["data"]["pattern"] == "unusual-hours" and alert["data"]["hours_utc"] == [3]


def test_state_is_bounded() -> None:
    config = TollFraudConfig(max_sources=3, max_numbers_per_source=8, max_international_kept=10)
    records = [
        call_record(f"+44207{i:06d}", T0_S + i, caller_ip=f"10.9.0.{i % 11}")
        for i in range(0, 4000, 13)
    ]
    _, detector = run(records, config)
    for name, (size, cap) in detector.state_sizes().items():
        assert size <= cap, name
    assert detector.overflow > 0


def test_bursts_hours_apart_are_two_episodes() -> None:
    numbers = [f"+{cc}7001234{i:02d}" for i, cc in enumerate(["44", "33", "49", "53", "252"] * 2)]
    first = [call_record(n, T0_S + i * 20) for i, n in enumerate(numbers)]
    second = [call_record(n, T0_S + 7200 + i * 20) for i, n in enumerate(numbers)]
    found, _ = run(first + second)
    bursts = sorted((a for a in found if a["data"].get("pattern") == "burst"),
                    key=lambda a: a["ts"])  # fmt: skip
    assert [(a["ts"], a["last_ts"]) for a in bursts] == [
        (T0_S, T0_S + 180),
        (T0_S + 7200, T0_S + 7380),
    ]
    assert [a["data"]["international_calls"] for a in bursts] == [10, 10]


def test_a_pause_shorter_than_the_window_keeps_the_burst() -> None:
    """Five calls, six minutes of nothing (past alert_quiet_s, within the 600 s window),
    five more: ten within the window is a burst."""
    numbers = [f"+{cc}7001234{i:02d}" for i, cc in enumerate(["44", "33", "49", "53", "252"] * 2)]
    starts = [T0_S + i * 10 for i in range(5)] + [T0_S + 400 + i * 10 for i in range(5)]
    found, _ = run([call_record(n, t) for n, t in zip(numbers, starts, strict=True)])
    (burst,) = [a for a in found if a["data"].get("pattern") == "burst"]
    assert burst["ts"] == T0_S and burst["data"]["international_calls"] == 10
