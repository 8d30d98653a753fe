"""eaxchat sessions -- the Python client's (initiator's) side.

The protocol's reference is the relay's Rust code (crates/proto/src/session/);
this module speaks the same bytes, and its tests run against that code.

It owns, for the Python client: the Noise_IK_25519_AESGCM_SHA256 handshake with
prologue "eaxchat/session/1" (and Noise_IKpsk2 for invite joins, a later issue);
the handshake line framing (kind byte + body in base64, at most 1024 bytes before
the newline, refusal lines, and the key request / relay key lines of trust on first
use); the per-session key derivation (HKDF-SHA256 over snow-style raw split keys
and the handshake hash); the session's frames (today's wire lines, AES-256-EAX
through PyCryptodome, 16-byte counter nonces, a strict receive counter);
fingerprints and public-key text; identity files (the private key, created with
mode 0600); the relay keys a client pinned (a known_relays file); and
connect_session(), a whole client handshake with its pinning rules.

It never opens a socket itself: handshake() and connect_session() run over one the
caller connected. It never prints.

Dependencies: `noiseprotocol` (PyPI, module `noise`, 0.3.1) and `cryptography`
for the handshake, `pycryptodome` (as eaxchat.py) for the frames. noiseprotocol
has no public accessor for the raw split keys, so raw_split() reads them from its
CipherState objects (`cipher_state_encrypt.k` / `cipher_state_decrypt.k`); the
cacophony vector tests check those keys against published ciphertexts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import socket
import stat
import time
import warnings
from dataclasses import dataclass

from Crypto.Cipher import AES
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from noise.connection import Keypair, NoiseConnection

PROLOGUE = b"eaxchat/session/1"
PROTOCOL_IK = "Noise_IK_25519_AESGCM_SHA256"
PROTOCOL_IKPSK2 = "Noise_IKpsk2_25519_AESGCM_SHA256"

KIND_HELLO, KIND_WELCOME, KIND_INVITE, KIND_REFUSAL = 0x01, 0x02, 0x03, 0x7F
#: Trust on first use: a client with no pin asks (0x04, empty), the relay answers
#: with its static public key (0x05, 32 bytes, unauthenticated). Only these two
#: functions speak them: key_request_line() and decode_relay_key_line().
KIND_KEY_REQUEST, KIND_RELAY_KEY = 0x04, 0x05
MAX_LINE = 1024  # bytes of base64 before the "\n"
MAX_HELLO_PAYLOAD = 128
MAX_REFUSAL_TEXT = 512
INVITE_ID_LEN = 16
#: What precedes the relay's own fingerprint in a refusal; only there is it read.
RELAY_KEY_MARK = "this relay's key is "
NONCE_LEN, TAG_LEN = 16, 16
_LAST_COUNTER = 2**64 - 1  # never used: a counter always has a successor
_KINDS = frozenset((KIND_HELLO, KIND_WELCOME, KIND_INVITE, KIND_REFUSAL))


class SessionError(Exception):
    """Base class for everything this module raises on bad input from the peer."""


class LineError(SessionError):
    """A handshake line that is not valid framing (oversize, bad base64, wrong kind...)."""


class Refused(SessionError):
    """The relay sent a refusal line (kind 0x7f).

    `text` is its text (unauthenticated: anyone on the path could have sent it),
    `pinned` the fingerprint of the relay key the client pinned, and `relay` the
    fingerprint the relay gave as its own (after RELAY_KEY_MARK), or None.
    """

    def __init__(self, text: str, pinned: str | None = None, relay: str | None = None,
                 note: str | None = None):
        shown = repr(text)  # escapes control characters
        if pinned and relay and relay != pinned:
            message = (f"the relay refused the handshake: you pinned relay key {pinned}, but "
                       f"the relay says its key is {relay} (its key changed, or another relay "
                       f"answers at this address); it said: {shown}")
        elif pinned:
            message = f"the relay refused the handshake (pinned relay key {pinned}): {shown}"
        else:
            message = f"the relay refused the handshake: {shown}"
        if note:
            message += f"; {note}"
        super().__init__(message)
        self.text, self.pinned, self.relay = text, pinned, relay


class RelayKeyChanged(Refused):
    """A refusal whose relay names a key other than the one the client pinned: its
    key changed, or another relay answers at this address. Always refused; the
    message names both fingerprints."""


class HandshakeFailed(SessionError):
    """A Noise handshake message did not decrypt or was malformed."""


class FrameError(SessionError):
    """A session frame that must not open: bad base64, too short, or a bad tag."""


class NonceError(FrameError):
    """A frame nonce that is not exactly the next expected counter. `replay` is
    True when its counter was already used (a replay, or a reorder)."""

    replay = False


class UnknownRelay(SessionError):
    """No relay key is pinned for this address and trust on first use is off."""


# ---------------------------------------------------------------- framing

def encode_line(kind: int, body: bytes) -> bytes:
    """kind(1) || body -> standard padded base64 + b"\\n"; refuses lines over MAX_LINE."""
    if kind not in _KINDS:
        raise ValueError(f"unknown handshake line kind {kind}")
    if kind == KIND_REFUSAL and len(body) > MAX_REFUSAL_TEXT:
        raise LineError(f"refusal text of {len(body)} bytes exceeds {MAX_REFUSAL_TEXT}")
    text = base64.b64encode(bytes([kind]) + body)
    if len(text) > MAX_LINE:
        raise LineError(f"line of {len(text)} bytes exceeds {MAX_LINE}")
    return text + b"\n"


def _strip_terminator(line: bytes) -> bytes:
    """Drops one trailing b"\\n" and one b"\\r" before it."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


