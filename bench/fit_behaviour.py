#!/usr/bin/env python3
"""Fit (and evaluate) the behavioural media model shipped in
src/voipscope/classify/data/behaviour_model.json.

    python bench/fit_behaviour.py [--captures DIR] [--labels DIR] [--generated DIR]
        [--out FILE] [--evaluate-only] [--json OUT]

Data, all of it regenerable:
- the shared captures (../shared/captures/ndpi) with the project's labels
  (tests/expected/labels/*.csv);
- traffic the project's own scripts generate (tests/realtraffic/gen/, written to
  /tmp/voipscope-behaviour/gen/ as ``NAME.pcap`` plus ``NAME.pcap.csv`` labels in the
  same format).

Every UDP/TCP flow the pipeline reports is a sample: features from the behaviour kernel
(the same code as at run time), target 1 for ``voip-media``, 0 for everything else
(``voip-signaling`` included: the model says *media*). Labels ``unknown`` are left out.

Model: gradient-boosted trees (scikit-learn to fit, fixed seed; numpy to run), classes
weighed equally. The threshold is the lowest probability that keeps the training
fold's non-VoIP flows at or under ``TARGET_FPR``.

Evaluation is leave-one-app-out: a sample's group is its app (label ``app``; plain
RTP/SIP captures are one group, generated aiortc calls another) or, for non-VoIP flows,
its capture; every group is scored by a model fitted without it. Deterministic: the
trees' subsampling uses a fixed seed, so the same data give the same model.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from voipscope.classify import behaviour_features as BF  # noqa: E402
from voipscope.classify import behaviour_kernel as BK  # noqa: E402
from voipscope.classify.behaviour_model import MODEL_FILE, BehaviourModel  # noqa: E402
from voipscope.pipeline import FlowPipeline  # noqa: E402

DEFAULT_CAPTURES = REPO.parent / "shared" / "captures" / "ndpi"
DEFAULT_LABELS = REPO / "tests" / "expected" / "labels"
DEFAULT_GENERATED = Path("/tmp/voipscope-behaviour/gen")
DEFAULT_OUT = REPO / "src" / "voipscope" / "classify" / "data" / MODEL_FILE
CACHE = Path("/tmp/voipscope-behaviour/samples.npz")

TREES, DEPTH, LEARNING_RATE, SEED = 120, 3, 0.1, 0
MAX_THRESHOLD = 0.95  # never ask for more certainty than the trees can give
TARGET_FPR = 0.01  # threshold: at most this share of held-out non-VoIP flows over it
MIN_THRESHOLD = 0.5
MEDIA, SIGNALING, OTHER = "voip-media", "voip-signaling", "other"
PLAIN_RTP = "plain RTP/SIP"
MAX_EXTRA_WINDOWS = 8  # later windows per flow used as extra training samples


@dataclass(slots=True)
class Samples:
    x: np.ndarray  # features
    y: np.ndarray  # 1: voip-media
    category: np.ndarray  # label category (str)
    group: np.ndarray  # leave-one-out group (str)
    capture: np.ndarray
    transport: np.ndarray  # 6 | 17
    bytes_verdict: np.ndarray  # voipscope's category without the behaviour model
    at_packet: np.ndarray
    window: np.ndarray  # 0, 1: the pipeline's windows; WINDOWS: a later one (training only)
    flow: np.ndarray  # flow number for the pipeline's windows (-1 for later ones)


def canonical(proto: int, ip1: str, port1: int, ip2: str, port2: int) -> tuple[Any, ...]:
    first, second = (ipaddress.ip_address(ip1), port1), (ipaddress.ip_address(ip2), port2)
    return (proto, ip1, port1, ip2, port2) if first <= second else (proto, ip2, port2, ip1, port1)


def read_labels(path: Path) -> dict[tuple[Any, ...], dict[str, str]]:
    with path.open(newline="") as fh:
        return {
            canonical(int(r["proto"]), r["a_ip"], int(r["a_port"]), r["b_ip"], int(r["b_port"])): r
            for r in csv.DictReader(fh)
        }


class PacketLog:
    """FlowHooks that keep the payload packets' columns, for windows later in flows."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def on_init(self, d: Any, a: Any, first_packets: np.ndarray) -> None:
        return None

    def on_update(self, d: Any, a: Any) -> None:
        keep = (a.slot >= 0) & (d.l4_len > 0) & ((d.proto == 6) | (d.proto == 17))
        self.parts.append(tuple(np.array(c[keep]) for c in (
            a.flow_id, a.direction, d.l4_len, d.ts_ns, d.proto)))  # fmt: skip

    def on_expire(self, ended: np.ndarray) -> None:
        return None

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate([p[k] for p in self.parts]) for k in range(5))


