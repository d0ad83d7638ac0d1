"""Run statistics of several runs merged into one (voipscope.scale_out runs one input per
worker): counts add up, and anomaly records are kept as one log over the same inputs, in
the same order, would keep them."""

from __future__ import annotations

from voipscope.anomalies import AnomalyLog
from voipscope.pipeline import RunStats
from voipscope.record_pipeline import RecordRunStats
from voipscope.source import CaptureInfo
from voipscope.source.flow_export import ExportFileInfo, ExportStats


def log_of(names: list[str], cap: int = 2) -> AnomalyLog:
    log = AnomalyLog(max_records_per_name=cap)
    for i, name in enumerate(names):
        log.add(name, f"#{i}", flow_id=i)
    return log


def test_anomaly_logs_merge_as_one_log_would_keep_them() -> None:
    first, second = ["a", "b", "a"], ["a", "c", "b", "b"]
    merged = log_of(first)
    merged.merge(log_of(second))
    one = log_of(first + second)
    assert merged.counts == one.counts == {"a": 3, "b": 3, "c": 1}
    assert [r.name for r in merged.records] == [r.name for r in one.records]
    assert [(r.name, r.detail) for r in merged.records] == [
        ("a", "#0"), ("b", "#1"), ("a", "#2"), ("c", "#1"), ("b", "#2")
    ]  # fmt: skip


def test_anomaly_logs_merge_counted_additions_as_one_log_would() -> None:
    """Decode statuses, fragments and evictions are added with count=N: the cap is on the
    count, not on the records kept."""

    def log_of(counts: list[int]) -> AnomalyLog:
        log = AnomalyLog(max_records_per_name=100)
        for i, count in enumerate(counts):
            log.add("truncated_ip", f"#{i}", count=count)
        return log

    first, second = [50], [1, 60, 1, 1]
    merged = log_of(first)
    merged.merge(log_of(second))
    one = log_of(first + second)
    assert merged.counts == one.counts == {"truncated_ip": 113}
    assert len(merged.records) == len(one.records) == 3  # kept at counts 0, 50, 51
    # merged again: what a third input adds is judged against the merged count
    merged.merge(log_of([1]))
    assert len(merged.records) == 3 and merged.counts["truncated_ip"] == 114


def test_run_stats_merge_adds_every_count() -> None:
    total = RunStats(inputs=[CaptureInfo("x")], packets_by_status={"decoded": 3}, flows=2,
                     flows_evicted=1, datagrams_reassembled=4)  # fmt: skip
    other = RunStats(inputs=[CaptureInfo("y")], packets_by_status={"decoded": 5, "non_ip": 1},
                     flows=7, datagrams_reassembled=1)  # fmt: skip
    other.anomalies.add("rtp_malformed", "x")
    total.merge(other)
    assert [i.path for i in total.inputs] == ["x", "y"]
    assert total.packets_by_status == {"decoded": 8, "non_ip": 1}
    assert (total.flows, total.flows_evicted, total.datagrams_reassembled) == (9, 1, 5)
    assert total.anomalies.as_dict() == {"rtp_malformed": 1}


def test_record_run_stats_merge_adds_every_count() -> None:
    total = RecordRunStats(inputs=[ExportFileInfo("x")], flows=3)
    total.export.messages.update({"ipfix": 2})
    total.export.flow_records = 10
    other = RecordRunStats(inputs=[ExportFileInfo("y")], flows=4, flows_evicted=2)
    other.export.messages.update({"ipfix": 1, "netflow-v5": 7})
    other.export.flow_records = 5
    other.export.sets_without_template = 1
    total.merge(other)
    assert [i.path for i in total.inputs] == ["x", "y"]
    assert (total.flows, total.flows_evicted) == (7, 2)
    assert total.export.messages == {"ipfix": 3, "netflow-v5": 7}
    assert total.export.flow_records == 15 and total.export.sets_without_template == 1
    assert any("1 data sets were dropped" in w for w in total.warnings())


def test_export_stats_merge_covers_every_field() -> None:
    """Every field is added: a field added later is not silently left out."""
    one, two = ExportStats(), ExportStats()
    for name in ExportStats.__dataclass_fields__:
        if name != "messages":
            setattr(one, name, 2)
            setattr(two, name, 1)
    one.merge(two)
    assert all(
        getattr(one, name) == 3 for name in ExportStats.__dataclass_fields__ if name != "messages"
    )
