"""End-to-end rooms in the Python client (clients/python/eaxchat/e2e.py over
the eaxchat_mls binding, crates/e2e-py) against the real relay in session
mode: two clients talk, a later member cannot read what came before, a
member who leaves is removed before anyone sends again, two commits of one
epoch converge, a restart keeps the groups going, and the relay's log and
memory never hold a plaintext.

The binding is built and installed by scripts/test (debug, in the
workspace's target); without it these tests are skipped, saying so.
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import pytest

from conftest import WAIT, Relay, wait_until, write_members

import eaxchat

try:
    import eaxchat_mls as mls
except ImportError as error:  # scripts/test builds it; a bare pytest may not have
    pytest.skip(f"the eaxchat_mls binding is not installed (scripts/test builds and installs it"
                f" from crates/e2e-py; or maturin develop -m crates/e2e-py/Cargo.toml): {error}",
                allow_module_level=True)

NAMES = ("alice", "bob", "carol", "dave")


class E2eRelay:
    """A session relay (history, a message log) serving ``NAMES``, and
    end-to-end clients of it, each with its own MLS state directory."""

    def __init__(self, start_relay: Callable[..., Relay], directory: Path) -> None:
        self.dir = directory
        self.relay_identity = directory / "relay.identity"
        eaxchat.generate_identity(self.relay_identity)
        self.identities = {name: directory / f"{name}.identity" for name in NAMES}
        self.members = directory / "members.txt"
        # Bob has a second device (its own identity) for the new-device test.
        self.second_bob = directory / "bob-second.identity"
        write_members(self.members, "".join(
            f"{name} {eaxchat.generate_identity(path)}\n"
            for name, path in self.identities.items())
            + f"bob {eaxchat.generate_identity(self.second_bob)}\n")
        self.log_dir = directory / "log"
        self.log_key = directory / "log.key"
        self._start_relay = start_relay
        self.relay = self.start()

    def start(self) -> Relay:
        return self._start_relay(
            extra=["--identity", str(self.relay_identity), "--history", "100",
                   "--log", str(self.log_dir), "--log-key", str(self.log_key)],
            members=self.members)

    def connect(self, name: str, e2e: bool = True) -> eaxchat.Client:
        client = eaxchat.Client(self.relay.host, self.relay.port, identity=self.identities[name],
                                known_relays=self.dir / "known_relays", events=True, e2e=e2e,
                                e2e_dir=self.dir / f"{name}-e2e")
        wait_until(lambda: client.rooms_joined, f"{name}'s welcome")
        return client


@pytest.fixture
def e2e(start_relay, tmp_path) -> E2eRelay:
    return E2eRelay(start_relay, tmp_path)


def next_event(client: eaxchat.Client, match: Callable[[eaxchat.Event], bool], what: str,
               seen: Optional[List[eaxchat.Event]] = None) -> eaxchat.Event:
    """The next event ``match`` takes, within ``WAIT`` seconds in all; the
    events before it go to ``seen``."""
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {what} within {WAIT} s (saw {[e.line() for e in seen or []]})")
        try:
            event = client.recv_event(left)
        except TimeoutError:
            continue
        if match(event):
            return event
        if seen is not None:
            seen.append(event)


def e2e_message(client: eaxchat.Client, text: str, seen=None) -> eaxchat.Event:
    return next_event(client, lambda e: e.kind == "msg" and e.text == text,
                      f"{client.name}'s end-to-end message {text!r}", seen)


def in_group(client: eaxchat.Client, room: str, names: Sequence[str]) -> None:
    """Waits until ``client``'s group in ``room`` holds exactly ``names``."""
    wait_until(lambda: sorted(n for n, _ in client.e2e.members(room)) == sorted(names),
               f"{client.name}'s group in #{room} to be {sorted(names)}")


def alice_and_bob(e2e: E2eRelay):
    alice = e2e.connect("alice")
    alice.join("dev", e2e=True)
    next_event(alice, lambda e: e.kind == "e2e-group" and e.room == "dev", "alice's new group")
    bob = e2e.connect("bob")
    bob.join("dev", e2e=True)
    next_event(bob, lambda e: e.kind == "e2e-group" and "you are in" in e.text, "bob's Welcome")
    in_group(alice, "dev", ["alice", "bob"])
    return alice, bob


