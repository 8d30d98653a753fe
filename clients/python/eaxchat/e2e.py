"""End-to-end rooms (MLS, RFC 9420) for the Python client: the group's
state machine, driven by the relay's ``eaxchat/1`` events, over the
``eaxchat_mls`` binding (PyO3 over the Rust crate ``eaxchat-e2e``, so all
of MLS is openmls; nothing here encrypts or parses MLS itself).

:class:`E2eLayer` sits between the receive thread and the event queue:
each plaintext goes through :meth:`E2eLayer.handle`, which acts on the
group events (``mls``, ``mls-ok``, ``mls-refused``, ``mls-add``,
``mls-remove``, ``keypackages``, ``groupinfo``) and hands back what the user sees
instead: decrypted messages as ``msg`` events with ``"e2e": true``, a
message it cannot open (sent before this device joined) as a ``msg``
event with ``"unreadable"`` saying why, ``e2e-group`` notices when the
group changes, ``key-change`` warnings from the pins, ``e2e-error`` for
what went wrong. The protocol is docs/protocol.md ("End-to-end rooms").

Per room, at most one commit of ours is in flight; the relay takes the
first commit of an epoch and refuses the rest. What is still wanted
(members to add, to remove, texts to send) is kept and retried after
each answer: removals first (the relay refuses messages until they are
committed, and they are committed only when there is something to send),
then adds once the KeyPackages came, then the texts. A device in an
end-to-end room without its group waits for a member online to add it
(a Welcome); with none online it joins by External Commit from the
GroupInfo the relay keeps (:data:`EXTERNAL_JOIN_AFTER`,
:mod:`eaxchat.e2e_external`).

A commit made on an earlier connection whose answer never came is
settled by the room's history (:mod:`eaxchat.e2e_resume`).

This module owns the group's driving; the socket and sealing are
:mod:`eaxchat.client`'s. It never prints.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

from .e2e_external import External
from .e2e_resume import SETTLE_AFTER, Resume, _event
from .events import parse_event

#: KeyPackages uploaded after each ``/hello`` (the relay keeps 16 per device).
KEY_PACKAGES_PER_CONNECT = 3

#: Texts kept per room until the next commit, to send again if the relay
#: refused them (a removal was pending).
_SENT_KEPT = 256

#: The reason shown for a message sent before this device joined.
BEFORE_JOINED = "sent before you joined"

#: How long a device in an end-to-end room without its group waits for a
#: member online to add it before it joins by External Commit.
EXTERNAL_JOIN_AFTER = 3.0

#: Bytes one of the plaintexts the layer acts on holds (others pass unparsed).
_MARKERS = (b'"mls', b'"keypackages"', b'"groupinfo"', b'"myrooms"', b'"welcome"',
            b"KeyPackage kept", b"has no GroupInfo")

_GROUP_KINDS = frozenset((b"mls", b"mls-ok", b"mls-refused", b"mls-add", b"mls-remove",
                          b"keypackages", b"groupinfo"))


def load_binding() -> Any:
    """The ``eaxchat_mls`` module, or an ImportError saying how to build it."""
    try:
        import eaxchat_mls
    except ImportError as error:
        raise ImportError(
            "end-to-end rooms need the eaxchat_mls binding: pip install maturin, then"
            f" maturin develop -m crates/e2e-py/Cargo.toml (or pip install crates/e2e-py): {error}"
        ) from error
    return eaxchat_mls


def default_state_dir(host: str, port: int, name: str, identity: Any = None) -> Path:
    """Where a device's MLS state lives unless ``e2e_dir=`` is given:
    beside an identity given as a path (``IDENTITY.python-e2e/``: not
    ``chat``'s ``IDENTITY.e2e/``, this is another device), else
    ``$XDG_STATE_HOME/eaxchat/e2e/HOST:PORT/NAME`` (``~/.local/state``)."""
    if isinstance(identity, (str, Path)):
        return Path(f"{identity}.python-e2e")
    home_state = os.path.join(os.path.expanduser("~"), ".local", "state")
    base = os.environ.get("XDG_STATE_HOME") or home_state
    return Path(base) / "eaxchat" / "e2e" / f"{host}:{port}" / name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class _Room:
    """What this device still wants done in one end-to-end room."""

    creating: bool = False  # our GroupInfo made the group, if the relay takes it
    stale_create: bool = False  # a Welcome came first: the answer to our GroupInfo is moot
    # Our commit in flight: ("add", welcome) or ("remove", name).
    pending: Optional[Tuple[str, Any]] = None
    add: Set[str] = field(default_factory=set)
    remove: Set[str] = field(default_factory=set)
    outbox: List[str] = field(default_factory=list)
    sent: List[str] = field(default_factory=list)  # texts sent in this epoch, in order
    bounced: int = 0  # of those, how many the relay refused (a removal was pending)


class E2eLayer(External, Resume):
    """One device's end-to-end rooms on one connection.

    ``send`` sends one plaintext to the relay (the client's, serialised);
    ``state_dir`` holds the device (its MLS key and groups) and its pins.
    Every method may be called from any thread: one lock covers the
    groups and what is wanted."""

    def __init__(self, mls: Any, state_dir: Union[str, Path], name: str,
                 send: Callable[[bytes], None]) -> None:
        self._mls = mls
        self._state = Path(state_dir)
        self.name = name
        self._send = send
        self._lock = threading.RLock()
        self._devices: Any = None  # opened on first use (see wake)
        self._pins: Any = None
        self._rooms: Dict[str, _Room] = {}
        self._e2e_rooms: Set[str] = set()
        self._packages: Dict[str, List[bytes]] = {}  # name -> KeyPackages fetched
        self._asked: Set[str] = set()  # names whose /keypackages is on its way
        self._uploads = 0  # "KeyPackage kept" notices still to swallow
        self._timers: Dict[str, threading.Timer] = {}  # rooms waiting to join by External Commit
        self._asked_info: Set[str] = set()  # rooms whose /groupinfo is on its way
        # Rooms whose commit from an earlier connection is not settled yet.
        self._settling: Dict[str, threading.Timer] = {}
        self.settle_after = SETTLE_AFTER
        self._closed = False
        self.external_after = EXTERNAL_JOIN_AFTER
        """Seconds to wait for a Welcome before joining by External Commit."""
        self.refusals = 0
        """How many of this device's commits the relay refused (another won)."""

    # -- what the client calls ------------------------------------------------

    @property
    def used_before(self) -> bool:
        """Whether this device's state directory exists (it has met an
        end-to-end room before): then it wakes right after ``/hello``."""
        return (self._state / "device").exists()

    @property
    def awake(self) -> bool:
        """Whether the device is open and its KeyPackages were uploaded."""
        return self._devices is not None

    def wake(self, send: bool = True) -> List[bytes]:
        """Opens the device (made on first use) and uploads fresh
        KeyPackages, once per connection: with ``/hello`` for a device
        used before, else before the first ``/join`` or on the first sign
        of an end-to-end room. Until then the layer sends nothing and
        writes nothing. With ``send=False`` the ``/keypackage`` frames are
        returned for the caller to send (with ``/hello``), not sent."""
        with self._lock:
            if self._devices is not None:
                return []
            self._state.mkdir(parents=True, exist_ok=True, mode=0o700)
            devices = self._mls.E2eRooms(str(self._state / "device"), self.name)
            self._pins = self._mls.Pins(str(self._state / "pins"))
            self._devices = devices
            self._e2e_rooms.update(devices.rooms())
            packages = devices.key_packages(KEY_PACKAGES_PER_CONNECT)
            self._uploads += len(packages)
            frames = [f"/keypackage {_b64(package)}".encode() for package in packages]
            if not send:
                return frames
            for frame in frames:
                self._send(frame)
            return []

    def joining(self, room: str) -> None:
        """``/join ROOM --e2e`` was sent: make the group if the relay has none."""
        self.wake()
        with self._lock:
            self._e2e_rooms.add(room)
            if self._devices.has_room(room):
                return
            state = self._room(room)
            state.creating = True
            try:
                info = self._devices.create(room)
            except self._mls.E2eError:
                state.creating = False
                raise
            self._send_mls(room, info)

    def close(self) -> None:
        """Stops waiting to join any group (the connection is closing)."""
        with self._lock:
            self._closed = True
            for timer in [*self._timers.values(), *self._settling.values()]:
                timer.cancel()
            self._timers.clear()
            self._settling.clear()

    def is_e2e(self, room: str) -> bool:
        """Whether ``room`` is end-to-end, as far as this device knows."""
        with self._lock:
            return room in self._e2e_rooms

    def say(self, room: str, text: str) -> None:
        """Queues ``text`` for ``room``'s group and sends what can go now."""
        self.wake()
        with self._lock:
            self._room(room).outbox.append(text)
            self._drive(room)

    def verify(self, name: str) -> str:
        """The safety number of this member and ``name``, over the device
        keys pinned for each (this device's own key always counts)."""
        with self._lock:
            if self._devices is None:
                raise ValueError("this device has met no end-to-end room yet")
            own = set(self._pins.keys(self.name)) | {bytes(self._devices.signature_key)}
            theirs = self._pins.keys(name)
            if not theirs:
                raise ValueError(f"no device of {name} seen in an end-to-end room yet")
            return self._mls.safety_number((self.name, sorted(own)), (name, list(theirs)))

    def members(self, room: str) -> List[Tuple[str, bytes]]:
        """``(name, device key)`` of the group in ``room`` (empty: no group)."""
        with self._lock:
            if self._devices is None or not self._devices.has_room(room):
                return []
            return [(n, bytes(k)) for n, k in self._devices.members(room)]

    def epoch(self, room: str) -> Optional[int]:
        """The group's epoch in ``room`` (``None``: no group on this device)."""
        with self._lock:
            if self._devices is None or not self._devices.has_room(room):
                return None
            return self._devices.epoch(room)

    @property
    def devices(self) -> Any:
        """The binding's ``E2eRooms`` (``None`` until :meth:`wake`)."""
        return self._devices

    # -- what the relay sends ---------------------------------------------------

    def handle(self, plaintext: bytes) -> List[bytes]:
        """What the user sees of one plaintext the relay sent: group events
        are acted on and replaced by what they mean (often nothing);
        anything else passes as it came. A group event that is malformed
        or does not open becomes an ``e2e-error``; the connection goes on."""
        if not any(marker in plaintext for marker in _MARKERS):
            return [plaintext]  # no JSON parse for the ordinary messages
        event = parse_event(plaintext)
        kind = event.kind.encode()
        if kind == b"myrooms" or kind == b"welcome":
            e2e = event.data.get("e2e")
            if isinstance(e2e, list) and e2e:
                self.wake()
                with self._lock:
                    for room in e2e:
                        if isinstance(room, str):
                            self._e2e_rooms.add(room)
                            self._await_group(room)
                            self._settle_later(room)
            return [plaintext]
        if kind in _GROUP_KINDS:
            self.wake()
        with self._lock:
            if kind == b"notice" and self._uploads and event.text.startswith("* KeyPackage kept"):
                self._uploads -= 1
                return []
            if kind == b"error" and self._no_group_info(event.room, event.text):
                return []
            if kind not in _GROUP_KINDS:
                return [plaintext]
            try:
                return self._group_event(event)
            except (self._mls.E2eError, ValueError) as error:  # ValueError: bad base64
                return [_event(kind="e2e-error", room=event.room, text=f"end-to-end: {error}")]

    def _group_event(self, event: Any) -> List[bytes]:
        d, room = event.data, event.room
        if event.kind == "keypackages":
            return self._key_packages(event.data.get("name"), d.get("packages"))
        if room is None:
            return []
        self._e2e_rooms.add(room)
        if event.kind == "mls-add":
            name = d.get("name")
            if isinstance(name, str) and name != self.name:
                self._room(room).add.add(name)
                self._drive(room)
            return []
        if event.kind == "mls-remove":
            name = d.get("name")
            if isinstance(name, str) and name != self.name:
                self._room(room).remove.add(name)
                self._drive(room)
            return []
        if event.kind == "mls-ok":
            return self._taken(room)
        if event.kind == "mls-refused":
            return self._refused(room, event.text)
        if event.kind == "groupinfo":
            return self._group_info(room, d.get("data"))
        data = d.get("data")
        if not isinstance(data, str):
            return []
        return self._group_message(room, event, base64.b64decode(data))

    def _key_packages(self, name: Any, packages: Any) -> List[bytes]:
        if not isinstance(name, str) or name not in self._asked:
            return []
        self._asked.discard(name)
        got = [base64.b64decode(p) for p in packages or [] if isinstance(p, str)]
        if got:
            self._packages[name] = got
        for room, state in self._rooms.items():
            if name in state.add:
                if not got:
                    state.add.discard(name)  # no device to add: nothing to wait for
                self._drive(room)
        return []

    def _taken(self, room: str) -> List[bytes]:
        state = self._room(room)
        if state.creating:
            state.creating = False
            self._drive(room)
            return [_event(kind="e2e-group", room=room, epoch=0,
                           text=f"* #{room} is end-to-end: you made its group")]
        if state.pending is None:
            return []
        what, detail = state.pending
        state.pending = None
        info = self._devices.accepted(room)
        self._new_epoch(room)
        if what == "add":
            self._send_mls(room, detail)
        self._send_mls(room, info)
        out = []
        if what == "external":
            out.append(_event(kind="e2e-group", room=room, epoch=self._devices.epoch(room),
                              text=f"* you are in #{room}'s group: you read from now on"))
        out += self._observe(room)
        self._settle(room)
        self._drive(room)
        return out

    def _refused(self, room: str, text: str) -> List[bytes]:
        state = self._room(room)
        if state.stale_create:
            state.stale_create = False
            return []
        if state.creating:
            # Someone made the group first: a Welcome brings us in, or, if
            # no member is online to add us, an External Commit.
            state.creating = False
            self._devices.forget(room)
            self._await_group(room)
            return []
        if state.pending is None:
            if "to be removed" in text:
                # The relay learnt of a removal before it read our message:
                # the removal is committed, then the message sent again.
                state.bounced += 1
                self._drive(room)
                return []
            return [_event(kind="e2e-error", room=room, text=text)]
        what, _ = state.pending
        state.pending = None
        self.refusals += 1
        if self._devices.is_pending(room):
            self._devices.refused(room)
        if what == "external":
            self._await_group(room)  # unless a Welcome comes first
        self._settle(room)
        self._drive(room)
        return []

    def _group_message(self, room: str, event: Any, data: bytes) -> List[bytes]:
        kind, _, _ = self._mls.peek(data)
        if kind == "welcome":
            return self._welcome(data)
        if not self._devices.has_room(room) or self._room(room).creating:
            # No group, or one made here that the relay has not taken yet
            # (the room's group may be another's, made before).
            return [self._unreadable(room, event, BEFORE_JOINED)] if kind == "application" else []
        try:
            got = self._devices.process(room, data)
        except self._mls.OwnPendingCommit:
            return self._taken_from_history(room)
        except (self._mls.Duplicate, self._mls.OwnMessage, self._mls.CommitPending):
            return []
        except self._mls.BeforeJoined:
            return [self._unreadable(room, event, BEFORE_JOINED)] if kind == "application" else []
        except self._mls.E2eError as error:
            if kind == "application":
                return [self._unreadable(room, event, str(error))]
            raise
        if got["kind"] == "application":
            out = []
            key = got["device_key"]
            if key is not None:
                out += self._pin(room, got["from"], bytes(key))
            # "/me …" is an action, as `chat` and the page encrypt one.
            text, kind = got["text"], "msg"
            if text.startswith("/me "):
                text, kind = text[len("/me "):], "action"
            return out + [_event(
                kind=kind, room=room, **{"from": got["from"]}, text=text, ts=event.ts,
                id=event.id, history=event.history, e2e=True)]
        if got["kind"] == "commit":
            out = []
            if got["removed_me"]:
                out.append(_event(kind="e2e-group", room=room, epoch=got["epoch"],
                                  text=f"* you were removed from #{room}'s group"))
                self._rooms.pop(room, None)
                self._devices.forget(room)  # it reads nothing more: no secrets kept
                return out
            added = ", ".join(n for n, _ in got["added"])
            removed = ", ".join(n for n, _ in got["removed"])
            change = "; ".join(filter(None, [added and f"added {added}",
                                             removed and f"removed {removed}"]))
            out.append(_event(kind="e2e-group", room=room, epoch=got["epoch"],
                              text=f"* {got['by']} changed #{room}'s group ({change or 'update'})"))
            out += self._observe(room)
            self._new_epoch(room)
            self._settle(room)
            self._drive(room)
            return out
        return []

    def _welcome(self, data: bytes) -> List[bytes]:
        try:
            room, epoch = self._devices.join_welcome(data)
        except self._mls.E2eError as error:
            return [_event(kind="e2e-error", room=None, text=f"a Welcome did not open: {error}")]
        self._e2e_rooms.add(room)
        state = self._room(room)
        if state.pending is not None and state.pending[0] == "external":
            state.pending = None  # the Welcome replaced our External Commit's group
        if state.creating:
            # The relay will refuse our GroupInfo (the group is another's):
            # that answer must not delete the group just joined.
            state.creating, state.stale_create = False, True
        # The Welcome may have used this device's last-resort KeyPackage.
        package = self._devices.key_packages(1)[0]
        self._uploads += 1
        self._send(f"/keypackage {_b64(package)}".encode())
        out = [_event(kind="e2e-group", room=room, epoch=epoch,
                      text=f"* you are in #{room}'s group: you read from now on")]
        out += self._observe(room)
        self._settle(room)
        self._drive(room)
        return out

    # -- the state machine -------------------------------------------------------

    def _room(self, room: str) -> _Room:
        return self._rooms.setdefault(room, _Room())

    def _send_mls(self, room: str, data: bytes) -> None:
        self._send(f"/mls {room} {_b64(data)}".encode())

    def _settle(self, room: str) -> None:
        """Drops wants the group already meets (another member's commit did it)."""
        state = self._rooms.get(room)
        if state is None or not self._devices.has_room(room):
            return
        # Adds stay until a fetch finds no device outside the group (a
        # name in the group may have a new device).
        state.remove &= {n for n, _ in self._devices.members(room)}

    def _drive(self, room: str) -> None:
        """Sends what can go now in ``room``: one commit (removals first,
        then adds whose KeyPackages came), else the queued texts."""
        state = self._room(room)
        if state.creating or state.pending is not None or not self._devices.has_room(room):
            return
        if self._devices.is_pending(room):
            return
        self._settle(room)
        if state.remove and (state.outbox or state.bounced):
            name = sorted(state.remove)[0]
            state.remove.discard(name)
            try:
                commit = self._devices.remove(room, name)
            except self._mls.NotMember:
                return self._drive(room)
            state.pending = ("remove", name)
            self._send_mls(room, commit)
            return
        for name in sorted(state.add):
            packages = self._packages.pop(name, None)
            if packages is None:
                if name not in self._asked:
                    self._asked.add(name)
                    self._send(f"/keypackages {name}".encode())
                continue
            packages = self._new_devices(room, name, packages)
            if not packages:
                state.add.discard(name)  # every device of theirs is in
                continue
            commit, welcome = self._devices.add(room, packages)
            state.pending = ("add", welcome)
            self._send_mls(room, commit)
            return
        while state.outbox:
            text = state.outbox.pop(0)
            self._send_mls(room, self._devices.encrypt(room, text))
            state.sent.append(text)
        del state.sent[:-_SENT_KEPT]

    def _new_devices(self, room: str, name: str, packages: List[bytes]) -> List[bytes]:
        """The KeyPackages of ``name``'s devices not in the group yet, one
        per device; any that does not check, or is another member's, is
        dropped (the relay is not trusted to hand out the right ones)."""
        seen = {bytes(k) for _, k in self._devices.members(room)}
        fresh = []
        for package in packages:
            try:
                key = bytes(self._mls.key_package_key(package, name))
            except self._mls.E2eError:
                continue
            if key not in seen:
                seen.add(key)
                fresh.append(package)
        return fresh

    def _new_epoch(self, room: str) -> None:
        """A commit was merged: the texts the relay refused in the epoch
        before (the last ones sent, in order) go out again first."""
        state = self._room(room)
        if state.bounced:
            state.outbox[:0] = state.sent[-state.bounced:]
        state.sent, state.bounced = [], 0

    def _observe(self, room: str) -> List[bytes]:
        """Pins every device of the group; a new key of a known name is a
        ``key-change`` warning in ``room``."""
        out: List[bytes] = []
        for name, key in self._devices.members(room):
            out += self._pin(room, name, bytes(key))
        return out

    def _pin(self, room: str, name: str, key: bytes) -> List[bytes]:
        if self._pins.observe(name, key) != "added":
            return []
        short = self._mls.hex(key)[:8]
        return [_event(kind="key-change", room=room, name=name, key=self._mls.hex(key),
                       text=f"! {name} has a new device (key {short}\u2026) \u2014 /verify {name}")]

    def _unreadable(self, room: str, event: Any, why: str) -> bytes:
        return _event(kind="msg", room=room, **{"from": event.sender}, text=f"[{why}]",
                      ts=event.ts, id=event.id, history=event.history, e2e=True, unreadable=why)
