"""The relay keys a client pinned: a known_relays file, chat's format.

This module owns the file's default place, how a relay's address is written
in it (relay_address), and KnownRelays: finding a pin, strictly, and adding one.
"""

from __future__ import annotations

import os

from .keys import parse_public_key, public_key_text


#: Where the relay keys a client pinned are kept, as chat keeps them.
DEFAULT_KNOWN_RELAYS = "~/.config/eaxchat/known_relays"


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
