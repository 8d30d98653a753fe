"""The Python client (clients/python/eaxchat/) against the real relay:
two clients chatting, callbacks, closing, limits, and frames that do not
open being reported rather than shown."""

from __future__ import annotations

import json
import queue
import secrets
import socket
import subprocess
import time

import pytest

import eaxchat
from conftest import REPO, WAIT, wait_until


@pytest.fixture
def clients():
    """A factory of clients, every one closed at teardown."""
    made = []

    def connect(relay, key=None, **options):
        client = eaxchat.Client(relay.host, relay.port, key or relay.key_hex, **options)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


def test_two_clients_chat_both_ways(relay, clients):
    """Text and bytes reach the other client once and in order; the sender
    never gets its own messages back."""
    alice, bob = clients(relay), clients(relay, relay.key)
    relay.wait_for_clients(2)
    alice.send("hi bob")
    alice.send(b"\x00\xffraw bytes")
    alice.send("")
    alice.send_message("caf\u00e9 \u2615")
    assert bob.recv(WAIT) == b"hi bob"
    assert bob.recv(WAIT) == b"\x00\xffraw bytes"
    assert bob.recv(WAIT) == b""
    assert bob.recv_text(WAIT) == "caf\u00e9 \u2615"
    bob.send("hi alice")
    assert alice.recv_text(WAIT) == "hi alice"
    with pytest.raises(TimeoutError):
        alice.recv(0.2)
    with pytest.raises(TimeoutError):
        bob.recv(0.2)


def test_on_message_gets_every_message_on_the_receive_thread(relay, clients):
    """With ``on_message``, each message goes to the callback, in order."""
    got = queue.Queue()
    sender = clients(relay)
    listener = clients(relay, on_message=got.put)
    relay.wait_for_clients(2)
    for i in range(100):
        sender.send(f"message {i}")
    assert [got.get(timeout=WAIT) for _ in range(100)] == [
        f"message {i}".encode() for i in range(100)
    ]
    with pytest.raises(RuntimeError):
        listener.recv(0)


def test_the_longest_message_the_relay_accepts_is_sent_and_a_longer_one_refused(relay, clients):
    """``max_plaintext_len()`` is exactly the relay's default ``--max-frame``:
    that many bytes are relayed; one more is refused before sending."""
    sender, receiver = clients(relay), clients(relay)
    relay.wait_for_clients(2)
    longest = eaxchat.max_plaintext_len()
    assert len(eaxchat.seal(relay.key, b"x" * longest)) - 1 <= eaxchat.DEFAULT_MAX_FRAME
    assert len(eaxchat.seal(relay.key, b"x" * (longest + 3))) - 1 > eaxchat.DEFAULT_MAX_FRAME
    with pytest.raises(ValueError, match="longer than the relay accepts"):
        sender.send(b"x" * (longest + 1))
    sender.send(b"y" * longest)
    assert receiver.recv(WAIT) == b"y" * longest
    assert "closed" not in relay.log()


def test_a_frame_under_another_key_is_reported_never_returned(relay, clients):
    """A client holding the wrong key gets an AuthenticationError for the
    relay's frame, not text; its connection is closed."""
    sender = clients(relay)
    wrong = clients(relay, secrets.token_bytes(16))
    relay.wait_for_clients(2)
    sender.send("secret")
    with pytest.raises(eaxchat.AuthenticationError, match="wrong key"):
        wrong.recv(WAIT)
    assert wrong.closed
    assert isinstance(wrong.error, eaxchat.AuthenticationError)
    with pytest.raises(eaxchat.AuthenticationError):
        wrong.recv(0)
    with pytest.raises(eaxchat.ConnectionClosed):
        wrong.send("anything")
    relay.wait_for_log("closed: peer closed")


def test_on_error_gets_the_authentication_failure(relay, clients):
    """With callbacks, the failure goes to ``on_error``, never ``on_message``."""
    messages, errors = queue.Queue(), queue.Queue()
    sender = clients(relay)
    clients(relay, "ff" * 32, on_message=messages.put, on_error=errors.put)
    relay.wait_for_clients(2)
    sender.send("not for you")
    assert isinstance(errors.get(timeout=WAIT), eaxchat.AuthenticationError)
    assert messages.empty()


