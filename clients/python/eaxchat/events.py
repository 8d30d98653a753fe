"""What a peer sent, made safe to show (:func:`safe_text`), and the
relay's structured events (``eaxchat/1``): :class:`Event` and
:func:`parse_event`.

This module owns reading a plaintext as text or as an event; it never
sends, and never prints.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

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
class Event:
    """One thing the relay sent, as ``eaxchat/1`` describes it.

    ``kind`` is ``msg``, ``action``, ``private`` (something someone said),
    or a notice: ``welcome``, ``join``, ``leave``, ``nick``, ``history``
    (history follows), ``who``, ``rooms``, ``notice``, ``error``; or
    ``text`` for a plain-text line from a relay not asked for events.
    ``sender`` is the JSON ``from`` (``None`` for a shared-key connection
    with no name); ``history`` is true for messages sent as history on
    joining; ``data`` holds the whole object. Texts are safe to show
    (:func:`safe_text`)."""

    kind: str
    text: str = ""
    room: Optional[str] = None
    sender: Optional[str] = None
    ts: Optional[int] = None
    history: bool = False
    data: Dict[str, Any] = field(default_factory=dict)

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
                return f"[private to {safe_text(str(d.get('to', '')).encode())}] {self.text}"
            return f"[private] {who}: {self.text}"
        if self.kind in ("join", "leave"):
            verb = "joined" if self.kind == "join" else "left"
            return f"* {d.get('name')} {verb} #{self.room} ({d.get('count')} here)"
        if self.kind == "nick":
            return f"* {who} is now {d.get('to')}"
        if self.kind == "history":
            return f"* the last {d.get('count')} messages in #{self.room}:"
        if self.kind == "who":
            names = ", ".join(d.get("names", []))
            unnamed = d.get("unnamed", 0)
            extra = f" ({unnamed} with no name)" if unnamed else ""
            return f"* here in #{self.room}: {names}{extra}"
        if self.kind == "rooms":
            rooms = ", ".join(f"#{r['room']} ({r['count']})" for r in d.get("rooms", []))
            return f"* rooms: {rooms}"
        if self.kind == "welcome":
            return f"* welcome, {d.get('name') or '(no name)'} in #{self.room}"
        return self.text


def parse_event(plaintext: bytes) -> Event:
    """An ``eaxchat/1`` event from one plaintext; a plaintext that is not a
    JSON object with a ``kind`` (a plain-text line) is a ``text`` event."""
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return Event("text", text=safe_text(plaintext))

    def clean(value: Any) -> Optional[str]:
        return safe_text(value.encode("utf-8")) if isinstance(value, str) else None

    return Event(
        kind=data["kind"],
        text=clean(data.get("text")) or "",
        room=clean(data.get("room")),
        sender=clean(data.get("from")),
        ts=data.get("ts") if isinstance(data.get("ts"), int) else None,
        history=data.get("history") is True,
        data=data,
    )
