"""What a dropped connection leaves behind in :mod:`eaxchat.e2e`: a
commit this device made on an earlier connection whose answer never came
(openmls keeps it pending in the state directory). The room's history,
which the relay sends right after ``myrooms``, settles it: read back there
(:class:`eaxchat_mls.OwnPendingCommit`), the relay took it, so it is
merged and its GroupInfo goes up (its Welcome went with that connection:
whoever it added joins by External Commit); not read back within
:data:`SETTLE_AFTER`, it is dropped, and the room goes on.

:class:`Resume` is a part of :class:`eaxchat.e2e.E2eLayer` (its state and
lock are the layer's).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

from .errors import ConnectionClosed

#: How long after ``myrooms`` (the history follows it) a commit pending
#: from an earlier connection waits to be read back before it is dropped.
SETTLE_AFTER = 1.0


def _event(**fields: Any) -> bytes:
    """A plaintext the client's queue takes, as if the relay had sent it."""
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


class Resume:
    """Settling a commit pending from an earlier connection; mixed into
    :class:`eaxchat.e2e.E2eLayer`, whose attributes it uses."""

    _settling: Dict[str, threading.Timer]
    settle_after: float = SETTLE_AFTER

    def _taken_from_history(self, room: str) -> List[bytes]:
        """Our own pending commit, read back from the room: the relay took
        it. One made on an earlier connection is merged here and its
        GroupInfo goes up."""
        state = self._room(room)
        if state.pending is not None:
            return self._taken(room)
        timer = self._settling.pop(room, None)
        if timer is not None:
            timer.cancel()
        info = self._devices.accepted(room)
        self._new_epoch(room)
        self._send_mls(room, info)
        epoch = self._devices.epoch(room)
        out = [_event(kind="e2e-group", room=room, epoch=epoch,
                      text=f"* #{room}: your change to the group made on an earlier"
                           f" connection was taken (epoch {epoch})")]
        out += self._observe(room)
        self._settle(room)
        self._drive(room)
        return out

    def _settle_later(self, room: str) -> None:
        """``myrooms`` came: a commit pending on the device that this
        connection did not make is dropped unless the history that follows
        shows it within :attr:`settle_after` seconds."""
        if self._closed or room in self._settling or not self._devices.has_room(room):
            return
        state = self._room(room)
        if state.pending is not None or state.creating or not self._devices.is_pending(room):
            return
        timer = threading.Timer(self.settle_after, self._settle_lost, (room,))
        timer.daemon = True
        self._settling[room] = timer
        timer.start()

    def _settle_lost(self, room: str) -> None:
        with self._lock:
            self._settling.pop(room, None)
            if self._closed or self._room(room).pending is not None:
                return
            if not self._devices.has_room(room) or not self._devices.is_pending(room):
                return
            self._devices.refused(room)
            try:
                if self._devices.has_room(room):
                    self._drive(room)
                else:
                    self._await_group(room)  # an External Commit: join again
            except (ConnectionClosed, OSError):
                pass  # the connection closed meanwhile: the next one settles it
