"""The exceptions eaxsession raises on bad input from the peer.

This module owns them all: SessionError, the base class; LineError and
HandshakeFailed for the handshake; Refused and RelayKeyChanged for a relay's
refusal; FrameError and NonceError for the session's frames; UnknownRelay for
an unpinned relay when trust on first use is off.
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class for everything this module raises on bad input from the peer."""


class LineError(SessionError):
    """A handshake line that is not valid framing (oversize, bad base64, wrong kind...)."""


class Refused(SessionError):
    """The relay sent a refusal line (kind 0x7f).

    `text` is its text (unauthenticated: anyone on the path could have sent it),
    `pinned` the fingerprint of the relay key the client pinned, and `relay` the
    fingerprint the relay gave as its own (after RELAY_KEY_MARK), or None.
    """

    def __init__(self, text: str, pinned: str | None = None, relay: str | None = None,
                 note: str | None = None):
        shown = repr(text)  # escapes control characters
        if pinned and relay and relay != pinned:
            message = (f"the relay refused the handshake: you pinned relay key {pinned}, but "
                       f"the relay says its key is {relay} (its key changed, or another relay "
                       f"answers at this address); it said: {shown}")
        elif pinned:
            message = f"the relay refused the handshake (pinned relay key {pinned}): {shown}"
        else:
            message = f"the relay refused the handshake: {shown}"
        if note:
            message += f"; {note}"
        super().__init__(message)
        self.text, self.pinned, self.relay = text, pinned, relay


class RelayKeyChanged(Refused):
    """A refusal whose relay names a key other than the one the client pinned: its
    key changed, or another relay answers at this address. Always refused; the
    message names both fingerprints."""


class HandshakeFailed(SessionError):
    """A Noise handshake message did not decrypt or was malformed."""


class FrameError(SessionError):
    """A session frame that must not open: bad base64, too short, or a bad tag."""


class NonceError(FrameError):
    """A frame nonce that is not exactly the next expected counter. `replay` is
    True when its counter was already used (a replay, or a reorder)."""

    replay = False


class UnknownRelay(SessionError):
    """No relay key is pinned for this address and trust on first use is off."""
