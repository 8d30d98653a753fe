"""The relay's commands as :class:`~eaxchat.Client` methods, with rooms:
what each sends, how a reply is waited for, and the client's view of its
rooms (:attr:`Commands.rooms_joined`, :attr:`Commands.current_room`), kept
from the ``welcome`` and ``myrooms`` events as they arrive.

A client with structured events (``events=True``) can be in several rooms
at once: a text or command for a given room goes as ``/in ROOM …``, so the
wire carries the room and nothing depends on which room the relay thinks
is current. Without a room, text goes as it always did, to the current
room.

This module owns the plaintexts of commands, room names as the client
checks them (:func:`room_name`), and waiting for replies; sealing and the
socket are :mod:`eaxchat.client`'s. It never prints.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass
from time import monotonic as _monotonic
from typing import Any, Callable, List, Optional, Tuple, Union

from .events import Event, RoomEntry, _count, parse_event, safe_text

#: The most messages one :meth:`Commands.history` page holds (the relay's
#: ``MAX_HISTORY_PAGE``).
MAX_HISTORY_PAGE = 100

#: A :meth:`Commands.history` page's size when none is asked for.
DEFAULT_HISTORY_PAGE = 50

#: ``/history``'s ``BEFORE`` that means "the latest": no id reaches it.
_LATEST = 2**64 - 1

#: A room name as the relay takes it: 1 to 32 of ``A-Z a-z 0-9 _ - .``,
#: after an optional ``#``.
_ROOM_NAME = re.compile(r"#?([A-Za-z0-9_.\-]{1,32})")


def room_name(room: str) -> str:
    """``room`` as the relay names it: without its ``#``, in lowercase.
    Raises ``ValueError`` for a name the relay would refuse (1 to 32 of
    ``A-Z a-z 0-9 _ - .``), so a space can never move text into another
    room's command."""
    match = _ROOM_NAME.fullmatch(room) if isinstance(room, str) else None
    if match is None:
        raise ValueError(f"bad room name {room!r}: 1 to 32 of A-Z a-z 0-9 _ - . after an optional #")
    return match.group(1).lower()


def _text_bytes(text: Union[str, bytes]) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def _escaped(data: bytes) -> bytes:
    """Text the relay takes as text even when it starts with ``/``."""
    return b"/" + data if data.startswith(b"/") else data


@dataclass(frozen=True)
class HistoryPage:
    """One page of a room's history (:meth:`Commands.history`).

    ``messages`` are the ``msg`` and ``action`` events, oldest first, each
    with its ``id``; ``first`` is true when the oldest of them is the
    room's first message the relay still has: there is nothing older to
    ask for."""

    room: str
    messages: List[Event]
    first: bool

    @property
    def oldest_id(self) -> Optional[int]:
        """The oldest message's id, to pass as ``before=`` for the page
        before this one (``None`` for an empty page)."""
        return self.messages[0].id if self.messages else None


