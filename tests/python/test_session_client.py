"""The Python client's session mode (clients/python/eaxchat/ with
eaxsession/): identity files, the known_relays pins and their trust on first
use, and whole connections -- against the Rust responder
(crates/proto/examples/session_responder.rs, over snow) where it can speak the
exchange, and against a one-connection relay made of eaxsession's responder
side (noiseprotocol) for the key request (0x04 / 0x05), which the Rust
responder does not answer. The shared-key client is unchanged: test_client.py.

    INTEROP_BIN    path to the built session_responder example

Unset, the tests that need it are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, List, Optional

import pytest

import eaxchat
import eaxsession as es
from conftest import REPO, relay_has_sessions, write_members
from test_session import WAIT, responder  # noqa: F401  (a fixture)


# ---------------------------------------------------------------- identity files

def test_generate_identity_makes_a_0600_file_and_returns_its_public_key(tmp_path):
    path = tmp_path / "alice.identity"
    old = os.umask(0)  # even with a permissive umask the file is 0600
    try:
        public = eaxchat.generate_identity(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public.startswith("x25519:") and len(es.parse_public_key(public)) == 32
    identity = eaxchat.load_identity(path)
    assert identity.public_key == public
    assert identity.fingerprint == es.fingerprint(es.parse_public_key(public))
    text = path.read_text()
    assert text.startswith("# eaxchat identity") and f"# public key {public}\n" in text
    secret = base64.b64encode(identity._private).decode()
    assert secret not in repr(identity) and public in repr(identity)
    with pytest.raises(FileExistsError):  # O_EXCL: an identity is never overwritten
        eaxchat.generate_identity(path)
    assert eaxchat.load_identity(path).public_key == public


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_an_identity_file_others_can_read_is_refused(tmp_path, mode):
    path = tmp_path / "id"
    eaxchat.generate_identity(path)
    os.chmod(path, mode)
    with pytest.raises(PermissionError, match=f"{mode:04o}; expected 0600"):
        eaxchat.load_identity(path)


@pytest.mark.parametrize("text, why", [
    ("# only a comment\n", "found 0"),
    ("AAAA\nAAAA\n", "found 2"),
    ("not base64!\n", "not a base64"),
    (base64.b64encode(bytes(31)).decode() + "\n", "32 bytes"),
])
def test_a_damaged_identity_file_is_refused(tmp_path, text, why):
    path = tmp_path / "id"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    with pytest.raises(ValueError, match=why):
        eaxchat.load_identity(path)


def test_an_identity_file_is_read_past_comments_and_blank_lines(tmp_path):
    private, public = es.generate_keypair()
    path = tmp_path / "id"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"# made by hand\n\n  " + base64.b64encode(private) + b"  \n# end\n")
    os.close(fd)
    assert eaxchat.load_identity(path).public == public


# ---------------------------------------------------------------- known_relays

def test_known_relays_pins_in_a_new_0600_file(tmp_path):
    known = es.KnownRelays(tmp_path / "config" / "eaxchat" / "known_relays")
    assert known.get("127.0.0.1:9") is None  # no file: no pins
    first, second = os.urandom(32), os.urandom(32)
    known.add("127.0.0.1:9", first)
    known.add("relay.example:8080", second)
    path = Path(known.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == (f"127.0.0.1:9 {es.public_key_text(first)}\n"
                                f"relay.example:8080 {es.public_key_text(second)}\n")
    assert known.get("127.0.0.1:9") == first
    assert known.find("relay.example:8080") == (second, 2)
    assert known.get("127.0.0.1:10") is None
    assert es.relay_address("::1", 8080) == "[::1]:8080"
    with pytest.raises(ValueError, match="no spaces"):
        known.add("a b:1", first)


def test_the_default_known_relays_is_chats(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert es.KnownRelays().path == str(tmp_path / ".config" / "eaxchat" / "known_relays")


@pytest.mark.parametrize("line", ["127.0.0.1:9", "127.0.0.1:9 x25519:AAAA",
                                  "127.0.0.1:9 x25519:" + "A" * 43 + "= extra"])
def test_a_damaged_known_relays_line_is_an_error_not_a_missing_pin(tmp_path, line):
    path = tmp_path / "known_relays"
    path.write_text(f"# pins\n\n{line}\n")
    with pytest.raises(ValueError, match=f"{path} line 3"):
        es.KnownRelays(path).get("127.0.0.1:9")


# ---------------------------------------------------------------- a relay for the key request

class SessionRelay:
    """A relay side for `connections` connections, one after another, in a
    thread, made of eaxsession's responder (noiseprotocol): answers a key
    request with `claim` (its own key unless told otherwise), refuses a hello it
    cannot decrypt naming its fingerprint, refuses a client `knows` says no to,
    else welcomes "alice" and sends what `after` makes of its session; then
    opens the client's frames until it closes. Every wait is bounded by WAIT."""

    def __init__(self, knows: Callable[[bytes], bool] = lambda key: True,
                 claim: Optional[bytes] = None,
                 after: Callable[[es.Session], bytes] = lambda s: s.seal(b"welcome, alice"),
                 connections: int = 1):
        self.private, self.public = es.generate_keypair()
        self._knows, self._claim, self._after = knows, claim or self.public, after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.lines: List[bytes] = []  # the handshake lines received, on every connection
        self.opened: List[bytes] = []
        self.outcomes: List[str] = []
        self._thread = threading.Thread(target=self._run, args=(connections,), daemon=True)
        self._thread.start()

    def _run(self, connections: int) -> None:
        for _ in range(connections):
            try:
                conn, _ = self.listener.accept()
            except OSError:
                self.outcomes.append("no connection")
                return
            with conn, conn.makefile("rb") as reader:
                conn.settimeout(WAIT)
                try:
                    self.outcomes.append(self._serve(conn, reader))
                except (OSError, es.SessionError) as error:
                    self.outcomes.append(f"error: {error}")

    def _serve(self, conn, reader) -> str:
        line = reader.readline(es.MAX_LINE + 1)
        if not line:
            return "closed before a line"
        self.lines.append(line)
        if line == es.key_request_line():
            conn.sendall(base64.b64encode(bytes([es.KIND_RELAY_KEY]) + self._claim) + b"\n")
            line = es.read_line(reader)
            self.lines.append(line)
        kind, body = es.decode_line(line)
        noise = es.new_handshake(es.PROTOCOL_IK, False, self.private)
        try:
            noise.read_message(body)
        except Exception:
            text = f"did not decrypt; {es.RELAY_KEY_MARK}{es.fingerprint(self.public)}"
            conn.sendall(es.encode_line(es.KIND_REFUSAL, text.encode()))
            return "refused: pinned another key"
        client = noise.noise_protocol.handshake_state.rs.public_bytes
        if not self._knows(client):
            conn.sendall(es.encode_line(es.KIND_REFUSAL, f"unknown key {es.fingerprint(client)}".encode()))
            return "refused: unknown key"
        welcome = es.encode_line(es.KIND_WELCOME, bytes(noise.write_message(b"alice")))
        k1, k2 = es.raw_split(noise)
        session = es.Session.relay(*es.derive_session_keys(k1, k2, bytes(noise.get_handshake_hash())))
        conn.sendall(welcome + self._after(session))
        while True:
            frame = es.read_frame_line(reader)
            if not frame:
                return "done"
            self.opened.append(session.open(frame))

    def finish(self) -> str:
        """Waits (bounded) for the connections to end; returns how the last ended."""
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the relay thread did not end"
        return self.outcomes[-1]

    def stop(self) -> None:
        self.listener.close()
        self._thread.join(WAIT)


