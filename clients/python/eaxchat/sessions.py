"""Session mode's link to the ``eaxsession`` package, which holds the protocol (the
Noise handshake, session frames, identity files, pinned relay keys). It is
imported on first use only, so shared-key and members mode never need
noiseprotocol or cryptography.

This module owns loading ``eaxsession`` and the two identity helpers
eaxchat offers; the package's ``__getattr__`` passes on the session errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

#: What eaxchat passes on from eaxsession, loaded on first use (PEP 562), so
#: shared-key and members mode never need noiseprotocol or cryptography.
_SESSION_NAMES = ("Identity", "RelayKeyChanged", "Refused", "SessionError", "UnknownRelay")


def _sessions() -> Any:
    """The eaxsession package, or an ImportError that says what session mode needs."""
    try:
        import eaxsession
    except ImportError as error:
        raise ImportError(
            "session mode needs eaxsession/ next to the eaxchat package, and the noiseprotocol"
            f" and cryptography packages (pip install -r requirements.txt): {error}"
        ) from error
    return eaxsession



def generate_identity(path: Union[str, Path]) -> str:
    """Creates a session identity file at ``path``: a new X25519 secret key,
    mode 0600, never over an existing file. Returns its public key text
    (``x25519:...``) to give the relay's operator, who adds ``NAME
    x25519:...`` to the members file."""
    return _sessions().generate_identity(path)


def load_identity(path: Union[str, Path]) -> Any:
    """The identity (an ``eaxsession.Identity``: ``.public_key``,
    ``.fingerprint``) in the file at ``path``; refuses a file that group or
    others can read."""
    return _sessions().Identity.load(path)
