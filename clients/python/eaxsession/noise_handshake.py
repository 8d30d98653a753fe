"""The Noise handshake, the client's (initiator's) side.

This module owns Noise_IK_25519_AESGCM_SHA256 with prologue "eaxchat/session/1"
(and Noise_IKpsk1 with prologue "eaxchat/invite/1" for invite joins) over
noiseprotocol; the raw split keys (raw_split) and the per-session key
derivation (HKDF-SHA256 over them and the handshake hash); Initiator, one
handshake's two lines; reading the relay's fingerprint from a refusal; and
handshake(), one run over a connected socket.

noiseprotocol has no public accessor for the raw split keys, so raw_split()
reads them from its CipherState objects (`cipher_state_encrypt.k` /
`cipher_state_decrypt.k`); the cacophony vector tests check those keys against
published ciphertexts.
"""

from __future__ import annotations

import json
import re
import warnings

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from noise.connection import Keypair, NoiseConnection

from .errors import HandshakeFailed, LineError, Refused, RelayKeyChanged
from .frames import Session
from .keys import fingerprint
from .lines import (KIND_HELLO, KIND_INVITE, KIND_REFUSAL, KIND_WELCOME, decode_line,
                    encode_line, read_line)


PROLOGUE = b"eaxchat/session/1"
PROTOCOL_IK = "Noise_IK_25519_AESGCM_SHA256"
PROTOCOL_IKPSK2 = "Noise_IKpsk2_25519_AESGCM_SHA256"  # vectors only
#: Invite joins (crates/proto/src/invite): the invite secret is the PSK, mixed in
#: at the end of message 1, so the relay refuses a wrong secret before answering.
PROTOCOL_IKPSK1 = "Noise_IKpsk1_25519_AESGCM_SHA256"
JOIN_PROLOGUE = b"eaxchat/invite/1"
MAX_HELLO_PAYLOAD = 128
INVITE_ID_LEN = 8
#: What precedes the relay's own fingerprint in a refusal; only there is it read.
RELAY_KEY_MARK = "this relay's key is "


def new_handshake(protocol: str, initiator: bool, static_private: bytes,
                  remote_public: bytes | None = None, psk: bytes | None = None,
                  prologue: bytes = PROLOGUE,
                  ephemeral_private: bytes | None = None) -> NoiseConnection:
    """A started noiseprotocol handshake. `ephemeral_private` is for test vectors only."""
    conn = NoiseConnection.from_name(protocol.encode("ascii"))
    conn.eax_initiator = initiator
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_prologue(prologue)
    conn.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
    if remote_public is not None:
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote_public)
    if psk is not None:
        conn.set_psks(psk=psk)
    with warnings.catch_warnings():
        if ephemeral_private is not None:  # noiseprotocol warns about fixed ephemerals
            warnings.simplefilter("ignore")
            conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral_private)
        conn.start_handshake()
    return conn


def raw_split(conn: NoiseConnection) -> tuple[bytes, bytes]:
    """(k1, k2) of a finished handshake, like snow's dangerously_get_raw_split().

    k1 is the initiator->responder cipher key and k2 responder->initiator, whichever
    side `conn` is. noiseprotocol gives the initiator encrypt=c1/decrypt=c2 and the
    responder encrypt=c2/decrypt=c1 (noise/state.py, SymmetricState.split); it forgets
    the role when the handshake ends, so new_handshake() records it as eax_initiator.
    """
    if not conn.handshake_finished:
        raise RuntimeError("handshake not finished")
    enc = bytes(conn.noise_protocol.cipher_state_encrypt.k)
    dec = bytes(conn.noise_protocol.cipher_state_decrypt.k)
    return (enc, dec) if conn.eax_initiator else (dec, enc)


def derive_session_keys(k1: bytes, k2: bytes, h: bytes) -> tuple[bytes, bytes]:
    """(c2s, s2c) = HKDF-SHA256(salt=h, ikm=k1|k2, info="eaxchat/1 session c2s|s2c", L=32)."""
    def hkdf(ikm: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=h, info=info).derive(ikm)
    for name, v in (("k1", k1), ("k2", k2), ("h", h)):
        if len(v) != 32:
            raise ValueError(f"{name} must be 32 bytes, got {len(v)}")
    return hkdf(k1, b"eaxchat/1 session c2s"), hkdf(k2, b"eaxchat/1 session s2c")


