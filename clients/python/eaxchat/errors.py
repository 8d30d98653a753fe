"""The errors a connection reports: a frame that does not open
(:class:`AuthenticationError`), a replayed one (:class:`ReplayedFrame`), and
the end of a connection (:class:`ConnectionClosed`).

This module owns those exception types only; every other module raises them.
"""

from __future__ import annotations


class AuthenticationError(Exception):
    """A received frame did not open: bad base64, too short, or a tag that
    does not verify under our key ("wrong key, or the frame was tampered
    with")."""


class ReplayedFrame(AuthenticationError):
    """A frame from the relay opened, but its nonce repeats one accepted
    before on this connection: "replayed frame from the relay"."""



class ConnectionClosed(EOFError):
    """The connection is closed and every message received was read."""
