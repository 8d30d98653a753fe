"""Members relays (``relay --members FILE``, the file made with the real
``relay members add``).

By default a new members file is a sessions file: the first test shows
``relay members add NAME --file F --key-out K`` writing the member's
identity to K and only its public key to F, and the Python client using K
to chat. The rest run the deprecated static-key mode (``--static-keys``),
which the original notebook client speaks, with the clients people have:
the original notebook client's code, unmodified, given a member's key; the
Python ``eaxchat.Client`` with a member's key file; and plain newline
sockets. Every message arrives stamped with its sender's member name,
whatever name it claims.

The notebook client is ``seed_notebook`` from ``test_seed_bursts.py``: the
seed report's ``encrypt``/``decrypt``/``send_message`` and receive loop as
printed, only parameterised with host, port and KEY (here a member's key
bytes).
"""

from __future__ import annotations

import re
import socket
import subprocess
from types import SimpleNamespace
from typing import Iterator, List

import pytest

import eaxchat
from conftest import WAIT, LineSocket, wait_until
from test_seed_bursts import open_line, seal_line, seed_notebook


@pytest.fixture
def notebooks() -> Iterator[callable]:
    """A factory of seed notebook clients with a given key; each socket is
    shut down and its receive thread joined (bounded) at teardown."""
    made: List[SimpleNamespace] = []

    def connect(relay, key: bytes) -> SimpleNamespace:
        notebook = seed_notebook(relay.host, relay.port, key)
        made.append(notebook)
        return notebook

    yield connect
    for notebook in made:
        try:
            notebook.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        notebook.sock.close()
        notebook.thread.join(WAIT)


@pytest.fixture
def clients() -> Iterator[callable]:
    """A factory of ``eaxchat.Client`` connections, all closed at teardown."""
    made: List[eaxchat.Client] = []

    def connect(relay, key, **options) -> eaxchat.Client:
        client = eaxchat.Client(relay.host, relay.port, key, timeout=WAIT, **options)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


def identified(relay, name: str, count: int = 1) -> None:
    """Waits (bounded) until ``count`` connections identified as ``name``."""
    relay.wait_for_log(f": identified as {name}\n", count)


def newline_member(relay, line_socket, name: str) -> LineSocket:
    """A raw newline client identified as ``name`` by an empty frame."""
    conn = line_socket(relay)
    conn.send(seal_line(relay.members_file.key(name), ""))
    identified(relay, name)
    return conn


