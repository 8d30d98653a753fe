"""``chat`` as a terminal app in a real pseudo-terminal (pexpect), its
screen read by a terminal emulator (pyte), against a real relay: a long
line being typed survives messages arriving, which land in the pane above;
and the terminal's modes are put back after a quit and after the relay
dies (``stty -a`` run in the same terminal once chat has exited)."""

from __future__ import annotations

import time
from typing import Callable, List

import pexpect
import pyte
import pytest

import eaxchat
from conftest import WAIT

COLUMNS, ROWS = 80, 24


class Terminal:
    """``chat`` in a pseudo-terminal of its own, followed by ``stty -a``
    once it exits, with a pyte screen fed everything it writes."""

    def __init__(self, bins, relay, extra: str = "") -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        command = (
            f"{bins.chat} --connect {relay.addr} --key-hex {relay.key_hex} {extra}; "
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

    def start(relay, extra: str = "") -> Terminal:
        terminal = Terminal(bins, relay, extra)
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
