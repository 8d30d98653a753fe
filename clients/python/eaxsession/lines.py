"""The handshake's line framing: a kind byte and its body in base64, at most
MAX_LINE bytes before the newline.

This module owns the line kinds (hello, welcome, invite join, refusal, the key
request and relay key lines of trust on first use, the short code's lines),
encoding and strictly decoding one line, and reading one from a stream.
"""

from __future__ import annotations

import base64
import binascii

from .errors import LineError, Refused


KIND_HELLO, KIND_WELCOME, KIND_INVITE, KIND_REFUSAL = 0x01, 0x02, 0x03, 0x7F
#: Trust on first use: a client with no pin asks (0x04, empty), the relay answers
#: with its static public key (0x05, 32 bytes, unauthenticated). Only these two
#: functions speak them: key_request_line() and decode_relay_key_line().
KIND_KEY_REQUEST, KIND_RELAY_KEY = 0x04, 0x05
MAX_LINE = 1024  # bytes of base64 before the "\n"
MAX_REFUSAL_TEXT = 512
#: Short invite codes: a SPAKE2 exchange before the invite join (_code_exchange).
KIND_CODE_START, KIND_CODE_REPLY = 0x06, 0x07
_KINDS = frozenset((KIND_HELLO, KIND_WELCOME, KIND_INVITE, KIND_REFUSAL, KIND_CODE_START))


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
