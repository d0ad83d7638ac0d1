#!/usr/bin/env python3
"""Fit (and evaluate, leave-one-app-out) the behavioural media model shipped in
src/voipscope/classify/data/behaviour_model.json.

    python bench/fit_behaviour.py [--captures DIR] [--labels DIR] [--generated DIR]
        [--peers CSV] [--out FILE] [--evaluate-only] [--refresh] [--json OUT]

Data, all of it regenerable:
- the shared captures (../shared/captures/ndpi) with the project's labels
  (tests/expected/labels/*.csv);
- traffic the project's own scripts generate (tests/realtraffic/gen/generate.py, written
  to /tmp/voipscope-behaviour/gen/ as ``NAME.pcap`` plus ``NAME.pcap.csv`` labels).

Samples are the windows the pipeline's BehaviourTracker scores (the same kernel and
feature code as at run time, up to MAX_WINDOWS per flow), target 1 for ``voip-media``
and 0 for everything else (``voip-signaling`` included: the model says *media*).
Left out of fitting and of recall, and counted apart: labels ``unknown``, and media-
session flows that carry no media packets (RTCP only, or Zoom's bandwidth probes), whose
timing says nothing about a call.

Model: logistic regression (numpy, Newton steps, L2), every group weighing the same
within its class so that no app (and no capture with many flows) dominates.

Evaluation is leave-one-app-out: a sample's group is its app (label ``app``; plain
RTP/SIP captures are one group, generated aiortc calls another) or, for non-VoIP flows,
its capture; every group is scored by a model fitted without it. A flow is called media
when any of its windows is, as in the pipeline. The threshold is one number chosen on
those held-out predictions (the lowest whose false-positive rate on the shared captures'
non-VoIP flows is at most TARGET_FPR), and the evaluation says so. Deterministic.
"""

# No "from __future__ import annotations": bench/accuracy.py --behaviour loads this file
# with importlib without registering it in sys.modules, where dataclasses would look
# string annotations up.
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

from voipscope.classify import behaviour as behaviour_module  # noqa: E402
from voipscope.classify import behaviour_features as BF  # noqa: E402
from voipscope.classify import behaviour_kernel as BK  # noqa: E402
from voipscope.classify.behaviour import ScoredWindows  # noqa: E402
from voipscope.classify.behaviour_model import MODEL_FILE, BehaviourModel  # noqa: E402
from voipscope.config import Config  # noqa: E402
from voipscope.pipeline import FlowPipeline  # noqa: E402

DEFAULT_CAPTURES = REPO.parent / "shared" / "captures" / "ndpi"
DEFAULT_LABELS = REPO / "tests" / "expected" / "labels"
DEFAULT_GENERATED = Path("/tmp/voipscope-behaviour/gen")
DEFAULT_PEERS = REPO.parent / "shared" / "captures" / "peer_labels.csv"
DEFAULT_OUT = REPO / "src" / "voipscope" / "classify" / "data" / MODEL_FILE
CACHE = Path("/tmp/voipscope-behaviour/windows.npz")

L2 = 1.0  # ridge on the standardised weights: 14 weights from ~100 flows need a prior
TARGET_FPR = 0.01
THRESHOLDS = np.round(np.arange(0.30, 0.995, 0.01), 2)
MEDIA, SIGNALING, OTHER = "voip-media", "voip-signaling", "other"
NO_MEDIA = "media-session, no media packets"
PLAIN_RTP = "plain RTP/SIP"
PEER_TOOLS = ("ndpireader", "nfstream")
PEER_MEDIA_ROLES = ("media", "app-media")


@dataclass(slots=True)
class Samples:
    x: np.ndarray  # features, one row per scored window
    y: np.ndarray  # 1: voip-media
    category: np.ndarray  # label category, or NO_MEDIA
    group: np.ndarray  # leave-one-out group
    capture: np.ndarray
    generated: np.ndarray  # bool: from tests/realtraffic/gen
    bytes_verdict: np.ndarray  # voipscope's category without the behaviour model
    window: np.ndarray
    at_packet: np.ndarray
    flow: np.ndarray  # flow number, unique over all captures
    peers: np.ndarray  # (n, len(PEER_TOOLS)) 1: the peer calls the flow media, -1: unknown


