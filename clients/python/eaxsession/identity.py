"""Identity files: a member's X25519 secret key on this device.

This module owns writing one (mode 0600, never over an existing file), reading
one (refusing a file that group or others can read), Identity (the key pair,
whose repr shows only the public key) and generate_identity().
"""

from __future__ import annotations

import base64
import binascii
import os
import stat

from .keys import fingerprint, generate_keypair, public_from_private, public_key_text


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


#: The first line of an identity file this module writes.
IDENTITY_COMMENT = "# eaxchat identity: an X25519 secret key. Keep it private (mode 0600)."


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