def test_two_python_clients_talk_in_an_end_to_end_room(e2e) -> None:
    """Alice makes #dev end-to-end, bob is added by her client, both read
    each other; the safety numbers match; the relay refuses plaintext there."""
    alice, bob = alice_and_bob(e2e)
    with alice, bob:
        assert alice.e2e.epoch("dev") == bob.e2e.epoch("dev") == 1
        alice.say("hello bob, only you can read this", room="dev")
        got = e2e_message(bob, "hello bob, only you can read this")
        assert (got.sender, got.room, got.e2e, got.unreadable) == ("alice", "dev", True, "")
        bob.say("/and this starts with a slash", room="dev")
        got = e2e_message(alice, "/and this starts with a slash")
        assert (got.sender, got.e2e) == ("bob", True)
        alice.me("waves", room="dev")
        got = next_event(bob, lambda e: e.kind == "action", "alice's action")
        assert (got.sender, got.text, got.e2e) == ("alice", "waves", True)
        assert got.line() == "* alice waves"
        number = alice.verify("bob")
        assert re.fullmatch(r"\d{5}( \d{5}){11}", number)
        assert bob.verify("alice") == number
        with pytest.raises(ValueError, match="no device of carol"):
            alice.verify("carol")
        with pytest.raises(ValueError, match="end-to-end"):
            alice.history("dev")
        # Group events that are damaged say so and change nothing.
        for data in ("not base64!", base64.b64encode(b"\x00\x01 not MLS").decode()):
            bad = f'{{"kind":"mls","room":"dev","from":"bob","data":"{data}","id":9}}'
            [shown] = alice.e2e.handle(bad.encode())
            assert eaxchat.parse_event(shown).kind == "e2e-error"
        assert alice.e2e.epoch("dev") == 1
        alice.send("/in dev this would be in the clear")
        refused = next_event(alice, lambda e: e.kind == "error", "the relay's refusal")
        assert "end-to-end" in refused.text


def test_a_later_member_cannot_read_what_was_said_before(e2e) -> None:
    alice, bob = alice_and_bob(e2e)
    with alice, bob:
        alice.say("said before carol came", room="dev")
        e2e_message(bob, "said before carol came")
        carol = e2e.connect("carol")
        with carol:
            carol.join("dev")  # a plain /join of an end-to-end room joins it too
            seen: List[eaxchat.Event] = []
            next_event(carol, lambda e: e.kind == "e2e-group" and "you are in" in e.text,
                       "carol's Welcome", seen)
            old = [e for e in seen if e.kind == "msg"]
            assert [(e.sender, e.unreadable, e.text, e.history) for e in old] == [
                ("alice", "sent before you joined", "[sent before you joined]", True)]
            assert not any("said before carol came" in e.text for e in seen)
            in_group(alice, "dev", ["alice", "bob", "carol"])
            in_group(bob, "dev", ["alice", "bob", "carol"])
            bob.say("now carol reads too", room="dev")
            for client in (alice, carol):
                assert e2e_message(client, "now carol reads too").sender == "bob"


def test_a_member_who_leaves_is_removed_and_reads_nothing_after(e2e) -> None:
    """Bob parts; alice's client sends before it hears so (its receive
    thread held), the relay refuses the message, her client commits bob's
    removal and sends it again; bob's own kept state opens neither."""
    alice, bob = alice_and_bob(e2e)
    dave = e2e.connect("dave", e2e=False)  # sees the room's ciphertext as it is
    with alice, bob, dave:
        dave.join("dev")
        wait_until(lambda: "dev" in dave.rooms_joined, "dave in #dev")
        with alice.e2e._lock:
            bob.part("dev")
            wait_until(lambda: "dev" not in bob.rooms_joined, "bob out of #dev")
            alice.say("after bob left", room="dev")
        in_group(alice, "dev", ["alice"])
        group = []
        while len(group) < 2:  # the removal, then the message
            event = next_event(dave, lambda e: e.kind == "mls" and not e.history, "a group message")
            group.append(base64.b64decode(event.data["data"]))
        assert [mls.peek(g)[0] for g in group] == ["commit", "application"]
        kept = bob.e2e.devices
        assert kept.epoch("dev") == 1
        assert kept.process("dev", group[0])["removed_me"] is True
        with pytest.raises(mls.E2eError):
            kept.process("dev", group[1])
        assert not any(e.kind == "msg" for e in drain(bob))


