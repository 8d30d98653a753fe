"""eaxchat sessions -- the Python client's (initiator's) side.

The protocol's reference is the relay's Rust code (crates/proto/src/session/);
this package speaks the same bytes, and its tests run against that code.

It owns, for the Python client: the Noise_IK_25519_AESGCM_SHA256 handshake with
prologue "eaxchat/session/1" (and Noise_IKpsk1 with prologue "eaxchat/invite/1" for
invite joins: parse_invite() and join_invite());
the handshake line framing (kind byte + body in base64, at most 1024 bytes before
the newline, refusal lines, and the key request / relay key lines of trust on first
use); the per-session key derivation (HKDF-SHA256 over snow-style raw split keys
and the handshake hash); the session's frames (today's wire lines, AES-256-EAX
through PyCryptodome, 16-byte counter nonces, a strict receive counter);
fingerprints and public-key text; identity files (the private key, created with
mode 0600); the relay keys a client pinned (a known_relays file); and
connect_session(), a whole client handshake with its pinning rules.

It never opens a socket itself: handshake() and connect_session() run over one the
caller connected (join_invite() opens one when given a link with an address). It
never prints.

Dependencies: `noiseprotocol` (PyPI, module `noise`, 0.3.1) and `cryptography`
for the handshake, `pycryptodome` (as eaxchat) for the frames, `spake2` for short
invite codes only.

One module per concern:

- eaxsession.errors: the exceptions (SessionError and its subclasses);
- eaxsession.lines: the handshake's line framing and line kinds;
- eaxsession.frames: counter nonces, sealing and opening frames, Session;
- eaxsession.keys: fingerprints, public-key text, key pairs;
- eaxsession.identity: identity files and Identity;
- eaxsession.pins: the known_relays file (KnownRelays, relay_address);
- eaxsession.noise_handshake: the Noise handshake (Initiator, raw_split,
  derive_session_keys, handshake);
- eaxsession.client: connect_session() and Connected;
- eaxsession.invites: invite links, short codes, join_invite().

This file only gathers their names, the private ones too (as the one-file
module had them), so `import eaxsession` works as it always did: import from
the package, not from its modules.
"""

from __future__ import annotations

from .errors import (
    FrameError,
    HandshakeFailed,
    LineError,
    NonceError,
    Refused,
    RelayKeyChanged,
    SessionError,
    UnknownRelay,
)
from .lines import (
    _decode_kind,
    decode_line,
    decode_relay_key_line,
    encode_line,
    key_request_line,
    KIND_CODE_REPLY,
    KIND_CODE_START,
    KIND_HELLO,
    KIND_INVITE,
    KIND_KEY_REQUEST,
    KIND_REFUSAL,
    KIND_RELAY_KEY,
    KIND_WELCOME,
    _KINDS,
    MAX_LINE,
    MAX_REFUSAL_TEXT,
    read_line,
    _strip_terminator,
)
from .frames import (
    frame_nonce,
    FrameOpener,
    FrameSealer,
    _LAST_COUNTER,
    NONCE_LEN,
    read_frame_line,
    ReceiveTracker,
    SendCounter,
    Session,
    TAG_LEN,
)
from .keys import (
    fingerprint,
    generate_keypair,
    parse_public_key,
    public_from_private,
    public_key_text,
)
from .identity import (
    generate_identity,
    Identity,
    IDENTITY_COMMENT,
    load_private_key,
    save_private_key,
)
from .pins import (
    DEFAULT_KNOWN_RELAYS,
    KnownRelays,
    relay_address,
)
from .noise_handshake import (
    derive_session_keys,
    _FINGERPRINT,
    handshake,
    Initiator,
    INVITE_ID_LEN,
    JOIN_PROLOGUE,
    MAX_HELLO_PAYLOAD,
    new_handshake,
    PROLOGUE,
    PROTOCOL_IK,
    PROTOCOL_IKPSK1,
    PROTOCOL_IKPSK2,
    raw_split,
    relay_fingerprint_in,
    RELAY_KEY_MARK,
)
from .client import (
    connect_session,
    Connected,
    _LineSocket,
)
from .invites import (
    _CODE,
    _code_exchange,
    Invite,
    join_invite,
    parse_invite,
)

__all__ = [
    "connect_session",
    "Connected",
    "decode_line",
    "decode_relay_key_line",
    "DEFAULT_KNOWN_RELAYS",
    "derive_session_keys",
    "encode_line",
    "fingerprint",
    "frame_nonce",
    "FrameError",
    "FrameOpener",
    "FrameSealer",
    "generate_identity",
    "generate_keypair",
    "handshake",
    "HandshakeFailed",
    "Identity",
    "IDENTITY_COMMENT",
    "Initiator",
    "Invite",
    "INVITE_ID_LEN",
    "join_invite",
    "JOIN_PROLOGUE",
    "key_request_line",
    "KIND_CODE_REPLY",
    "KIND_CODE_START",
    "KIND_HELLO",
    "KIND_INVITE",
    "KIND_KEY_REQUEST",
    "KIND_REFUSAL",
    "KIND_RELAY_KEY",
    "KIND_WELCOME",
    "KnownRelays",
    "LineError",
    "load_private_key",
    "MAX_HELLO_PAYLOAD",
    "MAX_LINE",
    "MAX_REFUSAL_TEXT",
    "new_handshake",
    "NONCE_LEN",
    "NonceError",
    "parse_invite",
    "parse_public_key",
    "PROLOGUE",
    "PROTOCOL_IK",
    "PROTOCOL_IKPSK1",
    "PROTOCOL_IKPSK2",
    "public_from_private",
    "public_key_text",
    "raw_split",
    "read_frame_line",
    "read_line",
    "ReceiveTracker",
    "Refused",
    "relay_address",
    "relay_fingerprint_in",
    "RELAY_KEY_MARK",
    "RelayKeyChanged",
    "save_private_key",
    "SendCounter",
    "Session",
    "SessionError",
    "TAG_LEN",
    "UnknownRelay",
]
