"""``chat`` as a terminal app in a real pseudo-terminal (pexpect), its
screen read by a terminal emulator (pyte), against a real relay: a long
line being typed survives messages arriving, which land in the pane above;
and the terminal's modes are put back after a quit and after the relay
dies (``stty -a`` run in the same terminal once chat has exited)."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Callable, List, Optional

import pexpect
import pyte
import pytest

import eaxchat
from conftest import WAIT, wait_until, write_members

COLUMNS, ROWS = 80, 24


class Terminal:
    """``chat`` in a pseudo-terminal of its own, followed by ``stty -a``
    once it exits, with a pyte screen fed everything it writes."""

    def __init__(self, bins, relay, extra: str = "", keys: Optional[str] = None) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        if keys is None:
            keys = f"--key-hex {relay.key_hex}"
        command = (
            f"{bins.chat} --connect {relay.addr} {keys} {extra}; "
            "echo CHAT-EXIT=$?; stty -a; sleep 30"
        )
        self.child = pexpect.spawn(
            "bash",
            ["--norc", "--noprofile", "-c", command],
            dimensions=(ROWS, COLUMNS),
            env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )

    def pump(self, wait: float = 0.05) -> None:
        """Reads what is there (waiting at most ``wait``) into the screen."""
        try:
            data = self.child.read_nonblocking(65536, timeout=wait)
        except (pexpect.TIMEOUT, pexpect.EOF):
            return
        self.raw += data
        self.stream.feed(data)

    def rows(self) -> List[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; screen:\n" + "\n".join(self.rows()))
            self.pump()

    def wait_for_text(self, text: str) -> None:
        self.wait_for(repr(text), lambda: any(text in row for row in self.rows()))

    def wait_for_raw(self, text: bytes) -> None:
        self.wait_for(repr(text), lambda: text in self.raw)

    def close(self) -> None:
        self.child.terminate(force=True)


@pytest.fixture
def terminals(bins):
    made: List[Terminal] = []

    def start(relay, extra: str = "", keys: Optional[str] = None) -> Terminal:
        terminal = Terminal(bins, relay, extra, keys)
        made.append(terminal)
        return terminal

    yield start
    for terminal in made:
        terminal.close()


def modes_after_exit(terminal: Terminal) -> str:
    """Waits for chat's exit and the ``stty -a`` after it; its output."""
    terminal.wait_for_raw(b"CHAT-EXIT=")
    # The local modes (icanon, echo...) are its last line; "extproc" ends it.
    terminal.wait_for_raw(b"extproc")
    return terminal.raw.split(b"CHAT-EXIT=", 1)[1].decode("utf-8", "replace")


def assert_sane(modes: str) -> None:
    words = modes.split()
    for mode in ("icanon", "echo", "isig", "icrnl", "opost"):
        assert mode in words, f"{mode} is off after chat:\n{modes}"


CHAT = ["--history", "100", "--presence", "on"]


def test_typing_survives_arrivals_and_the_modes_come_back(start_relay, terminals):
    relay = start_relay(extra=CHAT)
    terminal = terminals(relay)
    terminal.wait_for_text("connected to")
    typed = "typing a long line that goes on past the edge of this eighty column terminal, " \
            "and still is not finished"
    terminal.child.send(typed)
    terminal.wait_for_text("and still is not finishe")
    with eaxchat.Client(relay.host, relay.port, relay.key) as peer:
        peer.send("/nick alice")
        for n in range(5):
            peer.send(f"alice: interrupting you {n}")
        terminal.wait_for_text("interrupting you 4")
    rows = terminal.rows()
    input_row = rows[-1]
    assert input_row.startswith("> "), rows
    assert typed.endswith(input_row[2:]), f"the input line is broken: {input_row!r}"
    assert len(input_row) >= 70, input_row
    pane = "\n".join(rows[:-2])
    for n in range(5):
        assert f"alice: interrupting you {n}" in pane
    assert "* alice joined #lobby" in pane
    assert "typing" not in pane, "the typed line leaked into the pane"
    assert "#lobby" in rows[-2] and "connected to" in rows[-2]
    # What was typed goes out whole on Enter.
    with eaxchat.Client(relay.host, relay.port, relay.key) as listener:
        terminal.child.send("\r")
        assert listener.recv_text(WAIT) == typed
    terminal.child.sendcontrol("c")
    modes = modes_after_exit(terminal)
    assert modes.startswith("0"), modes
    assert_sane(modes)
    assert b"\x1b[?1049l" in terminal.raw, "the alternate screen was left"


