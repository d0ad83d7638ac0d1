"""Media quality: RTP loss, jitter and reordering (RFC 3550), MOS by the E-model (ITU-T G.107)."""