def canonical(proto: int, ip1: str, port1: int, ip2: str, port2: int) -> tuple[Any, ...]:
    first, second = (ipaddress.ip_address(ip1), port1), (ipaddress.ip_address(ip2), port2)
    return (proto, ip1, port1, ip2, port2) if first <= second else (proto, ip2, port2, ip1, port1)


def read_labels(path: Path) -> dict[tuple[Any, ...], dict[str, str]]:
    with path.open(newline="") as fh:
        return {
            canonical(int(r["proto"]), r["a_ip"], int(r["a_port"]), r["b_ip"], int(r["b_port"])): r
            for r in csv.DictReader(fh)
        }


def read_peers(path: Path) -> dict[tuple[Any, ...], list[int]]:
    """(capture, 5-tuple) -> per peer tool: 1 if it calls the flow media, else 0."""
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            if ".." in r["a_ip"] + r["b_ip"]:
                continue  # an address the peer tools printed shortened: cannot be matched
            key = canonical(int(r["proto"]), r["a_ip"], int(r["a_port"]), r["b_ip"],
                            int(r["b_port"]))  # fmt: skip
            roles = [r[f"{tool}_role"] for tool in PEER_TOOLS]
            out[(r["capture"], *key)] = [int(role in PEER_MEDIA_ROLES) for role in roles]
    return out


def category_of(label: dict[str, str]) -> str:
    if label["category"] == MEDIA and (
        label.get("protocol") == "RTCP" or "bandwidth probes" in label.get("note", "")
    ):
        return NO_MEDIA
    return label["category"]


def group_of(label: dict[str, str], capture: str) -> str:
    if label["category"] in (MEDIA, SIGNALING):
        if label.get("app"):
            return label["app"]
        return PLAIN_RTP
    return capture.split(".")[0]


def _no_model() -> None:
    return None


def capture_windows(path: Path) -> tuple[list[dict[str, Any]], list[ScoredWindows]]:
    """Flow records judged by the bytes alone, and every window the tracker scored."""
    # The tracker must not load the shipped model: it may be stale (other features) while
    # this script is refitting it, and the windows are wanted without any verdict.
    behaviour_module.shipped_model = _no_model  # type: ignore[assignment]
    pipeline = FlowPipeline(Config.from_overrides({"dissect.behaviour": True}))
    tracker = pipeline.behaviour
    assert tracker is not None
    tracker.model = None  # the dissectors' verdict only: what the model would be asked on
    windows: list[ScoredWindows] = []
    tracker.recorder = windows.append
    records = [r for batch in pipeline.run_one(str(path)) for r in batch.to_pylist()]
    return records, windows


def collect(sources: Sequence[tuple[Path, Path, bool]], peers_path: Path) -> Samples:
    peers = read_peers(peers_path)
    cols: dict[str, list[Any]] = defaultdict(list)
    flow_base = 0
    for capture, label_file, generated in sources:
        labels = read_labels(label_file)
        records, windows = capture_windows(capture)
        by_id = {r["flow_id"]: r for r in records if r["proto"] in ("udp", "tcp")}
        number: dict[int, int] = {}
        for w in windows:
            for k in range(len(w.flow_id)):
                record = by_id.get(int(w.flow_id[k]))
                if record is None:
                    continue
                proto = 6 if record["proto"] == "tcp" else 17
                key = canonical(proto, record["src_ip"], record["src_port"], record["dst_ip"],
                                record["dst_port"])  # fmt: skip
                label = labels.get(key)
                if label is None or label["category"] == "unknown":
                    continue
                flow = number.setdefault(record["flow_id"], flow_base + len(number))
                cols["x"].append(w.features[k])
                cols["y"].append(label["category"] == MEDIA)
                cols["category"].append(category_of(label))
                cols["group"].append(group_of(label, capture.name))
                cols["capture"].append(capture.name)
                cols["generated"].append(generated)
                cols["bytes_verdict"].append(record["category"])
                cols["window"].append(int(w.window[k]))
                cols["at_packet"].append(int(w.at_packet[k]))
                cols["flow"].append(flow)
                cols["peers"].append(peers.get((capture.name, *key), [-1] * len(PEER_TOOLS)))
        flow_base += len(number)
    return Samples(
        x=np.array(cols["x"]).reshape(-1, len(BF.NAMES)),
        y=np.array(cols["y"], np.int64),
        category=np.array(cols["category"], dtype=str),
        group=np.array(cols["group"], dtype=str),
        capture=np.array(cols["capture"], dtype=str),
        generated=np.array(cols["generated"], np.bool_),
        bytes_verdict=np.array(cols["bytes_verdict"], dtype=str),
        window=np.array(cols["window"], np.int64),
        at_packet=np.array(cols["at_packet"], np.int64),
        flow=np.array(cols["flow"], np.int64),
        peers=np.array(cols["peers"], np.int64).reshape(-1, len(PEER_TOOLS)),
    )


