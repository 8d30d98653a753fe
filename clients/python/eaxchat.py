"""eaxchat client for Python and notebooks: talk to an eaxchat relay.

One module, one dependency (PyCryptodome). It speaks the relay's wire
format: each message is one line, ``base64(nonce || tag || ciphertext)``
followed by ``\\n``, sealed with ``AES.new(key, AES.MODE_EAX)`` and
``encrypt_and_digest`` under the key the relay was given (16, 24 or 32
bytes, usually handed around as hex in the relay's ``relay.key`` file).

Typical use::

    import eaxchat
    with eaxchat.Client("127.0.0.1", 8080, eaxchat.load_key("relay.key")) as chat:
        chat.send("hello")
        print(chat.recv_text(timeout=10))

A background thread reads the socket, as the original notebook's did, with
a :class:`FrameReader`: however TCP cuts or joins the frames, with or
without newlines, each message comes out once and in order. Each
message that opens is handed to ``on_message(plaintext_bytes)`` when given,
else put on a queue that :meth:`Client.recv` reads. A frame that does not
open (wrong key, or tampered with) is never shown as text: it is reported
as an :class:`AuthenticationError` (to ``on_error``, or raised by
:meth:`Client.recv`) and the connection is closed, as the relay itself
closes a client that sends one. So is a frame whose nonce repeats one of
the last 65,536 accepted on the connection (:class:`ReplayedFrame`): a
frame sent twice is a replay, never shown twice.

A relay with members (``relay --members FILE``) gives each person their own
key file, ``# eaxchat member key for NAME`` then the key in hex. Its
:func:`load_key` returns a :class:`MemberKey`, and a :class:`Client` made
with one (or with ``member=True``) runs in members mode: it sends one empty
message as soon as it connects, which identifies the member to the relay
(and is never relayed), and the relay stamps every message with the
member's name, so there is nothing to prefix.

A relay has rooms, history and commands (``/join ROOM``, ``/who``,
``/msg NAME TEXT``, ...; a message starting with ``/`` is a command, ``//``
sends a literal ``/``). ``Client(..., events=True)`` asks the relay for its
structured events (``/hello eaxchat/1``): each message then arrives as an
:class:`Event` from :meth:`Client.recv_event`, telling a message from a
notice and history from live, with its room, sender and time. Without it
the relay sends plain text lines, which is what the original notebook's
code reads. :meth:`Client.join`, :meth:`Client.who`, :meth:`Client.rooms`,
:meth:`Client.msg`, :meth:`Client.me` and :meth:`Client.nick` send the
commands; :meth:`Client.say` sends text, escaping a leading ``/``.

A relay with sessions (``relay --members FILE`` with public keys) is joined
with an identity instead of a key: ``Client(host, port,
identity="alice.identity")`` runs a Noise handshake on connecting (see
``eaxsession.py``, which it then needs, with ``noiseprotocol`` and
``cryptography``) and seals and opens every frame under that session's own
keys, each frame only once and in order. :func:`generate_identity` makes the
identity file (mode 0600) and returns the public key to give the relay's
operator. The relay's key is pinned: given as ``relay_key=``, else read from
``known_relays`` (``~/.config/eaxchat/known_relays``), else trusted on first
use and added there; a relay whose key changed is always refused
(:class:`RelayKeyChanged`, naming both fingerprints).

This module owns the client side of the wire format only; it never prints.
"""

from __future__ import annotations

import base64
import binascii
from time import monotonic as _monotonic
import hmac
import json
import queue
import socket
import threading
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from Crypto.Cipher import AES
from Crypto.Hash import CMAC
from Crypto.Util.strxor import strxor

__all__ = [
    "AuthenticationError",
    "Client",
    "ConnectionClosed",
    "DEFAULT_MAX_FRAME",
    "Event",
    "FrameReader",
    "generate_identity",
    "load_identity",
    "MEMBER_COMMENT",
    "MemberKey",
    "ReplayedFrame",
    "connect",
    "load_key",
    "max_plaintext_len",
    "open_frame",
    "PROTOCOL",
    "parse_event",
    "parse_key",
    "safe_text",
    "seal",
    "send_message",
]

