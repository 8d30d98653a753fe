"""Joining a group by External Commit, a part of :mod:`eaxchat.e2e`: a
device in an end-to-end room without its group waits
:attr:`external_after` seconds for a member online to add it (a
Welcome); with none, it asks ``/groupinfo ROOM`` and sends an External
Commit made from it (openmls checks the GroupInfo). A relay with no
GroupInfo for the room now (its last committer has not sent one yet)
answers so, and the device waits again.

:class:`External` is a part of :class:`eaxchat.e2e.E2eLayer` (its state
and lock are the layer's).
"""

from __future__ import annotations

import base64
import threading
from typing import Any, Dict, List, Optional, Set

from .e2e_resume import _event


class External:
    """Joining by External Commit; mixed into
    :class:`eaxchat.e2e.E2eLayer`, whose attributes it uses."""

    _timers: Dict[str, threading.Timer]
    _asked_info: Set[str]

    def _no_group_info(self, room: Optional[str], text: str) -> bool:
        """The relay's answer to our ``/groupinfo`` when it has none now:
        the device waits and asks again. ``True`` if it was that."""
        if room is None or room not in self._asked_info or "has no GroupInfo" not in text:
            return False
        self._asked_info.discard(room)
        self._await_group(room)
        return True

    def _await_group(self, room: str) -> None:
        """``room`` is end-to-end and this device has no group there: if
        no Welcome comes within :attr:`external_after` seconds, it asks for
        the GroupInfo and joins by External Commit."""
        if self._closed or room in self._timers or self._devices.has_room(room):
            return
        if self._room(room).creating:
            return
        timer = threading.Timer(self.external_after, self._ask_group_info, (room,))
        timer.daemon = True
        self._timers[room] = timer
        timer.start()

    def _ask_group_info(self, room: str) -> None:
        with self._lock:
            self._timers.pop(room, None)
            if self._closed or self._devices.has_room(room) or self._room(room).creating:
                return
            self._asked_info.add(room)
            try:
                self._send(f"/groupinfo {room}".encode())
            except Exception:  # the connection closed meanwhile: nothing to join
                self._asked_info.discard(room)

    def _group_info(self, room: str, data: Any) -> List[bytes]:
        if room not in self._asked_info or not isinstance(data, str):
            return []
        self._asked_info.discard(room)
        state = self._room(room)
        if self._devices.has_room(room) or state.creating or state.pending is not None:
            return []
        joined, commit = self._devices.join_external(base64.b64decode(data))
        if joined != room:
            self._devices.forget(joined)
            return [_event(kind="e2e-error", room=room,
                           text=f"the relay gave #{joined}'s GroupInfo for #{room}")]
        state.pending = ("external", None)
        self._send_mls(room, commit)
        return []