@pytest.fixture
def session_relay():
    started: List[SessionRelay] = []

    def start(**options) -> SessionRelay:
        started.append(SessionRelay(**options))
        return started[-1]

    yield start
    for relay in started:
        relay.stop()


@pytest.fixture
def identity(tmp_path) -> Path:
    path = tmp_path / "me.identity"
    eaxchat.generate_identity(path)
    return path


# ---------------------------------------------------------------- trust on first use

def test_first_use_asks_for_the_key_pins_it_and_the_next_connection_uses_the_pin(
        session_relay, identity, tmp_path):
    known = tmp_path / "known_relays"
    relay = session_relay(connections=2)
    with eaxchat.Client("127.0.0.1", relay.port, identity=identity, known_relays=known) as chat:
        assert chat.session_mode and chat.member
        assert (chat.name, chat.pinned_now) == ("alice", True)
        assert chat.relay_key == es.public_key_text(relay.public)
        assert chat.relay_fingerprint == es.fingerprint(relay.public)
        assert chat.recv(WAIT) == b"welcome, alice"
        chat.send("hello")
        chat.send(b"\x00bytes")
    pinned = f"{relay.address} {es.public_key_text(relay.public)}\n"
    assert known.read_text() == pinned
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    # The next connection uses the pin: no key request.
    with eaxchat.Client("127.0.0.1", relay.port, identity=identity, known_relays=known) as chat:
        assert (chat.name, chat.pinned_now) == ("alice", False)
        assert chat.recv(WAIT) == b"welcome, alice"
        chat.send("again")
    assert relay.finish() == "done"
    assert relay.outcomes == ["done", "done"]
    assert relay.lines[0] == b"BA==\n"
    assert [es.decode_line(line)[0] for line in relay.lines[1:]] == [es.KIND_HELLO] * 2
    assert relay.opened == [b"hello", b"\x00bytes", b"again"]
    assert known.read_text() == pinned