def test_close_and_the_context_manager_end_the_connection(relay, clients):
    """Leaving ``with`` closes the socket (the relay sees the peer go) and
    later sends and receives say it is closed."""
    with eaxchat.Client(relay.host, relay.port, relay.key) as client:
        relay.wait_for_clients(1)
        assert not client.closed
    assert client.closed
    relay.wait_for_log("closed: peer closed")
    with pytest.raises(eaxchat.ConnectionClosed):
        client.recv(WAIT)
    with pytest.raises(eaxchat.ConnectionClosed):
        client.send("late")
    client.close()  # a second close is harmless


def test_the_relay_going_away_ends_recv(relay, clients):
    """When the relay exits, ``recv`` raises ConnectionClosed, and keeps
    raising it."""
    sender, receiver = clients(relay), clients(relay)
    relay.wait_for_clients(2)
    sender.send("last words")
    assert receiver.recv(WAIT) == b"last words"
    assert relay.terminate() == 0
    with pytest.raises(eaxchat.ConnectionClosed):
        receiver.recv(WAIT)
    with pytest.raises(eaxchat.ConnectionClosed):
        receiver.recv(WAIT)
    wait_until(lambda: receiver.closed, "the client to see the close")
    assert receiver.error is None


def test_on_error_hears_the_relay_leave(relay, clients):
    """A callback client learns the relay went away via ``on_error``."""
    errors = queue.Queue()
    clients(relay, on_message=print, on_error=errors.put)
    relay.wait_for_clients(1)
    assert relay.terminate() == 0
    assert isinstance(errors.get(timeout=WAIT), eaxchat.ConnectionClosed)


def test_module_level_send_message_mirrors_the_original_notebook(relay, clients):
    """``eaxchat.connect`` then ``eaxchat.send_message(text)``, as the
    original notebook's global socket and function did."""
    listener = clients(relay)
    relay.wait_for_clients(1)
    default = eaxchat.connect(relay.host, relay.port, relay.key_hex)
    try:
        relay.wait_for_clients(2)
        eaxchat.send_message("from the notebook")
        assert listener.recv_text(WAIT) == "from the notebook"
    finally:
        default.close()


def test_seal_and_open_match_the_checked_in_pycryptodome_frames():
    """``open_frame`` opens each checked-in PyCryptodome line; tampering
    with any part of it is an AuthenticationError."""
    vectors = json.loads((REPO / "tests/vectors/pycryptodome_frames.json").read_text())
    for vector in vectors["frames"]:
        key = eaxchat.parse_key(vector["key"])
        line = vector["line"].encode()
        assert eaxchat.open_frame(key, line) == bytes.fromhex(vector["plaintext_hex"])
        for position in (0, 20, 40, len(line) - 6):
            tampered = bytearray(line)
            tampered[position] = ord("A") if tampered[position] != ord("A") else ord("B")
            with pytest.raises(eaxchat.AuthenticationError):
                eaxchat.open_frame(key, bytes(tampered))
    key = eaxchat.parse_key("00" * 16)
    for bad in [b"not base64!\n", b"AAAA\n", b"", b"=\n"]:
        with pytest.raises(eaxchat.AuthenticationError):
            eaxchat.open_frame(key, bad)
    assert eaxchat.open_frame(key, eaxchat.seal(key, b"round trip")) == b"round trip"


@pytest.mark.parametrize(
    "key, error",
    [("00" * 15, "got 15"), ("zz" * 16, "not hex"), (b"short", "got 5"), ("00" * 33, "got 33")],
)
def test_bad_keys_are_refused(key, error):
    """Keys that are not 16, 24 or 32 bytes (or not hex) are refused."""
    with pytest.raises(ValueError, match=error):
        eaxchat.parse_key(key)