class Initiator:
    """The client side of one handshake.

    Initiator(static_private, relay_public) speaks Noise_IK with a kind 0x01 line;
    with psk= and invite_id= it speaks Noise_IKpsk1 (prologue JOIN_PROLOGUE) with a
    kind 0x03 line, id || message 1: an invite join.
    After consume_line2(): .name, .session (seals and opens the frames that
    follow), and for tests and diagnostics .handshake_hash, .k1, .k2, .c2s, .s2c.
    """

    def __init__(self, static_private: bytes, relay_public: bytes,
                 psk: bytes | None = None, invite_id: bytes | None = None):
        if len(static_private) != 32 or len(relay_public) != 32:
            raise ValueError("keys must be 32 raw bytes")
        if (psk is None) != (invite_id is None):
            raise ValueError("psk and invite_id go together (invite join)")
        if psk is not None and (len(psk) != 32 or len(invite_id) != INVITE_ID_LEN):
            raise ValueError(f"psk must be 32 bytes and invite_id {INVITE_ID_LEN}")
        self.relay_public = relay_public
        self.invite_id = invite_id
        if psk is None:
            self._conn = new_handshake(PROTOCOL_IK, True, static_private, relay_public)
        else:
            self._conn = new_handshake(PROTOCOL_IKPSK1, True, static_private, relay_public,
                                       psk, prologue=JOIN_PROLOGUE)
        self._state = "line1"
        self.name = self.handshake_hash = self.k1 = self.k2 = self.c2s = self.s2c = None
        self.session: Session | None = None

    def line1(self, payload: bytes = b"") -> bytes:
        """The first line to send: kind 0x01 (or 0x03 invite join), newline included."""
        if self._state != "line1":
            raise RuntimeError("line1() already called")
        if len(payload) > MAX_HELLO_PAYLOAD:
            raise ValueError(f"message 1 payload is at most {MAX_HELLO_PAYLOAD} bytes")
        if payload:
            json.loads(payload.decode("utf-8"))  # UTF-8 JSON; raises ValueError otherwise
        msg = bytes(self._conn.write_message(payload))
        self._state = "line2"
        if self.invite_id is None:
            return encode_line(KIND_HELLO, msg)
        return encode_line(KIND_INVITE, self.invite_id + msg)

    def consume_line2(self, line: bytes) -> str:
        """Process the relay's reply line; returns the member name the relay stamped.

        Raises Refused (kind 0x7f; naming the pinned fingerprint and the relay's
        own when the refusal gives it), LineError (bad framing / unexpected kind)
        or HandshakeFailed (message 2 does not verify, or the name is not UTF-8).
        """
        if self._state != "line2":
            raise RuntimeError("consume_line2() needs line1() first, and only once")
        self._state = "dead"  # until it succeeds; one attempt only
        kind, body = decode_line(line)
        if kind == KIND_REFUSAL:
            text = body.decode("utf-8", errors="replace")
            pinned, relay = fingerprint(self.relay_public), relay_fingerprint_in(text)
            if relay is not None and relay != pinned:
                raise RelayKeyChanged(text, pinned, relay)
            raise Refused(text, pinned, relay)
        if kind != KIND_WELCOME:
            raise LineError(f"expected kind 0x02, got 0x{kind:02x}")
        try:
            payload = bytes(self._conn.read_message(body))
        except InvalidTag:
            raise HandshakeFailed("relay message 2 did not decrypt") from None
        except Exception as e:  # noiseprotocol raises assorted types on malformed input
            raise HandshakeFailed(f"relay message 2 is malformed: {e}") from None
        try:
            self.name = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise HandshakeFailed("member name is not UTF-8") from None
        self.handshake_hash = bytes(self._conn.get_handshake_hash())
        self.k1, self.k2 = raw_split(self._conn)
        self.c2s, self.s2c = derive_session_keys(self.k1, self.k2, self.handshake_hash)
        self.session = Session.client(self.c2s, self.s2c)
        self._state = "done"
        return self.name


def relay_fingerprint_in(text: str) -> str | None:
    """The fingerprint that follows RELAY_KEY_MARK in a refusal text, if one does."""
    at = text.find(RELAY_KEY_MARK)
    while at >= 0:
        candidate = text[at + len(RELAY_KEY_MARK):][:len("SHA256:") + 43]
        if _FINGERPRINT.fullmatch(candidate):
            return candidate
        at = text.find(RELAY_KEY_MARK, at + 1)
    return None


_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def handshake(sock, initiator: Initiator, payload: bytes = b""):
    """Run the handshake over a connected socket. Returns (name, reader): read the
    frames that follow from `reader` (read_frame_line; it may already hold some), and
    seal and open them with initiator.session. Set sock's timeout first."""
    sock.sendall(initiator.line1(payload))
    reader = sock.makefile("rb")
    try:
        return initiator.consume_line2(read_line(reader)), reader
    except BaseException:
        reader.close()
        raise