def test_the_modes_come_back_when_the_relay_dies(start_relay, terminals):
    relay = start_relay(extra=CHAT)
    terminal = terminals(relay)
    terminal.wait_for_text("connected to")
    terminal.child.send("half a line")
    terminal.wait_for_text("half a line")
    relay.terminate()
    modes = modes_after_exit(terminal)
    assert modes.startswith("1"), modes
    assert_sane(modes)
    assert b"closed the connection" in terminal.raw


def test_reconnecting_shows_a_countdown(start_relay, terminals):
    relay = start_relay(extra=CHAT)
    terminal = terminals(relay, "--reconnect")
    terminal.wait_for_text("connected to")
    relay.terminate()
    terminal.wait_for_text("reconnecting in")
    terminal.child.sendcontrol("d")
    assert_sane(modes_after_exit(terminal))


def status_row(terminal: Terminal) -> str:
    return terminal.rows()[-2]


def room_row(terminal: Terminal, label: str) -> str:
    """The room list's row for ``label`` (``#one``): the left column."""
    for row in terminal.rows()[1:-2]:
        left = row.split("│", 1)[0]
        if f" {label} " in left + " ":
            return left
    return ""


def test_rooms_activity_and_the_input_line_survive_switching(start_relay, terminals):
    """bob's app in #one and #two (Alt+1, Alt+2): messages come to #one
    while he looks at #two; the status line's activity bar marks room 1
    (``*``: one names him), the room list counts them, and his half-typed
    line is still there, and goes to #two on Enter."""
    relay = start_relay(extra=CHAT)
    terminal = terminals(relay)
    terminal.wait_for("the lobby", lambda: "[#lobby]" in status_row(terminal))
    for line, status in (("/nick bob", "│ bob │"), ("/join one", "[#one]"), ("/join two", "[#two]")):
        terminal.child.send(line + "\r")
        terminal.wait_for(repr(status), lambda status=status: status in status_row(terminal))
    terminal.child.send("/part lobby\r")
    terminal.wait_for("#lobby left", lambda: room_row(terminal, "#lobby") == "")
    assert room_row(terminal, "#one").startswith("1 #one"), terminal.rows()
    assert room_row(terminal, "#two").startswith("2 #two"), terminal.rows()
    terminal.child.send("\x1b1")  # Alt+1
    terminal.wait_for("#one looked at", lambda: "[#one]" in status_row(terminal))
    with eaxchat.Client(relay.host, relay.port, relay.key) as peer, \
            eaxchat.Client(relay.host, relay.port, relay.key) as listener:
        listener.send("/join two")
        peer.send("/nick alice")
        peer.send("/join one")
        terminal.wait_for_text("alice joined #one")
        half = "a half typed line"
        terminal.child.send(half)
        terminal.wait_for("the half line", lambda: terminal.rows()[-1] == "> " + half)
        peer.send("first in one")
        terminal.wait_for_text("alice: first in one")
        terminal.child.send("\x1b2")  # Alt+2
        terminal.wait_for("#two looked at", lambda: "[#two]" in status_row(terminal))
        peer.send("second in one")
        terminal.wait_for("activity in 1", lambda: "[Act: 1]" in status_row(terminal))
        assert room_row(terminal, "#one").rstrip().endswith(" 1"), terminal.rows()
        peer.send("bob: third in one")
        terminal.wait_for("a mention in 1", lambda: "[Act: 1*]" in status_row(terminal))
        assert room_row(terminal, "#one").rstrip().endswith(" 2 @1"), terminal.rows()
        pane = "\n".join(terminal.rows()[1:-2])
        assert "second in one" not in pane, "#one's message landed in #two's pane"
        assert terminal.rows()[-1] == "> " + half, "the input line did not survive"
        # Enter sends it to the room looked at: #two.
        terminal.child.send("\r")
        deadline = time.monotonic() + WAIT
        while listener.recv_text(max(0.0, deadline - time.monotonic())) != half:
            pass
        # Back to #one: read now; the bar is empty.
        terminal.child.send("\x1b1")
        terminal.wait_for("#one read", lambda: "[#one] │" in status_row(terminal))
        assert "Act:" not in status_row(terminal)
        assert room_row(terminal, "#one").rstrip() == "1 #one", terminal.rows()
        pane = "\n".join(terminal.rows()[1:-2])
        assert "alice: bob: third in one" in pane, pane
    terminal.child.sendcontrol("c")
    assert_sane(modes_after_exit(terminal))