class Commands:
    """The relay's commands, for :class:`~eaxchat.Client` to inherit: it
    provides ``send``, ``recv`` and ``events``, calls :meth:`_init_commands`
    before its receive thread starts, and :meth:`_track_rooms` with each
    plaintext that thread takes.

    Methods that wait for a reply (:meth:`who`, :meth:`rooms`,
    :meth:`topic`, :meth:`history`) need ``events=True``; the events read
    while waiting stay, in order, for :meth:`recv_event`. They raise
    ``TimeoutError`` when no reply came within ``timeout`` seconds, and
    ``ValueError`` with the relay's text when it sent an ``error``."""

    # What the client provides.
    events: bool
    e2e: Any
    send: Callable[[Union[str, bytes, bytearray]], None]
    recv: Callable[[Optional[float]], bytes]

    def _init_commands(self) -> None:
        """Sets up the state kept here: call before the receive thread starts."""
        self._stash: "deque[Event]" = deque()  # events read while waiting for a reply
        self.e2e = None  # the end-to-end layer, set by the client when it has one
        self._rooms_lock = threading.Lock()
        self._rooms_joined: Tuple[str, ...] = ()
        self._current_room: Optional[str] = None
        # The room of the last /in sent since the last /join or /part: the
        # relay made it current without saying so.
        self._in_room: Optional[str] = None

    def recv_event(self, timeout: Optional[float] = None) -> Event:
        """The next :class:`~eaxchat.Event`, waiting as :meth:`recv` does
        (the events a reply was waited past come first, in order). Without
        ``events=True`` every line is a ``text`` event."""
        if self._stash:
            return self._stash.popleft()
        return parse_event(self.recv(timeout))

    # -- the client's rooms -------------------------------------------------

    @property
    def rooms_joined(self) -> List[str]:
        """The rooms this connection is in, in join order, as the relay last
        said (``welcome``, then a ``myrooms`` event after every join and
        part); empty before the ``welcome`` and without ``events=True``."""
        with self._rooms_lock:
            return list(self._rooms_joined)

    @property
    def current_room(self) -> Optional[str]:
        """The room text without a room goes to (``None``: in no room, or
        not told yet): the one the relay last said (``welcome``,
        ``myrooms``), or, after that, the last room of yours a method was
        given (it goes as ``/in ROOM``, which makes it current)."""
        with self._rooms_lock:
            return self._current_room

    def _track_rooms(self, plaintext: bytes) -> None:
        """Keeps :attr:`rooms_joined` and :attr:`current_room` from a
        ``welcome`` or ``myrooms`` event (called on the receive thread)."""
        if b"myrooms" not in plaintext and b"welcome" not in plaintext:
            return  # no JSON parse for the messages
        event = parse_event(plaintext)
        if event.kind == "myrooms":
            rooms = event.rooms
        elif event.kind == "welcome":
            # A relay before rooms names only the one room in its welcome.
            rooms = event.rooms if "rooms" in event.data else tuple(filter(None, [event.room]))
        else:
            return
        with self._rooms_lock:
            current = event.room
            if self._in_room in rooms:
                current = self._in_room  # sent after the join or part this answers
            else:
                self._in_room = None
            self._rooms_joined, self._current_room = rooms, current

    # -- sending -----------------------------------------------------------

    def _send_in(self, room: Optional[str], rest: bytes) -> None:
        """Sends ``rest`` (text or a command) to ``room`` as ``/in ROOM
        REST``, or as it is for ``room=None`` (the current room)."""
        if room is None:
            self.send(rest)
            return
        name = room_name(room)
        self.send(b"/in " + name.encode() + b" " + rest)
        with self._rooms_lock:
            if name in self._rooms_joined:
                self._current_room = self._in_room = name

    def _send_room_change(self, command: str) -> None:
        """Sends a ``/join`` or ``/part``: the ``myrooms`` event that answers
        it says the current room."""
        with self._rooms_lock:
            self._in_room = None
        self.send(command)

    def say(self, text: Union[str, bytes], room: Optional[str] = None) -> None:
        """Sends ``text`` as text, even if it starts with ``/`` (sent as
        ``//``, which the relay turns back into one ``/``): to ``room``
        (``/in ROOM TEXT``; one of yours, else the relay replies with an
        ``error``), which then is the current room, or with ``room=None``
        to the current room. Given a room, leading spaces and tabs are
        dropped (``/in`` takes the text after them) and a text of nothing
        else is refused (``ValueError``): ``/in ROOM`` alone only switches
        rooms."""
        data = _text_bytes(text)
        e2e_room = self._e2e_room(room)
        if e2e_room is not None:
            if not data.strip(b" \t"):
                raise ValueError("nothing to say: the text is empty or only spaces")
            self.e2e.say(e2e_room, data.decode("utf-8", errors="replace"))
            return
        if room is None:
            self.send(_escaped(data))
            return
        data = data.lstrip(b" \t")
        if not data:
            raise ValueError("nothing to say: the text is empty or only spaces")
        self._send_in(room, _escaped(data))

    def join(self, room: str, e2e: bool = False) -> None:
        """``/join ROOM``: enters ``room`` (made if new) and makes it the
        current room. With ``events=True`` the client stays in its other
        rooms too (up to 32), and gets the room's history, its ``topic``
        event if it has one, then a ``myrooms`` event; a client without
        events leaves its room for it. Raises ``ValueError`` for a name the
        relay would refuse.

        ``e2e=True`` (``/join ROOM --e2e``; needs the end-to-end layer)
        makes ``room`` end-to-end, or joins it if it is: a new room's group
        is made here; in an existing one another member adds this device
        (a Welcome follows), and it reads from then on."""
        name = room_name(room)
        if self.e2e is not None:
            self.e2e.wake()  # KeyPackages first: the room may be end-to-end
        if not e2e:
            self._send_room_change(f"/join {name}")
            return
        if self.e2e is None:
            raise RuntimeError(
                "end-to-end rooms need session mode, events=True and the eaxchat_mls binding")
        self._send_room_change(f"/join {name} --e2e")
        self.e2e.joining(name)

    def verify(self, name: str) -> str:
        """``/verify NAME``: the safety number of you and ``name`` (60
        digits in 12 groups of 5), to compare with theirs over another
        channel; the same on both sides while both see the same devices.
        Needs the end-to-end layer and a device of ``name`` seen in an
        end-to-end room."""
        if self.e2e is None:
            raise RuntimeError("verify needs the end-to-end layer (session mode, eaxchat_mls)")
        return self.e2e.verify(name)

    def _e2e_room(self, room: Optional[str]) -> Optional[str]:
        """The end-to-end room text for ``room`` goes to, if it is one."""
        if self.e2e is None:
            return None
        name = self.current_room if room is None else room_name(room)
        return name if name is not None and self.e2e.is_e2e(name) else None

    def part(self, room: Optional[str] = None) -> None:
        """``/part [ROOM]``: leaves ``room`` (``None``: the current room);
        nothing from it is delivered from then on. A ``myrooms`` event
        follows; the current room becomes the most recently joined one
        left, or none."""
        self._send_room_change("/part" if room is None else f"/part {room_name(room)}")

    def msg(self, name: str, text: str) -> None:
        """A private message to ``name``'s connections: ``/msg NAME TEXT``."""
        self.send(f"/msg {name} {text}")

    def me(self, action: str, room: Optional[str] = None) -> None:
        """``* NAME ACTION`` to ``room`` (``None``: the current room): ``/me ACTION``
        (in an end-to-end room, ``/me ACTION`` encrypted for the group)."""
        e2e_room = self._e2e_room(room)
        if e2e_room is not None:
            self.e2e.say(e2e_room, f"/me {action}")
            return
        self._send_in(room, f"/me {action}".encode("utf-8"))

    def nick(self, name: str) -> None:
        """Takes a name (shared-key relays only): ``/nick NAME``."""
        self.send(f"/nick {name}")

    # -- commands that wait for their reply -----------------------------------

    def who(self, timeout: float = 10.0, room: Optional[str] = None) -> List[str]:
        """The names in ``room`` (``None``: the current room): ``/who``."""
        self._send_in(room, b"/who")
        wanted = None if room is None else room_name(room)
        reply = self._wait_for(
            lambda e: e.kind == "who" and (wanted is None or e.room == wanted), "who", timeout)
        return [safe_text(str(name).encode()) for name in reply.data.get("names", [])]

    def rooms(self, timeout: float = 10.0) -> List[RoomEntry]:
        """``/rooms``: yours first (``joined``, in join order), then the
        other rooms with people in them, busiest first; each a
        :class:`RoomEntry` (``room``, ``count``, ``topic``, ``mode``,
        ``joined``)."""
        self.send("/rooms")
        return list(self._wait_for(lambda e: e.kind == "rooms", "rooms", timeout).entries)

    def topic(self, room: str, text: Optional[str] = None, timeout: float = 10.0) -> str:
        """``room``'s topic (``""``: none), or with ``text`` sets it first
        (at most 300 bytes, one line; anyone in the room may) and returns it
        as the relay announced it to the room. ``room`` must be one of
        yours."""
        name = room_name(room)
        if text is None:
            command = b"/topic"
        elif not text.strip(" \t"):
            raise ValueError("a topic needs some text")
        else:
            command = b"/topic " + text.encode("utf-8")
        self._send_in(name, command)
        reply = self._wait_for(lambda e: e.kind == "topic" and e.room == name, "topic", timeout)
        return reply.text

    def history(
        self,
        room: str,
        before: Optional[int] = None,
        limit: int = DEFAULT_HISTORY_PAGE,
        timeout: float = 10.0,
    ) -> HistoryPage:
        """One page of ``room``'s history: ``/in ROOM /history BEFORE LIMIT``.
        At most ``limit`` (0 to 100) messages with an id below ``before``
        (``None``: the latest), oldest first. Walk back with
        ``before=page.oldest_id`` until ``page.first``. ``timeout`` bounds
        the whole page; a page older than the relay's memory comes from its
        message log (``--log``)."""
        name = room_name(room)
        if self._e2e_room(name) is not None:
            raise ValueError(
                f"#{name} is end-to-end: its messages open once, as they arrive (MLS keeps no"
                " key to read them again), so there are no pages to read back")
        if not 0 <= limit <= MAX_HISTORY_PAGE:
            raise ValueError(f"limit is 0 to {MAX_HISTORY_PAGE}, not {limit}")
        if before is not None and not 0 <= before <= _LATEST:
            raise ValueError(f"before is a message id, not {before}")
        if before is None and limit == DEFAULT_HISTORY_PAGE:
            command = "/history"
        else:
            command = f"/history {_LATEST if before is None else before} {limit}"
        self._send_in(name, command.encode())
        deadline = _monotonic() + timeout
        start = self._wait_for(
            lambda e: e.kind == "history" and e.page and e.room == name, "history", timeout)
        mark = len(self._stash)
        try:
            messages = self._wait_for_all(
                lambda e: e.kind in ("msg", "action") and e.history and e.room == name,
                _count(start.data),
                "history message",
                max(deadline - _monotonic(), 0.0),
            )
        except (TimeoutError, ValueError):
            self._stash.insert(mark, start)  # a page given up on is kept whole
            raise
        return HistoryPage(name, messages, start.first)

    def _wait_for(self, match: Callable[[Event], bool], what: str, timeout: float) -> Event:
        """Waits for the next event ``match`` takes."""
        return self._wait_for_all(match, 1, what, timeout)[0]

    def _wait_for_all(
        self, match: Callable[[Event], bool], count: int, what: str, timeout: float
    ) -> List[Event]:
        """Waits, within ``timeout`` seconds in all, for the next ``count``
        events ``match`` takes; the events read meanwhile stay, in order,
        for :meth:`recv_event`. An ``error`` event raises ``ValueError``."""
        if not self.events:
            raise RuntimeError("waiting for a reply needs Client(..., events=True)")
        taken: List[Event] = []
        skipped: List[Event] = []
        read: List[Event] = []  # both, in the order read
        deadline = _monotonic() + timeout
        done = False
        try:
            while len(taken) < count:
                left = deadline - _monotonic()
                try:
                    if left <= 0:
                        raise TimeoutError
                    event = parse_event(self.recv(left))
                except TimeoutError:
                    raise TimeoutError(
                        f"{len(taken)} of {count} {what} replies within {timeout:.1f} s"
                    ) from None
                if event.kind == "error":
                    raise ValueError(event.text)
                read.append(event)
                (taken if match(event) else skipped).append(event)
            done = True
        finally:
            # Given up: every event read stays for recv_event, in order,
            # the matching ones too.
            self._stash.extend(skipped if done else read)
        return taken