def sources(captures: Path, labels: Path, generated: Path) -> list[tuple[Path, Path, bool]]:
    out = []
    for label_file in sorted(labels.glob("*.csv")):
        capture = captures / label_file.name[: -len(".csv")]
        if capture.exists():
            out.append((capture, label_file, False))
    if generated.is_dir():
        for label_file in sorted(generated.glob("*.pcap.csv")):
            out.append((generated / label_file.name[: -len(".csv")], label_file, True))
    return out


# -- the model ---------------------------------------------------------------------------


def group_weights(y: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each class weighs half; within a class every group the same, whatever its count
    of windows (aiortc's long calls, 40 Alexa flows)."""
    w = np.zeros(len(y))
    for cls in (0, 1):
        groups = sorted(set(group[y == cls].tolist()))
        for g in groups:
            m = (group == g) & (y == cls)
            w[m] = 1.0 / m.sum() / len(groups) / 2
    return w * len(y)


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, threshold: float) -> BehaviourModel:
    """Weighted L2 logistic regression on standardised features (Newton's method)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    beta = np.zeros(z.shape[1])
    ridge = L2 * np.eye(len(beta))
    ridge[0, 0] = 0.0  # the intercept is not shrunk
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -40, 40)))
        grad = z.T @ (weight * (p - y)) + ridge @ beta
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return BehaviourModel(mean, scale, beta[1:], float(beta[0]), threshold)


def trainable(s: Samples, skip_prefixes: Sequence[str]) -> np.ndarray:
    keep = s.category != NO_MEDIA
    for prefix in skip_prefixes:
        keep &= ~np.char.startswith(s.group, prefix)
    return keep


def leave_one_group_out(s: Samples, keep: np.ndarray) -> np.ndarray:
    """Held-out probability of media for every window."""
    probability = np.zeros(len(s.y))
    for g in sorted(set(s.group.tolist())):
        test = s.group == g
        train = keep & ~test
        model = fit(s.x[train], s.y[train], group_weights(s.y[train], s.group[train]), 0.5)
        probability[test] = model.probability(s.x[test])
    return probability


@dataclass(slots=True)
class Flows:
    """One row per flow: its label and what the model said of it."""

    y: np.ndarray
    category: np.ndarray
    group: np.ndarray
    generated: np.ndarray
    unknown_to_bytes: np.ndarray
    peers: np.ndarray
    best: np.ndarray  # highest window probability
    first: np.ndarray  # probability of its first window
    first_at: np.ndarray  # packet that closed its first window
    windows: np.ndarray  # windows scored
    probability_by_window: list[np.ndarray]


def per_flow(s: Samples, probability: np.ndarray) -> Flows:
    order = np.lexsort((s.window, s.flow))
    flow = s.flow[order]
    starts = np.flatnonzero(np.r_[True, flow[1:] != flow[:-1]])
    ends = np.r_[starts[1:], len(flow)]
    first = order[starts]
    p = probability[order]
    return Flows(
        y=s.y[first],
        category=s.category[first],
        group=s.group[first],
        generated=s.generated[first],
        unknown_to_bytes=s.bytes_verdict[first] == "unknown",
        peers=s.peers[first],
        best=np.maximum.reduceat(p, starts),
        first=p[starts],
        first_at=s.at_packet[first],
        windows=ends - starts,
        probability_by_window=[p[a:b] for a, b in zip(starts, ends, strict=True)],
    )


def _rate(hits: np.ndarray, mask: np.ndarray) -> float | None:
    return float(hits[mask].mean()) if mask.any() else None


def curve_row(f: Flows, t: float) -> dict[str, Any]:
    called = f.best >= t
    media = (f.y == 1) & (f.category == MEDIA)
    shared_other = (f.category == OTHER) & ~f.generated
    return {
        "threshold": float(t),
        "recall_shared": _rate(called, media & ~f.generated),
        "recall_shared_first_window": _rate(f.first >= t, media & ~f.generated),
        "recall_generated": _rate(called, media & f.generated),
        "fpr_shared": _rate(called, shared_other),
        "fpr_shared_unknown_to_bytes": _rate(called, shared_other & f.unknown_to_bytes),
        "fpr_generated": _rate(called, (f.category == OTHER) & f.generated),
    }


def held_out_threshold(f: Flows) -> float:
    for t in THRESHOLDS:
        fpr = curve_row(f, t)["fpr_shared"]
        if fpr is not None and fpr <= TARGET_FPR:
            return float(t)
    return float(THRESHOLDS[-1])


def evaluation_rows(f: Flows, t: float) -> list[dict[str, Any]]:
    """Per held-out group: recall on media flows, FPR on non-VoIP flows, precision, and
    the peers' recall/FPR on the same flows (shared captures only)."""
    called = f.best >= t
    rows = []
    groups = sorted(set(f.group.tolist()))
    for name, mask in [(g, f.group == g) for g in groups] + [
        ("ALL shared", ~f.generated), ("ALL generated", f.generated), ("ALL", f.group == f.group)
    ]:  # fmt: skip
        media = mask & (f.category == MEDIA)
        other = mask & (f.category == OTHER)
        judged = mask & (f.category != NO_MEDIA)
        tp = int((called & media).sum())
        fp = int((called & judged & (f.y == 0)).sum())
        row: dict[str, Any] = {
            "group": name,
            "media_flows": int(media.sum()),
            "recall": _rate(called, media),
            "recall_first_window": _rate(f.first >= t, media),
            "precision": tp / (tp + fp) if tp + fp else None,
            "non_voip_flows": int(other.sum()),
            "fpr": _rate(called, other),
            "false_positives": fp,
            "no_media_flows": int((mask & (f.category == NO_MEDIA)).sum()),
            "no_media_called": int((mask & (f.category == NO_MEDIA) & called).sum()),
        }
        for k, tool in enumerate(PEER_TOOLS):
            known = f.peers[:, k] >= 0
            row[f"{tool}_recall"] = _rate(f.peers[:, k] == 1, media & known)
            row[f"{tool}_fpr"] = _rate(f.peers[:, k] == 1, other & known)
        rows.append(row)
    return rows


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}"

    print(f"{'group (held out)':24} {'media':>5} {'R %':>5} {'R1 %':>5} {'P %':>5} "
          f"{'nonVoIP':>7} {'FPR %':>5} {'FP':>3} {'noMed':>5} | {'nDPI R/FPR':>10} "
          f"{'nfstr R/FPR':>11}")  # fmt: skip
    for r in rows:
        print(f"{r['group'][:24]:24} {r['media_flows']:5d} {pct(r['recall']):>5} "
              f"{pct(r['recall_first_window']):>5} {pct(r['precision']):>5} "
              f"{r['non_voip_flows']:7d} {pct(r['fpr']):>5} {r['false_positives']:3d} "
              f"{r['no_media_called']:2d}/{r['no_media_flows']:<2d} | "
              f"{pct(r['ndpireader_recall']):>4}/{pct(r['ndpireader_fpr']):<5} "
              f"{pct(r['nfstream_recall']):>5}/{pct(r['nfstream_fpr']):<5}")  # fmt: skip


