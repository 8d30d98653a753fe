"""A connection to a relay: :class:`Client` connects (running the session
handshake in session mode), sends sealed messages, and reads what comes
back on a background receive thread, handing each message to
``on_message`` or to a queue.

This module owns the socket, the receive thread and closing; the frame
format is :mod:`eaxchat.cipher`'s and :mod:`eaxchat.reader`'s, the
commands and rooms :mod:`eaxchat.commands`'. It never prints.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .cipher import DEFAULT_MAX_FRAME, _seal_with_nonce, max_plaintext_len, seal
from .commands import Commands
from .errors import ConnectionClosed
from .e2e import E2eLayer, default_state_dir, load_binding
from .events import PROTOCOL, safe_text
from .keys import MemberKey, parse_key
from .reader import FrameReader, _SessionReader
from .sessions import _sessions

#: How many bytes one ``recv`` on the socket asks for.
_READ_SIZE = 64 * 1024


def _untrusted(plaintext: bytes) -> bytes:
    """An event from the relay without the fields only this client's
    end-to-end layer sets (``e2e``, ``unreadable``): the relay never
    vouches for a decryption."""
    if b'"e2e"' not in plaintext and b'"unreadable"' not in plaintext:
        return plaintext
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return plaintext
    if not isinstance(data, dict) or (data.get("e2e") is not True and "unreadable" not in data):
        return plaintext
    data.pop("unreadable", None)
    if data.get("e2e") is True:
        del data["e2e"]
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


class Client(Commands):
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
    then sends structured events, read with :meth:`recv_event`; the client
    can be in several rooms at once (:meth:`join`, :meth:`part`,
    ``say(text, room=...)``, :attr:`rooms_joined`, :attr:`current_room`),
    and :meth:`who`, :meth:`rooms`, :meth:`topic` and :meth:`history` wait
    for their answers. The commands are :class:`~eaxchat.commands.Commands`'.

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

    End-to-end rooms (session mode with ``events=True``): with the
    ``eaxchat_mls`` binding installed (``e2e=None``, the default, uses it
    when it is; ``e2e=True`` requires it; ``e2e=False`` turns it off) the
    client keeps this device's MLS state in ``e2e_dir`` (default
    :func:`eaxchat.e2e.default_state_dir`), uploads KeyPackages (right
    after ``/hello`` with ``e2e=True`` or once the device has met an
    end-to-end room, else before its first ``join``), and drives each
    room's group from the relay's events (:mod:`eaxchat.e2e`):
    ``join(room, e2e=True)`` makes or joins one,
    ``say`` encrypts there, messages come out decrypted (``Event.e2e``),
    and :meth:`verify` gives a safety number. :attr:`e2e` is the layer
    (``None`` when off).

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
        e2e: Optional[bool] = None,
        e2e_dir: Optional[Union[str, Path]] = None,
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
        self._init_commands()
        self._key = parse_key(key) if key is not None else b""
        self._session: Any = None
        self._on_message = on_message
        self._on_error = on_error
        self._max_frame = max_frame
        self._inbox: "queue.Queue[object]" = queue.Queue()
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        self.e2e: Optional[E2eLayer] = None
        """The end-to-end rooms layer (``None`` when off)."""
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
            self.e2e = self._e2e_layer(e2e, e2e_dir, host, port, identity)
            if self.session_mode:
                # The handshake said who the member is: no empty identifying frame.
                if self.events:
                    frames = [first]
                    if self.e2e is not None and (e2e or self.e2e.used_before):
                        # KeyPackages in the same write as /hello: the relay
                        # announces this device to the room's members at its
                        # hello, and they fetch them at once.
                        frames += self.e2e.wake(send=False)
                    self._sock.sendall(b"".join(map(self._session.seal, frames)))
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

    def _e2e_layer(
        self,
        e2e: Optional[bool],
        e2e_dir: Optional[Union[str, Path]],
        host: str,
        port: int,
        identity: Any,
    ) -> Optional[E2eLayer]:
        """The end-to-end layer this connection runs, if any (see the class
        doc): ``e2e=True`` needs session mode, events and the binding."""
        if not (self.session_mode and self.events and self.name):
            if e2e:
                raise ValueError("end-to-end rooms need session mode (identity=) and events=True")
            return None
        if e2e is False:
            return None
        try:
            mls = load_binding()
        except ImportError:
            if e2e:
                raise
            return None
        if e2e_dir is None:
            e2e_dir = default_state_dir(host, port, self.name, identity)
        return E2eLayer(mls, e2e_dir, self.name, self.send)

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
        line, nonce = _seal_with_nonce(self._key, plaintext)
        # Before it goes: the relay (or anyone on the path) may send it
        # back at once, and it must not be delivered as someone's message.
        self._reader.sealed(nonce)
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
        if not self.events:
            self._hand_on(plaintext)
            return
        plaintext = _untrusted(plaintext)
        self._track_rooms(plaintext)
        if self.e2e is None:
            self._hand_on(plaintext)
            return
        for shown in self.e2e.handle(plaintext):
            self._hand_on(shown)

    def _hand_on(self, plaintext: bytes) -> None:
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
        if self.e2e is not None:
            self.e2e.close()
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
