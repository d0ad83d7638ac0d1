"""Tone exfiltration: data smuggled out of a network as audio tones in a call.

The quality kernel hands every G.711/L16 stream's *runs of one tone* (activity.tones:
[start s, end s, Hz, frames, tone share], placed by RTP timestamps) and frame
statistics to the stream record. This detector judges them, per stream:

1. **Decoding** (:func:`decode_tone_runs`), for the scheme of issue 7 and its kin: one
   tone per half-byte from an alphabet of up to 16 frequencies, a fixed symbol time.
   - *Alphabet*, learned from what was sent: run frequencies clustered on a log scale
     (runs within ``cluster_tolerance`` of each other are one tone), clusters holding
     too little time dropped, the rest sorted by frequency; tone k of 16 is nibble k.
     With fewer than 16 tones seen (short messages do not use every nibble) the tones
     are placed on ``alphabet_hint_hz`` when every one of them is within tolerance of
     it (default: the issue's C major scale C4..D6), else numbered in order and the
     result is flagged ``alphabet_complete: false``.
   - *Symbol grid*: a symbol edge lies between two adjacent runs of different tones;
     the differences of consecutive edges are whole multiples of the symbol time.
     A first guess (median of the short differences) numbers the edges, least squares
     over all of them gives symbol time and phase. Lost packets move no edge (runs are
     in RTP time) and at most blur one.
   - *Symbols*: each grid cell takes the tone that covers most of it (a vote weighted
     by time: 6.25 frames of 20 ms per 1/8 s symbol, so a lost or straddling frame is
     outvoted); a cell covered less than ``min_cover`` is an erasure (nibble 0, listed).
   - *Bytes*: two nibbles each, ``nibble_order`` "high-first" by default: the issue's
     order, and the order hex is written and read in (byte 0x4F is "4" then "F"); an
     odd last nibble is reported, not guessed.
2. **Judging**: see :class:`ToneExfilDetector`. Tone-dominated audio on a regular
   symbol grid with at least ``min_alphabet`` tones is ``tone-exfiltration`` (high when
   decoded, with ``data.decoded_hex``); machine-speed DTMF (RFC 4733 events or in-band
   pairs) is ``tone-exfiltration`` medium (event codes as nibbles); tone-dominated or
   noise-like audio that decodes to nothing is ``non-speech-media`` (low). Call progress
   tones (one to three frequencies: ringback, busy, SIT), speech, music and IVR digits
   raise nothing. A long one-way stream is evidence, never an alert by itself (music on
   hold is one-way too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector

KIND = "tone-exfiltration"
KIND_NON_SPEECH = "non-speech-media"
NIBBLE_ORDERS = ("high-first", "low-first")
# The example alphabet: C major C4..D6, equal temperament, A4 = 440 Hz (ISO 16).
C_MAJOR_C4_D6_HZ = tuple(
    440.0 * 2 ** (s / 12) for s in (-9, -7, -5, -4, -2, 0, 2, 3, 5, 7, 8, 10, 12, 14, 15, 17)
)
NIBBLE_SYMBOLS = 16
DTMF_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15


@dataclass(frozen=True, slots=True)
class DecoderConfig:
    nibble_order: str = "high-first"
    cluster_tolerance: float = 0.02  # relative; a semitone is 5.9 %
    min_cluster_share: float = 0.002  # of all run time; less is a straddling frame
    max_edge_gap_s: float = 0.07  # runs this close are neighbours (3 lost 20 ms frames)
    min_symbol_s: float = 0.02
    max_symbol_s: float = 2.0
    on_grid_s_fraction: float = 0.25  # an edge within a quarter symbol of the grid fits
    min_cover: float = 0.2  # of a cell; less is an erasure
    max_symbols: int = 200_000
    alphabet_hint_hz: tuple[float, ...] = C_MAJOR_C4_D6_HZ


@dataclass(slots=True)
class ToneDecoding:
    symbol_s: float
    phase_s: float  # where a symbol edge lies, media seconds since the stream began
    alphabet_hz: list[float]  # the tones seen, ascending
    alphabet_source: str  # "learned" | "hint" | "ranked (incomplete)"
    alphabet_complete: bool
    symbols: list[int | None]  # per grid cell: nibble, None an erasure
    edges: int  # symbol edges seen
    edges_on_grid: float  # their share within on_grid_s_fraction of the grid
    nibble_order: str
    data: bytes = b""
    erasures: list[int] = field(default_factory=list)  # cell indices
    trailing_nibble: int | None = None

    @property
    def decoded_hex(self) -> str:
        return self.data.hex()


def decode_tone_runs(
    runs: Sequence[Sequence[float]], config: DecoderConfig = DecoderConfig()
) -> ToneDecoding | None:
    """Nibbles and bytes from a stream's tone runs; None when no symbol grid is found."""
    if config.nibble_order not in NIBBLE_ORDERS:
        raise ValueError(f"nibble_order {config.nibble_order!r} is not one of {NIBBLE_ORDERS}")
    r = _run_array(runs)
    if len(r) < 3:
        return None
    start, end, hz = r[:, 0], r[:, 1], r[:, 2]
    alphabet, _ = _alphabet(hz, end - start, config)
    if not alphabet:
        return None
    tone = _nearest(hz, alphabet, config.cluster_tolerance)  # -1: no tone of the alphabet
    grid = _grid(start, end, tone, config)
    if grid is None:
        return None
    symbol_s, phase_s, edges, on_grid = grid
    index, source, complete = _nibble_of_tone(alphabet, config)
    first = math.floor((start[0] - phase_s) / symbol_s + 0.5)
    last = math.floor((end[-1] - phase_s) / symbol_s + 0.5) - 1
    if last < first or last - first + 1 > config.max_symbols:
        return None
    symbols = _vote(start, end, tone, index, first, last, symbol_s, phase_s, config.min_cover)
    out = ToneDecoding(
        symbol_s=symbol_s,
        phase_s=phase_s,
        alphabet_hz=[round(f, 2) for f in alphabet],
        alphabet_source=source,
        alphabet_complete=complete,
        symbols=symbols,
        edges=edges,
        edges_on_grid=on_grid,
        nibble_order=config.nibble_order,
    )
    out.erasures = [k for k, s in enumerate(symbols) if s is None]
    values = [0 if s is None else s for s in symbols]
    if len(values) % 2:
        out.trailing_nibble = values.pop()
    pairs = zip(values[0::2], values[1::2], strict=True)
    if config.nibble_order == "high-first":
        out.data = bytes(a << 4 | b for a, b in pairs)
    else:
        out.data = bytes(b << 4 | a for a, b in pairs)
    return out