def test_a_changed_relay_key_is_refused_naming_both_fingerprints_and_the_pin(
        session_relay, identity, tmp_path):
    relay = session_relay()
    old = os.urandom(32)
    known = tmp_path / "known_relays"
    known.write_text(f"# mine\n{relay.address} {es.public_key_text(old)}\n")
    before = known.read_text()
    with pytest.raises(eaxchat.RelayKeyChanged) as caught:
        eaxchat.Client("127.0.0.1", relay.port, identity=identity, known_relays=known)
    message = str(caught.value)
    assert es.fingerprint(old) in message and es.fingerprint(relay.public) in message
    assert f"{known} line 2" in message
    assert isinstance(caught.value, eaxchat.Refused)
    assert relay.finish() == "refused: pinned another key"
    assert known.read_text() == before


def test_without_accept_new_an_unpinned_relay_is_refused_before_anything_is_sent(
        session_relay, identity, tmp_path):
    relay = session_relay()
    with pytest.raises(eaxchat.UnknownRelay, match="no relay key is pinned"):
        eaxchat.Client("127.0.0.1", relay.port, identity=identity,
                       known_relays=tmp_path / "known_relays", accept_new=False)
    assert relay.finish() == "closed before a line"
    assert not (tmp_path / "known_relays").exists()


def test_a_refused_first_use_pins_nothing(session_relay, identity, tmp_path):
    relay = session_relay(knows=lambda key: False)
    known = tmp_path / "known_relays"
    with pytest.raises(eaxchat.Refused, match="unknown key SHA256:") as caught:
        eaxchat.Client("127.0.0.1", relay.port, identity=identity, known_relays=known)
    assert not isinstance(caught.value, eaxchat.RelayKeyChanged)
    assert relay.finish() == "refused: unknown key"
    assert not known.exists()


def test_a_key_request_answered_with_another_key_pins_nothing(session_relay, identity, tmp_path):
    relay = session_relay(claim=os.urandom(32))
    known = tmp_path / "known_relays"
    with pytest.raises(eaxchat.RelayKeyChanged, match="answer to the key request"):
        eaxchat.Client("127.0.0.1", relay.port, identity=identity, known_relays=known)
    assert relay.finish() == "refused: pinned another key"
    assert not known.exists()