NONCE_LEN = 16
TAG_LEN = 16
#: The relay's default ``--max-frame``: the longest line it accepts, ``\n``
#: excluded. A longer line would get the sender disconnected, so the client
#: refuses to send one.
DEFAULT_MAX_FRAME = 64 * 1024

#: The comment line that opens a member's key file, before the member's name.
MEMBER_COMMENT = "# eaxchat member key for "

#: The structured-events protocol this client speaks (``/hello eaxchat/1``).
PROTOCOL = "eaxchat/1"

#: How many bytes one ``recv`` on the socket asks for.
_READ_SIZE = 64 * 1024


class AuthenticationError(Exception):
    """A received frame did not open: bad base64, too short, or a tag that
    does not verify under our key ("wrong key, or the frame was tampered
    with")."""


class ReplayedFrame(AuthenticationError):
    """A frame from the relay opened, but its nonce repeats one accepted
    before on this connection: "replayed frame from the relay"."""


class _NonceWindow:
    """The nonces of the last ``size`` frames accepted on one connection:
    a deque for their order and a set to look them up, about 5.5 MB when
    65,536 are held."""

    def __init__(self, size: int = 65_536) -> None:
        self._size = size
        self._order: deque = deque()
        self._seen: set = set()

    def accept(self, nonce: bytes) -> None:
        """Remembers ``nonce``, or raises :class:`ReplayedFrame` for one
        it holds."""
        if nonce in self._seen:
            raise ReplayedFrame("replayed frame from the relay")
        if len(self._order) >= self._size:
            self._seen.discard(self._order.popleft())
        self._order.append(nonce)
        self._seen.add(nonce)


class ConnectionClosed(EOFError):
    """The connection is closed and every message received was read."""


# -- sessions: the protocol is eaxsession.py's ---------------------------------

#: What eaxchat passes on from eaxsession, loaded on first use (PEP 562), so
#: shared-key and members mode never need noiseprotocol or cryptography.
_SESSION_NAMES = ("Identity", "RelayKeyChanged", "Refused", "SessionError", "UnknownRelay")


def _sessions() -> Any:
    """The eaxsession module, or an ImportError that says what session mode needs."""
    try:
        import eaxsession
    except ImportError as error:
        raise ImportError(
            "session mode needs eaxsession.py next to eaxchat.py, and the noiseprotocol and"
            f" cryptography packages (pip install -r requirements.txt): {error}"
        ) from error
    return eaxsession


