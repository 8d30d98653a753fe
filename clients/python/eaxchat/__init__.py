"""eaxchat client for Python and notebooks: talk to an eaxchat relay.

One package, one dependency (PyCryptodome). It speaks the relay's wire
format: each message is one line, ``base64(nonce || tag || ciphertext)``
followed by ``\\n``, sealed with ``AES.new(key, AES.MODE_EAX)`` and
``encrypt_and_digest`` under the key the relay was given (16, 24 or 32
bytes, usually handed around as hex in the relay's ``relay.key`` file).

Typical use::

    import eaxchat
    with eaxchat.Client("127.0.0.1", 8080, eaxchat.load_key("relay.key")) as chat:
        chat.send("hello")
        print(chat.recv_text(timeout=10))

A background thread reads the socket, as the original notebook's did, with
a :class:`FrameReader`: however TCP cuts or joins the frames, with or
without newlines, each message comes out once and in order. Each
message that opens is handed to ``on_message(plaintext_bytes)`` when given,
else put on a queue that :meth:`Client.recv` reads. A frame that does not
open (wrong key, or tampered with) is never shown as text: it is reported
as an :class:`AuthenticationError` (to ``on_error``, or raised by
:meth:`Client.recv`) and the connection is closed, as the relay itself
closes a client that sends one. So is a frame whose nonce repeats one of
the last 65,536 accepted on the connection (:class:`ReplayedFrame`): a
frame sent twice is a replay, never shown twice.

A relay with members (``relay --members FILE``) gives each person their own
key file, ``# eaxchat member key for NAME`` then the key in hex. Its
:func:`load_key` returns a :class:`MemberKey`, and a :class:`Client` made
with one (or with ``member=True``) runs in members mode: it sends one empty
message as soon as it connects, which identifies the member to the relay
(and is never relayed), and the relay stamps every message with the
member's name, so there is nothing to prefix.

A relay has rooms, history and commands (``/join ROOM``, ``/who``,
``/msg NAME TEXT``, ...; a message starting with ``/`` is a command, ``//``
sends a literal ``/``). ``Client(..., events=True)`` asks the relay for its
structured events (``/hello eaxchat/1``): each message then arrives as an
:class:`Event` from :meth:`Client.recv_event`, telling a message from a
notice and history from live, with its room, sender and time. Without it
the relay sends plain text lines, which is what the original notebook's
code reads. :meth:`Client.join`, :meth:`Client.who`, :meth:`Client.rooms`,
:meth:`Client.msg`, :meth:`Client.me` and :meth:`Client.nick` send the
commands; :meth:`Client.say` sends text, escaping a leading ``/``.

With events a client can be in several rooms at once: :meth:`Client.join`
adds one, :meth:`Client.part` leaves one, ``say(text, room="dev")`` says
it there (as ``/in dev TEXT``), :meth:`Client.topic` shows or sets a
room's topic, :meth:`Client.history` pages back through a room's messages
(a :class:`HistoryPage`), and every event carries its room.
:attr:`Client.rooms_joined` and :attr:`Client.current_room` follow what the
relay says. Without a room, everything goes to the current room, as
before.

A relay with sessions (``relay --members FILE`` with public keys) is joined
with an identity instead of a key: ``Client(host, port,
identity="alice.identity")`` runs a Noise handshake on connecting (see
the ``eaxsession`` package, which it then needs, with ``noiseprotocol`` and
``cryptography``) and seals and opens every frame under that session's own
keys, each frame only once and in order. :func:`generate_identity` makes the
identity file (mode 0600) and returns the public key to give the relay's
operator. The relay's key is pinned: given as ``relay_key=``, else read from
``known_relays`` (``~/.config/eaxchat/known_relays``), else trusted on first
use and added there; a relay whose key changed is always refused
(:class:`RelayKeyChanged`, naming both fingerprints).

This package owns the client side of the wire format only; it never prints.
One module per concern:

- :mod:`eaxchat.errors`: the exceptions a connection reports;
- :mod:`eaxchat.keys`: key files, shared and member keys;
- :mod:`eaxchat.cipher`: sealing and opening one frame, the replay window;
- :mod:`eaxchat.reader`: where frames end in a stream, however TCP cuts it;
- :mod:`eaxchat.events`: safe text and the ``eaxchat/1`` events;
- :mod:`eaxchat.sessions`: session mode's link to ``eaxsession``;
- :mod:`eaxchat.e2e`: end-to-end rooms, the MLS group driven from the
  relay's events over the ``eaxchat_mls`` binding (when installed);
- :mod:`eaxchat.commands`: the relay's commands as :class:`Client`
  methods, waiting for replies, the client's rooms;
- :mod:`eaxchat.client`: :class:`Client`, its socket and receive thread;
- :mod:`eaxchat.notebook`: :func:`connect` and :func:`send_message`, the
  original notebook's names.

This file only gathers their public names (and passes the session errors
on from ``eaxsession``), so ``import eaxchat`` works as it always did.
"""

from __future__ import annotations

from typing import Any

# The private names are gathered too, as the one-file module had them:
# tests reach a few (``eaxchat._NonceWindow``).
from .cipher import (
    DEFAULT_MAX_FRAME,
    NONCE_LEN,
    TAG_LEN,
    _append_opened,
    _decode,
    _NonceWindow,
    _open_decoded,
    _OwnFrame,
    _seal_with_nonce,
    max_plaintext_len,
    open_frame,
    seal,
)
from .client import _READ_SIZE, Client
from .commands import DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE, HistoryPage, room_name
from .errors import AuthenticationError, ConnectionClosed, ReplayedFrame
from .events import _MESSAGE_KINDS, PROTOCOL, Event, RoomEntry, parse_event, safe_text
from .keys import MEMBER_COMMENT, MemberKey, load_key, parse_key
from .notebook import connect, send_message
from .reader import (
    FrameReader,
    _omac,
    _open_run,
    _padding_end,
    _SessionReader,
    _split_decoded,
    _TagScan,
)
from .sessions import _SESSION_NAMES, _sessions, generate_identity, load_identity

__all__ = [
    "AuthenticationError",
    "Client",
    "ConnectionClosed",
    "DEFAULT_HISTORY_PAGE",
    "DEFAULT_MAX_FRAME",
    "Event",
    "FrameReader",
    "generate_identity",
    "HistoryPage",
    "load_identity",
    "MAX_HISTORY_PAGE",
    "MEMBER_COMMENT",
    "MemberKey",
    "ReplayedFrame",
    "RoomEntry",
    "room_name",
    "connect",
    "load_key",
    "max_plaintext_len",
    "open_frame",
    "PROTOCOL",
    "parse_event",
    "parse_key",
    "safe_text",
    "seal",
    "send_message",
]


def __getattr__(name: str) -> Any:
    if name in _SESSION_NAMES:
        return getattr(_sessions(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
