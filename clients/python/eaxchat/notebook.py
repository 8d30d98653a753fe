"""The original notebook's shape: one connection per program, made by
:func:`connect` and used by :func:`send_message`, the names the notebook's
own code had.

This module owns that one default :class:`~eaxchat.Client`; it never
prints.
"""

from __future__ import annotations

from typing import Optional, Union

from .client import Client

_default: Optional[Client] = None


def connect(
    host: str, port: int, key: Optional[Union[bytes, bytearray, str]] = None, **options: object
) -> Client:
    """Connects a :class:`Client` and makes it the one
    :func:`send_message` uses, closing any earlier one. ``options`` are
    :class:`Client`'s keyword arguments (``member=True`` or ``identity=``
    among them); a :class:`MemberKey` connects in members mode, as
    :class:`Client` does."""
    global _default
    if _default is not None:
        _default.close()
    _default = Client(host, port, key, **options)  # type: ignore[arg-type]
    return _default


def send_message(message: str) -> None:
    """Sends ``message`` on the client made by :func:`connect`, like the
    original notebook's ``send_message``."""
    if _default is None:
        raise RuntimeError("call eaxchat.connect(host, port, key) first")
    _default.send(message)
