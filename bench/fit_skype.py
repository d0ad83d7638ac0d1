#!/usr/bin/env python3
"""Fit the classic-Skype model shipped in src/voipscope/classify/data/skype_model.json.

    python bench/fit_skype.py [--captures DIR] [--labels DIR] [--out FILE] [--check]

Two parts, both reproducible (fixed seed, no download):

1. ``csc_random_max_chi2``: for n = 0..49 packets, the 99.9th percentile of the largest
   of the 16 block χ² values (classify/skype_csc.py) when the 8 head bytes of n packets
   are uniform random — simulated with numpy's multinomial sampler, seed 2007. The CSC
   calls a flow's heads "random" below it, so truly random flows fail once in a thousand
   whatever n; from n = 50 on Tstat's own threshold (150) applies.
2. ``nbc``: the naive Bayes model of classify/skype_nbc.py, over TCP flows of the shared
   captures (../shared/captures/ndpi) labelled in tests/expected/labels: class Skype =
   label protocol ``Skype``; class other = every other labelled TCP flow with payload
   (label ``unknown`` left out). Per packet, the payload size bin by direction and the
   gap bin, from each flow's first 24 payload packets; Laplace smoothing (+1 per bin).
   The threshold is the lowest mean LLR per packet that keeps the *other* class at or
   under ``TARGET_FPR``; the script prints 5-fold cross-validated rates (folds by flow,
   seed 2007) so the in-sample figures are not the only ones.

Packets are read with bench/pcapio.py and parsed here (Ethernet, 802.1Q, IPv4, IPv6 without
extension headers, TCP), not with voipscope: the model must not depend on the code it
helps judge. ``--check`` fits again and fails if the shipped file differs.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import struct
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from pcapio import read_packets, to_ethernet  # noqa: E402
from voipscope.classify import skype_nbc as NBC  # noqa: E402
from voipscope.classify.skype_csc import N_BLOCK, N_VALUES, TSTAT_MIN_PACKETS_TCP  # noqa: E402

DEFAULT_CAPTURES = REPO.parent / "shared" / "captures" / "ndpi"
DEFAULT_LABELS = REPO / "tests" / "expected" / "labels"
SEED = 2007
CSC_TRIALS = 20_000
CSC_QUANTILE = 0.999
TARGET_FPR = 0.01
FOLDS = 5

Key = tuple[int, str, int, str, int]


def csc_thresholds() -> list[float]:
    rng = np.random.default_rng(SEED)
    out = [float("inf")]  # n = 0: nothing to test
    for n in range(1, TSTAT_MIN_PACKETS_TCP):
        counts = rng.multinomial(n, [1 / N_VALUES] * N_VALUES, size=(CSC_TRIALS, N_BLOCK))
        expected = n / N_VALUES
        chi2 = ((counts - expected) ** 2).sum(axis=2) / expected
        out.append(round(float(np.quantile(chi2.max(axis=1), CSC_QUANTILE)), 3))
    return out


def canonical(proto: int, a: str, ap: int, b: str, bp: int) -> Key:
    first, second = (ipaddress.ip_address(a), ap), (ipaddress.ip_address(b), bp)
    return (proto, a, ap, b, bp) if first <= second else (proto, b, bp, a, ap)


def tcp_segments(path: Path) -> dict[Key, list[tuple[int, tuple[str, int], int]]]:
    """Per canonical TCP 5-tuple: (ts_ns, sender, payload bytes) of payload segments."""
    flows: dict[Key, list[tuple[int, tuple[str, int], int]]] = defaultdict(list)
    for raw in read_packets(path):
        converted = to_ethernet(raw)
        if converted is None:
            continue
        frame = converted[0]
        off, ethertype = 14, int.from_bytes(frame[12:14], "big")
        while ethertype == 0x8100 and len(frame) >= off + 4:
            ethertype, off = int.from_bytes(frame[off + 2 : off + 4], "big"), off + 4
        if ethertype == 0x0800 and len(frame) >= off + 20:
            ihl = (frame[off] & 0x0F) * 4
            total = int.from_bytes(frame[off + 2 : off + 4], "big")
            if frame[off + 9] != 6 or struct.unpack_from("!H", frame, off + 6)[0] & 0x1FFF:
                continue
            src = str(ipaddress.IPv4Address(frame[off + 12 : off + 16]))
            dst = str(ipaddress.IPv4Address(frame[off + 16 : off + 20]))
            l4, end = off + ihl, min(len(frame), off + total)
        elif ethertype == 0x86DD and len(frame) >= off + 40:
            if frame[off + 6] != 6:
                continue
            src = str(ipaddress.IPv6Address(frame[off + 8 : off + 24]))
            dst = str(ipaddress.IPv6Address(frame[off + 24 : off + 40]))
            l4 = off + 40
            end = min(len(frame), l4 + int.from_bytes(frame[off + 4 : off + 6], "big"))
        else:
            continue
        if end < l4 + 20:
            continue
        sport, dport = struct.unpack_from("!HH", frame, l4)
        payload = end - (l4 + (frame[l4 + 12] >> 4) * 4)
        if payload > 0:
            key = canonical(6, src, sport, dst, dport)
            flows[key].append((raw.ts_us * 1000, (src, sport), payload))
    return flows


def samples(captures: Path, labels: Path) -> tuple[list[list[tuple[int, int, int]]], list[int]]:
    x: list[list[tuple[int, int, int]]] = []
    y: list[int] = []
    for label_file in sorted(labels.glob("*.csv")):
        capture = captures / label_file.name[:-4]
        if not capture.is_file():
            continue
        with label_file.open() as fh:
            rows = [r for r in csv.DictReader(fh) if r["proto"] == "6"]
        rows = [r for r in rows if r["category"] != "unknown"]
        if not rows:
            continue
        segments = tcp_segments(capture)
        for r in rows:
            key = canonical(6, r["a_ip"], int(r["a_port"]), r["b_ip"], int(r["b_port"]))
            segs = sorted(segments.get(key, ()))
            if not segs:
                continue
            first = segs[0][1]
            x.append([(t, 0 if who == first else 1, n) for t, who, n in segs][: NBC.WINDOW_PACKETS])
            y.append(int(r["protocol"] == "Skype"))
    return x, y


def fit(x: Sequence[list[tuple[int, int, int]]], y: Sequence[int]) -> dict[str, Any]:
    size = np.ones((2, NBC.N_SIZE))  # Laplace: +1 per bin
    gap = np.ones((2, NBC.N_GAP))
    for packets, cls in zip(x, y, strict=True):
        ts, d, n = (np.array(c, np.int64) for c in zip(*packets, strict=True))
        np.add.at(size[cls], NBC.size_bins(n, d), 1)
        np.add.at(gap[cls], NBC.gap_bins(ts), 1)
    size /= size.sum(axis=1, keepdims=True)
    gap /= gap.sum(axis=1, keepdims=True)
    model = NBC.SkypeModel(np.log(size[1] / size[0]), np.log(gap[1] / gap[0]), 0.0, ())
    others = sorted(model.score(p) or 0.0 for p, c in zip(x, y, strict=True) if c == 0)
    keep = int(np.floor(TARGET_FPR * len(others)))
    threshold = others[len(others) - keep - 1] + 1e-6 if others else 0.0
    return {
        "size_llr": [round(float(v), 6) for v in model.size_llr],
        "gap_llr": [round(float(v), 6) for v in model.gap_llr],
        "threshold": round(float(threshold), 6),
    }


def as_model(nbc: dict[str, Any]) -> NBC.SkypeModel:
    return NBC.SkypeModel(np.array(nbc["size_llr"]), np.array(nbc["gap_llr"]), nbc["threshold"], ())


def rates(model: NBC.SkypeModel, x: Sequence[Any], y: Sequence[int]) -> tuple[float, float]:
    hit = [(model.score(p) or 0.0) >= model.threshold for p in x]
    pos = [h for h, c in zip(hit, y, strict=True) if c == 1]
    neg = [h for h, c in zip(hit, y, strict=True) if c == 0]
    return sum(pos) / max(1, len(pos)), sum(neg) / max(1, len(neg))


def cross_validated(x: Sequence[Any], y: Sequence[int]) -> tuple[float, float]:
    order = np.random.default_rng(SEED).permutation(len(x))
    tp = fp = pos = neg = 0
    for k in range(FOLDS):
        test = set(order[k::FOLDS].tolist())
        train = [i for i in range(len(x)) if i not in test]
        model = as_model(fit([x[i] for i in train], [y[i] for i in train]))
        for i in test:
            hit = (model.score(x[i]) or 0.0) >= model.threshold
            pos += y[i]
            neg += 1 - y[i]
            tp += hit and y[i] == 1
            fp += hit and y[i] == 0
    return tp / max(1, pos), fp / max(1, neg)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--out", type=Path, default=NBC.MODEL_FILE)
    ap.add_argument("--check", action="store_true", help="fail if --out differs")
    args = ap.parse_args(argv)
    x, y = samples(args.captures, args.labels)
    nbc = fit(x, y)
    tpr, fpr = rates(as_model(nbc), x, y)
    cv_tpr, cv_fpr = cross_validated(x, y)
    print(f"TCP flows: {sum(y)} Skype, {len(y) - sum(y)} other")
    print(f"NBC in-sample: TPR {tpr:.3f} FPR {fpr:.3f}; {FOLDS}-fold CV: "
          f"TPR {cv_tpr:.3f} FPR {cv_fpr:.3f}")  # fmt: skip
    model = {
        "about": "classic Skype CSC thresholds and NBC; written by bench/fit_skype.py",
        "seed": SEED,
        "csc_random_max_chi2": csc_thresholds(),
        "nbc": {**nbc, "flows": {"skype": sum(y), "other": len(y) - sum(y)},
                "in_sample": {"tpr": round(tpr, 4), "fpr": round(fpr, 4)},
                "cross_validated": {"tpr": round(cv_tpr, 4), "fpr": round(cv_fpr, 4)}},
    }  # fmt: skip
    text = json.dumps(model, indent=1) + "\n"
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print("shipped model is up to date" if same else f"{args.out} differs from a refit")
        return 0 if same else 1
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
