"""What a peer sent, made safe to show (:func:`safe_text`), and the
relay's structured events (``eaxchat/1``): :class:`Event`, the
:class:`RoomEntry` of a ``rooms`` listing, and :func:`parse_event`.

This module owns reading a plaintext as text or as an event; it never
sends, and never prints.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

#: The structured-events protocol this client speaks (``/hello eaxchat/1``).
PROTOCOL = "eaxchat/1"


def safe_text(data: bytes) -> str:
    """A peer's message as text that is safe to show: UTF-8 with invalid
    bytes replaced, and every control character (escape, carriage return,
    newline, the other C0 and C1 controls, DEL) shown as U+FFFD, so a peer
    cannot repaint or hijack a terminal or an output area."""
    text = data.decode("utf-8", errors="replace")
    return "".join("\ufffd" if unicodedata.category(ch) == "Cc" else ch for ch in text)


# -- structured events (eaxchat/1) --------------------------------------------

#: Event kinds that are something someone said; every other kind is a notice.
_MESSAGE_KINDS = ("msg", "action", "private")


@dataclass(frozen=True)
class RoomEntry:
    """One room of a ``rooms`` listing (:meth:`Client.rooms`).

    ``count`` is how many connections are in it, ``topic`` its topic (``""``
    for none), ``mode`` how the relay carries its messages (``"relay"``: it
    opens and reseals each one), ``joined`` whether you are in it. A field
    an older relay does not send reads as ``0``, ``""`` or ``False``."""

    room: str
    count: int = 0
    topic: str = ""
    mode: str = ""
    joined: bool = False


@dataclass(frozen=True)
class Event:
    """One thing the relay sent, as ``eaxchat/1`` describes it.

    ``kind`` is ``msg``, ``action``, ``private`` (something someone said),
    or a notice: ``welcome``, ``join``, ``leave``, ``nick``, ``history``
    (history follows), ``who``, ``rooms``, ``myrooms`` (the rooms you are
    in), ``topic``, ``notice``, ``error``; or ``text`` for a plain-text line
    from a relay not asked for events. ``room`` is the room it concerns
    (``None`` for a private message, or a reply about no room); ``sender``
    is the JSON ``from`` (``None`` for a shared-key connection with no
    name); ``history`` is true for messages sent as history (on joining, or
    a page asked for); ``id`` is a message's number in its room, which
    ``/history BEFORE`` takes. A ``history`` event's ``page`` is true for an
    answer to ``/history`` (false for the burst on joining), and its
    ``first`` true when nothing older is left to ask for. ``rooms`` are the
    room names a ``welcome`` or ``myrooms`` event lists (yours, in join
    order) or a ``rooms`` event lists; ``entries`` the ``rooms`` event's
    :class:`RoomEntry` rows. In an end-to-end room a message's ``e2e`` is
    true (the client decrypted it; the relay only carried ciphertext), and
    ``unreadable`` says why one could not be opened (``"sent before you
    joined"``; its text is that reason in brackets); the end-to-end layer
    adds notices of kinds ``e2e-group`` (the group changed),
    ``key-change`` (a new device key for a known name) and ``e2e-error``.
    ``data`` holds the whole object. Texts are
    safe to show (:func:`safe_text`); a field the relay did not send reads
    as empty, ``None`` or ``False``."""

    kind: str
    text: str = ""
    room: Optional[str] = None
    sender: Optional[str] = None
    ts: Optional[int] = None
    history: bool = False
    data: Dict[str, Any] = field(default_factory=dict)
    id: Optional[int] = None
    page: bool = False
    first: bool = False
    rooms: Tuple[str, ...] = ()
    entries: Tuple[RoomEntry, ...] = ()
    e2e: bool = False
    unreadable: str = ""

    @property
    def is_message(self) -> bool:
        """Whether someone said it (a message, an action, a private message)."""
        return self.kind in _MESSAGE_KINDS or self.kind == "text"

    @property
    def is_notice(self) -> bool:
        """Whether the relay says it: presence, replies, errors."""
        return not self.is_message

    def line(self) -> str:
        """One readable line, as the relay's plain text would show it."""
        d = self.data
        who = self.sender or "someone"
        if self.kind == "msg":
            return f"{who}: {self.text}" if self.sender else self.text
        if self.kind == "action":
            return f"* {who} {self.text}"
        if self.kind == "private":
            if d.get("echo"):
                return f"[private to {_clean(d.get('to')) or ''}] {self.text}"
            return f"[private] {who}: {self.text}"
        if self.kind in ("join", "leave"):
            verb = "joined" if self.kind == "join" else "left"
            return f"* {_clean(d.get('name'))} {verb} #{self.room} ({_count(d)} here)"
        if self.kind == "nick":
            return f"* {who} is now {_clean(d.get('to'))}"
        if self.kind == "history":
            count = _count(d)
            which = "earlier" if self.page else "last"
            return f"* the {which} {count} message{'' if count == 1 else 's'} in #{self.room}:"
        if self.kind == "who":
            parts = ", ".join(_strings(d.get("names")))
            unnamed = _count(d, "unnamed")
            if unnamed:
                parts += f"{', and ' if parts else ''}{unnamed} with no name"
            return f"* here in #{self.room}:{' ' if parts else ''}{parts}"
        if self.kind == "rooms":
            rooms = ", ".join(
                f"{'*' if r.joined else ''}#{r.room} ({r.count})" for r in self.entries)
            return f"* rooms: {rooms}"
        if self.kind == "myrooms":
            mine = ", ".join(f"#{room}" for room in self.rooms) or "none"
            now = f" (now in #{self.room})" if self.room else ""
            return f"* your rooms: {mine}{now}"
        if self.kind == "topic":
            if not self.text:
                return f"* #{self.room} has no topic"
            if self.sender:
                return f"* {self.sender} set the topic of #{self.room}: {self.text}"
            return f"* the topic of #{self.room}: {self.text}"
        if self.kind == "welcome":
            name = _clean(d.get("name")) or "(no name: /nick NAME takes one)"
            if self.room is None:
                return f"* welcome, {name}, in no room (/join ROOM)"
            return f"* welcome, {name} in #{self.room}"
        return self.text


def _clean(value: Any) -> Optional[str]:
    """A JSON string made safe to show; anything else is ``None``."""
    return safe_text(value.encode("utf-8")) if isinstance(value, str) else None


def _number(value: Any) -> Optional[int]:
    """A JSON whole number from 0 up; anything else (``true`` too) is ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _count(data: Dict[str, Any], key: str = "count") -> int:
    """``data[key]`` as a count, 0 when missing or not a number."""
    return _number(data.get(key)) or 0


def _strings(value: Any) -> List[str]:
    """The strings of a JSON list, made safe to show; other items are skipped."""
    if not isinstance(value, list):
        return []
    return [text for text in map(_clean, value) if text is not None]


def _room_entries(value: Any) -> Tuple[RoomEntry, ...]:
    """A ``rooms`` listing's rows; a row without a room name is skipped."""
    if not isinstance(value, list):
        return ()
    entries = []
    for row in value:
        room = _clean(row.get("room")) if isinstance(row, dict) else None
        if room is None:
            continue
        entries.append(RoomEntry(
            room=room,
            count=_count(row),
            topic=_clean(row.get("topic")) or "",
            mode=_clean(row.get("mode")) or "",
            joined=row.get("joined") is True,
        ))
    return tuple(entries)


def parse_event(plaintext: bytes) -> Event:
    """An ``eaxchat/1`` event from one plaintext; a plaintext that is not a
    JSON object with a ``kind`` (a plain-text line) is a ``text`` event.
    Lenient, as the relay's own client is: a missing or mistyped field reads
    as empty, ``None`` or ``False``, and a kind this version does not know
    is kept, shown by its text."""
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return Event("text", text=safe_text(plaintext))
    kind = data["kind"]
    entries = _room_entries(data.get("rooms")) if kind == "rooms" else ()
    rooms = tuple(entry.room for entry in entries) if kind == "rooms" else tuple(
        _strings(data.get("rooms")))
    return Event(
        kind=kind,
        text=_clean(data.get("text")) or "",
        room=_clean(data.get("room")),
        sender=_clean(data.get("from")),
        ts=_number(data.get("ts")),
        history=data.get("history") is True,
        data=data,
        id=_number(data.get("id")),
        page=data.get("page") is True,
        first=data.get("first") is True,
        rooms=rooms,
        entries=entries,
        e2e=data.get("e2e") is True,
        unreadable=_clean(data.get("unreadable")) or "",
    )
