"""Decode: link/IP/L4 headers of PacketBatches into numpy columns (DecodedBatch)."""

from voipscope.decode.batch import DecodedBatch, decode_batch
from voipscope.decode.fragments import FragmentReassembler

__all__ = ["DecodedBatch", "FragmentReassembler", "decode_batch"]
