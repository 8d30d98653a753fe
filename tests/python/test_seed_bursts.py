"""The original notebook client (the seed report's code) used in a loop, as
notebook users use it: bursts of messages each way, every one arriving
exactly once and in order, and the notebook's receive thread still alive
(issue 12).

The seed client's ``encrypt``, ``decrypt``, ``send_message`` and receive
loop are copied from the report as printed, only parameterised with host,
port and key, and with what they print appended to lists instead. The
report's screenshot cuts the receive loop's first lines off; what is shown
(``encrypted_msg = sock.recv(4096).decode()`` ... ``except: break``, and
``threading.Thread(target=receive_messages, args=(sock,), daemon=True)``)
fixes them as ``def receive_messages(sock): while True: try:``.

What a seed receiver can receive at all: it does one ``recv(4096)`` per
message and decrypts exactly what that returned, so a frame must fit one
read. A relay frame of a message M is base64 of ``32 + len(M)`` bytes plus
``"\\n"``: ``4 * ceil((32 + len(M)) / 3) + 1 <= 4096`` holds up to
``len(M) == 3037`` (a 4093-byte frame); at 3038 the frame is 4097 bytes.
So the newline-to-seed tests go up to 3037 bytes; the seed *sender* tests go
up to 4 KiB. A frame has base64 padding iff ``(32 + len(M)) % 3 != 0``; the
lengths below cover both.
"""

from __future__ import annotations

import base64
import socket
import sys
import threading
import time
from collections import Counter
from types import SimpleNamespace
from typing import List

import pytest
from Crypto.Cipher import AES

from conftest import WAIT