def test_with_no_member_online_a_device_joins_by_external_commit(e2e) -> None:
    """Alice makes #dev and leaves the relay; bob joins with nobody online
    to add him: after a short wait his client joins from the GroupInfo the
    relay keeps (External Commit). Back, alice's client reads his commit
    and his message from the room's history."""
    alice = e2e.connect("alice")
    with alice:
        alice.join("dev", e2e=True)
        next_event(alice, lambda e: e.kind == "e2e-group", "alice's new group")
        alice.say("while bob was away", room="dev")
    bob = e2e.connect("bob")
    with bob:
        bob.e2e.external_after = 0.5
        bob.join("dev", e2e=True)
        seen: List[eaxchat.Event] = []
        joined = next_event(bob, lambda e: e.kind == "e2e-group" and "you are in" in e.text,
                            "bob's External Commit taken", seen)
        assert joined.data["epoch"] == 1
        assert [(e.sender, e.unreadable) for e in seen if e.kind == "msg"] == [
            ("alice", "sent before you joined")]
        bob.say("bob came in alone", room="dev")
        alice = e2e.connect("alice")
        with alice:
            got = e2e_message(alice, "bob came in alone")
            assert (got.sender, got.e2e, got.history) == ("bob", True, True)
            in_group(alice, "dev", ["alice", "bob"])
            alice.say("welcome, bob", room="dev")
            assert e2e_message(bob, "welcome, bob").sender == "alice"


def drop_after_commit(client: eaxchat.Client, room: str) -> None:
    """Makes ``client`` shut its socket right after it sends a commit to
    ``room``: the relay takes the commit, and its answer is lost."""
    send = client.e2e._send

    def send_then_drop(line: bytes) -> None:
        send(line)
        word, _, rest = line.partition(b" ")
        to, _, data = rest.partition(b" ")
        if word == b"/mls" and to == room.encode() and mls.peek(base64.b64decode(data))[0] == "commit":
            client._shutdown_socket()

    client.e2e._send = send_then_drop


def test_a_commit_whose_answer_was_lost_is_merged_from_the_history(e2e) -> None:
    """Alice's client adds bob, but her connection goes right after the
    commit is sent: the relay takes it, and its mls-ok is lost. Her next
    connection (a new client, the same device) reads the commit back from
    the room's history, which the real relay sends after ``myrooms``: it is
    merged and the GroupInfo of epoch 1 goes up, so bob, whose Welcome was
    lost with it, joins by External Commit, having been told meanwhile
    that the relay had no GroupInfo (he waits and asks again). Before,
    alice's device kept the commit pending for ever."""
    alice = e2e.connect("alice")
    alice.join("dev", e2e=True)
    next_event(alice, lambda e: e.kind == "e2e-group", "alice's new group")
    drop_after_commit(alice, "dev")
    bob = e2e.connect("bob")
    with bob:
        bob.e2e.external_after = 0.3
        bob.join("dev", e2e=True)
        wait_until(lambda: alice.closed, "alice's connection to go after her commit")
        alice.close()
        assert e2e.relay.process.poll() is None
        time.sleep(1.0)  # bob asks for the GroupInfo meanwhile: the relay has none
        alice = e2e.connect("alice")
        with alice:
            taken = next_event(alice, lambda e: e.kind == "e2e-group"
                               and "earlier connection was taken" in e.text,
                               "alice's commit read back from the history")
            assert taken.data["epoch"] == 1
            next_event(bob, lambda e: e.kind == "e2e-group" and "you are in" in e.text,
                       "bob in the group by External Commit")
            alice.say("after the lost answer", room="dev")
            assert e2e_message(bob, "after the lost answer").sender == "alice"


