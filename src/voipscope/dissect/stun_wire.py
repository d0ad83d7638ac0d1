"""STUN and TURN wire constants (RFC 8489, RFC 8656), in one place for the STUN and RTP
dissectors and the numba kernels that unwrap relayed media (quality/rtp_kernel.py,
quality/tcp_framing.py).

numba freezes module constants into the machine code it caches, so this module is part
of the kernel-cache digest (``kernel_cache.KERNEL_CONSTANT_MODULES``): a change here
compiles the kernels afresh like a change to their own source.
"""

from __future__ import annotations

STUN_HEADER_BYTES = 20  # RFC 8489 §5: type, length, magic cookie, transaction id
STUN_MAGIC_COOKIE = 0x2112A442  # RFC 8489 §5; absent in classic RFC 3489 messages
# RFC 8656 §11: the Send (0x006) and Data (0x007) methods, indication class (RFC 8489 §5),
# whose DATA attribute (§18.4) carries a relayed datagram before a channel is bound.
STUN_SEND_INDICATION = 0x0016
STUN_DATA_INDICATION = 0x0017
STUN_ATTR_DATA = 0x0013
# RFC 8656 §12.4: ChannelData is a 2-byte channel number 0x4000-0x4FFF (§12: first byte
# 0x40-0x4F, which RFC 7983 §7 leaves to TURN) and a 2-byte length, then the datagram.
CHANNEL_HEADER_BYTES = 4
CHANNEL_FIRST_BYTE_MIN = 0x40
CHANNEL_FIRST_BYTE_MAX = 0x4F
