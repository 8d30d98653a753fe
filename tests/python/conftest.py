"""Shared fixtures for the Python tests: build and find the binaries, start
the real relay on a free loopback port, and wait for things with bounds.

Every wait here has a timeout (``WAIT``); every process started is
terminated (SIGTERM, then SIGKILL) at teardown. No pytest plugins needed.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "clients" / "python"))

#: How long any single wait in a test may take before it fails.
WAIT = 10.0
#: How long building the binaries may take (a cold debug build of the
#: package is about a minute on the 2-core CI machine).
BUILD_WAIT = 900.0

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+);")


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    """Polls ``predicate`` until it returns something truthy; fails the test
    with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Binaries:
    """Where the built ``relay`` and ``chat`` binaries are."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.relay = directory / "relay"
        self.chat = directory / "chat"


@pytest.fixture(scope="session")
def bins() -> Binaries:
    """The binaries: from ``$EAXCHAT_BIN_DIR`` if set, else built here with
    ``cargo build --bins`` into ``$CARGO_TARGET_DIR`` (or ``target/``)."""
    override = os.environ.get("EAXCHAT_BIN_DIR")
    if override:
        found = Binaries(Path(override))
    else:
        try:
            subprocess.run(
                ["cargo", "build", "--bins", "--quiet"],
                cwd=REPO,
                check=True,
                timeout=BUILD_WAIT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.CalledProcessError as error:
            pytest.exit(f"cargo build failed: {error}", returncode=1)
        target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
        if not target.is_absolute():
            target = REPO / target
        found = Binaries(target / "debug")
    if not found.relay.is_file():
        pytest.exit(f"no relay binary at {found.relay}", returncode=1)
    return found


class Relay:
    """A ``relay`` process on a free loopback port, its stderr drained into
    :attr:`log` by a thread so it never blocks on a full pipe."""

    def __init__(
        self,
        binary: Path,
        key_hex: str,
        extra: Sequence[str],
        members: Optional[Path] = None,
    ) -> None:
        self.key_hex = key_hex
        self.key = bytes.fromhex(key_hex)
        #: The members file it serves (``--members``), or ``None`` for a
        #: shared-key relay; a members relay loads no shared key, so
        #: :attr:`key` opens nothing it sends then.
        self.members = members
        self.host = "127.0.0.1"
        env = {k: v for k, v in os.environ.items() if k != "EAXCHAT_KEY"}
        env["RUST_LOG"] = "info"
        keys = ["--members", str(members)] if members is not None else ["--key-hex", key_hex]
        # Tests that count every line a client gets run without history,
        # join notices or flood control unless they ask for them (the chat
        # layer's tests do).
        quiet = []
        for flag, off in (("--history", "0"), ("--presence", "off"), ("--rate", "0")):
            if flag not in extra:
                quiet += [flag, off]
        self.process = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", *keys,
             "--stats-interval", "0", *quiet, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._lines: List[str] = []
        self._lock = threading.Lock()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        line = self.wait_for_log("listening on ")
        match = _LISTENING.search(line)
        if not match:
            self.terminate()
            pytest.fail(f"no loopback port in the relay's log line {line!r}")
        self.port = int(match.group(1))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._lock:
                self._lines.append(raw.decode("utf-8", errors="replace"))

    @property
    def addr(self) -> str:
        """``HOST:PORT``, as ``chat --connect`` takes it."""
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        """Everything the relay has logged so far."""
        with self._lock:
            return "".join(self._lines)

    def count_log(self, needle: str) -> int:
        """How many log lines so far contain ``needle``."""
        with self._lock:
            return sum(needle in line for line in self._lines)

    def wait_for_log(self, needle: str, count: int = 1) -> str:
        """Waits (bounded) until ``count`` log lines contain ``needle``;
        returns the last of them."""
        deadline = time.monotonic() + WAIT
        while True:
            with self._lock:
                found = [line for line in self._lines if needle in line]
            if len(found) >= count:
                return found[count - 1]
            if self.process.poll() is not None:
                self._drain.join(1.0)
                pytest.fail(f"relay exited ({self.process.returncode}) before logging "
                            f"{needle!r}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"relay did not log {needle!r} {count} times within {WAIT} s:\n"
                            f"{self.log()}")
            time.sleep(0.01)

    def wait_for_clients(self, count: int) -> None:
        """Waits until the relay has accepted ``count`` connections in all,
        so a message sent next reaches every one of them."""
        self.wait_for_log("connected from", count)

    def terminate(self) -> Optional[int]:
        """SIGTERM, a bounded wait, then SIGKILL; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        self._drain.join(WAIT)
        return self.process.returncode