def decode_line(line: bytes) -> tuple[int, bytes]:
    """One line (a trailing b"\\n" or b"\\r\\n" is dropped) -> (kind, body).

    Strict base64; refuses unknown kinds and refusal texts over MAX_REFUSAL_TEXT.
    The key request and relay key lines are not handshake lines: they come only
    where decode_relay_key_line() reads them."""
    return _decode_kind(line, _KINDS)


def _decode_kind(line: bytes, kinds) -> tuple[int, bytes]:
    """decode_line(), taking only the kinds in `kinds`."""
    line = _strip_terminator(line)
    if len(line) > MAX_LINE:
        raise LineError(f"line of {len(line)} bytes exceeds {MAX_LINE}")
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as e:
        raise LineError(f"line is not standard base64: {e}") from None
    if base64.b64encode(raw) != line:
        raise LineError("line is not canonical base64")
    if not raw:
        raise LineError("empty line")
    kind, body = raw[0], raw[1:]
    if kind not in kinds:
        raise LineError(f"unknown handshake line kind 0x{kind:02x}")
    if kind == KIND_REFUSAL and len(body) > MAX_REFUSAL_TEXT:
        raise LineError(f"refusal text of {len(body)} bytes exceeds {MAX_REFUSAL_TEXT}")
    return kind, body


def key_request_line() -> bytes:
    """The key request (kind 0x04, empty), newline included: sent once, before the
    hello, by a client that has no key pinned for this relay."""
    return base64.b64encode(bytes([KIND_KEY_REQUEST])) + b"\n"


def decode_relay_key_line(line: bytes) -> bytes:
    """The relay's answer to a key request: its 32-byte static public key (kind
    0x05). It is unauthenticated: the handshake that follows proves the relay holds
    the key. Raises Refused for a refusal line, LineError for anything else."""
    kind, body = _decode_kind(line, (KIND_RELAY_KEY, KIND_REFUSAL))
    if kind == KIND_REFUSAL:
        raise Refused(body.decode("utf-8", errors="replace"))
    if len(body) != 32:
        raise LineError(f"a relay key line carries 32 bytes, not {len(body)}")
    return body


def read_line(stream) -> bytes:
    """Read one line from a binary stream (e.g. sock.makefile("rb")), bounded to MAX_LINE.

    Keep using the same stream afterwards: it may have buffered the following frames.
    """
    line = stream.readline(MAX_LINE + 1)
    if not line:
        raise LineError("connection closed before a handshake line")
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE:
            raise LineError(f"no newline within {MAX_LINE} bytes")
        raise LineError("connection closed in the middle of a line")
    return line


# ---------------------------------------------------------------- Noise

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
    with psk= and invite_id= it speaks Noise_IKpsk2 with a kind 0x03 line.
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
        protocol = PROTOCOL_IK if psk is None else PROTOCOL_IKPSK2
        self._conn = new_handshake(protocol, True, static_private, relay_public, psk)
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
# with AES-256-EAX (PyCryptodome, as eaxchat.py) under the direction's session
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


# ---------------------------------------------------------------- keys

def fingerprint(public: bytes) -> str:
    """"SHA256:" + unpadded standard base64 of SHA-256(public key), like ssh."""
    digest = hashlib.sha256(public).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_key_text(public: bytes) -> str:
    return "x25519:" + base64.b64encode(public).decode("ascii")


def parse_public_key(text: str) -> bytes:
    prefix = "x25519:"
    if not text.startswith(prefix):
        raise ValueError("public key must start with 'x25519:'")
    try:
        raw = base64.b64decode(text[len(prefix):], validate=True)
    except binascii.Error as e:
        raise ValueError(f"public key is not base64: {e}") from None
    if len(raw) != 32:
        raise ValueError("public key must be 32 bytes")
    return raw


