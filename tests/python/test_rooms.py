"""Rooms from Python (#28): a client with events sits in several rooms,
says things to a given one, leaves one, pages back through a room's
history, and sees topics; events carry their room.

The first tests need no relay: they parse events and check the plaintexts
the commands send, through :class:`Scripted`, a client whose relay is a
list. The rest run the real relay (members mode, so a member's rooms are
remembered), started by conftest's fixtures and stopped by PID.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import pytest

import eaxchat
from conftest import WAIT, MembersFile, Relay, wait_until, write_members
from eaxchat.commands import Commands

# -- without a relay ------------------------------------------------------------


class Scripted(Commands):
    """The commands of a client with events, over a scripted relay: what
    is sent is kept in :attr:`sent`, and ``recv`` hands out ``replies``."""

    def __init__(self, replies: Iterable[bytes] = ()) -> None:
        self.events = True
        self._init_commands()
        self.sent: List[bytes] = []
        self._replies = deque(replies)

    def send(self, message: Union[str, bytes, bytearray]) -> None:
        self.sent.append(message.encode() if isinstance(message, str) else bytes(message))

    def recv(self, timeout: Optional[float] = None) -> bytes:
        if not self._replies:
            raise TimeoutError("nothing more scripted")
        return self._replies.popleft()


def test_new_event_fields_are_parsed() -> None:
    said = eaxchat.parse_event(
        b'{"kind":"msg","room":"dev","from":"alice","text":"hi","ts":7,"history":false,"id":41}')
    assert (said.kind, said.room, said.sender, said.text, said.id) == ("msg", "dev", "alice", "hi", 41)
    page = eaxchat.parse_event(b'{"kind":"history","room":"dev","count":2,"page":true,"first":true}')
    assert (page.room, page.page, page.first) == ("dev", True, True)
    assert page.line() == "* the earlier 2 messages in #dev:"
    burst = eaxchat.parse_event(b'{"kind":"history","room":"dev","count":1,"page":false,"first":false}')
    assert (burst.page, burst.first, burst.line()) == (False, False, "* the last 1 message in #dev:")
    welcome = eaxchat.parse_event(
        b'{"kind":"welcome","protocol":"eaxchat/1","name":"alice","room":"dev",'
        b'"rooms":["lobby","dev"],"members":true}')
    assert (welcome.room, welcome.rooms) == ("dev", ("lobby", "dev"))
    mine = eaxchat.parse_event(b'{"kind":"myrooms","room":"dev","rooms":["lobby","dev"]}')
    assert (mine.kind, mine.room, mine.rooms) == ("myrooms", "dev", ("lobby", "dev"))
    assert mine.is_notice and mine.line() == "* your rooms: #lobby, #dev (now in #dev)"
    nowhere = eaxchat.parse_event(b'{"kind":"myrooms","room":null,"rooms":[]}')
    assert (nowhere.room, nowhere.rooms, nowhere.line()) == (None, (), "* your rooms: none")
    error = eaxchat.parse_event(b'{"kind":"error","room":"ops","text":"error: you are not in #ops"}')
    assert (error.room, error.text) == ("ops", "error: you are not in #ops")


@pytest.mark.parametrize("json, line", [
    (b'{"kind":"topic","room":"dev","from":"alice","text":"release friday","ts":9}',
     "* alice set the topic of #dev: release friday"),
    (b'{"kind":"topic","room":"dev","from":null,"text":"release friday","ts":9}',
     "* the topic of #dev: release friday"),
    (b'{"kind":"topic","room":"dev","from":null,"text":"","ts":9}', "* #dev has no topic"),
    (b'{"kind":"welcome","name":null,"room":null,"rooms":[]}',
     "* welcome, (no name: /nick NAME takes one), in no room (/join ROOM)"),
    (b'{"kind":"who","room":"dev","names":["alice","bob"],"unnamed":1}',
     "* here in #dev: alice, bob, and 1 with no name"),
    (b'{"kind":"who","room":"dev","names":[],"unnamed":2}', "* here in #dev: 2 with no name"),
])
def test_lines_read_as_the_relays_plain_text(json: bytes, line: str) -> None:
    event = eaxchat.parse_event(json)
    assert event.line() == line


def test_rooms_entries_are_parsed_leniently() -> None:
    event = eaxchat.parse_event(
        b'{"kind":"rooms","rooms":[{"room":"dev","count":3,"topic":"release friday",'
        b'"mode":"relay","joined":true},{"room":"old","count":2},{"count":5},"junk",'
        b'{"room":"odd","count":true,"topic":7,"joined":"yes"}]}')
    assert event.entries == (
        eaxchat.RoomEntry("dev", 3, "release friday", "relay", True),
        eaxchat.RoomEntry("old", 2, "", "", False),
        eaxchat.RoomEntry("odd", 0, "", "", False),
    )
    assert event.rooms == ("dev", "old", "odd")
    assert event.line() == "* rooms: *#dev (3), #old (2), #odd (0)"


def test_missing_or_mistyped_fields_read_as_empty() -> None:
    bare = eaxchat.parse_event(b'{"kind":"msg"}')
    assert (bare.room, bare.sender, bare.text, bare.ts, bare.id) == (None, None, "", None, None)
    assert (bare.history, bare.page, bare.first, bare.rooms, bare.entries) == (
        False, False, False, (), ())
    odd = eaxchat.parse_event(
        b'{"kind":"msg","id":-1,"ts":true,"page":1,"rooms":"dev","room":["dev"]}')
    assert (odd.id, odd.ts, odd.page, odd.rooms, odd.room) == (None, None, False, (), None)
    # Names and texts from the relay are made safe to show, in lists too.
    shown = eaxchat.parse_event(b'{"kind":"myrooms","room":"a\\u001b[2J","rooms":["b\\n",3]}')
    assert (shown.room, shown.rooms) == ("a\ufffd[2J", ("b\ufffd",))
    # A kind this version does not know is kept, shown by its text.
    newer = eaxchat.parse_event(b'{"kind":"poll","room":"dev","text":"lunch?"}')
    assert (newer.kind, newer.room, newer.line()) == ("poll", "dev", "lunch?")


@pytest.mark.parametrize("given, name", [("dev", "dev"), ("#Dev", "dev"), ("a.b-c_D9", "a.b-c_d9"),
                                         ("x" * 32, "x" * 32)])
def test_room_names_are_folded_as_the_relay_folds_them(given: str, name: str) -> None:
    assert eaxchat.room_name(given) == name


@pytest.mark.parametrize("bad", ["", "#", "two words", "dev\n", "x" * 33, "d\u00e9v", "##dev", "dev "])
def test_a_room_name_the_relay_would_refuse_is_refused_before_sending(bad: str) -> None:
    client = Scripted()
    with pytest.raises(ValueError, match="bad room name"):
        client.say("hi", room=bad)
    with pytest.raises(ValueError, match="bad room name"):
        client.join(bad)
    assert client.sent == []


def test_commands_carry_their_room() -> None:
    client = Scripted()
    client.say("hello")
    client.say("/etc/motd is a path")
    client.say("hello", room="#Dev")
    client.say("/etc/motd is a path", room="dev")
    client.say(" \t/leading blanks go", room="dev")
    client.say(b"bytes too", room="dev")
    client.join("#Ops")
    client.part()
    client.part("ops")
    client.me("waves")
    client.me("waves", room="ops")
    assert client.sent == [
        b"hello",
        b"//etc/motd is a path",
        b"/in dev hello",
        b"/in dev //etc/motd is a path",
        b"/in dev //leading blanks go",
        b"/in dev bytes too",
        b"/join ops",
        b"/part",
        b"/part ops",
        b"/me waves",
        b"/in ops /me waves",
    ]
    with pytest.raises(ValueError, match="nothing to say"):
        client.say(" \t", room="dev")  # "/in dev" alone would only switch rooms
    with pytest.raises(ValueError, match="needs some text"):
        client.topic("dev", " ")


def topic_reply(room: str, text: str) -> bytes:
    return (f'{{"kind":"topic","room":"{room}","from":"alice","text":"{text}","ts":1}}').encode()


def test_topic_shows_or_sets_and_waits_for_the_rooms_topic_event() -> None:
    client = Scripted([topic_reply("lobby", "elsewhere"), topic_reply("dev", "ship it")])
    assert client.topic("Dev", "ship it") == "ship it"
    assert client.sent == [b"/in dev /topic ship it"]
    assert client.recv_event().room == "lobby"  # read while waiting, kept
    client = Scripted([topic_reply("dev", "")])
    assert client.topic("dev") == ""
    assert client.sent == [b"/in dev /topic"]


def history_page(room: str, count: int, first: bool) -> bytes:
    return (f'{{"kind":"history","room":"{room}","count":{count},"page":true,'
            f'"first":{"true" if first else "false"}}}').encode()


def said(room: str, text: str, id: int, history: bool = True, kind: str = "msg") -> bytes:
    return (f'{{"kind":"{kind}","room":"{room}","from":"bob","text":"{text}","ts":1,'
            f'"history":{"true" if history else "false"},"id":{id}}}').encode()


@pytest.mark.parametrize("before, limit, sent", [
    (None, 50, b"/in dev /history"),
    (120, 50, b"/in dev /history 120 50"),
    (10, 5, b"/in dev /history 10 5"),
    (None, 7, b"/in dev /history 18446744073709551615 7"),
])
def test_history_asks_in_the_room(before: Optional[int], limit: int, sent: bytes) -> None:
    client = Scripted([history_page("dev", 0, True)])
    page = client.history("#dev", before=before, limit=limit)
    assert client.sent == [sent]
    assert (page.room, page.messages, page.first, page.oldest_id) == ("dev", [], True, None)


def test_history_takes_the_page_and_keeps_what_came_between() -> None:
    client = Scripted([
        said("lobby", "live elsewhere", 3, history=False),
        b'{"kind":"history","room":"dev","count":1,"page":false,"first":false}',  # a join's burst
        said("dev", "from the burst", 9),
        history_page("dev", 2, False),
        said("dev", "said live meanwhile", 10, history=False),
        said("dev", "older", 4),
        said("dev", "waves", 5, kind="action"),
        said("dev", "after the page", 11, history=False),
    ])
    page = client.history("dev", before=6, limit=2)
    assert [(m.kind, m.text, m.id) for m in page.messages] == [
        ("msg", "older", 4), ("action", "waves", 5)]
    assert (page.first, page.oldest_id) == (False, 4)
    kept = [client.recv_event(0).text for _ in range(4)]
    assert kept == ["live elsewhere", "", "from the burst", "said live meanwhile"]
    assert client.recv_event(0).text == "after the page"


def test_history_reports_a_refusal_and_a_short_page() -> None:
    client = Scripted([b'{"kind":"error","room":"ops","text":"error: you are not in #ops; /join ops"}'])
    with pytest.raises(ValueError, match="you are not in #ops"):
        client.history("ops")
    client = Scripted([history_page("dev", 3, False), said("dev", "one", 0), said("dev", "two", 1)])
    with pytest.raises(TimeoutError, match="2 of 3 history message"):
        client.history("dev", timeout=0.2)
    # Nothing read is lost: the page's start and the two messages stay.
    assert [client.recv_event(0).kind for _ in range(3)] == ["history", "msg", "msg"]
    with pytest.raises(ValueError, match="limit"):
        client.history("dev", limit=101)
    with pytest.raises(ValueError, match="before"):
        client.history("dev", before=-1)


def test_the_clients_rooms_follow_welcome_and_myrooms() -> None:
    client = Scripted()
    assert (client.rooms_joined, client.current_room) == ([], None)
    client._track_rooms(b'{"kind":"welcome","name":"alice","room":"dev","rooms":["lobby","dev"]}')
    assert (client.rooms_joined, client.current_room) == (["lobby", "dev"], "dev")
    client._track_rooms(said("dev", "welcome to myrooms, said as text", 1, history=False))
    assert client.rooms_joined == ["lobby", "dev"]
    client._track_rooms(b'{"kind":"myrooms","room":null,"rooms":[]}')
    assert (client.rooms_joined, client.current_room) == ([], None)
    # A room given to a method goes as /in, which makes it current at the
    # relay, which does not say so: the client keeps it, past the myrooms
    # answering a join sent before.
    client._track_rooms(b'{"kind":"myrooms","room":"dev","rooms":["lobby","dev"]}')
    client.join("ops")
    client.say("hi", room="lobby")
    assert client.current_room == "lobby"
    client._track_rooms(b'{"kind":"myrooms","room":"ops","rooms":["lobby","dev","ops"]}')
    assert client.current_room == "lobby"
    client.say("not one of mine", room="elsewhere")  # refused by the relay: nothing moves
    assert client.current_room == "lobby"
    client.part("lobby")
    client._track_rooms(b'{"kind":"myrooms","room":"ops","rooms":["dev","ops"]}')
    assert (client.rooms_joined, client.current_room) == (["dev", "ops"], "ops")
    # A relay from before rooms names its one room in the welcome only.
    client._track_rooms(b'{"kind":"welcome","name":null,"room":"lobby","members":false}')
    assert (client.rooms_joined, client.current_room) == (["lobby"], "lobby")


# -- against the relay ------------------------------------------------------------

CHAT = ["--history", "100"]


class Members:
    """A members relay serving ``names`` (static member keys, which the
    Python client speaks), and connections to it with events."""

    def __init__(self, bins, start_relay: Callable[..., Relay], directory: Path,
                 names: Sequence[str], extra: Sequence[str] = CHAT) -> None:
        self.file = MembersFile(bins.relay, directory, names)
        self.start_relay = start_relay
        self.extra = list(extra)
        self.relay = self.start()
        self.opened: List[eaxchat.Client] = []

    def start(self) -> Relay:
        relay = self.start_relay(members=self.file.path, extra=self.extra)
        relay.wait_for_log("members mode:")
        return relay

    def connect(self, name: str, rooms: Optional[List[str]] = None) -> eaxchat.Client:
        """A connection of ``name`` with events, once the relay has said
        which rooms it is in (``rooms``, when given)."""
        client = eaxchat.Client(self.relay.host, self.relay.port,
                                eaxchat.load_key(self.file.key_files[name]), events=True)
        self.opened.append(client)
        wait_until(lambda: client.rooms_joined, f"{name}'s welcome")
        if rooms is not None:
            in_rooms(client, rooms)
        return client

    def close(self) -> None:
        for client in self.opened:
            client.close()


@pytest.fixture
def members(bins, start_relay, tmp_path) -> Callable[..., Members]:
    """``members(names, extra=CHAT)``: a members relay and its connections,
    closed at teardown (the relays are stopped by ``start_relay``)."""
    made: List[Members] = []

    def make(names: Sequence[str], extra: Sequence[str] = CHAT) -> Members:
        made.append(Members(bins, start_relay, tmp_path, names, extra))
        return made[-1]

    yield make
    for chat in made:
        chat.close()


def in_rooms(client: eaxchat.Client, rooms: List[str], current: Optional[str] = None) -> None:
    """Waits until the relay has told ``client`` it is in ``rooms`` (and
    that ``current`` is its current room, when given)."""
    wait_until(
        lambda: client.rooms_joined == rooms and current in (None, client.current_room),
        f"rooms {rooms} (now in {current}); the client has {client.rooms_joined}"
        f" (now in {client.current_room})",
    )


def messages(client: eaxchat.Client, count: int, quiet: float = 0.3) -> List[Tuple[str, ...]]:
    """The next ``count`` live messages and actions (room, sender, kind,
    text), then fails if another comes within ``quiet`` seconds."""
    got: List[Tuple[str, ...]] = []
    while len(got) < count:
        event = client.recv_event(WAIT)
        if event.kind in ("msg", "action") and not event.history:
            got.append((event.room, event.sender, event.kind, event.text))
    while True:
        try:
            event = client.recv_event(quiet)
        except TimeoutError:
            return got
        assert event.kind not in ("msg", "action"), f"one too many: {event}"


def next_event(client: eaxchat.Client, kind: str) -> eaxchat.Event:
    """The next event of ``kind`` (bounded: each read waits ``WAIT``)."""
    while True:
        event = client.recv_event(WAIT)
        if event.kind == kind:
            return event


def test_a_member_in_three_rooms_gets_exactly_each_rooms_messages(members) -> None:
    chat = members(["alice", "bob", "carol"])
    alice, bob, carol = (chat.connect(name, ["lobby"]) for name in ("alice", "bob", "carol"))
    alice.join("dev")
    alice.join("#Ops")
    bob.join("dev")
    carol.join("ops")
    carol.part("lobby")
    in_rooms(alice, ["lobby", "dev", "ops"], "ops")
    in_rooms(bob, ["lobby", "dev"], "dev")
    in_rooms(carol, ["ops"], "ops")

    bob.say("in the lobby", room="lobby")
    bob.say("/etc in dev", room="dev")
    bob.me("waves", room="dev")
    carol.say("in ops, to the current room")
    assert sorted(messages(alice, 4)) == [
        ("dev", "bob", "action", "waves"),
        ("dev", "bob", "msg", "/etc in dev"),
        ("lobby", "bob", "msg", "in the lobby"),
        ("ops", "carol", "msg", "in ops, to the current room"),
    ]
    alice.say("to dev only", room="dev")
    alice.say("to ops only", room="ops")
    alice.say("to the lobby", room="lobby")
    # A room given makes it current: text without one goes there next.
    assert alice.current_room == "lobby"
    alice.say("to the lobby again")
    assert messages(bob, 3) == [("dev", "alice", "msg", "to dev only"),
                                ("lobby", "alice", "msg", "to the lobby"),
                                ("lobby", "alice", "msg", "to the lobby again")]
    assert messages(carol, 1) == [("ops", "alice", "msg", "to ops only")]


def test_part_stops_delivery_at_once(members) -> None:
    chat = members(["alice", "bob"])
    alice, bob = chat.connect("alice", ["lobby"]), chat.connect("bob", ["lobby"])
    alice.join("dev")
    bob.join("dev")
    in_rooms(alice, ["lobby", "dev"])
    in_rooms(bob, ["lobby", "dev"])
    alice.part("dev")
    in_rooms(alice, ["lobby"], "lobby")
    bob.say("after alice left", room="dev")
    bob.say("still here", room="lobby")
    assert messages(alice, 1) == [("lobby", "bob", "msg", "still here")]

    alice.say("into a room left behind", room="dev")
    refused = next_event(alice, "error")
    assert re.search(r"not in #?dev", refused.text), refused
    alice.part()  # the current room: the lobby, the only one left
    in_rooms(alice, [], None)
    alice.say("to no room")
    assert next_event(alice, "error").text.startswith("error: you are in no room; /join one")
    assert messages(bob, 0) == []


def test_a_members_rooms_follow_it_to_each_connection_and_back(members) -> None:
    chat = members(["alice", "bob"])
    alice = chat.connect("alice", ["lobby"])
    alice.join("dev")
    alice.join("ops")
    alice.part("lobby")
    in_rooms(alice, ["dev", "ops"], "ops")
    # A second connection of the same member comes in where the member is.
    phone = chat.connect("alice", ["dev", "ops"])
    phone.join("extra")
    in_rooms(phone, ["dev", "ops", "extra"], "extra")
    in_rooms(alice, ["dev", "ops", "extra"])
    bob = chat.connect("bob", ["lobby"])
    bob.join("extra")
    in_rooms(bob, ["lobby", "extra"])
    bob.say("to both of alice's", room="extra")
    assert messages(alice, 1) == messages(phone, 1) == [("extra", "bob", "msg", "to both of alice's")]
    alice.close()
    phone.close()
    # Reconnecting: the same rooms, the same current room.
    again = chat.connect("alice", ["dev", "ops", "extra"])
    assert again.current_room == "extra"
    bob.say("welcome back", room="extra")
    assert messages(again, 1) == [("extra", "bob", "msg", "welcome back")]


def test_a_topic_is_set_shown_and_listed(members) -> None:
    chat = members(["alice", "bob", "carol"])
    alice, bob, carol = (chat.connect(name, ["lobby"]) for name in ("alice", "bob", "carol"))
    for client in (alice, bob):
        client.join("dev")
        in_rooms(client, ["lobby", "dev"])
    assert alice.topic("dev") == ""
    assert alice.topic("dev", "release friday") == "release friday"
    announced = next_event(bob, "topic")
    assert (announced.room, announced.sender, announced.text) == ("dev", "alice", "release friday")
    assert bob.topic("dev") == "release friday"
    with pytest.raises(ValueError, match="too long"):
        bob.topic("dev", "x" * 301)
    with pytest.raises(ValueError, match="not in #?dev"):
        carol.topic("dev")

    listed = {entry.room: entry for entry in carol.rooms()}
    assert listed["dev"] == eaxchat.RoomEntry("dev", 2, "release friday", "relay", False)
    assert listed["lobby"] == eaxchat.RoomEntry("lobby", 3, "", "relay", True)
    assert [(e.room, e.joined) for e in alice.rooms()] == [("lobby", True), ("dev", True)]
    # Joining shows the topic.
    carol.join("dev")
    shown = next_event(carol, "topic")
    assert (shown.room, shown.text) == ("dev", "release friday")


def walk_back(client: eaxchat.Client, room: str, limit: int) -> List[eaxchat.HistoryPage]:
    """Pages back through ``room``'s history, ``limit`` at a time, until
    the page that holds its first message."""
    pages: List[eaxchat.HistoryPage] = []
    before = None
    for _ in range(100):
        page = client.history(room, before=before, limit=limit)
        pages.append(page)
        if page.first:
            return pages
        assert page.messages, "an empty page that is not the first"
        before = page.oldest_id
    pytest.fail(f"no first page after {len(pages)} pages")


def assert_whole_history(pages: List[eaxchat.HistoryPage], said: List[str], limit: int) -> None:
    """The pages, newest first, hold every message said once, in order,
    ``limit`` a page but the last."""
    walked = [m for page in reversed(pages) for m in page.messages]
    assert [m.id for m in walked] == list(range(len(said)))
    assert [m.text for m in walked] == said
    assert all(m.history and m.room == "dev" and m.sender == "alice" for m in walked)
    assert [len(page.messages) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert [page.first for page in pages] == [False] * (len(pages) - 1) + [True]


def say_many(speaker: eaxchat.Client, listener: eaxchat.Client, count: int) -> List[str]:
    """``speaker`` says ``count`` numbered messages in #dev; returns them
    once ``listener`` got them all (so the relay has them)."""
    said = [f"message {n}" for n in range(count)]
    for text in said:
        speaker.say(text, room="dev")
    assert [m[3] for m in messages(listener, count)] == said
    return said


def test_history_walks_back_to_the_first_message(members) -> None:
    chat = members(["alice", "bob"])
    alice, bob = chat.connect("alice", ["lobby"]), chat.connect("bob", ["lobby"])
    for client in (alice, bob):
        client.join("dev")
        in_rooms(client, ["lobby", "dev"])
    said = say_many(alice, bob, 23)
    assert_whole_history(walk_back(bob, "dev", 5), said, 5)
    everything = bob.history("dev")
    assert ([m.text for m in everything.messages], everything.first) == (said, True)
    newest = bob.history("dev", limit=3)
    assert ([m.id for m in newest.messages], newest.first) == ([20, 21, 22], False)


def test_history_pages_come_from_the_log_past_what_memory_holds(members, tmp_path) -> None:
    log = ["--log", str(tmp_path / "log"), "--log-key", str(tmp_path / "log.key")]
    chat = members(["alice", "bob"], extra=["--history", "5", *log])
    alice, bob = chat.connect("alice", ["lobby"]), chat.connect("bob", ["lobby"])
    for client in (alice, bob):
        client.join("dev")
        in_rooms(client, ["lobby", "dev"])
    said = say_many(alice, bob, 23)
    assert_whole_history(walk_back(bob, "dev", 4), said, 4)
    # After a restart the ids are the same (the room's history is rebuilt
    # from the log), and bob is back in his rooms (kept beside the members file).
    chat.relay.terminate()
    chat.relay = chat.start()
    again = chat.connect("bob", ["lobby", "dev"])
    assert_whole_history(walk_back(again, "dev", 7), said, 7)


def test_rooms_over_sessions(bins, start_relay, tmp_path) -> None:
    """The same API on a session relay (``identity=``): rooms remembered
    per member, a room given per message, a history page."""
    relay_identity = tmp_path / "relay.identity"
    eaxchat.generate_identity(relay_identity)
    identities = {name: tmp_path / f"{name}.identity" for name in ("alice", "bob")}
    write_members(tmp_path / "members.txt", "".join(
        f"{name} {eaxchat.generate_identity(path)}\n" for name, path in identities.items()))
    relay = start_relay(extra=["--identity", str(relay_identity), *CHAT],
                        members=tmp_path / "members.txt")

    def connect(name: str) -> eaxchat.Client:
        client = eaxchat.Client(relay.host, relay.port, identity=identities[name],
                                known_relays=tmp_path / "known_relays", events=True)
        wait_until(lambda: client.rooms_joined, f"{name}'s welcome")
        return client

    with connect("alice") as alice, connect("bob") as bob:
        for client in (alice, bob):
            client.join("dev")
            in_rooms(client, ["lobby", "dev"], "dev")
        alice.say("in the lobby", room="lobby")
        alice.say("in dev", room="dev")
        assert messages(bob, 2) == [("lobby", "alice", "msg", "in the lobby"),
                                    ("dev", "alice", "msg", "in dev")]
        page = bob.history("dev")
        assert ([(m.id, m.text) for m in page.messages], page.first) == ([(0, "in dev")], True)
        with connect("bob") as again:
            in_rooms(again, ["lobby", "dev"])
