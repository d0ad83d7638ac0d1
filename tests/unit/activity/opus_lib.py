"""libopus through ctypes, for tests that need real Opus packets (Debian: libopus0, which
baresip-core brings). ``LIBOPUS`` is None where it is not installed."""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

LIBOPUS = ctypes.util.find_library("opus")
APPLICATION_VOIP = 2048  # opus_defines.h
APPLICATION_AUDIO = 2049
SET_BITRATE = 4002  # OPUS_SET_BITRATE_REQUEST
SET_FORCE_CHANNELS = 4022
SET_INBAND_FEC = 4012
SET_PACKET_LOSS_PERC = 4014
SET_DTX = 4016
SET_SIGNAL = 4024
SIGNAL_VOICE = 3001
SIGNAL_MUSIC = 3002
MAX_PACKET_BYTES = 8000  # room for the repacketizer joining 1275-byte frames


class Opus:
    """An encoder, a repacketizer and libopus's own packet parser."""

    def __init__(self, channels: int = 1, application: int = APPLICATION_VOIP) -> None:
        assert LIBOPUS is not None
        lib = ctypes.CDLL(LIBOPUS)
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_encoder_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_int)]  # fmt: skip
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                    ctypes.c_char_p, ctypes.c_int]  # fmt: skip
        lib.opus_encoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        pointer = ctypes.c_void_p
        lib.opus_packet_parse.argtypes = [ctypes.c_char_p, ctypes.c_int, pointer, pointer,
                                          pointer, pointer]  # fmt: skip
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.opus_repacketizer_create.restype = ctypes.c_void_p
        lib.opus_repacketizer_init.argtypes = [ctypes.c_void_p]
        lib.opus_repacketizer_cat.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.opus_repacketizer_out.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.opus_packet_pad.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        self.lib = lib
        self.channels = channels
        error = ctypes.c_int()
        self.encoder = lib.opus_encoder_create(48_000, channels, application, ctypes.byref(error))
        assert error.value == 0, error.value
        self.out = ctypes.create_string_buffer(MAX_PACKET_BYTES)

    def ctl(self, request: int, value: int) -> None:
        assert self.lib.opus_encoder_ctl(self.encoder, request, value) == 0

    def encode(self, pcm: np.ndarray) -> bytes:
        """One frame of int16 samples (interleaved when stereo)."""
        pcm = np.ascontiguousarray(pcm, np.int16)
        n = self.lib.opus_encode(self.encoder, pcm.ctypes.data, len(pcm) // self.channels,
                                 self.out, MAX_PACKET_BYTES)  # fmt: skip
        assert n > 0, n
        return self.out.raw[:n]

    def repacketize(self, packets: list[bytes]) -> bytes:
        """Frames of several packets in one (code 1, 2 or 3, as libopus chooses)."""
        rp = self.lib.opus_repacketizer_create()
        self.lib.opus_repacketizer_init(rp)
        for p in packets:
            assert self.lib.opus_repacketizer_cat(rp, p, len(p)) == 0
        n = self.lib.opus_repacketizer_out(rp, self.out, MAX_PACKET_BYTES)
        assert n > 0, n
        return self.out.raw[:n]

    def pad(self, packet: bytes, length: int) -> bytes:
        """The same packet padded to ``length`` bytes (code 3 with padding)."""
        buf = ctypes.create_string_buffer(packet, max(length, len(packet)))
        assert self.lib.opus_packet_pad(buf, len(packet), length) == 0
        return buf.raw[:length]

    def parse(self, packet: bytes) -> tuple[int, list[tuple[int, int]]]:
        """libopus's reading: (duration in 48 kHz samples, [(frame offset, size)]);
        duration -1 when libopus refuses the packet."""
        frames = (ctypes.c_void_p * 48)()
        sizes = (ctypes.c_int16 * 48)()
        buf = ctypes.create_string_buffer(packet, len(packet))
        count = self.lib.opus_packet_parse(buf, len(packet), None, frames, sizes, None)
        if count < 0:
            return -1, []
        base = ctypes.addressof(buf)
        samples = self.lib.opus_packet_get_nb_samples(buf, len(packet), 48_000)
        return samples, [(frames[k] - base, sizes[k]) for k in range(count)]
