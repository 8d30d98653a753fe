"""Turning the bytes a relay sends, however TCP cuts or joins them, into
the plaintexts of its frames, in order: :class:`FrameReader` for a shared or
member key (frames ended by a newline, by base64 padding, or, from a peer
that marks nothing, where the tag verifies), and ``_SessionReader`` for a
session's lines.

This module owns finding where frames end; opening one frame is
:mod:`eaxchat.cipher`'s. It never touches a socket: the client's receive
thread feeds it what it reads.
"""

from __future__ import annotations

import hmac
from typing import Any, Iterator, List, Optional, Union

from Crypto.Cipher import AES
from Crypto.Hash import CMAC
from Crypto.Util.strxor import strxor

from .cipher import (
    DEFAULT_MAX_FRAME,
    NONCE_LEN,
    TAG_LEN,
    _append_opened,
    _decode,
    _NonceWindow,
)
from .errors import AuthenticationError, ReplayedFrame
from .keys import parse_key
from .sessions import _sessions


def _omac(key: bytes, domain: int) -> CMAC.CMAC:
    """EAX's OMAC^t: a CMAC that has taken the block ``[0]*15 + [t]``."""
    return CMAC.new(key, bytes(15) + bytes([domain]), ciphermod=AES)


class _TagScan:
    """Finds where a frame ends when nothing in the stream marks it (no
    newline, no base64 padding): at the first length where its tag
    verifies.

    An EAX tag without header is ``OMAC^0(nonce) ^ OMAC^1() ^
    OMAC^2(ciphertext)``. One CMAC takes the ciphertext as it comes and a
    copy of it is finished at each candidate end, so trying every candidate
    costs time linear in the bytes, across reads too. A candidate only
    finds the end; the frame is then opened by ``decrypt_and_verify``."""

    def __init__(self, key: bytes, head: bytes) -> None:
        self._tag = head[NONCE_LEN : NONCE_LEN + TAG_LEN]
        nonce_mac = _omac(key, 0).update(head[:NONCE_LEN]).digest()
        self._fixed = strxor(nonce_mac, _omac(key, 1).digest())
        self._mac = _omac(key, 2)
        self._fed = 0  # ciphertext bytes the MAC has taken
        # The next ciphertext length to try. An unpadded frame is a multiple
        # of 3 bytes long: 32 + length = 0 (mod 3), so length = 1 (mod 3).
        self._next = 1

    def _verifies_at(self, ciphertext: bytes, length: int) -> bool:
        self._mac.update(ciphertext[self._fed : length])
        self._fed = length
        tag = strxor(self._fixed, self._mac.copy().digest())
        return hmac.compare_digest(tag, self._tag)

    def find_end(self, data: bytes, start: int, final: bool) -> Optional[int]:
        """The end of the frame that starts at ``data[start]``: the first
        unpadded length (frame a multiple of 3 bytes) whose tag verifies, else,
        when ``final`` (``data`` ends where a frame ends), ``len(data)`` if
        it verifies there; ``None`` when no end was found yet."""
        ciphertext = data[start + NONCE_LEN + TAG_LEN :]
        while self._next <= len(ciphertext):
            length = self._next
            self._next += 3
            if self._verifies_at(ciphertext, length):
                return start + NONCE_LEN + TAG_LEN + length
        last = len(ciphertext)
        if final and last % 3 != 1 and self._verifies_at(ciphertext, last):
            return len(data)
        return None


def _split_decoded(
    key: bytes, data: bytes, plaintexts: List[bytes], nonces: Optional[_NonceWindow]
) -> None:
    """Appends the plaintexts of frames back to back in ``data``, which ends
    where a frame ends: each frame but the last is unpadded, so a run of
    them decodes as one byte string."""
    start = 0
    while start < len(data):
        if len(data) - start < NONCE_LEN + TAG_LEN:
            raise AuthenticationError(f"frame too short ({len(data) - start} bytes decoded)")
        end = _TagScan(key, data[start : start + NONCE_LEN + TAG_LEN]).find_end(data, start, True)
        if end is None:
            raise AuthenticationError(
                "frame did not authenticate: wrong key, or the frame was tampered with"
            )
        _append_opened(plaintexts, key, data[start:end], nonces)
        start = end


def _padding_end(start: int, equals: int) -> int:
    """Where the base64 group holding the ``=`` at ``equals`` ends, for a
    frame whose base64 starts at ``start``."""
    return start + (equals - start) // 4 * 4 + 4


def _open_run(
    key: bytes, run: bytes, plaintexts: List[bytes], nonces: Optional[_NonceWindow]
) -> None:
    """Appends the plaintexts in ``run``: base64 that ends where a frame
    ends (at a newline or at padding). Usually one frame; else several
    joined, cut after each padding group and then where the tags verify."""
    try:
        _append_opened(plaintexts, key, _decode(run.rstrip(b"\r\n")), nonces)
        return
    except ReplayedFrame:
        raise
    except AuthenticationError:
        pass
    start = 0
    while start < len(run):
        equals = run.find(b"=", start)
        end = len(run) if equals < 0 else min(len(run), _padding_end(start, equals))
        _split_decoded(key, _decode(run[start:end]), plaintexts, nonces)
        start = end