def tone_alphabet(
    runs: Sequence[Sequence[float]], config: DecoderConfig = DecoderConfig()
) -> list[float]:
    """The distinct tones of a stream's runs (Hz, ascending), as the decoder learns them."""
    r = _run_array(runs)
    return _alphabet(r[:, 2], r[:, 1] - r[:, 0], config)[0] if len(r) else []


def _run_array(runs: Sequence[Sequence[float]]) -> np.ndarray:
    """(start, end, Hz) rows sorted by start; rows that are not a run are left out."""
    rows = sorted((float(x[0]), float(x[1]), float(x[2])) for x in runs if len(x) >= 3)
    r = np.array(rows, np.float64).reshape(-1, 3)
    ok = np.isfinite(r).all(axis=1) & (r[:, 2] > 0) & (r[:, 1] > r[:, 0])
    return r[ok]


def _alphabet(
    hz: np.ndarray, seconds: np.ndarray, config: DecoderConfig
) -> tuple[list[float], list[float]]:
    """Distinct tones (time-weighted mean Hz, ascending) and the time each holds."""
    order = np.argsort(hz)
    log_hz = np.log(hz[order])
    total = float(seconds.sum())
    tones: list[float] = []
    weights: list[float] = []
    begin = 0
    for k in range(1, len(order) + 1):
        if k == len(order) or log_hz[k] - log_hz[k - 1] > config.cluster_tolerance:
            members = order[begin:k]
            w = float(seconds[members].sum())
            if w >= config.min_cluster_share * total and w > 0:
                tones.append(float(np.average(hz[members], weights=seconds[members])))
                weights.append(w)
            begin = k
    if len(tones) > NIBBLE_SYMBOLS:  # keep the 16 that hold most time
        keep = sorted(np.argsort(weights)[-NIBBLE_SYMBOLS:])
        tones = [tones[k] for k in keep]
        weights = [weights[k] for k in keep]
    return tones, weights


def _nearest(hz: np.ndarray, alphabet: list[float], tolerance: float) -> np.ndarray:
    a = np.log(np.array(alphabet))
    dist = np.abs(np.log(hz)[:, None] - a[None, :])
    best = np.argmin(dist, axis=1)
    return np.where(dist[np.arange(len(hz)), best] <= tolerance, best, -1)