def test_load_key_reads_a_relay_key_file(tmp_path):
    """``load_key`` reads the relay's key file format: hex, whitespace ignored."""
    path = tmp_path / "relay.key"
    path.write_text("  000102030405060708090a0b0c0d0e0f\n")
    assert eaxchat.load_key(path) == bytes(range(16))


def test_load_key_reads_a_member_key_file(tmp_path):
    """A member's key file (a ``#`` line naming the member, then the hex)
    reads as a ``MemberKey``: the key's bytes, and the member's name; other
    ``#`` lines and blank lines are skipped; a file of comments only, or
    with two keys, is refused."""
    path = tmp_path / "alice.key"
    path.write_text("# eaxchat member key for alice\n000102030405060708090a0b0c0d0e0f\n")
    key = eaxchat.load_key(path)
    assert isinstance(key, eaxchat.MemberKey)
    assert key == bytes(range(16)) and key.member == "alice"
    assert "0001" not in repr(key)
    path.write_text("# a note\n\n  000102030405060708090a0b0c0d0e0f\n")
    shared = eaxchat.load_key(path)
    assert shared == bytes(range(16)) and not isinstance(shared, eaxchat.MemberKey)
    for bad in ["# eaxchat member key for alice\n", "00" * 16 + "\n" + "11" * 16 + "\n"]:
        path.write_text(bad)
        with pytest.raises(ValueError, match="one line of hex"):
            eaxchat.load_key(path)


