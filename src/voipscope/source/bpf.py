"""Compile a tcpdump filter expression (pcap-filter(7)) to classic BPF with libpcap.

Only the compiler is borrowed, through ctypes: the shared library is on every machine with
tcpdump, Wireshark or dumpcap (Debian: libpcap0.8), and no Python binding is needed. The
program is attached to the capture socket (SO_ATTACH_FILTER), so the kernel drops what the
filter rejects before it is copied to the ring.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from voipscope.errors import ConfigError

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
LIBPCAP_NAMES = ("pcap", "libpcap.so.1", "libpcap.so.0.8")


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [
        ("bf_len", ctypes.c_uint),
        ("bf_insns", ctypes.POINTER(_BpfInsn)),
    ]


@functools.cache
def _libpcap() -> ctypes.CDLL | None:
    for name in LIBPCAP_NAMES:
        path = ctypes.util.find_library(name) if "." not in name else name
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int,
            ctypes.c_uint32,
        ]  # fmt: skip
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def compile_filter(
    expression: str, dlt: int, snaplen: int = 262144
) -> list[tuple[int, int, int, int]]:
    """The BPF instructions (code, jt, jf, k) of ``expression`` for frames of libpcap data
    link type ``dlt`` (DLT_EN10MB 1, DLT_RAW 12).
    ConfigError when libpcap is missing or the expression does not compile."""
    lib = _libpcap()
    if lib is None:
        raise ConfigError("--filter needs libpcap (Debian: apt-get install libpcap0.8)")
    handle = lib.pcap_open_dead(dlt, snaplen)
    if not handle:
        raise ConfigError("libpcap could not open a handle to compile the filter")
    program = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1,
                            PCAP_NETMASK_UNKNOWN) != 0:  # fmt: skip
            message = (lib.pcap_geterr(handle) or b"syntax error").decode(errors="replace")
            raise ConfigError(f"bad --filter {expression!r}: {message}")
        insns = program.bf_insns
        out = [(insns[i].code, insns[i].jt, insns[i].jf, insns[i].k) for i in range(program.bf_len)]
        lib.pcap_freecode(ctypes.byref(program))
        return out
    finally:
        lib.pcap_close(handle)