def _nibble_of_tone(alphabet: list[float], config: DecoderConfig) -> tuple[list[int], str, bool]:
    """Nibble value of each alphabet tone; where the numbering came from; whether sure."""
    if len(alphabet) == NIBBLE_SYMBOLS:
        return list(range(NIBBLE_SYMBOLS)), "learned", True
    hint = config.alphabet_hint_hz
    if len(hint) == NIBBLE_SYMBOLS:
        at = _nearest(np.array(alphabet), list(hint), config.cluster_tolerance)
        if (at >= 0).all() and len(set(at.tolist())) == len(alphabet):
            return at.tolist(), "hint", True
    return list(range(len(alphabet))), "ranked (incomplete)", False


def _grid(
    start: np.ndarray, end: np.ndarray, tone: np.ndarray, config: DecoderConfig
) -> tuple[float, float, int, float] | None:
    """(symbol s, phase s, edges, share of edges on the grid) from the runs' edges."""
    gap = start[1:] - end[:-1]
    changes = (gap <= config.max_edge_gap_s) & (gap >= -config.max_edge_gap_s)
    changes &= tone[1:] != tone[:-1]
    changes &= (tone[1:] >= 0) & (tone[:-1] >= 0)
    edges = ((end[:-1] + start[1:]) / 2)[changes]
    if len(edges) < 3:
        return None
    diffs = np.diff(edges)
    diffs = diffs[diffs >= config.min_symbol_s]
    if len(diffs) < 2:
        return None
    # The short differences are single symbols; longer ones are repeated nibbles or
    # a missing edge (a symbol with no run of its own).
    short = diffs[diffs <= 1.5 * np.percentile(diffs, 20)]
    symbol_s = float(np.median(short))
    if not config.min_symbol_s <= symbol_s <= config.max_symbol_s:
        return None
    for _ in range(3):
        # Number the edges by whole symbols between neighbours (a guess a few per cent
        # off numbers neighbours right, where numbering from the first edge would drift),
        # fit a line through all of them, renumber with the better symbol time.
        steps = np.maximum(np.round(np.diff(edges) / symbol_s), 0)
        k = np.concatenate([[0.0], np.cumsum(steps)])
        if k[-1] == 0:
            return None
        symbol_s, phase_s = (float(v) for v in np.polyfit(k, edges, 1))
        if not config.min_symbol_s <= symbol_s <= config.max_symbol_s:
            return None
    residual = np.abs(edges - (phase_s + k * symbol_s))
    on_grid = float(np.mean(residual <= config.on_grid_s_fraction * symbol_s))
    return symbol_s, phase_s, len(edges), on_grid


def _vote(
    start: np.ndarray, end: np.ndarray, tone: np.ndarray, index: list[int],
    first: int, last: int, symbol_s: float, phase_s: float, min_cover: float,
) -> list[int | None]:  # fmt: skip
    """Per cell first..last: the nibble whose runs cover most of it (None: too little)."""
    cells = last - first + 1
    cover = np.zeros((cells, NIBBLE_SYMBOLS))
    for s, e, t in zip(start.tolist(), end.tolist(), tone.tolist(), strict=True):
        if t < 0:
            continue
        lo = max(first, math.floor((s - phase_s) / symbol_s))
        hi = min(last, math.floor((e - phase_s) / symbol_s))
        for k in range(lo, hi + 1):
            cell_start = phase_s + k * symbol_s
            overlap = min(e, cell_start + symbol_s) - max(s, cell_start)
            if overlap > 0:
                cover[k - first, index[t]] += overlap
    best = cover.argmax(axis=1)
    enough = cover.max(axis=1) >= min_cover * symbol_s
    return [int(b) if ok else None for b, ok in zip(best.tolist(), enough.tolist(), strict=True)]


# -- judging ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToneExfilConfig:
    decoder: DecoderConfig = DecoderConfig()
    min_loud_s: float = 4.0  # of audio above silence before judging a stream
    frame_s: float = 0.02  # nominal frame, to turn frame counts into seconds
    min_tone_share: float = 0.6  # of loud frames that are one tone
    min_alphabet: int = 4  # call progress tones use 1-3 frequencies (Q.35, SIT)
    min_symbols: int = 16
    min_edges_on_grid: float = 0.8
    max_erasure_share: float = 0.1
    min_noisy_share: float = 0.8  # noise-like frames: modem, encrypted payload in G.711
    min_noisy_s: float = 10.0
    min_dtmf_digits: int = 32  # an IVR menu, a card number and a PIN stay below
    max_dtmf_median_gap_s: float = 0.3  # people press keys slower than ~3 a second
    one_way_min_s: float = 20.0