def test_an_external_commit_whose_answer_was_lost_is_merged_by_the_next_client(e2e) -> None:
    """Bob joins #dev by External Commit with nobody online, but his
    connection goes right after the commit is sent: the relay takes it,
    and its mls-ok is lost. His next client (the same device; what the
    last one held in memory is gone) reads the commit back from the room's
    history: the device kept its bytes, so it is known as his and merged,
    and bob is in the group once. Before, it was dropped after the settling
    time and a second External Commit put his device in the group twice."""
    alice = e2e.connect("alice")
    with alice:
        alice.join("dev", e2e=True)
        next_event(alice, lambda e: e.kind == "e2e-group", "alice's new group")
    bob = e2e.connect("bob")
    bob.e2e.external_after = 0.3
    drop_after_commit(bob, "dev")
    bob.join("dev", e2e=True)
    wait_until(lambda: bob.closed, "bob's connection to go after his External Commit")
    bob.close()
    assert e2e.relay.process.poll() is None
    bob = e2e.connect("bob")
    with bob:
        bob.e2e.external_after = 0.3
        taken = next_event(bob, lambda e: e.kind == "e2e-group"
                           and "earlier connection was taken" in e.text,
                           "bob's External Commit read back from the history")
        assert taken.data["epoch"] == 1
        time.sleep(1.0)  # past the settling time and bob's wait to join
        alice = e2e.connect("alice")
        with alice:
            in_group(alice, "dev", ["alice", "bob"])
            bob.say("in once", room="dev")
            assert e2e_message(alice, "in once").sender == "bob"
            assert alice.e2e.devices.epoch("dev") == 1


def test_a_new_device_is_added_and_warned_about(e2e) -> None:
    """Bob connects a second device: alice's client adds it (only it: his
    first device is in already), shows `! bob has a new device`, and the
    safety number changes, the same on both sides."""
    alice, bob = alice_and_bob(e2e)
    with alice, bob:
        before = alice.verify("bob")
        second = eaxchat.Client(e2e.relay.host, e2e.relay.port, identity=e2e.second_bob,
                                known_relays=e2e.dir / "known_relays", events=True, e2e=True,
                                e2e_dir=e2e.dir / "bob-second-e2e")
        with second:
            next_event(second, lambda e: e.kind == "e2e-group" and "you are in" in e.text,
                       "the second device's Welcome")
            warning = next_event(alice, lambda e: e.kind == "key-change", "alice's warning")
            assert warning.room == "dev"
            assert warning.text.startswith("! bob has a new device (key ")
            assert warning.data["key"] == mls.hex(second.e2e.devices.signature_key)
            in_group(alice, "dev", ["alice", "bob", "bob"])
            assert alice.verify("bob") != before
            assert alice.verify("bob") == second.verify("alice")
            alice.say("to both of bob's devices", room="dev")
            for device in (bob, second):
                assert e2e_message(device, "to both of bob's devices").sender == "alice"


def drain(client: eaxchat.Client, seconds: float = 0.3) -> List[eaxchat.Event]:
    """The events ``client`` gets within ``seconds``."""
    got = []
    while True:
        try:
            got.append(client.recv_event(seconds))
        except TimeoutError:
            return got


def test_two_commits_for_one_epoch_converge(e2e) -> None:
    """Carol leaves; alice and bob both commit her removal at the same
    epoch (their receive threads held until both have): the relay takes
    one, the other client drops its own, reads the winner, and sends its
    message after it."""
    alice, bob = alice_and_bob(e2e)
    carol = e2e.connect("carol")
    with alice, bob, carol:
        carol.join("dev")
        next_event(carol, lambda e: e.kind == "e2e-group" and "you are in" in e.text, "Welcome")
        in_group(alice, "dev", ["alice", "bob", "carol"])
        in_group(bob, "dev", ["alice", "bob", "carol"])
        # Both were told to add carol: the loser's refusal can come after
        # carol is in, so wait until neither has a commit of its own out.
        for client in (alice, bob):
            wait_until(lambda c=client: c.e2e._rooms["dev"].pending is None,
                       f"{client.name}'s add of carol answered")
        # At most one add was refused.
        assert alice.e2e.refusals + bob.e2e.refusals <= 1
        refusals = alice.e2e.refusals + bob.e2e.refusals
        epoch = alice.e2e.epoch("dev")
        carol.part("dev")
        for client in (alice, bob):
            wait_until(lambda c=client: "carol" in c.e2e._rooms["dev"].remove,
                       f"{client.name} told to remove carol")
        with alice.e2e._lock, bob.e2e._lock:  # neither reads the other's commit yet
            alice.say("alice after carol", room="dev")
            bob.say("bob after carol", room="dev")
        assert e2e_message(bob, "alice after carol").sender == "alice"
        assert e2e_message(alice, "bob after carol").sender == "bob"
        assert alice.e2e.refusals + bob.e2e.refusals == refusals + 1
        assert alice.e2e.epoch("dev") == bob.e2e.epoch("dev") == epoch + 1
        assert alice.e2e.members("dev") == bob.e2e.members("dev")
        in_group(alice, "dev", ["alice", "bob"])