def __getattr__(name: str) -> Any:
    if name in _SESSION_NAMES:
        return getattr(_sessions(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def generate_identity(path: Union[str, Path]) -> str:
    """Creates a session identity file at ``path``: a new X25519 secret key,
    mode 0600, never over an existing file. Returns its public key text
    (``x25519:...``) to give the relay's operator, who adds ``NAME
    x25519:...`` to the members file."""
    return _sessions().generate_identity(path)


def load_identity(path: Union[str, Path]) -> Any:
    """The identity (an ``eaxsession.Identity``: ``.public_key``,
    ``.fingerprint``) in the file at ``path``; refuses a file that group or
    others can read."""
    return _sessions().Identity.load(path)


def parse_key(key: Union[bytes, bytearray, str]) -> bytes:
    """Returns the AES key as bytes from raw bytes (16, 24 or 32 of them) or
    from hex text (32, 48 or 64 digits; surrounding whitespace ignored), the
    format of the relay's key file, ``--key-hex`` and ``EAXCHAT_KEY``."""
    if isinstance(key, str):
        try:
            raw = bytes.fromhex(key.strip())
        except ValueError:
            raise ValueError("key is not hex (expected 32, 48 or 64 hex digits)") from None
    else:
        raw = bytes(key)
    if len(raw) not in (16, 24, 32):
        raise ValueError(f"key must be 16, 24 or 32 bytes, got {len(raw)}")
    return raw


class MemberKey(bytes):
    """A member's own key (the key's bytes), read from the key file that
    ``relay members add`` wrote; :attr:`member` is the name it names. A
    :class:`Client` given one runs in members mode."""

    member: str

    def __new__(cls, key: bytes, member: str) -> "MemberKey":
        made = super().__new__(cls, key)
        made.member = member
        return made

    def __repr__(self) -> str:
        return f"<eaxchat.MemberKey for {self.member!r}, AES-{len(self) * 8}>"


def load_key(path: Union[str, Path] = "relay.key") -> bytes:
    """Reads a key file: the key in hex on one line; blank lines and lines
    starting with ``#`` are skipped. A member's key file (its first line
    ``# eaxchat member key for NAME``) gives a :class:`MemberKey`; the
    relay's shared key file gives plain bytes."""
    member = None
    key_lines = []
    for line in Path(path).read_text(encoding="ascii").splitlines():
        line = line.strip()
        if line.startswith("#"):
            name = line[1:].strip()
            prefix = MEMBER_COMMENT[1:].strip()
            if member is None and name.startswith(prefix) and name[len(prefix) :].strip():
                member = name[len(prefix) :].strip()
        elif line:
            key_lines.append(line)
    if len(key_lines) != 1:
        raise ValueError(
            f"key file {path}: expected one line of hex besides # comments,"
            f" found {len(key_lines)}"
        )
    key = parse_key(key_lines[0])
    return key if member is None else MemberKey(key, member)


def max_plaintext_len(max_frame: int = DEFAULT_MAX_FRAME) -> int:
    """The longest message whose line fits in ``max_frame`` bytes."""
    # base64 turns every 3 bytes into 4 characters, padding the last group.
    return max_frame // 4 * 3 - NONCE_LEN - TAG_LEN


def seal(key: bytes, plaintext: bytes) -> bytes:
    """One wire line for ``plaintext``: a fresh random nonce each call, as
    PyCryptodome's ``AES.MODE_EAX`` picks by default, ending in ``\\n``."""
    cipher = AES.new(key, AES.MODE_EAX)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return base64.b64encode(cipher.nonce + tag + ciphertext) + b"\n"


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


def _open_decoded(key: bytes, data: bytes, nonces: Optional[_NonceWindow] = None) -> bytes:
    """The plaintext of one decoded frame; with ``nonces``, a frame whose
    nonce is held there is refused as a replay."""
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
        nonces.accept(nonce)
    return plaintext


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
        plaintexts.append(_open_decoded(key, data[start:end], nonces))
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
        plaintexts.append(_open_decoded(key, _decode(run.rstrip(b"\r\n")), nonces))
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
        plaintexts.append(_open_decoded(self._key, data[:end], self._nonces))
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


def safe_text(data: bytes) -> str:
    """A peer's message as text that is safe to show: UTF-8 with invalid
    bytes replaced, and every control character (escape, carriage return,
    newline, the other C0 and C1 controls, DEL) shown as U+FFFD, so a peer
    cannot repaint or hijack a terminal or an output area."""
    text = data.decode("utf-8", errors="replace")
    return "".join("\ufffd" if unicodedata.category(ch) == "Cc" else ch for ch in text)


# -- structured events (eaxchat/1) --------------------------------------------

#: Event kinds that are something someone said; every other kind is a notice.
_MESSAGE_KINDS = ("msg", "action", "private")


@dataclass(frozen=True)
class Event:
    """One thing the relay sent, as ``eaxchat/1`` describes it.

    ``kind`` is ``msg``, ``action``, ``private`` (something someone said),
    or a notice: ``welcome``, ``join``, ``leave``, ``nick``, ``history``
    (history follows), ``who``, ``rooms``, ``notice``, ``error``; or
    ``text`` for a plain-text line from a relay not asked for events.
    ``sender`` is the JSON ``from`` (``None`` for a shared-key connection
    with no name); ``history`` is true for messages sent as history on
    joining; ``data`` holds the whole object. Texts are safe to show
    (:func:`safe_text`)."""

    kind: str
    text: str = ""
    room: Optional[str] = None
    sender: Optional[str] = None
    ts: Optional[int] = None
    history: bool = False
    data: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_message(self) -> bool:
        """Whether someone said it (a message, an action, a private message)."""
        return self.kind in _MESSAGE_KINDS or self.kind == "text"

    @property
    def is_notice(self) -> bool:
        """Whether the relay says it: presence, replies, errors."""
        return not self.is_message

    def line(self) -> str:
        """One readable line, as the relay's plain text would show it."""
        d = self.data
        who = self.sender or "someone"
        if self.kind == "msg":
            return f"{who}: {self.text}" if self.sender else self.text
        if self.kind == "action":
            return f"* {who} {self.text}"
        if self.kind == "private":
            if d.get("echo"):
                return f"[private to {safe_text(str(d.get('to', '')).encode())}] {self.text}"
            return f"[private] {who}: {self.text}"
        if self.kind in ("join", "leave"):
            verb = "joined" if self.kind == "join" else "left"
            return f"* {d.get('name')} {verb} #{self.room} ({d.get('count')} here)"
        if self.kind == "nick":
            return f"* {who} is now {d.get('to')}"
        if self.kind == "history":
            return f"* the last {d.get('count')} messages in #{self.room}:"
        if self.kind == "who":
            names = ", ".join(d.get("names", []))
            unnamed = d.get("unnamed", 0)
            extra = f" ({unnamed} with no name)" if unnamed else ""
            return f"* here in #{self.room}: {names}{extra}"
        if self.kind == "rooms":
            rooms = ", ".join(f"#{r['room']} ({r['count']})" for r in d.get("rooms", []))
            return f"* rooms: {rooms}"
        if self.kind == "welcome":
            return f"* welcome, {d.get('name') or '(no name)'} in #{self.room}"
        return self.text


def parse_event(plaintext: bytes) -> Event:
    """An ``eaxchat/1`` event from one plaintext; a plaintext that is not a
    JSON object with a ``kind`` (a plain-text line) is a ``text`` event."""
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return Event("text", text=safe_text(plaintext))

    def clean(value: Any) -> Optional[str]:
        return safe_text(value.encode("utf-8")) if isinstance(value, str) else None

    return Event(
        kind=data["kind"],
        text=clean(data.get("text")) or "",
        room=clean(data.get("room")),
        sender=clean(data.get("from")),
        ts=data.get("ts") if isinstance(data.get("ts"), int) else None,
        history=data.get("history") is True,
        data=data,
    )


class Client:
    """A connection to a relay.

    ``Client(host, port, key)`` connects (within ``timeout`` seconds) and
    starts the receive thread. ``key`` is bytes or hex text.

    Members mode (:attr:`member`) is on when ``key`` is a :class:`MemberKey`
    (a member's key file read by :func:`load_key`), or with ``member=True``
    for a member's key given another way (``member=False`` turns it off).
    Then the client sends one empty message right after connecting: it
    identifies the member to the relay, which never relays it, so even a
    client that only listens is let in. The relay stamps each message with
    the member's name.

    With ``events=True`` the client's first message is ``/hello
    eaxchat/1`` (in members mode it identifies the member too): the relay
    then sends structured events, read with :meth:`recv_event`, and
    :meth:`who` and :meth:`rooms` can wait for their answers.

    Received messages (``bytes``) go to ``on_message`` if given, called on
    the receive thread, else to a queue read with :meth:`recv`. An error in
    receiving (an :class:`AuthenticationError`, a socket error, a line over
    ``max_frame``, an exception from ``on_message``) closes the connection,
    is kept in :attr:`error`, and goes to ``on_error`` if given; else
    :meth:`recv` raises it, or, for a client with ``on_message``, it is
    raised on the receive thread (and shown by ``threading.excepthook``).
    The relay closing the connection is not an error: ``on_error`` gets a
    :class:`ConnectionClosed`, and :meth:`recv` raises one.

    Session mode (:attr:`session_mode`) is on with ``identity=`` (an
    identity file's path, or what :func:`load_identity` returned) and no
    ``key``: the client runs the handshake within ``timeout`` seconds, the
    relay stamps it with the member's name (:attr:`name`), and every frame
    is sealed and opened under the session's keys. The relay's key is
    ``relay_key`` (``x25519:...`` text or 32 bytes) when given; else the one
    pinned for ``HOST:PORT`` in ``known_relays`` (a path; default
    ``~/.config/eaxchat/known_relays``); else, with ``accept_new`` (the
    default), the relay is asked for its key, which is pinned there once the
    handshake proves the relay holds it (:attr:`pinned_now`). A relay that
    says its key is another than the pinned one is refused with
    :class:`RelayKeyChanged`; any other refusal is a :class:`Refused`.

    Safe to use from several threads: sends are serialised.
    """

    def __init__(
        self,
        host: str,
        port: int,
        key: Optional[Union[bytes, bytearray, str]] = None,
        *,
        on_message: Optional[Callable[[bytes], None]] = None,
        on_error: Optional[Callable[[BaseException], None]] = None,
        timeout: float = 10.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        member: Optional[bool] = None,
        events: bool = False,
        identity: Any = None,
        relay_key: Optional[Union[bytes, str]] = None,
        known_relays: Optional[Union[str, Path]] = None,
        accept_new: bool = True,
    ) -> None:
        if (key is None) == (identity is None):
            raise TypeError(
                "Client needs a key (shared-key or members mode) or identity= (session mode),"
                " not both"
            )
        self.session_mode: bool = identity is not None
        """Whether this client runs in session mode (``identity=``)."""
        self.member: bool = (
            self.session_mode
            or (isinstance(key, MemberKey) if member is None else bool(member))
        )
        """Whether this client runs in members mode (session mode is a member's too)."""
        self.events: bool = bool(events)
        """Whether this client asked for structured events."""
        self.name: Optional[str] = None
        """Session mode: the member's name, as the relay stamped it."""
        self.relay_key: Optional[str] = None
        """Session mode: the relay's public key (``x25519:...``), proven by the handshake."""
        self.relay_fingerprint: Optional[str] = None
        """Session mode: that key's fingerprint (``SHA256:...``)."""
        self.pinned_now: bool = False
        """Session mode: whether this connection pinned the relay's key (first use)."""
        self._stash: "deque[Event]" = deque()
        self._key = parse_key(key) if key is not None else b""
        self._session: Any = None
        self._on_message = on_message
        self._on_error = on_error
        self._max_frame = max_frame
        self._inbox: "queue.Queue[object]" = queue.Queue()
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        held = b""
        self._sock = socket.create_connection((host, port), timeout=timeout)
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.session_mode:
                held = self._handshake(
                    host, port, identity, relay_key, known_relays, accept_new, timeout
                )
            # Blocking from here on: the receive thread waits in recv() until
            # data arrives or close() shuts the socket down.
            self._sock.settimeout(None)
            first = f"/hello {PROTOCOL}".encode() if self.events else b"" if self.member else None
            if self.session_mode:
                # The handshake said who the member is: no empty identifying frame.
                if self.events:
                    self._sock.sendall(self._session.seal(first))
            elif first is not None:
                self._sock.sendall(seal(self._key, first))
        except BaseException:
            self._sock.close()
            raise
        self._reader: Any = (
            _SessionReader(self._session, max_frame)
            if self.session_mode
            else FrameReader(self._key, max_frame)
        )
        self._held = held
        self.error: Optional[BaseException] = None
        """The error that ended the connection, if one did."""
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"eaxchat-recv-{host}:{port}", daemon=True
        )
        self._thread.start()

    def _handshake(
        self,
        host: str,
        port: int,
        identity: Any,
        relay_key: Optional[Union[bytes, str]],
        known_relays: Optional[Union[str, Path]],
        accept_new: bool,
        timeout: float,
    ) -> bytes:
        """Runs the session handshake on the connected socket; returns the
        bytes that came after it (the first frames)."""
        es = _sessions()
        if not isinstance(identity, es.Identity):
            identity = es.Identity.load(identity)
        if isinstance(relay_key, str):
            relay_key = es.parse_public_key(relay_key.strip())
        elif relay_key is not None and len(relay_key) != 32:
            raise ValueError("relay_key is x25519:... text or 32 bytes")
        connected = es.connect_session(
            self._sock,
            identity,
            es.relay_address(host, port),
            relay_key=None if relay_key is None else bytes(relay_key),
            known=es.KnownRelays(known_relays),
            accept_new=accept_new,
            timeout=timeout,
        )
        self._session = connected.session
        self.name = connected.name
        self.relay_key = es.public_key_text(connected.relay_public)
        self.relay_fingerprint = es.fingerprint(connected.relay_public)
        self.pinned_now = connected.pinned_now
        return connected.held

    # -- sending ----------------------------------------------------------

    def send(self, message: Union[str, bytes, bytearray]) -> None:
        """Seals and sends one message: ``str`` is sent as UTF-8, bytes as
        they are. Raises ``ValueError`` for a message longer than the relay
        accepts, ``ConnectionClosed`` after :meth:`close`."""
        plaintext = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        limit = max_plaintext_len(self._max_frame)
        if len(plaintext) > limit:
            raise ValueError(
                f"message of {len(plaintext)} bytes is longer than the relay accepts"
                f" ({limit} bytes)"
            )
        if self._session is not None:
            # A session's frames are numbered: seal and send in one order.
            with self._send_lock:
                if self._closed.is_set():
                    raise ConnectionClosed("connection is closed")
                self._sock.sendall(self._session.seal(plaintext))
            return
        line = seal(self._key, plaintext)
        if self._closed.is_set():
            raise ConnectionClosed("connection is closed")
        with self._send_lock:
            self._sock.sendall(line)

    def send_message(self, message: str) -> None:
        """Sends one text message, as the original notebook's
        ``send_message(message)`` did (but newline-terminated)."""
        self.send(message)

    # -- receiving --------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> bytes:
        """The next message received, waiting up to ``timeout`` seconds
        (``None``: forever). Raises ``TimeoutError`` when none came in time,
        the receive error when the connection failed (for example
        :class:`AuthenticationError`), or :class:`ConnectionClosed` once the
        connection is closed and every message was read. Only for clients
        made without ``on_message``."""
        if self._on_message is not None:
            raise RuntimeError("messages go to on_message; recv() is for clients without it")
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None
        if isinstance(item, BaseException):
            # Leave the end marker for later calls too.
            self._inbox.put(item)
            raise item
        return item  # type: ignore[return-value]

    def recv_text(self, timeout: Optional[float] = None) -> str:
        """:meth:`recv`, made safe to show by :func:`safe_text`."""
        return safe_text(self.recv(timeout))

    def recv_event(self, timeout: Optional[float] = None) -> Event:
        """The next :class:`Event`, waiting as :meth:`recv` does. Without
        ``events=True`` every line is a ``text`` event."""
        if self._stash:
            return self._stash.popleft()
        return parse_event(self.recv(timeout))

    def _wait_for(self, kind: str, timeout: float) -> Event:
        """Waits for the next event of ``kind``; the events read meanwhile
        stay, in order, for :meth:`recv_event`."""
        if not self.events:
            raise RuntimeError("waiting for a reply needs Client(..., events=True)")
        skipped: List[Event] = []
        deadline = _monotonic() + timeout
        try:
            while True:
                left = deadline - _monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {kind} reply within {timeout} s")
                event = parse_event(self.recv(left))
                if event.kind == kind or event.kind == "error":
                    if event.kind == "error":
                        raise ValueError(event.text)
                    return event
                skipped.append(event)
        finally:
            self._stash.extend(skipped)

    # -- commands ----------------------------------------------------------

    def say(self, text: Union[str, bytes]) -> None:
        """Sends ``text`` to the room as text, even if it starts with ``/``
        (sent as ``//``, which the relay turns back into one ``/``)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        self.send(b"/" + data if data.startswith(b"/") else data)

    def join(self, room: str) -> None:
        """Leaves the current room for ``room`` (made if new): ``/join ROOM``."""
        self.send(f"/join {room}")

    def msg(self, name: str, text: str) -> None:
        """A private message to ``name``'s connections: ``/msg NAME TEXT``."""
        self.send(f"/msg {name} {text}")

    def me(self, action: str) -> None:
        """``* NAME ACTION`` to the room: ``/me ACTION``."""
        self.send(f"/me {action}")

    def nick(self, name: str) -> None:
        """Takes a name (shared-key relays only): ``/nick NAME``."""
        self.send(f"/nick {name}")

    def who(self, timeout: float = 10.0) -> List[str]:
        """The names in this room (``/who``); needs ``events=True``.
        Raises ``ValueError`` with the relay's error, if it refused."""
        self.send("/who")
        names = self._wait_for("who", timeout).data.get("names", [])
        return [safe_text(str(name).encode()) for name in names]

    def rooms(self, timeout: float = 10.0) -> Dict[str, int]:
        """The rooms with someone in them, and how many (``/rooms``);
        needs ``events=True``."""
        self.send("/rooms")
        rooms = self._wait_for("rooms", timeout).data.get("rooms", [])
        return {safe_text(str(r["room"]).encode()): int(r["count"]) for r in rooms}

    def _receive_loop(self) -> None:
        reader = self._reader
        try:
            # The frames that came with the handshake's last line, first.
            for plaintext in reader.feed(self._held):
                self._deliver(plaintext)
            while True:
                chunk = self._sock.recv(_READ_SIZE)
                if not chunk:
                    raise ConnectionClosed("relay closed the connection")
                for plaintext in reader.feed(chunk):
                    self._deliver(plaintext)
        except Exception as error:  # every way out, even on_message failing, is reported
            self._finish(error)

    def _deliver(self, plaintext: bytes) -> None:
        if self._on_message is None:
            self._inbox.put(plaintext)
        else:
            self._on_message(plaintext)

    def _finish(self, error: Exception) -> None:
        """Closes the socket and reports why receiving stopped: an error to
        ``on_error``, else to :meth:`recv`'s queue, else (a client with
        ``on_message`` only) as an uncaught exception of the receive thread,
        so an error is never silently dropped. The relay closing is a
        :class:`ConnectionClosed` for ``on_error`` and the queue; closing on
        purpose only ends the queue."""
        on_purpose = self._closed.is_set()
        self._closed.set()
        self._shutdown_socket()
        if on_purpose:
            self._inbox.put(ConnectionClosed("connection closed"))
            return
        if isinstance(error, ConnectionClosed):
            # Not an error, but a chat window should say the relay left.
            self._inbox.put(error)
            if self._on_error is not None:
                self._on_error(error)
            return
        self.error = error
        reported = self._on_error is not None
        self._inbox.put(ConnectionClosed("closed after an error") if reported else error)
        if self._on_error is not None:
            self._on_error(error)
        elif self._on_message is not None:
            raise error

    # -- closing ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by us, the relay or an error)."""
        return self._closed.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Closes the connection and waits (up to ``timeout`` s) for the
        receive thread to end. Safe to call more than once."""
        self._closed.set()
        self._shutdown_socket()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._sock.close()

    def _shutdown_socket(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already shut down, or never fully connected

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        try:
            peer = "%s:%s" % self._sock.getpeername()[:2]
        except OSError:
            peer = "?"
        return f"<eaxchat.Client {peer} {state}>"


# -- the original notebook's shape: one connection, send_message(text) --------

_default: Optional[Client] = None


def connect(
    host: str, port: int, key: Optional[Union[bytes, bytearray, str]] = None, **options: object
) -> Client:
    """Connects a :class:`Client` and makes it the one
    :func:`send_message` uses, closing any earlier one. ``options`` are
    :class:`Client`'s keyword arguments (``member=True`` or ``identity=``
    among them); a :class:`MemberKey` connects in members mode, as
    :class:`Client` does."""
    global _default
    if _default is not None:
        _default.close()
    _default = Client(host, port, key, **options)  # type: ignore[arg-type]
    return _default


def send_message(message: str) -> None:
    """Sends ``message`` on the client made by :func:`connect`, like the
    original notebook's ``send_message``."""
    if _default is None:
        raise RuntimeError("call eaxchat.connect(host, port, key) first")
    _default.send(message)
