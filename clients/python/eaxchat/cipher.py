"""The wire format: one frame is ``base64(nonce || tag || ciphertext)``
and ``\\n``, sealed with ``AES.new(key, AES.MODE_EAX)`` and
``encrypt_and_digest``, exactly as the original notebook's PyCryptodome code
seals it; and the window of nonces that refuses a replayed frame and drops
our own frame sent back.

This module owns sealing and opening one whole frame. Finding where frames
end in a stream of bytes is :mod:`eaxchat.reader`'s; this module never
touches a socket.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from typing import List, Optional, Tuple

from Crypto.Cipher import AES

from .errors import AuthenticationError, ReplayedFrame

NONCE_LEN = 16
TAG_LEN = 16
#: The relay's default ``--max-frame``: the longest line it accepts, ``\n``
#: excluded. A longer line would get the sender disconnected, so the client
#: refuses to send one.
DEFAULT_MAX_FRAME = 64 * 1024


class _NonceWindow:
    """The nonces of the last ``size`` frames accepted on one connection:
    a deque for their order and a set to look them up, about 5.5 MB when
    65,536 are held. Beside them, as many of the nonces this client sealed
    with (:meth:`sealed`): a frame of its own sent back is dropped, never
    delivered (:meth:`is_own`)."""

    def __init__(self, size: int = 65_536) -> None:
        self._size = size
        self._order: deque = deque()
        self._seen: set = set()
        self._own_order: deque = deque()
        self._own: set = set()

    def sealed(self, nonce: bytes) -> None:
        """Remembers ``nonce`` as one of the last ``size`` this client
        sealed with."""
        if len(self._own_order) >= self._size:
            self._own.discard(self._own_order.popleft())
        self._own_order.append(nonce)
        self._own.add(nonce)

    def is_own(self, nonce: bytes) -> bool:
        """Whether ``nonce`` is one this client sealed with lately."""
        return nonce in self._own

    def accept(self, nonce: bytes) -> None:
        """Remembers ``nonce``, or raises :class:`ReplayedFrame` for one
        it holds."""
        if nonce in self._seen:
            raise ReplayedFrame("replayed frame from the relay")
        if len(self._order) >= self._size:
            self._seen.discard(self._order.popleft())
        self._order.append(nonce)
        self._seen.add(nonce)



def max_plaintext_len(max_frame: int = DEFAULT_MAX_FRAME) -> int:
    """The longest message whose line fits in ``max_frame`` bytes."""
    # base64 turns every 3 bytes into 4 characters, padding the last group.
    return max_frame // 4 * 3 - NONCE_LEN - TAG_LEN


def seal(key: bytes, plaintext: bytes) -> bytes:
    """One wire line for ``plaintext``: a fresh random nonce each call, as
    PyCryptodome's ``AES.MODE_EAX`` picks by default, ending in ``\\n``."""
    return _seal_with_nonce(key, plaintext)[0]


def _seal_with_nonce(key: bytes, plaintext: bytes) -> Tuple[bytes, bytes]:
    """:func:`seal`'s line, and the nonce it was sealed with."""
    cipher = AES.new(key, AES.MODE_EAX)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return base64.b64encode(cipher.nonce + tag + ciphertext) + b"\n", cipher.nonce


def open_frame(key: bytes, line: bytes) -> bytes:
    """The plaintext of one wire line (a trailing ``\\r\\n`` or ``\\n`` is
    ignored), or :class:`AuthenticationError` when it does not open."""
    line = line.rstrip(b"\r\n")
    return _open_decoded(key, _decode(line))


def _decode(text: bytes) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationError("frame is not valid base64") from None


class _OwnFrame(Exception):
    """A frame that opened was sealed here: our own, sent back."""


def _open_decoded(key: bytes, data: bytes, nonces: Optional[_NonceWindow] = None) -> bytes:
    """The plaintext of one decoded frame; with ``nonces``, a frame whose
    nonce is held there is refused as a replay, and one sealed with a nonce
    of our own (our frame sent back) raises :class:`_OwnFrame`."""
    if len(data) < NONCE_LEN + TAG_LEN:
        raise AuthenticationError(f"frame too short ({len(data)} bytes decoded)")
    nonce = data[:NONCE_LEN]
    tag = data[NONCE_LEN : NONCE_LEN + TAG_LEN]
    ciphertext = data[NONCE_LEN + TAG_LEN :]
    try:
        plaintext = AES.new(key, AES.MODE_EAX, nonce=nonce).decrypt_and_verify(ciphertext, tag)
    except ValueError:
        raise AuthenticationError(
            "frame did not authenticate: wrong key, or the frame was tampered with"
        ) from None
    if nonces is not None:
        if nonces.is_own(nonce):
            raise _OwnFrame()
        nonces.accept(nonce)
    return plaintext


def _append_opened(
    plaintexts: List[bytes], key: bytes, data: bytes, nonces: Optional[_NonceWindow]
) -> None:
    """Appends the plaintext of one decoded frame, unless it is our own
    sent back (:func:`_open_decoded`)."""
    try:
        plaintexts.append(_open_decoded(key, data, nonces))
    except _OwnFrame:
        pass