class ToneExfilDetector:
    """Judges finished calls' media streams (stream dicts as in Call records)."""

    def __init__(self, config: ToneExfilConfig = ToneExfilConfig()) -> None:
        self.config = config

    def check_calls(self, calls: Iterable[dict[str, Any]]) -> list[Alert]:
        return [alert for call in calls for alert in self.check_call(call)]

    def check_call(self, call: dict[str, Any]) -> list[Alert]:
        streams = [s for s in call.get("streams") or [] if isinstance(s, dict)]
        alerts = []
        for stream in streams:
            alert = self.check_stream(stream, call, streams)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def check_stream(
        self,
        stream: dict[str, Any],
        call: dict[str, Any] | None = None,
        siblings: Sequence[dict[str, Any]] = (),
    ) -> Alert | None:
        """An alert about one stream, or None. ``siblings``: the call's streams (to tell
        one-way media)."""
        cfg = self.config
        evidence: list[str] = []
        data: dict[str, Any] = {}
        if call is not None and call.get("call_id"):
            data["call_id"] = call["call_id"]
        data["ssrc"] = stream.get("ssrc")
        one_way = self._one_way(stream, siblings)
        kind, severity, summary = None, "low", ""
        decoded = None
        tones = stream.get("tones") or {}
        loud_s = tones.get("loud_frames", 0) * cfg.frame_s
        where = _where(stream)
        if loud_s >= cfg.min_loud_s:
            tone_share = float(tones.get("tone_share", 0.0))
            data.update(tone_share=tone_share, mean_flatness=tones.get("mean_flatness"))
            if tone_share >= cfg.min_tone_share:
                evidence.append(
                    f"{tone_share:.0%} of {loud_s:.1f} s of audio is one steady tone at a time"
                )
                runs = stream.get("tone_runs") or []
                alphabet = tone_alphabet(runs, cfg.decoder)
                data["alphabet_hz"] = [round(f, 2) for f in alphabet]
                verdict = None  # call progress tones: ringback, busy, SIT (Q.35)
                if len(alphabet) >= cfg.min_alphabet:
                    decoded = decode_tone_runs(runs, cfg.decoder)
                    verdict = self._judge_decoding(decoded, evidence, data)
                if verdict == "exfil":
                    assert decoded is not None
                    kind, severity = KIND, "high"
                    summary = (
                        f"{len(decoded.data)} bytes encoded as tones in {where} "
                        f"({len(decoded.alphabet_hz)} tones, {decoded.symbol_s * 1000:.1f} ms "
                        "symbols)"
                    )
                elif verdict == "non-speech":
                    kind, severity = KIND_NON_SPEECH, "low"
                    summary = f"tone-dominated audio that is not speech in {where}"
            noisy_share = float(tones.get("noisy_share", 0.0))
            if kind is None and noisy_share >= cfg.min_noisy_share and loud_s >= cfg.min_noisy_s:
                evidence.append(
                    f"{noisy_share:.0%} of {loud_s:.1f} s of audio is noise-like "
                    f"(mean flatness {tones.get('mean_flatness', 0):.2f}): not speech, not music"
                )
                kind, severity = KIND_NON_SPEECH, "low"
                summary = f"noise-like audio (modem, data) in {where}"
        if kind is None:
            found = self._dtmf_heavy(stream, evidence, data)
            if found:
                kind, severity = KIND, "medium"
                summary = f"{found} machine-speed DTMF digits in {where}"
        if kind is None:
            return None
        if one_way:
            evidence.append(one_way)
            data["one_way"] = True
        data["stream"] = where
        alert = Alert(
            ts=float(stream.get("first_seen") or 0.0),
            kind=kind,
            severity=severity,
            src_ip=stream.get("src_ip"),
            dst_ip=stream.get("dst_ip"),
            summary=summary,
            data=data,
            last_ts=float(stream.get("last_seen") or stream.get("first_seen") or 0.0),
        )
        for text in evidence:
            alert.add_evidence(text)
        return alert

    def _judge_decoding(
        self, decoded: ToneDecoding | None, evidence: list[str], data: dict[str, Any]
    ) -> str:
        """Verdict: "exfil" or "non-speech"."""
        cfg = self.config
        if decoded is None:
            evidence.append("no symbol grid: the tones change at no regular rate")
            return "non-speech"
        tones = len(decoded.alphabet_hz)
        data["symbol_s"] = round(decoded.symbol_s, 5)
        symbols = len(decoded.symbols)
        erasure_share = len(decoded.erasures) / max(1, symbols)
        evidence.append(
            f"{tones} distinct tones ({decoded.alphabet_hz[0]:.0f}-"
            f"{decoded.alphabet_hz[-1]:.0f} Hz), {decoded.edges} symbol edges, "
            f"{decoded.edges_on_grid:.0%} on a {decoded.symbol_s * 1000:.1f} ms grid"
        )
        regular = (
            decoded.edges_on_grid >= cfg.min_edges_on_grid
            and symbols >= cfg.min_symbols
            and erasure_share <= cfg.max_erasure_share
        )
        if not regular:
            return "non-speech"
        data.update(
            decoded_hex=decoded.decoded_hex,
            decoded_bytes=len(decoded.data),
            nibble_order=decoded.nibble_order,
            bits_per_symbol=4,
            alphabet_source=decoded.alphabet_source,
            alphabet_complete=decoded.alphabet_complete,
            symbols=symbols,
            erasures=decoded.erasures[:64],
            erasure_count=len(decoded.erasures),
            trailing_nibble=decoded.trailing_nibble,
        )
        evidence.append(
            f"decoded {len(decoded.data)} bytes, {decoded.nibble_order} nibbles, "
            f"{len(decoded.erasures)} erasures; alphabet {decoded.alphabet_source}"
        )
        return "exfil"

    def _dtmf_heavy(self, stream: dict[str, Any], evidence: list[str], data: dict[str, Any]) -> int:
        """Digits when the stream carries machine-speed DTMF, else 0."""
        cfg = self.config
        best = 0
        for key, via in (("dtmf", "RFC 4733 events"), ("inband_dtmf", "in-band tone pairs")):
            digits = [d for d in stream.get(key) or [] if isinstance(d, dict)]
            if len(digits) < cfg.min_dtmf_digits:
                continue
            gaps = np.diff([float(d["ts"]) for d in digits])
            median_gap = float(np.median(gaps)) if len(gaps) else math.inf
            if median_gap > cfg.max_dtmf_median_gap_s:
                continue
            text = "".join(str(d["digit"]) for d in digits)
            codes = [DTMF_DIGITS.index(c) for c in text if c in DTMF_DIGITS]
            if len(codes) % 2:
                codes = codes[:-1]
            evidence.append(
                f"{len(digits)} DTMF digits as {via}, median {median_gap * 1000:.0f} ms apart"
            )
            data.update(
                dtmf_digits=text[:1024],
                dtmf_via=via,
                decoded_hex=bytes(
                    a << 4 | b for a, b in zip(codes[::2], codes[1::2], strict=True)
                ).hex(),
                decoding="RFC 4733 event code of each digit as a nibble, high first",
            )
            best = max(best, len(digits))
        return best

    def _one_way(self, stream: dict[str, Any], siblings: Sequence[dict[str, Any]]) -> str:
        """Evidence text when the stream is long and nothing (or only silence) comes
        back; empty otherwise."""
        seconds = float(stream.get("last_seen") or 0.0) - float(stream.get("first_seen") or 0.0)
        if seconds < self.config.one_way_min_s:
            return ""
        src, dst = stream.get("src_ip"), stream.get("dst_ip")
        for other in siblings:
            if other is stream or other.get("src_ip") != dst or other.get("dst_ip") != src:
                continue
            if other.get("talk_spurts"):
                return ""
        return f"one-way media: {seconds:.1f} s {_where(stream)}, no speech back"


class ToneExfil(Detector):
    """The detector stage's face of :class:`ToneExfilDetector`: finished Call records
    in (``on_call``), alerts into the shared book, one per stream."""

    name = "tone_exfil"

    def __init__(self, book: AlertBook, config: ToneExfilConfig = ToneExfilConfig()) -> None:
        super().__init__(book)
        self.judge = ToneExfilDetector(config)

    def on_call(self, record: dict[str, Any]) -> None:
        for alert in self.judge.check_call(record):
            detail = f"{alert.data.get('call_id')}/{alert.data.get('ssrc')}"
            self.book.raise_alert(alert, detail)


def _where(stream: dict[str, Any]) -> str:
    return (
        f"{stream.get('src_ip')}:{stream.get('src_port')} -> "
        f"{stream.get('dst_ip')}:{stream.get('dst_port')} (SSRC {stream.get('ssrc')})"
    )
