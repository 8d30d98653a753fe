"""A session's frames: today's wire lines, sealed under the session's own keys.

This module owns the 16-byte counter nonces (frame_nonce, SendCounter, and
ReceiveTracker's strict receive counter), reading one frame line, sealing and
opening one direction's frames (AES-256-EAX through PyCryptodome, as eaxchat),
and Session, one side's pair of them.
"""

from __future__ import annotations

import base64
import binascii

from Crypto.Cipher import AES

from .errors import FrameError, NonceError
from .lines import _strip_terminator


NONCE_LEN, TAG_LEN = 16, 16
_LAST_COUNTER = 2**64 - 1  # never used: a counter always has a successor


# ---------------------------------------------------------------- nonces

def frame_nonce(n: int) -> bytes:
    """The 16-byte EAX nonce of frame n: 8 zero bytes || n as u64 big-endian."""
    if not 0 <= n < 2**64:
        raise ValueError("frame counter out of range")
    return bytes(8) + n.to_bytes(8, "big")


class SendCounter:
    """Hands out frame_nonce(0), frame_nonce(1), ... for one direction."""

    def __init__(self):
        self.next = 0

    def nonce(self) -> bytes:
        if self.next >= _LAST_COUNTER:
            raise NonceError("this direction has used every frame counter")
        self.next += 1
        return frame_nonce(self.next - 1)


class ReceiveTracker:
    """Accepts only the next expected nonce of one direction.

    check(nonce) before opening a frame; commit() only after the frame opened.
    """

    def __init__(self):
        self.next = 0

    def check(self, nonce: bytes) -> int:
        if len(nonce) != 16:
            raise NonceError(f"nonce is {len(nonce)} bytes, not 16")
        if nonce[:8] != bytes(8):
            raise NonceError("nonce has nonzero high 8 bytes")
        n = int.from_bytes(nonce[8:], "big")
        if n == _LAST_COUNTER:
            raise NonceError("this direction has used every frame counter")
        if n != self.next:
            what = "replay or reorder" if n < self.next else "gap or reorder"
            error = NonceError(f"frame counter {n}, expected {self.next} ({what})")
            error.replay = n < self.next
            raise error
        return n

    def commit(self) -> None:
        self.next += 1


# ---------------------------------------------------------------- session frames
# Today's wire lines, base64(nonce(16) || tag(16) || ciphertext) + b"\n", sealed
# with AES-256-EAX (PyCryptodome, as eaxchat) under the direction's session
# key, nonce = frame_nonce(n) for the n-th frame of that direction.

def read_frame_line(stream, limit: int = 65536) -> bytes:
    """The next frame line from a binary stream, bounded to `limit` bytes; b"" at EOF."""
    line = stream.readline(limit + 1)
    if line and not line.endswith(b"\n"):
        if len(line) > limit:
            raise FrameError(f"no newline within {limit} bytes")
        raise FrameError("connection closed in the middle of a frame")
    return line


class FrameSealer:
    """Seals one direction's frames, numbered from 0."""

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("a session key is 32 bytes")
        self._key = bytes(key)
        self._counter = SendCounter()

    @property
    def sealed(self) -> int:
        """How many frames this sealer has sealed."""
        return self._counter.next

    def seal(self, plaintext: bytes) -> bytes:
        """The next frame for `plaintext` (str is sent as UTF-8), ending in b"\\n"."""
        if isinstance(plaintext, str):
            plaintext = plaintext.encode("utf-8")
        nonce = self._counter.nonce()
        ciphertext, tag = AES.new(self._key, AES.MODE_EAX, nonce=nonce).encrypt_and_digest(plaintext)
        return base64.b64encode(nonce + tag + ciphertext) + b"\n"


class FrameOpener:
    """Opens one direction's frames, each only once and only in order."""

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("a session key is 32 bytes")
        self._key = bytes(key)
        self._tracker = ReceiveTracker()

    @property
    def opened(self) -> int:
        """How many frames this opener has opened: the counter it waits for."""
        return self._tracker.next

    def open(self, line: bytes) -> bytes:
        """The plaintext of the next frame (a trailing b"\\n" or b"\\r\\n" is dropped).

        Raises NonceError for any counter but the next (a replay, a gap, a reorder)
        and FrameError for bad base64, a short frame or a bad tag (another session's
        frame, the other direction's, or a changed one). A refused frame leaves the
        counter where it was."""
        line = _strip_terminator(line)
        try:
            frame = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise FrameError("frame is not padded standard base64") from None
        if len(frame) < NONCE_LEN + TAG_LEN:
            raise FrameError("frame is shorter than nonce and tag (32 bytes)")
        nonce, tag = frame[:NONCE_LEN], frame[NONCE_LEN:NONCE_LEN + TAG_LEN]
        self._tracker.check(nonce)
        try:
            plaintext = AES.new(self._key, AES.MODE_EAX, nonce=nonce).decrypt_and_verify(
                frame[NONCE_LEN + TAG_LEN:], tag)
        except ValueError:
            raise FrameError("frame tag mismatch: not sealed by this session's peer "
                             "for this direction, or changed on the way") from None
        self._tracker.commit()
        return plaintext


class Session:
    """One side of a session: seal what this side sends, open what it receives."""

    def __init__(self, sealer: FrameSealer, opener: FrameOpener):
        self.sealer, self.opener = sealer, opener

    @classmethod
    def client(cls, c2s: bytes, s2c: bytes) -> "Session":
        """The client's side: seals client -> relay (c2s), opens relay -> client (s2c)."""
        return cls(FrameSealer(c2s), FrameOpener(s2c))

    @classmethod
    def relay(cls, c2s: bytes, s2c: bytes) -> "Session":
        """The relay's side: seals s2c, opens c2s (for tests; the relay is Rust)."""
        return cls(FrameSealer(s2c), FrameOpener(c2s))

    def seal(self, plaintext: bytes) -> bytes:
        """The next frame line for `plaintext`, b"\\n" included."""
        return self.sealer.seal(plaintext)

    def open(self, line: bytes) -> bytes:
        """The plaintext of the peer's next frame line."""
        return self.opener.open(line)
