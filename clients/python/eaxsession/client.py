"""A client's whole connection handshake, with its pinning rules.

This module owns connect_session() (an explicit pin, a pin from known_relays,
or trust on first use: the key request, then the pin once the handshake proves
it), Connected (a finished handshake and the bytes read past it), and reading
handshake lines from a socket under one deadline.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from .errors import LineError, RelayKeyChanged, UnknownRelay
from .frames import Session
from .identity import Identity
from .lines import MAX_LINE, decode_relay_key_line, key_request_line
from .noise_handshake import Initiator
from .pins import KnownRelays


class _LineSocket:
    """Reads handshake lines from a connected socket under one deadline, keeping
    whatever arrives after the last line (the first frames) for the caller."""

    def __init__(self, sock, deadline: float):
        self._sock, self._deadline = sock, deadline
        self.held = bytearray()

    def read_line(self) -> bytes:
        while True:
            end = self.held.find(b"\n")
            if end >= 0:
                line = bytes(self.held[:end + 1])
                del self.held[:end + 1]
                return line
            if len(self.held) > MAX_LINE + 1:
                raise LineError(f"no newline within {MAX_LINE} bytes")
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("the relay did not finish the handshake in time")
            self._sock.settimeout(left)
            chunk = self._sock.recv(4096)
            if not chunk:
                raise LineError("the relay closed the connection during the handshake")
            self.held += chunk


@dataclass
class Connected:
    """A finished client handshake (connect_session)."""

    #: The member's name, as the relay stamped it.
    name: str
    #: Seals what the client sends, opens what the relay sends, in order.
    session: Session
    #: The relay's static public key (32 bytes), proven by the handshake.
    relay_public: bytes
    #: True when this connection pinned the relay's key (trust on first use).
    pinned_now: bool
    #: Bytes read past the handshake: the first frames, to open before reading more.
    held: bytes


def connect_session(sock, identity: Identity, address: str, *, relay_key: bytes | None = None,
                    known: KnownRelays | None = None, accept_new: bool = True,
                    payload: bytes = b"", timeout: float = 10.0) -> Connected:
    """Runs a client's whole handshake over the connected `sock`, within `timeout`.

    The relay key is `relay_key` when given (an explicit pin: known_relays is
    neither read nor written); else the one `known` holds for `address`; else, with
    `accept_new`, trust on first use: a key request on this connection, the relay's
    answer used for the hello, and the key added to `known` once the relay's reply
    proves it holds it. Without `accept_new` an unpinned relay is UnknownRelay.

    Raises RelayKeyChanged (naming both fingerprints and where the pin is) when the
    relay says it has another key than the pinned one, Refused for any other
    refusal, LineError or HandshakeFailed for a bad reply, socket.timeout."""
    deadline = time.monotonic() + timeout
    lines = _LineSocket(sock, deadline)
    known = known if known is not None else KnownRelays()
    where, pinned_now = "given as relay_key", False
    if relay_key is None:
        found = known.find(address)
        if found is not None:
            relay_key, number = found
            where = (f"pinned for {address} in {known.path} line {number} (if the relay's "
                     "key really changed, check the new one with its operator, then remove "
                     "that line)")
        elif not accept_new:
            raise UnknownRelay(f"no relay key is pinned for {address} in {known.path}, and "
                               "trust on first use is off: pass relay_key, or accept_new=True")
        else:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(key_request_line())
            relay_key = decode_relay_key_line(lines.read_line())
            where, pinned_now = "the relay's answer to the key request", True
    initiator = Initiator(identity._private, relay_key)
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendall(initiator.line1(payload))
    try:
        name = initiator.consume_line2(lines.read_line())
    except RelayKeyChanged as e:
        raise RelayKeyChanged(e.text, e.pinned, e.relay, f"the key you pinned is {where}") from None
    if pinned_now:
        known.add(address, relay_key)
    return Connected(name, initiator.session, relay_key, pinned_now, bytes(lines.held))