#: Longest message whose relay frame (base64 + "\n") fits one recv(4096).
SEED_RECV_MAX = 3037
assert 4 * -(-(32 + SEED_RECV_MAX) // 3) + 1 <= 4096 < 4 * -(-(32 + SEED_RECV_MAX + 1) // 3) + 1

#: Lengths a seed client sends: padded (32 + len not a multiple of 3) and
#: unpadded, short and long, up to 4 KiB.
SEND_LENGTHS = [0, 1, 2, 3, 10, 100, 101, 1000, 1001, 3036, 3037, 4095, 4096]
#: Lengths a seed client can receive: the same, up to SEED_RECV_MAX.
RECV_LENGTHS = [0, 1, 2, 3, 10, 100, 101, 1000, 1001, 3036, 3037]
for _length in (1, 3037, 4096):
    assert (32 + _length) % 3 == 0, "unpadded lengths must be among the cases"
for _length in (0, 2, 3036, 4095):
    assert (32 + _length) % 3 != 0, "padded lengths must be among the cases"

ROUNDS = 3
BURST = 50
BIG_BURST = 500
#: Bound for a 500-message burst (about 2 MB through a debug-built relay).
BIG_WAIT = 3 * WAIT

_CHAT = "\n[chat] "


def seed_notebook(host: str, port: int, key: bytes) -> SimpleNamespace:
    """Connects the seed report's client and starts its receive thread.

    The code between the marked lines is the report's, only indented into
    this function, with ``KEY`` and the address as parameters and ``print``
    replaced by appending to ``shown`` (the receive loop) or ``said`` (the
    rest). ``died`` records why the receive loop stopped (an addition for
    the test's messages; the loop still stops at the first exception)."""
    KEY = key
    shown: List[str] = []
    said: List[str] = []
    died: List[BaseException] = []

    # ---- the seed report's client, as printed ----
    def encrypt(message):
        cipher = AES.new(KEY, AES.MODE_EAX)
        ciphertext, tag = cipher.encrypt_and_digest(message.encode())
        return base64.b64encode(cipher.nonce + tag + ciphertext).decode()

    def decrypt(data):
        data = base64.b64decode(data)
        nonce = data[:16]
        tag = data[16:32]
        ciphertext = data[32:]
        cipher = AES.new(KEY, AES.MODE_EAX, nonce=nonce)
        return cipher.decrypt_and_verify(ciphertext, tag).decode()

    # ----- CONNECT TO SERVER -----
    sock = socket.socket()
    sock.connect((host, port))

    said.append("Connected to chat server!")

    # ----- RECEIVE LOOP (runs in background) -----
    def receive_messages(sock):
        while True:
            try:
                encrypted_msg = sock.recv(4096).decode()
                if encrypted_msg:
                    msg = decrypt(encrypted_msg)
                    shown.append("\n[chat] " + msg)
            except:  # noqa: E722 -- the seed's bare except
                died.append(sys.exc_info()[1])  # added: why it stopped
                break

    thread = threading.Thread(target=receive_messages, args=(sock,), daemon=True)
    thread.start()

    said.append("Ready! Use send_message('your text') to send messages.")

    # ----- SEND MESSAGE FUNCTION -----
    def send_message(text):
        """Send encrypted message to server from Jupyter Notebook."""
        try:
            encrypted = encrypt(text)
            sock.send(encrypted.encode())
            said.append(f"You: {text}")
        except:  # noqa: E722 -- the seed's bare except
            said.append("Error sending message.")
    # ---- end of the seed report's client ----

    return SimpleNamespace(
        sock=sock, thread=thread, send_message=send_message, shown=shown, said=said, died=died
    )


@pytest.fixture
def seed():
    """A factory of seed notebook clients. At teardown each socket is shut
    down and closed, which ends its receive thread (the seed's loop ignores
    an empty read, so only the closed socket's error stops it), and the
    thread is joined with a bound."""
    made: List[SimpleNamespace] = []

    def connect(relay) -> SimpleNamespace:
        notebook = seed_notebook(relay.host, relay.port, relay.key)
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


def text_of(tag: str, length: int) -> str:
    """A message of exactly ``length`` ASCII bytes starting with ``tag``
    (cut short when ``length`` is shorter), with no newline in it."""
    body = f"{tag}|" + "abcdefghijklmnopqrstuvwxyz0123456789" * (length // 36 + 1)
    return body[:length]


def seal_line(key: bytes, text: str) -> bytes:
    """A newline client's line: ``base64(nonce || tag || ct) + "\\n"``."""
    cipher = AES.new(key, AES.MODE_EAX)
    ciphertext, tag = cipher.encrypt_and_digest(text.encode())
    return base64.b64encode(cipher.nonce + tag + ciphertext) + b"\n"


def open_line(key: bytes, line: bytes) -> str:
    """Opens a line the relay sent to a newline client."""
    data = base64.b64decode(line.rstrip(b"\n"), validate=True)
    cipher = AES.new(key, AES.MODE_EAX, nonce=data[:16])
    return cipher.decrypt_and_verify(data[32:], data[16:32]).decode()


class LineReader:
    """A plain newline client: a socket that collects whole lines."""

    def __init__(self, relay) -> None:
        self.sock = socket.create_connection((relay.host, relay.port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def read_lines(self, count: int, timeout: float, relay) -> List[bytes]:
        """Up to ``count`` lines, waiting at most ``timeout`` s; returns
        early (after a short grace for bytes in flight) once the relay has
        closed a connection, since no more will come then."""
        lines: List[bytes] = []
        deadline = time.monotonic() + timeout
        while len(lines) < count:
            if relay.count_log("closed: ") and deadline - time.monotonic() > 0.5:
                deadline = time.monotonic() + 0.5
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(min(left, 0.1))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.buffer += chunk
            while b"\n" in self.buffer and len(lines) < count:
                end = self.buffer.index(b"\n") + 1
                lines.append(bytes(self.buffer[:end]))
                del self.buffer[:end]
        return lines

    def nothing_more(self, seconds: float) -> bytes:
        """Whatever arrives (beyond ``buffer``) within ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            return bytes(self.buffer) + self.sock.recv(65536)
        except socket.timeout:
            return bytes(self.buffer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def line_reader():
    """A factory of :class:`LineReader` connections, closed at teardown."""
    opened: List[LineReader] = []

    def connect(relay) -> LineReader:
        reader = LineReader(relay)
        opened.append(reader)
        return reader

    yield connect
    for reader in opened:
        reader.close()


def seed_messages(notebook) -> List[str]:
    """What the seed's receive loop showed, split into messages: the relay
    may join several messages into one frame as lines."""
    messages: List[str] = []
    for shown in list(notebook.shown):
        assert shown.startswith(_CHAT), shown
        messages.extend(shown[len(_CHAT):].split("\n"))
    return messages


def wait_for_seed(notebook, count: int, timeout: float) -> List[str]:
    """Waits (bounded) until the seed has shown ``count`` messages or its
    receive thread has died; returns what it showed, split."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(seed_messages(notebook)) >= count or not notebook.thread.is_alive():
            break
        time.sleep(0.01)
    time.sleep(0.05)  # let a last frame in flight land, so extras are seen
    return seed_messages(notebook)


def count_in_order(got: List[str], sent: List[str]) -> str:
    """A short account of a mismatch: how many arrived, how many of the
    sent ones are missing, and how many arrived that were not sent (or
    more often than sent)."""
    missing = sum((Counter(sent) - Counter(got)).values())
    extra = sum((Counter(got) - Counter(sent)).values())
    return f"got {len(got)} of {len(sent)} ({missing} missing, {extra} unexpected or repeated)"


def assert_seed_alive(notebook) -> None:
    assert notebook.thread.is_alive(), (
        f"the seed's receive thread died: {notebook.died[:1]!r}"
    )


def run_seed_to_newline(relay, seed, line_reader, lengths: List[int], rounds: int, burst: int,
                        timeout: float) -> None:
    """``rounds`` times, the seed calls ``send_message`` ``burst`` times in a
    ``for`` loop (lengths cycling through ``lengths``); a newline client
    gets each message once, in order; the seed's thread stays alive."""
    notebook = seed(relay)
    reader = line_reader(relay)
    relay.wait_for_clients(2)
    for round_no in range(rounds):
        sent = [text_of(f"r{round_no}m{i}", lengths[i % len(lengths)]) for i in range(burst)]
        for text in sent:
            notebook.send_message(text)
        lines = reader.read_lines(burst, timeout, relay)
        got = [open_line(relay.key, line) for line in lines]
        assert got == sent, (
            f"round {round_no}, lengths {lengths}: {count_in_order(got, sent)};"
            f" relay log:\n{relay.log()[-2000:]}"
        )
        assert "Error sending message." not in notebook.said
    assert reader.nothing_more(0.2) == b""
    assert_seed_alive(notebook)
    assert "closed" not in relay.log()


def run_newline_to_seed(relay, seed, line_reader, lengths: List[int], rounds: int, burst: int,
                        timeout: float) -> None:
    """The seed first sends one message (so the relay knows it is a seed
    client) and it is delivered; then ``rounds`` times a newline client
    sends ``burst`` lines in a ``for`` loop; the seed shows each message
    once, in order, and its thread stays alive."""
    notebook = seed(relay)
    sender = line_reader(relay)
    relay.wait_for_clients(2)
    notebook.send_message("hello from the notebook")
    assert [open_line(relay.key, line) for line in sender.read_lines(1, WAIT, relay)] == [
        "hello from the notebook"
    ]
    expected: List[str] = []
    for round_no in range(rounds):
        sent = [text_of(f"r{round_no}m{i}", lengths[i % len(lengths)]) for i in range(burst)]
        for text in sent:
            sender.sock.sendall(seal_line(relay.key, text))
        expected += sent
        got = wait_for_seed(notebook, len(expected), timeout)
        assert got == expected, (
            f"round {round_no}, lengths {lengths}: {count_in_order(got, expected)};"
            f" seed thread alive: {notebook.thread.is_alive()}, stopped by {notebook.died[:1]!r}"
        )
        assert_seed_alive(notebook)
    assert "closed" not in relay.log()


@pytest.mark.parametrize("length", SEND_LENGTHS)
def test_seed_send_message_in_a_loop_reaches_a_newline_client(relay, seed, line_reader, length):
    """50 ``send_message`` calls in a loop, three rounds, one length per
    case (padded and unpadded frames, up to 4 KiB): all arrive, in order."""
    run_seed_to_newline(relay, seed, line_reader, [length], ROUNDS, BURST, WAIT)


def test_seed_send_message_in_a_loop_with_mixed_lengths(relay, seed, line_reader):
    """Padded and unpadded frames of every length joined in one stream."""
    run_seed_to_newline(relay, seed, line_reader, SEND_LENGTHS, ROUNDS, BURST, WAIT)


@pytest.mark.parametrize("length", RECV_LENGTHS)
def test_a_newline_burst_reaches_the_seed_receiver(relay, seed, line_reader, length):
    """A newline client sends 50 lines in a loop, three rounds, one length
    per case up to the longest a seed receiver can take: the seed shows
    all, in order, and its receive thread survives."""
    run_newline_to_seed(relay, seed, line_reader, [length], ROUNDS, BURST, WAIT)


def test_a_newline_burst_of_mixed_lengths_reaches_the_seed_receiver(relay, seed, line_reader):
    """Padded and unpadded messages of every receivable length mixed."""
    run_newline_to_seed(relay, seed, line_reader, RECV_LENGTHS, ROUNDS, BURST, WAIT)


def test_a_burst_of_500_from_the_seed(relay, seed, line_reader):
    """500 ``send_message`` calls in a loop, lengths mixed up to 4 KiB."""
    run_seed_to_newline(relay, seed, line_reader, SEND_LENGTHS, 2, BIG_BURST, BIG_WAIT)


def test_a_burst_of_500_to_the_seed(relay, seed, line_reader):
    """500 newline lines in a loop to a seed receiver, lengths mixed up to
    the longest it can take."""
    run_newline_to_seed(relay, seed, line_reader, RECV_LENGTHS, 2, BIG_BURST, BIG_WAIT)