def load_or_collect(args: argparse.Namespace) -> Samples:
    """The windows of the sources, from CACHE when it was made from the same files (names,
    sizes and times) and the same feature names; re-extracted otherwise."""
    found = sources(args.captures, args.labels, args.generated)
    stamp = np.array([f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for c, lab, _ in found
                      for p in (c, lab)] + list(BF.NAMES))  # fmt: skip
    if CACHE.exists() and not args.refresh:
        data = np.load(CACHE, allow_pickle=False)
        if "stamp" in data and np.array_equal(data["stamp"], stamp):
            return Samples(**{k: data[k] for k in Samples.__slots__})  # type: ignore[attr-defined]
    s = collect(found, args.peers)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    columns = {k: getattr(s, k) for k in Samples.__slots__}  # type: ignore[attr-defined]
    np.savez(CACHE, stamp=stamp, **columns)
    return s


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--generated", type=Path, default=DEFAULT_GENERATED)
    ap.add_argument("--peers", type=Path, default=DEFAULT_PEERS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--evaluate-only", action="store_true", help="do not write the model")
    ap.add_argument("--refresh", action="store_true", help=f"re-extract windows ({CACHE})")
    ap.add_argument("--json", type=Path, help="write the evaluation rows here")
    ap.add_argument("--skip-in-fit", nargs="*", default=[], metavar="GROUP_PREFIX",
                    help="groups left out of every fit (still evaluated)")  # fmt: skip
    args = ap.parse_args(argv)
    s = load_or_collect(args)
    keep = trainable(s, args.skip_in_fit)
    n_flows = len(set(s.flow.tolist()))
    print(f"{len(s.y)} windows of {n_flows} flows (>= {BF.MIN_PACKETS} payload packets, up to "
          f"{BK.MAX_WINDOWS} windows of {BK.WINDOW_PACKETS}); {len(set(s.group.tolist()))} "
          f"groups; fitted on {int(keep.sum())} windows")  # fmt: skip
    probability = leave_one_group_out(s, keep)
    flows = per_flow(s, probability)
    print("threshold curve (held-out predictions, per flow):")
    print(f"{'t':>5} {'R shared %':>10} {'R1 shared %':>11} {'R gen %':>7} {'FPR shared %':>12} "
          f"{'(bytes-unknown)':>15} {'FPR gen %':>9}")  # fmt: skip

    def pct(v: float | None, width: int) -> str:
        return f"{'-':>{width}}" if v is None else f"{100 * v:{width}.1f}"

    for t in THRESHOLDS[::5]:
        c = curve_row(flows, t)
        print(f"{t:5.2f} {pct(c['recall_shared'], 10)} "
              f"{pct(c['recall_shared_first_window'], 11)} {pct(c['recall_generated'], 7)} "
              f"{pct(c['fpr_shared'], 12)} {pct(c['fpr_shared_unknown_to_bytes'], 15)} "
              f"{pct(c['fpr_generated'], 9)}")  # fmt: skip
    threshold = held_out_threshold(flows)
    print(f"threshold {threshold} (lowest with held-out FPR <= {100 * TARGET_FPR:.0f} % on the "
          f"shared captures' non-VoIP flows)")  # fmt: skip
    print("leave-one-app-out, per flow (media if any window is; R1: its first window; "
          "each group scored by a model fitted without it):")  # fmt: skip
    rows = evaluation_rows(flows, threshold)
    print_table(rows)
    media = (flows.category == MEDIA) & (flows.best >= threshold)
    if media.any():
        at = np.array([flows.first_at[i] if flows.first[i] >= threshold else -1
                       for i in np.flatnonzero(media)])  # fmt: skip
        print(f"time to detect: {100 * (at > 0).mean():.0f} % of found media flows in their "
              f"first window (median detected_at_packet "
              f"{int(np.median(at[at > 0])) if (at > 0).any() else '-'})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"threshold": threshold, "rows": rows}, indent=1))
    if not args.evaluate_only:
        model = fit(s.x[keep], s.y[keep], group_weights(s.y[keep], s.group[keep]), threshold)
        overall = next(r for r in rows if r["group"] == "ALL shared")
        info = {
            "fitted_by": "bench/fit_behaviour.py",
            "windows": int(keep.sum()),
            "media_windows": int(s.y[keep].sum()),
            "captures": sorted(set(s.capture.tolist())),
            "skip_in_fit": list(args.skip_in_fit),
            "l2": L2,
            "target_fpr": TARGET_FPR,
            "leave_one_app_out_shared": {
                k: overall[k] for k in ("recall", "recall_first_window", "precision", "fpr")
            },
        }
        out = replace(model, info=info)
        args.out.write_text(json.dumps(out.to_json(), indent=1) + "\n")
        print(f"wrote {args.out} (threshold {threshold:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