def test_an_explicit_relay_key_neither_reads_nor_writes_known_relays(
        session_relay, identity, tmp_path):
    relay = session_relay()
    known = tmp_path / "known_relays"
    known.write_text(f"{relay.address} {es.public_key_text(os.urandom(32))}\n")  # a stale pin
    before = known.read_text()
    with eaxchat.Client("127.0.0.1", relay.port, identity=eaxchat.load_identity(identity),
                        relay_key=es.public_key_text(relay.public), known_relays=known) as chat:
        assert chat.pinned_now is False and chat.name == "alice"
        assert chat.recv(WAIT) == b"welcome, alice"
    assert relay.finish() == "done"
    assert known.read_text() == before


# ---------------------------------------------------------------- frames from the relay

@pytest.mark.parametrize("after, error", [
    (lambda s: (lambda line: line + line)(s.seal(b"once")), eaxchat.ReplayedFrame),
    (lambda s: [s.seal(b"zero"), s.seal(b"one"), s.seal(b"two")][2], eaxchat.AuthenticationError),
    (lambda s: es.Session.client(os.urandom(32), os.urandom(32)).seal(b"other session"),
     eaxchat.AuthenticationError),
])
def test_a_replayed_skipped_or_foreign_frame_from_the_relay_closes_the_connection(
        session_relay, identity, tmp_path, after, error):
    relay = session_relay(after=after)
    with eaxchat.Client("127.0.0.1", relay.port, identity=identity,
                        known_relays=tmp_path / "known_relays") as chat:
        if error is eaxchat.ReplayedFrame:
            assert chat.recv(WAIT) == b"once"
        with pytest.raises(error):
            chat.recv(WAIT)
        assert chat.closed
    assert isinstance(chat.error, error)


def test_frames_after_the_handshake_in_one_read_and_events(session_relay, identity, tmp_path):
    lines = [b'{"kind":"welcome","protocol":"eaxchat/1","name":"alice","room":"lobby","members":true}',
             b'{"kind":"msg","room":"lobby","from":"bob","text":"hi","ts":1,"history":false}']
    relay = session_relay(after=lambda s: b"".join(s.seal(line) for line in lines))
    with eaxchat.Client("127.0.0.1", relay.port, identity=identity, events=True,
                        known_relays=tmp_path / "known_relays") as chat:
        assert chat.recv_event(WAIT).kind == "welcome"
        event = chat.recv_event(WAIT)
        assert (event.kind, event.sender, event.text) == ("msg", "bob", "hi")
        chat.say("/not a command")
    assert relay.finish() == "done"
    # The handshake named the member: the first frame asks for events, no empty frame.
    assert relay.opened == [b"/hello eaxchat/1", b"//not a command"]


# ---------------------------------------------------------------- against snow

def test_the_client_against_the_rust_responder_with_a_pinned_key(responder, identity, tmp_path):  # noqa: F811
    loaded = eaxchat.load_identity(identity)
    relay_private, relay_public = es.generate_keypair()
    rust = responder(relay_private)
    known = tmp_path / "known_relays"
    es.KnownRelays(known).add(f"127.0.0.1:{rust.port}", relay_public)
    with eaxchat.Client("127.0.0.1", rust.port, identity=identity, known_relays=known,
                        events=True) as chat:
        assert (chat.name, chat.pinned_now) == ("alice", False)
        assert chat.relay_fingerprint == rust.field("relay_fingerprint")
        assert chat.recv(WAIT) == b"hello from rust"
        chat.send("hello from eaxchat.py")
    assert rust.finish() == 0, rust.stderr
    assert rust.field("client_public") == loaded.public_key
    assert rust.fields["opened"] == [b"/hello eaxchat/1".hex(), b"hello from eaxchat.py".hex()]