def test_a_relay_restart_mid_epoch_keeps_the_group(e2e) -> None:
    """The relay stops (SIGTERM) mid-epoch and starts again: its Delivery
    Service state (MEMBERS.e2e) and the devices' groups carry on, and the
    history replayed on joining opens nothing twice."""
    alice, bob = alice_and_bob(e2e)
    with alice, bob:
        alice.say("before the restart", room="dev")
        e2e_message(bob, "before the restart")
        e2e.relay.terminate()
    e2e.relay = e2e.start()
    alice, bob = e2e.connect("alice"), e2e.connect("bob")
    with alice, bob:
        assert alice.e2e.is_e2e("dev") and "dev" in alice.rooms_joined
        alice.say("after the restart", room="dev")
        assert e2e_message(bob, "after the restart").e2e
        bob.say("bob after the restart", room="dev")
        assert e2e_message(alice, "bob after the restart").sender == "bob"
        assert not [e for e in drain(alice) + drain(bob) if e.kind in ("e2e-error", "error")]


def test_the_relay_cannot_mark_its_own_text_as_end_to_end() -> None:
    """Only the client's layer sets ``e2e`` and ``unreadable``: the same
    fields in an event from the relay are dropped."""
    from eaxchat.client import _untrusted
    forged = b'{"kind":"msg","room":"dev","from":"alice","text":"hi","e2e":true,"unreadable":"x"}'
    event = eaxchat.parse_event(_untrusted(forged))
    assert (event.kind, event.text, event.e2e, event.unreadable) == ("msg", "hi", False, "")
    mine = b'{"kind":"myrooms","room":"dev","rooms":["dev"],"e2e":["dev"]}'
    assert _untrusted(mine) == mine


def writable_memory(pid: int) -> bytes:
    """The process's writable mappings (heap, stacks, data), read from
    /proc/PID/mem as root can."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError):
                continue  # a mapping that vanished or cannot be read (vvar)
    return b"".join(chunks)


def test_the_relay_never_holds_the_plaintext(e2e, bins) -> None:
    """Neither the relay's message log (read back with `relay log`, and as
    raw files) nor its memory holds an end-to-end text; a relayed room's
    text, as a control, is found in both."""
    secret = f"e2e-canary-{secrets.token_hex(8)}"
    control = f"relay-canary-{secrets.token_hex(8)}"
    alice, bob = alice_and_bob(e2e)
    with alice, bob:
        for i in range(3):
            alice.say(f"{secret} {i}", room="dev")
            e2e_message(bob, f"{secret} {i}")
        bob.say(f"{secret} reply", room="dev")
        e2e_message(alice, f"{secret} reply")
        bob.join("lobby")
        alice.say(control, room="lobby")
        next_event(bob, lambda e: e.kind == "msg" and e.text == control, "the control")
        memory = writable_memory(e2e.relay.process.pid)
        assert control.encode() in memory, "the memory scan finds a relayed text"
        assert secret.encode() not in memory
    e2e.relay.terminate()
    printed = subprocess.run(
        [str(bins.relay), "log", "--key", str(e2e.log_key), str(e2e.log_dir)],
        capture_output=True, text=True, timeout=WAIT, check=True).stdout
    assert control in printed, "the log holds the relayed room's text"
    assert printed.count("dev") >= 4 and secret not in printed
    raw = b"".join(p.read_bytes() for p in e2e.log_dir.rglob("*") if p.is_file())
    assert secret.encode() not in raw and control.encode() not in raw
