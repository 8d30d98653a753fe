"""Key files and keys: the relay's shared key (hex on one line, as in
``relay.key``, ``--key-hex`` and ``EAXCHAT_KEY``) and a member's own key file
(``# eaxchat member key for NAME`` then the key), read as a
:class:`MemberKey`.

This module owns reading and checking keys; it never opens a connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

#: The comment line that opens a member's key file, before the member's name.
MEMBER_COMMENT = "# eaxchat member key for "


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