def public_from_private(private: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def generate_keypair() -> tuple[bytes, bytes]:
    """(private, public), 32 raw bytes each."""
    key = x25519.X25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return private, public_from_private(private)


def save_private_key(path: str, private: bytes) -> None:
    """Write an identity file: two # comment lines (what it is, and its public key),
    then the secret as one line of padded base64. The file must not exist (O_EXCL:
    an identity is never overwritten); it is created with mode 0600."""
    if len(private) != 32:
        raise ValueError("private key must be 32 bytes")
    text = (f"{IDENTITY_COMMENT}\n# public key {public_key_text(public_from_private(private))}\n"
            ).encode("ascii") + base64.b64encode(private) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # in case the umask removed owner bits
        view = memoryview(text)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def load_private_key(path: str) -> bytes:
    """Read an identity file (lines starting with # are comments, one line holds the
    base64 of the 32-byte secret); refuses a file that group or others can read or
    write, and one that is not a regular file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if mode & 0o077:
            raise PermissionError(f"{path} has mode {mode:04o}; expected 0600 "
                                  f"(an identity file is a secret: chmod 600 {path})")
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        lines = [line.strip() for line in data.decode("ascii").splitlines()]
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not an identity file (not ASCII text)") from None
    keys = [line for line in lines if line and not line.startswith("#")]
    if len(keys) != 1:
        raise ValueError(f"{path}: an identity file holds one line of base64 besides # "
                         f"comments, found {len(keys)}")
    try:
        private = base64.b64decode(keys[0], validate=True)
    except binascii.Error as e:
        raise ValueError(f"{path}: not a base64 private key: {e}") from None
    if len(private) != 32:
        raise ValueError(f"{path}: private key must be 32 bytes")
    return private


# ---------------------------------------------------------------- identities, pins

#: The first line of an identity file this module writes.
IDENTITY_COMMENT = "# eaxchat identity: an X25519 secret key. Keep it private (mode 0600)."

#: Where the relay keys a client pinned are kept, as chat keeps them.
DEFAULT_KNOWN_RELAYS = "~/.config/eaxchat/known_relays"


class Identity:
    """A member's identity on this device: an X25519 key pair. Its repr shows only
    the public key; the secret never leaves this object except to the handshake."""

    __slots__ = ("_private", "public")

    def __init__(self, private: bytes):
        if len(private) != 32:
            raise ValueError("an identity's secret is 32 bytes")
        self._private = bytes(private)
        #: The public key's 32 bytes.
        self.public: bytes = public_from_private(self._private)

    @classmethod
    def load(cls, path) -> "Identity":
        """The identity in the file at `path` (see load_private_key)."""
        return cls(load_private_key(os.fspath(path)))

    @property
    def public_key(self) -> str:
        """The public key as the operator adds it: "x25519:" and base64."""
        return public_key_text(self.public)

    @property
    def fingerprint(self) -> str:
        """The public key's fingerprint, "SHA256:...", as ssh prints one."""
        return fingerprint(self.public)

    def __repr__(self) -> str:
        return f"<eaxsession.Identity {self.public_key}>"


def generate_identity(path) -> str:
    """Creates a new identity file at `path` (mode 0600, never over an existing
    file) and returns its public key text, "x25519:...", for the relay's operator."""
    private, public = generate_keypair()
    save_private_key(os.fspath(path), private)
    return public_key_text(public)


def relay_address(host: str, port: int) -> str:
    """How a relay is named in known_relays: HOST:PORT ([HOST]:PORT for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KnownRelays:
    """The relay keys this client pinned: a text file of `HOST:PORT x25519:BASE64`
    lines (# comments and blank lines skipped), chat's known_relays format. A line
    that is not of that form is an error, never skipped: a damaged file must not
    turn a pinned relay into an unknown one. The first line for an address is its
    pin."""

    def __init__(self, path=None):
        self.path = os.path.expanduser(os.fspath(path or DEFAULT_KNOWN_RELAYS))

    def find(self, address: str) -> tuple[bytes, int] | None:
        """(the pinned key, its line number), or None when `address` has no pin."""
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return None
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            try:
                if len(fields) != 2:
                    raise ValueError("expected HOST:PORT x25519:BASE64")
                key = parse_public_key(fields[1])
            except ValueError as e:
                raise ValueError(f"{self.path} line {number}: {e}") from None
            if fields[0] == address:
                return key, number
        return None

    def get(self, address: str) -> bytes | None:
        """The key pinned for `address`, or None."""
        found = self.find(address)
        return None if found is None else found[0]

    def add(self, address: str, public: bytes) -> None:
        """Pins `public` for `address`: appends a line, creating the file (0600) and
        its directory (0700) if need be."""
        if not address or any(ch.isspace() for ch in address):
            raise ValueError(f"a relay address has no spaces: {address!r}")
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{address} {public_key_text(public)}\n".encode("ascii"))
        finally:
            os.close(fd)


# ---------------------------------------------------------------- a client's connection

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