@pytest.fixture
def start_relay(bins: Binaries) -> Iterator[Callable[..., Relay]]:
    """A factory: ``start_relay(key_hex=None, extra=(), members=None)``
    starts a relay (a random AES-128 key unless given; with ``members``, a
    members relay serving that file instead); all are terminated at
    teardown."""
    started: List[Relay] = []

    def start(
        key_hex: Optional[str] = None,
        extra: Sequence[str] = (),
        members: Optional[Path] = None,
    ) -> Relay:
        relay = Relay(bins.relay, key_hex or secrets.token_hex(16), extra, members)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.terminate()


@pytest.fixture
def relay(start_relay: Callable[..., Relay]) -> Relay:
    """One relay with a random key."""
    return start_relay()


class MembersFile:
    """A static-key members file (the deprecated members mode, which the
    original notebook client speaks) made with the real ``relay members add
    --static-keys``, and the key file it wrote for each member (mode 0600,
    in the same directory)."""

    def __init__(self, binary: Path, directory: Path, names: Sequence[str]) -> None:
        self.path = directory / "members.txt"
        self.key_files = {}
        for name in names:
            subprocess.run(
                [str(binary.resolve()), "members", "add", name, "--file", str(self.path),
                 "--key-out", str(directory / f"{name}.key"), "--static-keys"],
                check=True,
                timeout=WAIT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            self.key_files[name] = directory / f"{name}.key"
        assert self.path.stat().st_mode & 0o777 == 0o600

    def key(self, name: str) -> bytes:
        """The member's key bytes, as the members file holds them."""
        for line in self.path.read_text().splitlines():
            member, _, hex_key = line.partition(" ")
            if member == name:
                return bytes.fromhex(hex_key.strip())
        raise KeyError(name)


@pytest.fixture
def members_relay(
    bins: Binaries, start_relay: Callable[..., Relay], tmp_path: Path
) -> Iterator[Relay]:
    """A members relay (``relay --members FILE``) serving ``alice`` and
    ``bob``, made with ``relay members add``: :attr:`Relay.members_file`
    holds the file and each member's key file. Stopped at teardown by
    ``start_relay``."""
    members = MembersFile(bins.relay, tmp_path, ["alice", "bob"])
    relay = start_relay(members=members.path)
    relay.members_file = members  # type: ignore[attr-defined]
    relay.wait_for_log("members mode: 2 members")
    yield relay


class LineSocket:
    """A raw TCP connection that reads ``\\n``-terminated lines with a
    bounded wait: what the interop tests use instead of the client module."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()

    def send(self, data: bytes) -> None:
        """Sends ``data`` as one ``send`` call, as the original notebook did."""
        self.sock.sendall(data)

    def read_line(self, timeout: float = WAIT) -> bytes:
        """The next line with its ``\\n``; fails the test if none arrives
        within ``timeout`` or the relay closes first."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no line within {timeout} s (buffered {bytes(self._buffer)!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                pytest.fail(f"relay closed the connection (buffered {bytes(self._buffer)!r})")
            self._buffer += chunk
        end = self._buffer.index(b"\n") + 1
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    def assert_nothing_within(self, seconds: float) -> None:
        """Fails if any byte arrives within ``seconds``."""
        assert not self._buffer, f"unexpected bytes {bytes(self._buffer)!r}"
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        pytest.fail(f"expected nothing, got {chunk!r}")

    def close(self) -> None:
        """Closes the socket."""
        self.sock.close()


@pytest.fixture
def line_socket() -> Iterator[Callable[[Relay], LineSocket]]:
    """A factory of :class:`LineSocket` connections to a relay, all closed
    at teardown."""
    opened: List[LineSocket] = []

    def connect(relay: Relay) -> LineSocket:
        conn = LineSocket(relay.host, relay.port)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def relay_has_sessions(binary: Path) -> bool:
    """Whether this ``relay`` speaks sessions (its ``--help`` lists
    ``--identity``): the session relay tests say they are pending without."""
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                         timeout=WAIT, stdin=subprocess.DEVNULL)
    return "--identity" in out.stdout + out.stderr


def write_members(path: Path, lines: str) -> None:
    """Writes a session members file (``NAME x25519:…`` lines: public keys
    only), mode 0600 as ``relay members add`` writes its files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(lines)
