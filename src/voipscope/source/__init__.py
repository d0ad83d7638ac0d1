"""Sources: capture files and streams -> PacketBatch."""

from voipscope.source.batch import PacketBatch
from voipscope.source.capture import CaptureInfo, read_capture

__all__ = ["CaptureInfo", "PacketBatch", "read_capture"]
