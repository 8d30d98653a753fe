"""Joining a relay by invite: a link, or a short code.

This module owns Invite and parse_invite() (eaxchat://HOST:PORT/join/TOKEN or
a page link ending #invite=TOKEN), a short code's SPAKE2 exchange (python-spake2,
interoperable with the relay's `spake2` crate), and join_invite(): the Noise
IKpsk1 join with the invite's secret, and the relay's key pinned.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from dataclasses import dataclass

from .client import Connected, _LineSocket
from .errors import LineError, Refused
from .identity import Identity, generate_identity
from .keys import fingerprint
from .lines import (KIND_CODE_REPLY, KIND_CODE_START, KIND_REFUSAL, _strip_terminator,
                    encode_line)
from .noise_handshake import INVITE_ID_LEN, Initiator
from .pins import KnownRelays


@dataclass
class Invite:
    """An invite link as parse_invite() reads it (crates/proto/src/invite)."""

    #: HOST:PORT of the relay's TCP port; "" for a page link.
    address: str
    #: The relay's static public key (32 bytes): pinned by the join.
    relay_public: bytes
    #: The invite's id (INVITE_ID_LEN bytes), sent in clear.
    invite_id: bytes
    #: The one-time secret (32 bytes), the join's PSK.
    secret: bytes

    def __repr__(self) -> str:
        return f"Invite({self.address!r}, {fingerprint(self.relay_public)}, {self.invite_id.hex()})"


def parse_invite(link: str) -> Invite:
    """Reads `eaxchat://HOST:PORT/join/TOKEN` or a page link ending `#invite=TOKEN`;
    TOKEN is unpadded base64url of relay key(32) || id(8) || secret(32)."""
    link = link.strip()
    if link.startswith("eaxchat://"):
        address, sep, token = link[len("eaxchat://"):].partition("/join/")
        if not sep or not address or "/" in address:
            raise ValueError("not an invite link: expected eaxchat://HOST:PORT/join/TOKEN")
    elif "#invite=" in link:
        address, token = "", link.split("#invite=", 1)[1]
    else:
        raise ValueError("not an invite link: expected eaxchat://HOST:PORT/join/TOKEN "
                         "or a page link ending in #invite=TOKEN")
    token = token.rstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_-]{96}", token):
        raise ValueError("the invite link is damaged: its token is not 96 characters of "
                         "base64url (copy the whole link)")
    raw = base64.urlsafe_b64decode(token)
    return Invite(address, raw[:32], raw[32:32 + INVITE_ID_LEN], raw[32 + INVITE_ID_LEN:])


_CODE = re.compile(r"([1-9][0-9]{0,2})((?:-[a-z]+){3})")


def _code_exchange(sock, lines, code: str, address: str) -> Invite:
    """A short code's SPAKE2 exchange (python-spake2, Ed25519, interoperable with
    the relay's `spake2` crate): 0x06 nameplate(2) || message A out, 0x07 message B
    || relay key(32) || invite id(8) back; the invite to join with, its secret the
    SPAKE2 key. The relay key is proven by the join that follows."""
    from spake2 import SPAKE2_A  # only code joins need it
    match = _CODE.fullmatch(code.strip().lower())
    if not match:
        raise ValueError("not an invite code: expected N-word-word-word, like 7-acorn-maple-otter")
    nameplate = int(match.group(1))
    password = f"{nameplate}{match.group(2)}".encode()
    pake = SPAKE2_A(password, idA=b"eaxchat/invite/code/client", idB=b"eaxchat/invite/code/relay")
    sock.sendall(encode_line(KIND_CODE_START, nameplate.to_bytes(2, "big") + pake.start()))
    line = lines.read_line()
    raw = base64.b64decode(_strip_terminator(line), validate=True)
    if raw[:1] == bytes([KIND_REFUSAL]):
        raise Refused(raw[1:].decode("utf-8", errors="replace"))
    if raw[:1] != bytes([KIND_CODE_REPLY]) or len(raw) != 1 + 33 + 32 + INVITE_ID_LEN:
        raise LineError("expected the relay's code reply (kind 0x07)")
    key = pake.finish(raw[1:34])
    return Invite(address, raw[34:66], raw[66:66 + INVITE_ID_LEN], key)


def join_invite(link: str, identity_path, known: KnownRelays | None = None, *,
                sock=None, timeout: float = 10.0, address: str | None = None) -> Connected:
    """Joins a relay by the invite `link` (or a short code `N-word-word-word`, with
    `address="HOST:PORT"` or `sock=`): the identity at `identity_path` (made,
    mode 0600, if there is none), one invite join over `sock` (or a new connection
    to the link's address), and the relay's key pinned in `known` for that address
    once the welcome proves the relay holds it. Returns the session, ready for
    frames, like connect_session(); later connections use connect_session() with
    the same identity and the pin.

    Raises ValueError for a bad link, Refused (with the relay's text: spent,
    expired, revoked, wrong secret...) and the errors of connect_session()."""
    code = link.strip()[:1].isdigit()
    invite = Invite(address or "", b"", b"", b"") if code else parse_invite(link)
    if not invite.address and sock is None:
        raise ValueError("a page link names no TCP port: pass sock= connected to the relay")
    path = os.path.expanduser(os.fspath(identity_path))
    if not os.path.exists(path):
        generate_identity(path)
    identity = Identity.load(path)
    known = known if known is not None else KnownRelays()
    own = sock is None
    if own:
        host, _, port = invite.address.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    try:
        deadline = time.monotonic() + timeout
        lines = _LineSocket(sock, deadline)
        sock.settimeout(timeout)
        if code:
            invite = _code_exchange(sock, lines, link, invite.address)
        initiator = Initiator(identity._private, invite.relay_public,
                              psk=invite.secret, invite_id=invite.invite_id)
        sock.settimeout(timeout)
        sock.sendall(initiator.line1())
        name = initiator.consume_line2(lines.read_line())
    except BaseException:
        if own:
            sock.close()
        raise
    if invite.address and known.get(invite.address) != invite.relay_public:
        known.add(invite.address, invite.relay_public)
    connected = Connected(name, initiator.session, invite.relay_public, True, bytes(lines.held))
    connected.sock = sock
    return connected