def test_the_rust_responder_refuses_a_changed_key(responder, identity, tmp_path):  # noqa: F811
    relay_private, relay_public = es.generate_keypair()
    rust = responder(relay_private)
    old = os.urandom(32)
    with pytest.raises(eaxchat.RelayKeyChanged) as caught:
        eaxchat.Client("127.0.0.1", rust.port, identity=identity, relay_key=old,
                       known_relays=tmp_path / "known_relays")
    assert rust.finish() == 3, rust.stderr
    message = str(caught.value)
    assert es.fingerprint(old) in message and es.fingerprint(relay_public) in message
    assert "given as relay_key" in message


# ---------------------------------------------------------------- against the relay

def test_python_members_chat_over_the_session_relay(bins, start_relay, tmp_path):
    """Needs the relay's session mode; pending (skipped, saying so) without it."""
    if not relay_has_sessions(bins.relay):
        pytest.skip("pending: the relay has no session mode yet (relay --help lists no --identity)")
    relay_identity = tmp_path / "relay.identity"
    relay_public = es.parse_public_key(eaxchat.generate_identity(relay_identity))
    alice, bob, carol = (tmp_path / f"{name}.identity" for name in ("alice", "bob", "carol"))
    members = tmp_path / "members.txt"
    write_members(members, f"alice {eaxchat.generate_identity(alice)}\n"
                           f"bob {eaxchat.generate_identity(bob)}\n")
    eaxchat.generate_identity(carol)  # not a member
    relay = start_relay(extra=["--identity", str(relay_identity)], members=members)
    known = tmp_path / "known_relays"
    with eaxchat.Client(relay.host, relay.port, identity=alice, known_relays=known,
                        events=True) as a:
        assert (a.name, a.pinned_now) == ("alice", True)
        assert a.relay_key == es.public_key_text(relay_public)
        assert es.KnownRelays(known).get(relay.addr) == relay_public
        with eaxchat.Client(relay.host, relay.port, identity=bob, known_relays=known,
                            events=True) as b:
            assert (b.name, b.pinned_now) == ("bob", False)
            relay.wait_for_clients(2)
            b.say("hi alice, bob here")
            event = a.recv_event(WAIT)
            while not event.is_message:
                event = a.recv_event(WAIT)
            assert (event.sender, event.text) == ("bob", "hi alice, bob here")
    with pytest.raises(eaxchat.Refused, match="SHA256:") as caught:
        eaxchat.Client(relay.host, relay.port, identity=carol, known_relays=known)
    assert not isinstance(caught.value, eaxchat.RelayKeyChanged)
    # Another key pinned for this address: refused, both fingerprints named.
    stale = tmp_path / "stale_known_relays"
    es.KnownRelays(stale).add(relay.addr, os.urandom(32))
    with pytest.raises(eaxchat.RelayKeyChanged) as caught:
        eaxchat.Client(relay.host, relay.port, identity=alice, known_relays=stale)
    assert es.fingerprint(relay_public) in str(caught.value)
    assert f"{stale} line 1" in str(caught.value)


# ---------------------------------------------------------------- the shared-key API stays

def test_a_client_takes_a_key_or_an_identity_not_both(identity):
    with pytest.raises(TypeError, match="not both"):
        eaxchat.Client("127.0.0.1", 9, b"k" * 16, identity=identity)
    with pytest.raises(TypeError, match="identity="):
        eaxchat.Client("127.0.0.1", 9)


def test_eaxchat_alone_still_runs_shared_key_mode_and_says_what_sessions_need(tmp_path):
    shutil.copytree(REPO / "clients" / "python" / "eaxchat", tmp_path / "eaxchat")
    code = (
        "import eaxchat\n"
        "key = bytes(16)\n"
        "assert eaxchat.open_frame(key, eaxchat.seal(key, b'hi')) == b'hi'\n"
        "try:\n"
        "    eaxchat.generate_identity('x')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    assert "session mode needs eaxsession/ next to the eaxchat package" in out.stdout


def test_the_package_installs_both_modules(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO / "clients" / "python", source)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    for package in ("eaxchat", "eaxsession"):
        assert (target / package / "__init__.py").is_file()