def test_a_shared_key_name_goes_inside_the_room_line(start_relay, terminals):
    """``--name alice`` on a shared-key relay: the app's text arrives as
    ``alice: hello``, and neither its own ``/who`` nor its ``/in ROOM``
    reaches the room as text."""
    relay = start_relay(extra=CHAT)
    with eaxchat.Client(relay.host, relay.port, relay.key) as listener:
        listener.send("/who")
        assert "here in #lobby" in listener.recv_text(WAIT)
        terminal = terminals(relay, "--name alice")
        terminal.wait_for("the lobby", lambda: "[#lobby]" in status_row(terminal))
        terminal.child.send("hello\r")
        seen: List[str] = []
        deadline = time.monotonic() + WAIT
        try:
            while "alice: hello" not in seen:
                seen.append(listener.recv_text(max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            pytest.fail(f"no 'alice: hello' within {WAIT} s; the room got {seen}")
        assert not [line for line in seen if "/" in line], seen
    terminal.child.sendcontrol("c")
    assert_sane(modes_after_exit(terminal))


def test_an_end_to_end_room_is_marked_and_its_messages_read_here(bins, start_relay, terminals,
                                                                  tmp_path):
    """alice's app on a session relay makes #sec end-to-end (``/join sec
    --e2e``): the status line and the room list mark it ``#sec 🔒``; bob
    (``chat`` in pipe mode, with an identity of his own) joins, alice's app
    adds him to the group by itself, his message shows in her pane as
    ``bob: …`` (decrypted here: the relay only had ciphertext), and
    ``/verify bob`` prints the safety number."""
    members = ""
    for name in ("alice", "bob"):
        made = subprocess.run(
            [str(bins.chat), "keygen", "--key-out", str(tmp_path / f"{name}.identity")],
            capture_output=True, text=True, timeout=WAIT, check=True, stdin=subprocess.DEVNULL)
        members += f"{name} {made.stdout.split()[0]}\n"
    write_members(tmp_path / "members.txt", members)
    relay = start_relay(members=tmp_path / "members.txt",
                        extra=[*CHAT, "--identity", str(tmp_path / "relay.identity")])
    found = re.search(r"relay identity (x25519:\S+)", relay.wait_for_log("relay identity x25519:"))
    assert found, relay.log

    def keys(name: str) -> List[str]:
        return ["--key-file", str(tmp_path / f"{name}.identity"), "--relay-key", found.group(1),
                "--known-relays", str(tmp_path / f"{name}.known_relays")]

    terminal = terminals(relay, keys=" ".join(keys("alice")))
    terminal.wait_for_text("end-to-end rooms ready")
    terminal.child.send("/join sec --e2e\r")
    terminal.wait_for("the 🔒 mark", lambda: "[#sec 🔒]" in status_row(terminal))
    terminal.wait_for_text("you made its group")
    assert room_row(terminal, "#sec").startswith("2 #sec 🔒"), terminal.rows()
    assert "🔒" not in room_row(terminal, "#lobby"), terminal.rows()
    bob_out = tmp_path / "bob.out"
    with open(bob_out, "wb") as out:
        bob = subprocess.Popen([str(bins.chat), "--connect", str(relay.addr), *keys("bob")],
                               stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert bob.stdin is not None
        bob.stdin.write(b"/join sec\n")
        bob.stdin.flush()
        terminal.wait_for_text("you added bob")
        wait_until(lambda: b"end-to-end group now" in bob_out.read_bytes(), "bob's Welcome")
        bob.stdin.write(b"for the group only\n")
        bob.stdin.flush()
        terminal.wait_for_text("bob: for the group only")
        terminal.child.send("/verify bob\r")
        terminal.wait_for_text("safety number with bob")
    finally:
        bob.kill()
        bob.wait(timeout=WAIT)
    terminal.child.sendcontrol("c")
    assert_sane(modes_after_exit(terminal))
