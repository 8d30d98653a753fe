"""The Python client and the `chat` terminal client in one room, through
the real relay: what one sends, the other prints or receives."""

from __future__ import annotations

import subprocess
import threading
from typing import List

import pytest

import eaxchat
from conftest import WAIT, wait_until


@pytest.fixture(scope="session")
def chat_bin(bins):
    """The `chat` binary; skips when it is missing or still the empty
    placeholder (whose --help does not document --connect)."""
    if not bins.chat.is_file():
        pytest.skip(f"chat binary not built at {bins.chat}")
    usage = subprocess.run(
        [str(bins.chat), "--help"], capture_output=True, text=True, timeout=WAIT
    )
    if "--connect" not in usage.stdout + usage.stderr:
        pytest.skip(f"{bins.chat} is not the chat client yet (its --help lacks --connect)")
    return bins.chat


class Chat:
    """A running `chat` process whose stdout lines and stderr are collected
    by threads, so it never blocks on a full pipe."""

    def __init__(self, binary, relay, *args: str, stdin: bytes = b"") -> None:
        self.process = subprocess.Popen(
            [str(binary), "--connect", relay.addr, "--key-hex", relay.key_hex, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: List[str] = []
        self.errors: List[bytes] = []
        assert self.process.stdin is not None
        self._threads = [
            threading.Thread(target=self._collect_lines, daemon=True),
            threading.Thread(target=self._collect_errors, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        # Pipe mode: what is written here is sent, then end of input.
        if stdin or "--listen-only" not in args:
            self.process.stdin.write(stdin)
            self.process.stdin.close()

    def _collect_lines(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))

    def _collect_errors(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.errors.append(raw)

    def stderr(self) -> str:
        """What `chat` said on stderr so far."""
        return b"".join(self.errors).decode("utf-8", errors="replace")

    def wait_exit(self) -> int:
        """Waits (bounded) for `chat` to exit by itself; its status."""
        try:
            status = self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"chat did not exit within {WAIT} s; stderr:\n{self.stderr()}")
        for thread in self._threads:
            thread.join(WAIT)
        return status

    def stop(self) -> None:
        """Terminates `chat` (SIGTERM, then SIGKILL) if still running."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()


@pytest.fixture
def chats(chat_bin):
    """A factory of `chat` processes, all stopped at teardown."""
    started: List[Chat] = []

    def start(relay, *args: str, stdin: bytes = b"") -> Chat:
        chat = Chat(chat_bin, relay, *args, stdin=stdin)
        started.append(chat)
        return chat

    yield start
    for chat in started:
        chat.stop()


def test_chat_prints_what_the_python_client_sends(relay, chats):
    """Messages from Python are printed by `chat --listen-only`, one per
    line, in order, with control characters neutralised."""
    listener = chats(relay, "--listen-only")
    relay.wait_for_clients(1)
    with eaxchat.Client(relay.host, relay.port, relay.key_hex) as client:
        relay.wait_for_clients(2)
        client.send("hello chat")
        client.send_message("caf\u00e9 \u2615")
        client.send("\x1b[2Jwiped?")
        wait_until(lambda: len(listener.lines) >= 3, f"3 lines from chat; stderr: {listener.stderr()}")
    assert listener.lines[:2] == ["hello chat", "caf\u00e9 \u2615"]
    assert "wiped?" in listener.lines[2]
    assert "\x1b" not in listener.lines[2], "an escape sequence reached the terminal"
    assert len(listener.lines) == 3


def test_python_receives_what_chat_sends_from_a_pipe(relay, chats):
    """`printf 'a\\nb\\n' | chat --name bob` sends both lines, which the
    Python client opens, and exits 0."""
    with eaxchat.Client(relay.host, relay.port, relay.key) as client:
        relay.wait_for_clients(1)
        sender = chats(relay, "--name", "bob", stdin="a\nb\n\u00e9t\u00e9\n".encode())
        assert client.recv_text(WAIT) == "bob: a"
        assert client.recv_text(WAIT) == "bob: b"
        assert client.recv_text(WAIT) == "bob: \u00e9t\u00e9"
        assert sender.wait_exit() == 0, sender.stderr()
        with pytest.raises(TimeoutError):
            client.recv(0.2)
