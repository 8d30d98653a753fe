"""Interop with PyCryptodome, independent of the client module: frames
sealed here with ``AES.MODE_EAX`` are accepted and relayed, frames the relay
sends open here; the checked-in PyCryptodome vectors pass through; and the
original notebook's newline-less sends work until a client uses a newline.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from Crypto.Cipher import AES

from conftest import REPO

VECTORS = REPO / "tests" / "vectors" / "pycryptodome_frames.json"


def seal(key: bytes, plaintext: bytes) -> bytes:
    """``base64(nonce || tag || ct)`` without newline, exactly as the
    original notebook built it."""
    cipher = AES.new(key, AES.MODE_EAX)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return base64.b64encode(cipher.nonce + tag + ciphertext)


def open_line(key: bytes, line: bytes) -> bytes:
    """Opens a line the relay sent; raises ``ValueError`` if it does not
    authenticate."""
    assert line.endswith(b"\n"), line
    data = base64.b64decode(line[:-1], validate=True)
    nonce, tag, ciphertext = data[:16], data[16:32], data[32:]
    return AES.new(key, AES.MODE_EAX, nonce=nonce).decrypt_and_verify(ciphertext, tag)


@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_pycryptodome_frames_go_both_ways(start_relay, line_socket, key_len):
    """Lines sealed by PyCryptodome under AES-128/192/256 reach the other
    client once, in order, resealed under a fresh nonce that PyCryptodome
    opens; the sender gets nothing back."""
    relay = start_relay(secrets.token_hex(key_len))
    alice, bob = line_socket(relay), line_socket(relay)
    relay.wait_for_clients(2)
    messages = [b"", b"hello", "h\u00e9llo w\u00f6rld \u2713".encode(), bytes(range(256)) * 20]
    sent = [seal(relay.key, m) for m in messages]
    for line in sent:
        alice.send(line + b"\n")
    for line, message in zip(sent, messages):
        got = bob.read_line()
        assert open_line(relay.key, got) == message
        assert got[:-1] != line, "the relay must reseal, not forward"
        assert len(got) == len(line) + 1
    # Bob answers with CRLF, which the relay also accepts.
    bob.send(seal(relay.key, b"back") + b"\r\n")
    assert open_line(relay.key, alice.read_line()) == b"back"
    alice.assert_nothing_within(0.2)


def test_the_checked_in_pycryptodome_vectors_are_relayed(start_relay, line_socket):
    """Each line of tests/vectors/pycryptodome_frames.json (key 00..0f) is
    accepted and its plaintext delivered. The vectors share one fixed nonce,
    so each goes to a relay of its own: one relay refuses a nonce twice."""
    vectors = json.loads(VECTORS.read_text())["frames"]
    key_hex = vectors[0]["key"]
    assert key_hex == "000102030405060708090a0b0c0d0e0f"
    for vector in vectors:
        assert vector["key"] == key_hex
        relay = start_relay(key_hex)
        sender, receiver = line_socket(relay), line_socket(relay)
        relay.wait_for_clients(2)
        sender.send(vector["line"].encode())
        got = open_line(relay.key, receiver.read_line())
        assert got == bytes.fromhex(vector["plaintext_hex"])
        assert "rejected" not in relay.log()


def test_a_frame_under_another_key_is_not_relayed(start_relay, line_socket):
    """A PyCryptodome frame under the wrong key closes its sender and reaches
    nobody; the other clients carry on."""
    relay = start_relay()
    intruder, bystander, friend = line_socket(relay), line_socket(relay), line_socket(relay)
    relay.wait_for_clients(3)
    intruder.send(seal(secrets.token_bytes(16), b"forged") + b"\n")
    relay.wait_for_log("closed: rejected frame")
    friend.send(seal(relay.key, b"still here") + b"\n")
    assert open_line(relay.key, bystander.read_line()) == b"still here"


def test_newline_less_sends_of_the_original_notebook_are_relayed(relay, line_socket):
    """The original notebook sent ``base64(nonce+tag+ct)`` with no newline,
    one frame per send, waiting between sends: each is relayed, even one
    that arrives in two pieces."""
    notebook, reader = line_socket(relay), line_socket(relay)
    relay.wait_for_clients(2)
    for message in [b"first", b"", "second \u2713".encode()]:
        notebook.send(seal(relay.key, message))
        assert open_line(relay.key, reader.read_line()) == message
    frame = seal(relay.key, b"split in two")
    notebook.send(frame[:20])
    reader.assert_nothing_within(0.2)
    notebook.send(frame[20:])
    assert open_line(relay.key, reader.read_line()) == b"split in two"
    assert "closed" not in relay.log()


def test_after_a_newline_a_frame_waits_for_its_own_newline(relay, line_socket):
    """Once a client has sent a newline, a frame it sends without one is not
    taken as a message until its newline arrives."""
    client, reader, other = line_socket(relay), line_socket(relay), line_socket(relay)
    relay.wait_for_clients(3)
    client.send(seal(relay.key, b"with newline") + b"\n")
    assert open_line(relay.key, reader.read_line()) == b"with newline"

    client.send(seal(relay.key, b"held back"))
    # The held frame is already in the relay's socket buffer when `other`
    # sends: the relay reads both before it writes, so had it taken the
    # frame as a message, the reader would get it with (or before) this one.
    time.sleep(0.1)
    other.send(seal(relay.key, b"marker") + b"\n")
    assert open_line(relay.key, reader.read_line()) == b"marker"
    reader.assert_nothing_within(0.3)

    # Had the frame been taken already, this lone newline would be an empty
    # line and the relay would close the client instead.
    client.send(b"\n")
    assert open_line(relay.key, reader.read_line()) == b"held back"
    client.send(seal(relay.key, b"after") + b"\n")
    assert open_line(relay.key, reader.read_line()) == b"after"
    assert "closed" not in relay.log()