def test_relay_members_add_makes_a_sessions_file_by_default(bins, start_relay, tmp_path):
    """Without ``--static-keys``, ``relay members add NAME --file F --key-out
    K`` on a new file makes a sessions file: K is the member's identity
    (mode 0600), F holds only its public key, and the Python client with K
    as its identity chats with another member so added."""
    members = tmp_path / "members.txt"
    for name in ("alice", "bob"):
        subprocess.run(
            [str(bins.relay.resolve()), "members", "add", name, "--file", str(members),
             "--key-out", str(tmp_path / f"{name}.secret")],
            check=True, timeout=WAIT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        assert (tmp_path / f"{name}.secret").stat().st_mode & 0o777 == 0o600
    alice = eaxchat.load_identity(tmp_path / "alice.secret")
    bob = eaxchat.load_identity(tmp_path / "bob.secret")
    assert members.stat().st_mode & 0o777 == 0o600
    assert members.read_text() == f"alice {alice.public_key}\nbob {bob.public_key}\n"
    relay = start_relay(members=members,
                        extra=["--identity", str(tmp_path / "relay.identity")])
    assert "session mode: 2 members (2 devices)" in relay.log()
    relay_key = re.search(r"relay identity (x25519:\S+)", relay.log()).group(1)
    with eaxchat.Client(relay.host, relay.port, identity=tmp_path / "bob.secret",
                        relay_key=relay_key, timeout=WAIT) as bob_client, \
            eaxchat.Client(relay.host, relay.port, identity=tmp_path / "alice.secret",
                           relay_key=relay_key, timeout=WAIT) as alice_client:
        alice_client.send("hello bob, from a default members file")
        assert bob_client.recv(WAIT) == b"alice: hello bob, from a default members file"


def test_the_members_file_is_made_by_relay_members_add(members_relay):
    """``relay members add --static-keys`` wrote a 0600 members file and a
    0600 key file per member, which ``load_key`` reads as that member's ``MemberKey``."""
    members = members_relay.members_file
    assert members.path.stat().st_mode & 0o777 == 0o600
    for name in ("alice", "bob"):
        key_file = members.key_files[name]
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = eaxchat.load_key(key_file)
        assert isinstance(key, eaxchat.MemberKey) and key.member == name
        assert bytes(key) == members.key(name)
    assert "members mode: 2 members" in members_relay.log()


def test_the_original_notebook_client_works_with_a_member_key(
    members_relay, notebooks, line_socket
):
    """The seed client's code with KEY = alice's key bytes: its first
    newline-less frame identifies it as alice, its messages reach a newline
    member stamped ``alice: ``, and what bob sends reaches it, one frame per
    read under alice's key, stamped ``bob: ``."""
    relay = members_relay
    bob = newline_member(relay, line_socket, "bob")
    notebook = notebooks(relay, relay.members_file.key("alice"))
    notebook.send_message("hello from the notebook")
    assert open_line(relay.members_file.key("bob"), bob.read_line()) == (
        "alice: hello from the notebook"
    )
    identified(relay, "alice")
    notebook.send_message("and again")
    assert open_line(relay.members_file.key("bob"), bob.read_line()) == "alice: and again"
    bob.send(seal_line(relay.members_file.key("bob"), "hi notebook"))
    wait_until(lambda: notebook.shown, "the notebook to show bob's message")
    assert notebook.shown == ["\n[chat] bob: hi notebook"]
    assert not notebook.died, f"the notebook's receive loop stopped: {notebook.died}"
    assert notebook.said[-2:] == ["You: hello from the notebook", "You: and again"]


def test_a_listen_only_client_with_a_member_key_file_receives_stamped_messages(
    members_relay, clients, line_socket
):
    """``eaxchat.Client`` with alice's key file, sending nothing: its empty
    frame identifies it (and reaches nobody), and bob's messages reach it
    stamped ``bob: ``."""
    relay = members_relay
    bob = newline_member(relay, line_socket, "bob")
    alice = clients(relay, eaxchat.load_key(relay.members_file.key_files["alice"]))
    assert alice.member
    identified(relay, "alice")
    bob.assert_nothing_within(0.3)  # the identify frame is never relayed
    bob.send(seal_line(relay.members_file.key("bob"), "hello alice"))
    assert alice.recv(WAIT) == b"bob: hello alice"
    bob.send(seal_line(relay.members_file.key("bob"), "bye"))
    assert alice.recv(WAIT) == b"bob: bye"
    assert alice.error is None


def test_a_member_cannot_send_as_another(members_relay, clients):
    """alice typing ``bob: hi`` arrives as ``alice: bob: hi``: the relay
    stamps the name it identified, never the one a message claims."""
    relay = members_relay
    keys = relay.members_file.key_files
    bob = clients(relay, eaxchat.load_key(keys["bob"]))
    identified(relay, "bob")
    alice = clients(relay, eaxchat.load_key(keys["alice"]))
    identified(relay, "alice")
    alice.send("bob: hi")
    assert bob.recv(WAIT) == b"alice: bob: hi"
    bob.send("alice: no, I am bob")
    assert alice.recv(WAIT) == b"bob: alice: no, I am bob"


def test_a_key_that_is_no_members_is_refused(members_relay, clients, line_socket):
    """A client whose key is in no member's entry is closed at its first
    frame, and what it sent reaches nobody."""
    relay = members_relay
    bob = newline_member(relay, line_socket, "bob")
    stranger = line_socket(relay)
    stranger.send(seal_line(bytes(range(16)), "bob: trust me"))
    relay.wait_for_log("rejected frame: tag mismatch")
    bob.assert_nothing_within(0.3)