def capture_flows(path: Path) -> tuple[list[tuple[dict[str, Any], np.ndarray]], PacketLog]:
    """(Flow record judged by the bytes alone, behaviour kernel row) for every flow, and
    the payload packets of the capture."""
    log = PacketLog()
    pipeline = FlowPipeline(hooks=[log])
    tracker = pipeline.behaviour
    assert tracker is not None
    tracker.model = None  # the dissectors' verdict only: what the model would be asked on
    taken: list[np.ndarray] = []
    take_rows = tracker.take_rows

    def keep(ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, present = take_rows(ended)
        taken.append(rows)
        return rows, present

    tracker.take_rows = keep  # type: ignore[method-assign]
    out = []
    for batch in pipeline.run_one(str(path)):
        rows = taken.pop(0)
        out.extend(zip(batch.to_pylist(), rows, strict=True))
    return out, log


def later_windows(log: PacketLog, flow_ids: set[int]) -> dict[int, np.ndarray]:
    """Kernel rows of the windows that start at payload packet WINDOW, 2*WINDOW, ... of
    each flow (up to MAX_EXTRA_WINDOWS): what the model would see of a flow picked up
    mid-call (a capture started late, an active timeout). Training data only."""
    if not log.parts:
        return {}
    fid, direction, size, ts, proto = log.columns()
    order = np.argsort(fid, kind="stable")
    fid, direction, size, ts, proto = (
        fid[order],
        direction[order],
        size[order],
        ts[order],
        proto[order],
    )
    starts = np.flatnonzero(np.r_[True, fid[1:] != fid[:-1]])
    ends = np.r_[starts[1:], len(fid)]
    picks, new_ids, seqs, owners = [], [], [], []
    window = BK.WINDOW_PACKETS
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        flow = int(fid[a])
        if flow not in flow_ids:
            continue
        for k in range(BK.WINDOWS, BK.WINDOWS + MAX_EXTRA_WINDOWS):
            lo = a + k * window
            if lo + BF.MIN_PACKETS > b:
                break
            hi = min(lo + window, b)
            picks.append(np.arange(lo, hi))
            seqs.append(np.arange(1, hi - lo + 1))
            new_ids.append(np.full(hi - lo, len(owners)))
            owners.append(flow)
    if not picks:
        return {}
    idx = np.concatenate(picks)
    n = len(idx)
    ids = np.concatenate(new_ids).astype(np.int64)
    rows = np.zeros((len(owners) + 1, BK.ROW_LEN), np.int64)
    meta = np.zeros(BK.M_LEN, np.int64)
    BK.track_behaviour(
        np.zeros(n, np.uint8), proto[idx], size[idx], ts[idx], ids.copy(), ids,
        direction[idx], np.concatenate(seqs).astype(np.int64), 0,
        np.zeros(len(owners), np.int64), rows, np.zeros(len(rows), np.int64), meta,
        np.zeros(len(rows), np.int64), np.array(BK.SIZE_EDGES_BYTES, np.int64),
        np.array(BK.GAP_EDGES_US, np.int64),
    )  # fmt: skip
    out: dict[int, list[np.ndarray]] = defaultdict(list)
    for r in range(int(meta[BK.M_HIGH])):
        out[owners[int(rows[r, BK.B_FLOW_ID])]].append(rows[r, : BK.B_LEN])
    return {k: np.array(v) for k, v in out.items()}


def group_of(label: dict[str, str], capture: str) -> str:
    if label["category"] in (MEDIA, SIGNALING):
        if label.get("app"):
            return label["app"]
        if capture.startswith("aiortc"):
            return "aiortc"
        return PLAIN_RTP
    return capture.split(".")[0]


def collect(sources: Sequence[tuple[Path, Path]]) -> Samples:
    xs, ys, cats, groups, caps, transports, verdicts, ats, windows, flow_nums = (
        [] for _ in range(10)
    )
    flow_base = 0

    def add(row: np.ndarray, label: dict[str, str], capture: str, record: dict[str, Any],
            window: int, flow: int) -> None:  # fmt: skip
        xs.append(BF.feature_matrix(row[None, :])[0])
        ys.append(label["category"] == MEDIA)
        cats.append(label["category"])
        groups.append(group_of(label, capture))
        caps.append(capture)
        transports.append(6 if record["proto"] == "tcp" else 17)
        verdicts.append(record["category"])
        ats.append(int(BF.detected_at(row[None, :])[0]))
        windows.append(window)
        flow_nums.append(flow_base + flow if flow >= 0 else -1)

    for capture, label_file in sources:
        labels = read_labels(label_file)
        flows, log = capture_flows(capture)
        labelled: dict[int, tuple[dict[str, str], dict[str, Any]]] = {}
        for record, row in flows:
            if record["proto"] not in ("udp", "tcp"):
                continue
            proto = 6 if record["proto"] == "tcp" else 17
            key = canonical(
                proto, record["src_ip"], record["src_port"], record["dst_ip"], record["dst_port"]
            )
            label = labels.get(key)
            if label is None or label["category"] == "unknown":
                continue
            labelled[record["flow_id"]] = (label, record)
            for w in range(BK.WINDOWS):
                block = row[w * BK.B_LEN : (w + 1) * BK.B_LEN]
                if BF.enough_packets(block[None, :])[0]:
                    add(block, label, capture.name, record, w, len(labelled))
        flow_base += len(labelled) + 1
        for flow_id, later in later_windows(log, set(labelled)).items():
            label, record = labelled[flow_id]
            for row in later:
                if BF.enough_packets(row[None, :])[0]:
                    add(row, label, capture.name, record, BK.WINDOWS, -1)
    return Samples(
        np.array(xs), np.array(ys, np.int64), np.array(cats), np.array(groups),
        np.array(caps), np.array(transports), np.array(verdicts), np.array(ats),
        np.array(windows, np.int64), np.array(flow_nums, np.int64),
    )  # fmt: skip


def sources(captures: Path, labels: Path, generated: Path) -> list[tuple[Path, Path]]:
    out = []
    for label_file in sorted(labels.glob("*.csv")):
        capture = captures / label_file.name[: -len(".csv")]
        if capture.exists():
            out.append((capture, label_file))
    if generated.is_dir():
        for label_file in sorted(generated.glob("*.pcap.csv")):
            out.append((generated / label_file.name[: -len(".csv")], label_file))
    return out


# -- the model ---------------------------------------------------------------------------


def fit(x: np.ndarray, y: np.ndarray, negatives_for_threshold: np.ndarray) -> BehaviourModel:
    """Gradient-boosted trees (scikit-learn, fixed seed), exported to numpy arrays."""
    from sklearn.ensemble import GradientBoostingClassifier

    pos = max(int(y.sum()), 1)
    neg = max(int((1 - y).sum()), 1)
    # Each class weighs half: a few hundred media flows against more others.
    weight = np.where(y == 1, 0.5 / pos, 0.5 / neg) * len(y)
    clf = GradientBoostingClassifier(
        n_estimators=TREES, max_depth=DEPTH, learning_rate=LEARNING_RATE, subsample=0.8,
        min_samples_leaf=5, random_state=SEED,
    )  # fmt: skip
    clf.fit(x, y, sample_weight=weight)
    trees = [e[0].tree_ for e in clf.estimators_]
    nodes = max(t.node_count for t in trees)

    def stack(get, dtype, pad):  # type: ignore[no-untyped-def]
        out = np.full((len(trees), nodes), pad, dtype)
        for k, t in enumerate(trees):
            out[k, : t.node_count] = get(t)
        return out

    feature = stack(lambda t: np.where(t.children_left < 0, -1, t.feature), np.int64, -1)
    leaf_sum = sum(float(t.predict(x[:1].astype(np.float32)).ravel()[0]) for t in trees)
    init = float(clf.decision_function(x[:1])[0] - LEARNING_RATE * leaf_sum)
    model = BehaviourModel(
        init=init, learning_rate=LEARNING_RATE, feature=feature,
        threshold_value=stack(lambda t: t.threshold, np.float64, 0.0),
        left=stack(lambda t: np.maximum(t.children_left, 0), np.int64, 0),
        right=stack(lambda t: np.maximum(t.children_right, 0), np.int64, 0),
        value=stack(lambda t: t.value[:, 0, 0], np.float64, 0.0),
        depth=DEPTH, threshold=1.0,
    )  # fmt: skip
    p_neg = np.sort(model.probability(x[negatives_for_threshold]))
    k = int(np.floor(len(p_neg) * (1 - TARGET_FPR)))
    threshold = float(p_neg[min(k, len(p_neg) - 1)]) + 1e-6 if len(p_neg) else MIN_THRESHOLD
    threshold = max(threshold, MIN_THRESHOLD)
    return replace(model, threshold=round(min(threshold, MAX_THRESHOLD), 6))


def leave_one_group_out(s: Samples) -> np.ndarray:
    """Held-out probability of media for every sample."""
    probability = np.zeros(len(s.y))
    for g in sorted(set(s.group.tolist())):
        test = s.group == g
        train = ~test
        model = fit(s.x[train], s.y[train], train[train] & (s.category[train] == OTHER))
        probability[test] = model.probability(s.x[test])
    return probability


def held_out_threshold(s: Samples, probability: np.ndarray) -> float:
    """The lowest threshold whose held-out FPR on non-VoIP flows is at most TARGET_FPR
    (boosted trees fit their training data too well for an in-sample choice). One
    number chosen on the held-out predictions: the evaluation says so."""
    for t in np.round(np.arange(MIN_THRESHOLD, 0.995, 0.005), 3):
        flows, predicted = per_flow(s, (probability >= t).astype(np.int64))
        other = flows.category == OTHER
        if predicted[other].mean() <= TARGET_FPR:
            return float(t)
    return MAX_THRESHOLD


def per_flow(s: Samples, predicted: np.ndarray) -> tuple[Samples, np.ndarray]:
    """One sample per flow (the pipeline's windows), media if any window is."""
    mine = np.flatnonzero(s.window < BK.WINDOWS)
    flow_ids, first, inverse = np.unique(s.flow[mine], return_index=True, return_inverse=True)
    verdict = np.zeros(len(flow_ids), np.int64)
    np.maximum.at(verdict, inverse, predicted[mine])
    pick = mine[first]
    sub = Samples(**{k: getattr(s, k)[pick] for k in Samples.__slots__})  # type: ignore[attr-defined]
    return sub, verdict


def evaluation_rows(s: Samples, predicted: np.ndarray, mask: np.ndarray) -> list[dict[str, Any]]:
    """Per group, over the samples in ``mask``: media flows (recall), non-VoIP flows
    (FPR), precision of what the model called media, and media flows the bytes left
    unknown (how many of them the model finds)."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(s.group.tolist()):
        if mask[i]:
            by_group[g].append(i)
    rows = []
    for g, members in sorted(by_group.items()):
        idx = np.array(members)
        rows.append(_scores(g, s, predicted, idx))
    rows.append(_scores("ALL", s, predicted, np.flatnonzero(mask)))
    return rows


def _scores(name: str, s: Samples, predicted: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
    y, pr, cat = s.y[idx], predicted[idx], s.category[idx]
    tp = int((pr & y).sum())
    fp = int((pr & (1 - y)).sum())
    media = int(y.sum())
    other = int((cat == OTHER).sum())
    other_fp = int((pr.astype(bool) & (cat == OTHER)).sum())
    unknown = s.bytes_verdict[idx] == "unknown"
    media_unknown = int((y.astype(bool) & unknown).sum())
    found_unknown = int((pr.astype(bool) & y.astype(bool) & unknown).sum())
    return {
        "group": name,
        "media_flows": media,
        "recall": tp / media if media else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "non_voip_flows": other,
        "fpr": other_fp / other if other else None,
        "false_positives": fp,
        "media_unknown_to_bytes": media_unknown,
        "found_of_those": found_unknown,
    }


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    print(f"{'group (held out)':28} {'media':>5} {'R %':>6} {'P %':>6} {'non-VoIP':>8} "
          f"{'FPR %':>6} {'FP':>4} {'unk media':>9} {'found':>5}")  # fmt: skip
    for r in rows:
        print(f"{r['group'][:28]:28} {r['media_flows']:5d} {pct(r['recall']):>6} "
              f"{pct(r['precision']):>6} {r['non_voip_flows']:8d} {pct(r['fpr']):>6} "
              f"{r['false_positives']:4d} {r['media_unknown_to_bytes']:9d} "
              f"{r['found_of_those']:5d}")  # fmt: skip


def load_or_collect(args: argparse.Namespace) -> Samples:
    if CACHE.exists() and not args.refresh:
        data = np.load(CACHE, allow_pickle=False)
        return Samples(**{k: data[k] for k in Samples.__slots__})  # type: ignore[attr-defined]
    s = collect(sources(args.captures, args.labels, args.generated))
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, **{k: getattr(s, k) for k in Samples.__slots__})  # type: ignore[attr-defined]
    return s


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--generated", type=Path, default=DEFAULT_GENERATED)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--evaluate-only", action="store_true", help="do not write the model")
    ap.add_argument("--refresh", action="store_true", help=f"re-extract samples ({CACHE})")
    ap.add_argument("--json", type=Path, help="write the evaluation rows here")
    args = ap.parse_args(argv)
    s = load_or_collect(args)
    print(f"{len(s.y)} flows with >= {BF.MIN_PACKETS} payload packets: {int(s.y.sum())} media, "
          f"{int((s.category == OTHER).sum())} non-VoIP, {int((s.category == SIGNALING).sum())} "
          f"signalling; {len(set(s.group.tolist()))} groups")  # fmt: skip
    probability = leave_one_group_out(s)
    threshold = held_out_threshold(s, probability)
    predicted = (probability >= threshold).astype(np.int64)
    print(f"threshold {threshold} (lowest with held-out non-VoIP FPR <= {TARGET_FPR})")
    print(
        "leave-one-app-out, per flow (its first window, as the pipeline sees it; each "
        "group scored by a model fitted without it):"
    )
    flows, flow_predicted = per_flow(s, predicted)
    rows = evaluation_rows(flows, flow_predicted, np.ones(len(flows.y), np.bool_))
    print_table(rows)
    windows = evaluation_rows(s, predicted, s.window >= BK.WINDOWS)[-1]
    print(
        f"later windows (mid-flow pick-up): recall {windows['recall']}, "
        f"FPR {windows['fpr']} over {windows['media_flows']} media / "
        f"{windows['non_voip_flows']} non-VoIP windows"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if not args.evaluate_only:
        model = fit(s.x, s.y, s.category == OTHER)
        overall = rows[-1]
        info = {
            "fitted_by": "bench/fit_behaviour.py",
            "samples": {"media": int(s.y.sum()), "non_voip": int((s.category == OTHER).sum()),
                        "signalling": int((s.category == SIGNALING).sum())},
            "captures": sorted(set(s.capture.tolist())),
            "trees": TREES, "depth": DEPTH, "learning_rate": LEARNING_RATE, "seed": SEED,
            "target_fpr": TARGET_FPR,
            "leave_one_app_out": {k: overall[k] for k in ("recall", "precision", "fpr")},
        }  # fmt: skip
        out = replace(model, threshold=threshold, info=info)
        args.out.write_text(json.dumps(out.to_json(), indent=1) + "\n")
        print(f"wrote {args.out} (threshold {threshold:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