def test_load_key_reads_the_key_file_relay_members_add_writes(bins, tmp_path):
    """The key file ``relay members add --static-keys`` writes is a
    ``MemberKey`` with the key the members file holds."""
    subprocess.run(
        [str(bins.relay.resolve()), "members", "add", "carol", "--file", "members.txt",
         "--static-keys"],
        cwd=tmp_path,
        check=True,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    key = eaxchat.load_key(tmp_path / "carol.key")
    assert isinstance(key, eaxchat.MemberKey) and key.member == "carol"
    assert (tmp_path / "members.txt").read_text() == f"carol {key.hex()}\n"


def test_recv_text_neutralises_control_characters(relay, clients):
    """A peer's escape sequences, carriage returns and invalid UTF-8 come
    out of ``recv_text`` as U+FFFD, never as live control characters."""
    sender, receiver = clients(relay), clients(relay)
    relay.wait_for_clients(2)
    sender.send(b"\x1b[2Jclear\rover\x9b1m\xff \xf0\x9f\x91\x8b")
    assert receiver.recv_text(WAIT) == "\ufffd[2Jclear\ufffdover\ufffd1m\ufffd \U0001f44b"


def test_connecting_to_nothing_fails_at_once():
    """No relay listening: the constructor raises, no thread is left."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        eaxchat.Client("127.0.0.1", port, "00" * 16, timeout=WAIT)


def test_a_failing_on_message_is_reported_and_closes(relay, clients):
    """An exception in ``on_message`` is not lost: it goes to ``on_error``
    and the connection closes."""
    errors = queue.Queue()

    def broken(data):
        raise RuntimeError(f"cannot handle {data!r}")

    sender = clients(relay)
    victim = clients(relay, on_message=broken, on_error=errors.put)
    relay.wait_for_clients(2)
    sender.send("boom")
    error = errors.get(timeout=WAIT)
    assert isinstance(error, RuntimeError) and "boom" in str(error)
    wait_until(lambda: victim.closed, "the client to close")


# -- the receive path against any chunking (no relay: crafted bytes) --------

#: Message lengths whose frames have base64 padding ((32 + n) % 3 != 0) and
#: whose frames have none (n % 3 == 1), short and long.
CHUNK_LENGTHS = [0, 1, 2, 3, 4, 10, 100, 101, 1000, 1001, 3037, 4095, 4096]
CHUNK_KEY = bytes(range(16))


def bare_frame(plaintext, key=CHUNK_KEY):
    """A frame without its newline, as the original notebook sent it."""
    return eaxchat.seal(key, plaintext)[:-1]


def chunk_messages():
    return [bytes([65 + i % 26]) * n for i, n in enumerate(CHUNK_LENGTHS * 2)]


def feed_in_chunks(reader, stream, size):
    got = []
    for start in range(0, len(stream), size):
        got.extend(reader.feed(stream[start : start + size]))
    return got


@pytest.mark.parametrize("separator", [b"\n", b"\r\n", b""], ids=["lf", "crlf", "none"])
@pytest.mark.parametrize("size", [1, 3, 7, 44, 1000, 4096, 1 << 20])
def test_frame_reader_reads_every_frame_however_the_bytes_are_cut(separator, size):
    """Frames with and without padding, joined with newlines or with none,
    fed in reads of any size (several frames per read, a frame over many
    reads): every plaintext comes out once, in order, nothing left held."""
    messages = chunk_messages()
    stream = b"".join(bare_frame(m) + separator for m in messages)
    reader = eaxchat.FrameReader(CHUNK_KEY)
    assert feed_in_chunks(reader, stream, size) == messages
    assert list(reader.feed(b"")) == []


def test_joined_newline_less_frames_split_where_their_tags_verify():
    """Two unpadded frames in one read, then one split over two reads: the
    first two come out of the first read, the third once it is whole."""
    first, second, third = b"x", b"y" * 1000, b"z" * 4096
    assert all((32 + len(m)) % 3 == 0 for m in (first, second, third))
    reader = eaxchat.FrameReader(CHUNK_KEY)
    tail = bare_frame(third)
    assert list(reader.feed(bare_frame(first) + bare_frame(second) + tail[:100])) == [first, second]
    assert list(reader.feed(tail[100:])) == [third]


def test_a_line_of_joined_frames_is_read_as_all_of_them():
    """A newline ending a run of newline-less frames (padded and not) ends
    every one of them."""
    messages = [b"a", b"bb", b"c" * 4, b"", b"d" * 3037]
    line = b"".join(bare_frame(m) for m in messages) + b"\n"
    assert list(eaxchat.FrameReader(CHUNK_KEY).feed(line)) == messages


def test_a_frame_that_does_not_open_is_raised_after_the_ones_before_it():
    """A tampered frame after good ones: the good ones come out first, then
    AuthenticationError; with or without its newline."""
    for separator in (b"\n", b""):
        tampered = bytearray(bare_frame(b"bad!"))
        tampered[30] = ord("A") if tampered[30] != ord("A") else ord("B")  # in the tag
        stream = bare_frame(b"ok 1") + separator + bare_frame(b"ok 2") + separator
        reader = eaxchat.FrameReader(CHUNK_KEY)
        frames = reader.feed(stream + bytes(tampered) + separator + bare_frame(b"never"))
        assert next(frames) == b"ok 1"
        assert next(frames) == b"ok 2"
        with pytest.raises(eaxchat.AuthenticationError):
            next(frames)


def test_newline_less_bytes_that_never_open_are_cut_at_max_frame():
    """Unpadded newline-less frames under another key never verify: held
    until more than ``max_frame`` bytes are waiting, then an error."""
    reader = eaxchat.FrameReader(CHUNK_KEY, max_frame=8192)
    other = secrets.token_bytes(16)
    assert list(reader.feed(bare_frame(b"q" * 1000, other))) == []
    with pytest.raises(eaxchat.AuthenticationError, match="longer than 8192"):
        feed_in_chunks(reader, bare_frame(b"q" * 4096, other) * 2, 4096)


def test_the_seed_decrypt_loses_or_fails_on_joined_frames_where_the_reader_does_not():
    """What the original notebook's ``decrypt(sock.recv(4096).decode())``
    does with two frames in one read: ``base64.b64decode`` stops at the
    first padding, so after a padded frame it shows only that one; after an
    unpadded one the two decode as one and the tag fails. FrameReader reads
    both either way."""
    import base64

    from Crypto.Cipher import AES

    def seed_decrypt(data):
        data = base64.b64decode(data)
        cipher = AES.new(CHUNK_KEY, AES.MODE_EAX, nonce=data[:16])
        return cipher.decrypt_and_verify(data[32:], data[16:32]).decode()

    padded, unpadded = b"padded", b"no pad!"
    assert (32 + len(padded)) % 3 != 0 and (32 + len(unpadded)) % 3 == 0
    for separator in (b"", b"\n"):
        joined = bare_frame(padded) + separator + bare_frame(b"second") + separator
        assert seed_decrypt(joined.decode()) == "padded"
        assert list(eaxchat.FrameReader(CHUNK_KEY).feed(joined)) == [padded, b"second"]
        joined = bare_frame(unpadded) + separator + bare_frame(b"second") + separator
        with pytest.raises(ValueError):
            seed_decrypt(joined.decode())
        assert list(eaxchat.FrameReader(CHUNK_KEY).feed(joined)) == [unpadded, b"second"]


@pytest.fixture
def fake_relay():
    """A listening loopback socket standing in for the relay; yields a
    function that accepts the next client (bounded wait)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(WAIT)
        accepted = []

        def accept():
            conn, _ = server.accept()
            conn.settimeout(WAIT)
            accepted.append(conn)
            return conn

        yield server.getsockname()[1], accept
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize("separator", [b"\n", b""], ids=["lf", "none"])
def test_the_client_survives_crafted_chunks_from_its_peer(fake_relay, clients, separator):
    """Over a real socket, frames cut at odd places and sent with pauses
    (so each piece is its own read), with or without newlines: the Client
    delivers every message in order and stays open."""
    port, accept = fake_relay
    client = eaxchat.Client("127.0.0.1", port, CHUNK_KEY)
    try:
        peer = accept()
        messages = chunk_messages()
        stream = b"".join(bare_frame(m) + separator for m in messages)
        cuts = [0, 5, 44, 45, 3000, 3001, 9000, len(stream) // 2, len(stream) - 1, len(stream)]
        for start, end in zip(cuts, cuts[1:]):
            peer.sendall(stream[start:end])
            time.sleep(0.02)
        assert [client.recv(WAIT) for _ in messages] == messages
        assert not client.closed
    finally:
        client.close()


def test_what_the_client_sends_always_ends_in_a_newline(fake_relay):
    """``send``, ``send_message`` and the module's ``send_message`` each
    send exactly one line: the frame and its ``\\n``."""
    port, accept = fake_relay
    default = eaxchat.connect("127.0.0.1", port, CHUNK_KEY)
    try:
        peer = accept()
        default.send(b"bytes")
        default.send_message("text")
        eaxchat.send_message("module")
        eaxchat.send_message("")
        eaxchat.send_message("u" * 4096)
        received = bytearray()
        wait_until(lambda: received.extend(peer.recv(65536)) or received.count(b"\n") >= 5,
                   "five lines from the client")
        lines = bytes(received).split(b"\n")
        assert lines[-1] == b"", "the last send ends in a newline"
        assert [eaxchat.open_frame(CHUNK_KEY, line) for line in lines[:-1]] == [
            b"bytes", b"text", b"module", b"", b"u" * 4096,
        ]
    finally:
        default.close()


def read_lines(peer, count):
    """The first ``count`` lines a client sent to ``peer`` (bounded wait)."""
    received = bytearray()
    wait_until(
        lambda: received.extend(peer.recv(65536)) or received.count(b"\n") >= count,
        f"{count} lines from the client",
    )
    return bytes(received).split(b"\n")[:count]


def test_a_member_key_sends_the_empty_identifying_frame_first(fake_relay, tmp_path):
    """With a member's key file, the client's first frame is an empty
    message (it identifies the member), before anything it is asked to send."""
    port, accept = fake_relay
    path = tmp_path / "alice.key"
    path.write_text("# eaxchat member key for alice\n" + CHUNK_KEY.hex() + "\n")
    with eaxchat.Client("127.0.0.1", port, eaxchat.load_key(path)) as client:
        assert client.member
        peer = accept()
        client.send("hello")
        first, second = read_lines(peer, 2)
        assert eaxchat.open_frame(CHUNK_KEY, first) == b""
        assert eaxchat.open_frame(CHUNK_KEY, second) == b"hello"


def test_member_true_identifies_a_listener_and_connect_takes_it(fake_relay):
    """``member=True`` (the key given as hex) sends the empty frame too, so a
    client that only listens is identified; ``eaxchat.connect`` passes it on."""
    port, accept = fake_relay
    default = eaxchat.connect("127.0.0.1", port, CHUNK_KEY.hex(), member=True)
    try:
        assert default.member
        peer = accept()
        (first,) = read_lines(peer, 1)
        assert eaxchat.open_frame(CHUNK_KEY, first) == b""
        eaxchat.send_message("module")
        (second,) = read_lines(peer, 1)
        assert eaxchat.open_frame(CHUNK_KEY, second) == b"module"
    finally:
        default.close()


def test_a_shared_key_sends_no_identifying_frame(fake_relay):
    """With the shared key (or ``member=False`` over a member's key) nothing
    is sent until the client sends: no empty frame."""
    port, accept = fake_relay
    for key, member in [(CHUNK_KEY, None), (eaxchat.MemberKey(CHUNK_KEY, "alice"), False)]:
        with eaxchat.Client("127.0.0.1", port, key, member=member) as client:
            assert not client.member
            peer = accept()
            peer.settimeout(0.3)
            with pytest.raises(socket.timeout):
                peer.recv(65536)
            peer.settimeout(WAIT)
            client.send("first")
            (line,) = read_lines(peer, 1)
            assert eaxchat.open_frame(CHUNK_KEY, line) == b"first"


@pytest.mark.parametrize("separator", [b"\n", b""], ids=["lf", "none"])
def test_a_frame_sent_twice_is_refused_as_a_replay(separator):
    """The same frame twice on one connection: it comes out once, then
    ReplayedFrame; with or without its newline. A new reader (a new
    connection) starts afresh."""
    frame = bare_frame(b"once") + separator
    reader = eaxchat.FrameReader(CHUNK_KEY)
    frames = reader.feed(frame + bare_frame(b"between") + separator + frame)
    assert next(frames) == b"once"
    assert next(frames) == b"between"
    with pytest.raises(eaxchat.ReplayedFrame, match="replayed frame from the relay"):
        next(frames)
    assert list(eaxchat.FrameReader(CHUNK_KEY).feed(frame)) == [b"once"]


def test_the_window_forgets_after_its_length():
    """The window holds the last 65,536 nonces: the one before them is
    accepted again."""
    window = eaxchat._NonceWindow(size=4)
    for nonce in (b"a", b"b", b"c", b"d"):
        window.accept(nonce)
    with pytest.raises(eaxchat.ReplayedFrame):
        window.accept(b"a")
    window.accept(b"e")
    window.accept(b"a")
    with pytest.raises(eaxchat.ReplayedFrame):
        window.accept(b"e")


def test_the_client_closes_on_a_replayed_frame(fake_relay):
    """A fake relay sends one frame twice: the Client delivers it once,
    then reports the replay and closes the connection."""
    port, accept = fake_relay
    client = eaxchat.Client("127.0.0.1", port, CHUNK_KEY)
    try:
        peer = accept()
        line = eaxchat.seal(CHUNK_KEY, b"said once")
        peer.sendall(line)
        assert client.recv(WAIT) == b"said once"
        peer.sendall(line)
        with pytest.raises(eaxchat.ReplayedFrame, match="replayed frame from the relay"):
            client.recv(WAIT)
        assert client.closed
        assert peer.recv(1024) == b"", "the client closed its end"
    finally:
        client.close()


def test_its_own_frame_reflected_back_is_dropped(fake_relay):
    """Finding 6 of issue #29: a fake relay sends the client's own frame
    back: the client does not deliver it, stays open, and delivers the
    next frame of the relay's."""
    port, accept = fake_relay
    client = eaxchat.Client("127.0.0.1", port, CHUNK_KEY)
    try:
        peer = accept()
        client.send("secret plan")
        (own,) = read_lines(peer, 1)
        peer.sendall(own + b"\n")
        peer.sendall(eaxchat.seal(CHUNK_KEY, b"from the relay"))
        assert client.recv(WAIT) == b"from the relay"
        assert not client.closed
    finally:
        client.close()
