"""The χ² Skype classifier (CSC) of Bonfiglio, Mellia, Meo, Rossi, Tofanelli, "Revealing
Skype Traffic: When Randomness Plays with You", SIGCOMM 2007, §4.1, as Tstat runs it.

Each packet's first 64 bits are cut into 16 nibbles ("blocks"); per block, over the
flow's packets, a χ² against the uniform distribution says whether that nibble is
*random* (encrypted: small χ²) or *deterministic* (a header field: large χ²). The
pattern of random and deterministic blocks names the framing:

* **E2E** (Skype to Skype over UDP): the Start-of-Message header — blocks 4 and 5 (the
  function byte) deterministic, the other header blocks and the payload random.
* **E2O** (SkypeOut, to the PSTN gateways): a 4-byte connection id repeated in every
  datagram — every header block deterministic, the payload random.
* **TCP**: everything random from the first byte (Skype over TCP is RC4 from byte 0).

Tstat's thresholds (``tstat/skype.c``, ``print_skype_conn_stats_UDP/TCP``): random below
150, deterministic at 150 or more (block 5: 100), for flows of at least 10 UDP packets
(``skype.h MIN_SKYPE_PKTS``) or 50 TCP segments (``MIN_SKYPE_PKTS_TCP``). A constant
nibble scores 15·n over n packets, so 150 needs n ≥ 10; for shorter TCP flows (most
signalling connections) this module uses the flow-level 0.1 % quantile of the maximum of
16 block χ² under uniform bytes, per n, simulated by ``bench/fit_skype.py`` and shipped in
``data/skype_model.json`` (``csc_random_max_chi2``): random data fails the test once in a
thousand flows whatever n.

The block order is Tstat's: it reads 32-bit words in x86 (little-endian) order and takes
nibbles from the low end, so block 2k is the low nibble of byte k, 2k+1 its high nibble.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_RANDOM_BIT = 4  # skype.h
N_VALUES = 16  # skype.h N_RANDOM_BIT_VALUES
N_BLOCK = 16  # skype.h N_BLOCK: nibbles in the first 64 bits
HEAD_BYTES = 8  # RANDOM_MASK_LEN / 8
HEADER_BLOCKS = slice(0, 8)  # the first 4 bytes: "header" in Tstat's rule names
PAYLOAD_BLOCKS = slice(8, 16)
FUNCTION_BLOCKS = (4, 5)  # byte 2: the SoM function byte (low, high nibble)
TSTAT_CHI2 = 150.0  # random below, deterministic at or above (skype.c)
TSTAT_CHI2_FUNCTION_HIGH = 100.0  # block 5: only bit 7 of the high nibble is fixed
TSTAT_MIN_PACKETS_UDP = 10  # skype.h MIN_SKYPE_PKTS
TSTAT_MIN_PACKETS_TCP = 50  # skype.h MIN_SKYPE_PKTS_TCP
# χ² with 15 degrees of freedom, upper 0.1 % point (any table): the pooled test of all
# nibbles of a direction's opening bytes against the uniform distribution.
POOLED_CHI2_15DOF_P001 = 37.70
POOLED_MIN_BYTES = 16  # fewer nibbles than 2 per value: no pooled test


@dataclass(frozen=True, slots=True)
class CscResult:
    samples: int  # packets with >= 8 payload bytes
    chi2: np.ndarray  # (16,) per block
    threshold: float  # random below this

    @property
    def random_blocks(self) -> int:
        return int((self.chi2 < self.threshold).sum())

    @property
    def powered(self) -> bool:
        """Could a constant nibble have been told from a random one at all? (15·n)"""
        return 15.0 * self.samples > self.threshold

    @property
    def all_random(self) -> bool:
        return self.powered and self.random_blocks == N_BLOCK

    @property
    def max_header(self) -> float:
        return float(self.chi2[HEADER_BLOCKS].max())

    @property
    def max_payload(self) -> float:
        return float(self.chi2[PAYLOAD_BLOCKS].max())

    @property
    def min_header(self) -> float:
        return float(self.chi2[HEADER_BLOCKS].min())

    def udp_kind(self) -> str | None:
        """Tstat's UDP rule: "E2O" (SkypeOut), "E2E" or None, at Tstat's thresholds."""
        if self.samples < TSTAT_MIN_PACKETS_UDP:
            return None
        chi = self.chi2
        if self.min_header >= TSTAT_CHI2 and self.max_payload < TSTAT_CHI2:
            return "E2O"
        others = [chi[i] for i in range(8) if i not in FUNCTION_BLOCKS]
        if (
            max(others) < TSTAT_CHI2
            and chi[4] >= TSTAT_CHI2
            and chi[5] >= TSTAT_CHI2_FUNCTION_HIGH
            and self.max_payload < TSTAT_CHI2
        ):
            return "E2E"
        return None

    def text(self) -> str:
        return (
            f"csc chi2 over {self.samples} packets: random blocks {self.random_blocks}/16 "
            f"(threshold {self.threshold:.0f}), max header {self.max_header:.0f}, "
            f"max payload {self.max_payload:.0f}"
        )


def distinct_heads(heads: Sequence[bytes]) -> int:
    """How many samples ``csc`` would count (distinct 8-byte heads), without the χ²."""
    return len({h[:HEAD_BYTES] for h in heads if len(h) >= HEAD_BYTES})


def nibbles(heads: Sequence[bytes]) -> np.ndarray:
    """(n, 16) block values of the distinct heads that have 8 bytes, in Tstat's order.

    A head seen before is a retransmission (TCP resends the same bytes; Skype resends a
    datagram as it was): the same sample again, not new evidence. Eight random bytes
    repeat by chance once in 2**64."""
    full = list(dict.fromkeys(h[:HEAD_BYTES] for h in heads if len(h) >= HEAD_BYTES))
    if not full:
        return np.zeros((0, N_BLOCK), np.uint8)
    raw = np.frombuffer(b"".join(h[:HEAD_BYTES] for h in full), np.uint8).reshape(-1, 8)
    out = np.empty((raw.shape[0], N_BLOCK), np.uint8)
    out[:, 0::2] = raw & 0x0F
    out[:, 1::2] = raw >> 4
    return out


def block_chi2(values: np.ndarray) -> np.ndarray:
    """χ² of each block's nibble counts against n/16 (Tstat's expected_num)."""
    n = values.shape[0]
    if n == 0:
        return np.zeros(N_BLOCK)
    offsets = np.arange(N_BLOCK) * N_VALUES
    counts = np.bincount((values + offsets).ravel(), minlength=N_BLOCK * N_VALUES)
    counts = counts.reshape(N_BLOCK, N_VALUES).astype(np.float64)
    expected = n / N_VALUES
    return ((counts - expected) ** 2).sum(axis=1) / expected


def random_threshold(samples: int, small_sample: Sequence[float]) -> float:
    """Tstat's 150 from its minimum flow size on; below it the simulated quantile."""
    if samples >= TSTAT_MIN_PACKETS_TCP or samples >= len(small_sample):
        return TSTAT_CHI2
    return min(TSTAT_CHI2, float(small_sample[samples]))


def csc(heads: Sequence[bytes], small_sample: Sequence[float]) -> CscResult:
    values = nibbles(heads)
    n = values.shape[0]
    return CscResult(n, block_chi2(values), random_threshold(n, small_sample))


def pooled_chi2(data: bytes) -> float | None:
    """χ² of all nibbles of ``data`` against uniform (15 dof); None when too short."""
    if len(data) < POOLED_MIN_BYTES:
        return None
    raw = np.frombuffer(data, np.uint8)
    counts = np.bincount(np.concatenate([raw & 0x0F, raw >> 4]), minlength=N_VALUES)
    expected = 2 * len(data) / N_VALUES
    return float(((counts - expected) ** 2).sum() / expected)
