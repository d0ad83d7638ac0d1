"""Calls: SIP/SCCP/H.323/MGCP/IAX2 dialogs, SDP and ICE media pairing, app calls."""