class FrameReader:
    """Turns the bytes a relay sends, however TCP cuts them, into the
    plaintexts of its frames, in order.

    A frame ends at a ``\\n`` (``\\r\\n``), as the relay sends them; or,
    from a peer that sends newline-less frames as the original notebook's
    server did, at its base64 padding, or, for a frame without padding,
    where its tag verifies. So several frames in one read, a frame split
    over several reads, and padded or unpadded frames joined without
    newlines are all read; blank lines carry nothing and are skipped. Once
    a frame has ended with a newline, an unpadded frame is only taken at
    its newline. A frame that does not open raises
    :class:`AuthenticationError`, as does more than ``max_frame`` bytes held
    without a frame ending, and a frame whose nonce repeats one of the last
    65,536 it accepted (:class:`ReplayedFrame`)."""

    def __init__(
        self, key: Union[bytes, bytearray, str], max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        self._key = parse_key(key)
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._scan: Optional[_TagScan] = None  # for a newline-less frame at the buffer's start
        # A peer that has ended a frame with a newline ends them all so (the
        # relay does): then an unfinished frame waits for its newline rather
        # than having its tag tried at every length as it comes in.
        self._saw_newline = False
        self._nonces = _NonceWindow()

    def sealed(self, nonce: bytes) -> None:
        """Notes a nonce a frame was sealed with on this connection: that
        frame, if sent back, is dropped, never returned (the last 65,536
        are remembered)."""
        self._nonces.sealed(nonce)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Takes the next bytes read and returns an iterator over the
        plaintexts held bytes complete, in order. A frame that does not
        open raises :class:`AuthenticationError` when the iteration reaches
        it, after the frames before it; frames not iterated over stay held
        for the next call."""
        self._buffer += chunk
        return self._frames()

    def _frames(self) -> Iterator[bytes]:
        start = 0
        try:
            while True:
                plaintexts: List[bytes] = []
                try:
                    end = self._take(start, plaintexts)
                except AuthenticationError:
                    yield from plaintexts  # the frames before the bad one
                    raise
                if end == start:
                    break
                start = end
                self._scan = None
                yield from plaintexts
        finally:
            del self._buffer[:start]
        if len(self._buffer) > self._max_frame:
            raise AuthenticationError(f"line longer than {self._max_frame} bytes from the relay")

    def _take(self, start: int, plaintexts: List[bytes]) -> int:
        """Opens the frames that end first after ``start``; returns where
        they end (``start`` when none has ended yet)."""
        buffer = self._buffer
        if start < len(buffer) and buffer[start] in b"\r\n":
            self._saw_newline = self._saw_newline or buffer[start] == ord("\n")
            return start + 1
        newline = buffer.find(b"\n", start)
        if newline >= 0:
            line = bytes(buffer[start:newline])
            _open_run(self._key, line.rstrip(b"\r"), plaintexts, self._nonces)
            self._saw_newline = True
            return newline + 1
        equals = buffer.find(b"=", start)
        if equals >= 0:
            end = _padding_end(start, equals)
            if end > len(buffer):
                return start
            _open_run(self._key, bytes(buffer[start:end]), plaintexts, self._nonces)
            return end
        if self._saw_newline:
            return start
        return self._take_unmarked(start, plaintexts)

    def _take_unmarked(self, start: int, plaintexts: List[bytes]) -> int:
        """A frame at ``start`` that nothing marks the end of (yet): taken
        once its tag verifies over the whole base64 groups held."""
        groups = (len(self._buffer) - start) // 4 * 4
        if groups < 4 * -(-(NONCE_LEN + TAG_LEN) // 3):
            return start
        data = _decode(bytes(self._buffer[start : start + groups]))
        if self._scan is None:
            self._scan = _TagScan(self._key, data[: NONCE_LEN + TAG_LEN])
        end = self._scan.find_end(data, 0, final=False)
        if end is None:
            return start
        _append_opened(plaintexts, self._key, data[:end], self._nonces)
        return start + end // 3 * 4


class _SessionReader:
    """:class:`FrameReader`'s counterpart in session mode: the relay's lines,
    however TCP cuts them, opened in order under the session's keys. A frame
    that does not open is an :class:`AuthenticationError` (a replayed or
    reordered one a :class:`ReplayedFrame`), as is more than ``max_frame``
    bytes without a newline; blank lines carry nothing and are skipped."""

    def __init__(self, session: Any, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._session = session
        self._max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Takes the next bytes read; returns an iterator over the plaintexts
        of the whole lines held, in order."""
        self._buffer += chunk
        return self._frames()

    def _frames(self) -> Iterator[bytes]:
        es = _sessions()
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            if not line:
                continue
            try:
                yield self._session.open(line)
            except es.NonceError as error:
                kind = ReplayedFrame if error.replay else AuthenticationError
                raise kind(f"frame from the relay refused: {error}") from None
            except es.FrameError as error:
                raise AuthenticationError(f"frame from the relay did not open: {error}") from None
        if len(self._buffer) > self._max_frame:
            raise AuthenticationError(f"line longer than {self._max_frame} bytes from the relay")
