"""The Python client's sessions (clients/python/eaxsession/): the published
cacophony vectors, handshake lines, counter nonces, session keys and frames,
identity files, and live interop with the Rust responder
(crates/proto/examples/session_responder.rs, over snow).

    NOISE_VECTORS  path to snow's tests/vectors/cacophony.txt (the snow crate's source)
    INTEROP_BIN    path to the built session_responder example

Unset, the tests that need them are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import socket
import stat
import subprocess
import threading
import time

import pytest
from Crypto.Cipher import AES
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import eaxsession as es

VECTOR_PROTOCOLS = {es.PROTOCOL_IK, es.PROTOCOL_IKPSK2, es.PROTOCOL_IKPSK1}
WAIT = 10.0


def _required(name: str, what: str) -> str:
    """The value of env var `name`; skips the test when it is unset, or fails
    it under CI=true, where every test must run."""
    value = os.environ.get(name)
    if value:
        return value
    why = f"{name} is not set ({what})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI=true needs it")
    pytest.skip(why)


def _vectors() -> list:
    path = _required("NOISE_VECTORS", "path to snow's tests/vectors/cacophony.txt")
    with open(path) as f:  # set but unreadable is a failure, not a skip
        vectors = json.load(f)["vectors"]
    return [v for v in vectors if v["protocol_name"] in VECTOR_PROTOCOLS]


# ---------------------------------------------------------------- cacophony vectors

def test_cacophony_vectors_both_roles():
    """Every IK, IKpsk1 (invite joins) and IKpsk2 vector, from both sides: the handshake messages,
    the handshake hash, and the transport messages under our raw split."""
    vectors = _vectors()
    assert {v["protocol_name"] for v in vectors} == VECTOR_PROTOCOLS
    for vector in vectors:
        for role in ("initiator", "responder"):
            _check_vector(vector, role)


def _check_vector(vector, role):
    x = bytes.fromhex
    me = "init" if role == "initiator" else "resp"
    psks = vector.get(f"{me}_psks") or [None]
    assert len(psks) == 1
    conn = es.new_handshake(
        vector["protocol_name"], role == "initiator", x(vector[f"{me}_static"]),
        remote_public=x(vector[f"{me}_remote_static"]) if f"{me}_remote_static" in vector else None,
        psk=x(psks[0]) if psks[0] else None,
        prologue=x(vector[f"{me}_prologue"]),
        ephemeral_private=x(vector[f"{me}_ephemeral"]))
    messages = vector["messages"]
    assert len(messages) > 2
    for i, m in enumerate(messages):
        payload, ciphertext = x(m["payload"]), x(m["ciphertext"])
        mine = (i % 2 == 0) == (role == "initiator")
        handshake = i < 2
        if mine:
            out = conn.write_message(payload) if handshake else conn.encrypt(payload)
            assert bytes(out) == ciphertext, f"{role} message {i}"
        else:
            got = conn.read_message(ciphertext) if handshake else conn.decrypt(ciphertext)
            assert bytes(got) == payload, f"{role} message {i}"
        if i == 1:
            assert conn.handshake_finished
            assert bytes(conn.get_handshake_hash()) == x(vector["handshake_hash"])
            k1, k2 = es.raw_split(conn)
    # The raw split keys, used directly with AES-GCM, reproduce the transport messages:
    # k1 seals initiator->responder (even indexes), k2 responder->initiator.
    counters = [0, 0]
    for i, m in enumerate(messages[2:], start=2):
        d = i % 2
        nonce = bytes(4) + counters[d].to_bytes(8, "big")
        counters[d] += 1
        sealed = AESGCM(k1 if d == 0 else k2).encrypt(nonce, x(m["payload"]), b"")
        assert sealed == x(m["ciphertext"]), f"message {i} under raw split"


# ---------------------------------------------------------------- handshake lines

def test_line_roundtrip_and_bound():
    line = es.encode_line(0x01, b"hello")
    assert line.endswith(b"\n") and base64.b64decode(line[:-1]) == b"\x01hello"
    for form in (line, line[:-1], line[:-1] + b"\r\n"):
        assert es.decode_line(form) == (0x01, b"hello")
    longest = es.encode_line(0x02, bytes(767))  # 768 raw bytes -> 1024 base64 chars
    assert len(longest) == 1025
    assert es.decode_line(longest) == (0x02, bytes(767))
    with pytest.raises(es.LineError, match="exceeds 1024"):
        es.encode_line(0x02, bytes(768))
    with pytest.raises(es.LineError, match="exceeds 1024"):
        es.decode_line(b"A" * 1028 + b"\n")
    with pytest.raises(es.LineError, match="512"):
        es.encode_line(0x7F, b"x" * 513)
    with pytest.raises(es.LineError, match="512"):
        es.decode_line(base64.b64encode(b"\x7f" + b"x" * 513))
    with pytest.raises(ValueError):
        es.encode_line(0x42, b"")


@pytest.mark.parametrize("garbage", [b"\n", b"", b"!!!!\n", b"AQ\n", b"AQ==AQ==\n",
                                     b"AQ ==\n", b"AQ-_\n", b"AR==\n", "é".encode() + b"\n",
                                     b"BQEC\n", b"AA==\n"])
def test_garbage_lines(garbage):
    with pytest.raises(es.LineError):
        es.decode_line(garbage)


def test_read_line_bounds():
    ok = es.encode_line(1, bytes(767))
    stream = io.BytesIO(ok + b"next")
    assert es.read_line(stream) == ok
    assert stream.read() == b"next"  # nothing past the newline consumed
    with pytest.raises(es.LineError, match="no newline within 1024"):
        es.read_line(io.BytesIO(b"A" * 2000 + b"\n"))
    with pytest.raises(es.LineError, match="middle of a line"):
        es.read_line(io.BytesIO(b"AQ=="))
    with pytest.raises(es.LineError, match="closed before"):
        es.read_line(io.BytesIO(b""))


def _relay(psk=None):
    priv, pub = es.generate_keypair()
    if psk is None:
        return priv, pub, es.new_handshake(es.PROTOCOL_IK, False, priv)
    return priv, pub, es.new_handshake(es.PROTOCOL_IKPSK1, False, priv, psk=psk,
                                       prologue=es.JOIN_PROLOGUE)


@pytest.mark.parametrize("with_psk", [False, True])
def test_in_process_handshake(with_psk):
    psk, invite = (os.urandom(32), os.urandom(es.INVITE_ID_LEN)) if with_psk else (None, None)
    _, relay_pub, relay = _relay(psk)
    client_priv, client_pub = es.generate_keypair()
    ini = es.Initiator(client_priv, relay_pub, psk=psk, invite_id=invite)
    kind, body = es.decode_line(ini.line1(b'{"v":1}'))
    if with_psk:
        assert kind == es.KIND_INVITE and body[:es.INVITE_ID_LEN] == invite
        body = body[es.INVITE_ID_LEN:]
    else:
        assert kind == es.KIND_HELLO
    assert bytes(relay.read_message(body)) == b'{"v":1}'
    assert relay.noise_protocol.handshake_state.rs.public_bytes == client_pub
    line2 = es.encode_line(es.KIND_WELCOME, bytes(relay.write_message("bob ✓".encode())))
    assert ini.consume_line2(line2) == "bob ✓"
    assert (ini.k1, ini.k2) == es.raw_split(relay)
    assert ini.handshake_hash == bytes(relay.get_handshake_hash())
    assert (ini.c2s, ini.s2c) == es.derive_session_keys(ini.k1, ini.k2, ini.handshake_hash)
    assert ini.c2s != ini.s2c
    relay_side = es.Session.relay(ini.c2s, ini.s2c)
    assert relay_side.open(ini.session.seal(b"up")) == b"up"
    assert ini.session.open(relay_side.seal(b"down")) == b"down"


def test_refusal_and_bad_replies():
    _, relay_pub, _ = _relay()
    priv, _ = es.generate_keypair()

    def fresh():
        ini = es.Initiator(priv, relay_pub)
        ini.line1()
        return ini

    other = es.fingerprint(os.urandom(32))
    with pytest.raises(es.Refused) as e:
        fresh().consume_line2(es.encode_line(0x7F, f"no; {es.RELAY_KEY_MARK}{other}".encode()))
    assert e.value.pinned == es.fingerprint(relay_pub) and e.value.relay == other
    assert es.fingerprint(relay_pub) in str(e.value) and other in str(e.value)
    with pytest.raises(es.Refused) as e:  # a fingerprint elsewhere is not the relay's
        fresh().consume_line2(es.encode_line(0x7F, f"unknown key {other}\x1b[2J".encode()))
    assert e.value.relay is None and "says its key is" not in str(e.value)
    assert "\x1b" not in str(e.value)
    with pytest.raises(es.LineError, match="512"):
        fresh().consume_line2(base64.b64encode(b"\x7f" + b"x" * 513) + b"\n")
    with pytest.raises(es.LineError, match="expected kind 0x02, got 0x01"):
        fresh().consume_line2(es.encode_line(0x01, b"x"))
    with pytest.raises(es.LineError):
        fresh().consume_line2(b"not base64 at all\n")
    with pytest.raises(es.HandshakeFailed, match="did not decrypt"):
        fresh().consume_line2(es.encode_line(0x02, os.urandom(80)))
    with pytest.raises(es.HandshakeFailed):
        fresh().consume_line2(es.encode_line(0x02, b"short"))
    ini = es.Initiator(priv, relay_pub)
    with pytest.raises(ValueError):
        ini.line1(b"x" * 129)
    with pytest.raises(UnicodeDecodeError):
        ini.line1(b"\xff")
    with pytest.raises(ValueError):
        ini.line1(b"not json")


# ---------------------------------------------------------------- nonces, frames

def test_nonce_layout():
    assert es.frame_nonce(0) == bytes(16)
    assert es.frame_nonce(258) == bytes(14) + b"\x01\x02"
    assert es.frame_nonce(2**64 - 1) == bytes(8) + b"\xff" * 8
    with pytest.raises(ValueError):
        es.frame_nonce(2**64)
    sender = es.SendCounter()
    assert [sender.nonce() for _ in range(3)] == [es.frame_nonce(n) for n in range(3)]


def test_receive_tracker():
    t = es.ReceiveTracker()
    for n in range(3):
        assert t.check(es.frame_nonce(n)) == n
        t.commit()
    with pytest.raises(es.NonceError, match="replay"):
        t.check(es.frame_nonce(2))                      # replay of the last frame
    with pytest.raises(es.NonceError, match="replay"):
        t.check(es.frame_nonce(0))                      # older replay
    with pytest.raises(es.NonceError, match="gap"):
        t.check(es.frame_nonce(4))                      # gap (3 missing) / 4 before 3
    with pytest.raises(es.NonceError, match="nonzero"):
        t.check(b"\x00" * 7 + b"\x01" + (3).to_bytes(8, "big"))
    with pytest.raises(es.NonceError, match="16"):
        t.check(bytes(12))
    assert t.check(es.frame_nonce(3)) == 3              # a frame that fails to open:
    assert t.check(es.frame_nonce(3)) == 3              # no commit, so 3 is still next
    t.commit()
    with pytest.raises(es.NonceError):
        t.check(es.frame_nonce(3))


def _session_pair():
    c2s, s2c = es.derive_session_keys(os.urandom(32), os.urandom(32), os.urandom(32))
    return c2s, es.Session.client(c2s, s2c), es.Session.relay(c2s, s2c)


def test_frames_are_todays_wire_lines_under_counter_nonces():
    c2s, client, relay = _session_pair()
    for n in range(3):
        line = client.seal(f"hi {n}")
        assert line.endswith(b"\n")
        frame = base64.b64decode(line[:-1], validate=True)
        assert frame[:16] == es.frame_nonce(n)
        # An ordinary AES-256-EAX frame under c2s, as the eaxchat package opens frames.
        plain = AES.new(c2s, AES.MODE_EAX, nonce=frame[:16]).decrypt_and_verify(frame[32:], frame[16:32])
        assert plain == f"hi {n}".encode()
        assert relay.open(line) == f"hi {n}".encode()
    assert client.open(relay.seal(b"back").rstrip(b"\n") + b"\r\n") == b"back"
    assert (client.sealer.sealed, relay.opener.opened) == (3, 3)


def test_frames_refuse_replay_gap_reorder_reflection_and_other_sessions():
    _, client, relay = _session_pair()
    lines = [client.seal(bytes([n])) for n in range(3)]
    assert relay.open(lines[0]) == b"\x00"
    with pytest.raises(es.NonceError, match="replay"):
        relay.open(lines[0])
    with pytest.raises(es.NonceError, match="gap"):
        relay.open(lines[2])
    assert relay.open(lines[1]) == b"\x01"
    with pytest.raises(es.FrameError, match="tag mismatch"):
        client.open(lines[0])                           # reflected back to its sender
    _, _, other = _session_pair()
    with pytest.raises(es.FrameError, match="tag mismatch"):
        other.open(lines[0])                            # another session, counter 0
    forged = bytearray(base64.b64decode(lines[2][:-1]))
    forged[-1] ^= 1
    with pytest.raises(es.FrameError, match="tag mismatch"):
        relay.open(base64.b64encode(bytes(forged)))
    assert relay.opener.opened == 2                     # nothing refused moved the counter
    assert relay.open(lines[2]) == b"\x02"
    for bad, why in ((b"!!!!", "base64"), (base64.b64encode(bytes(31)), "shorter")):
        with pytest.raises(es.FrameError, match=why):
            relay.open(bad)
    with pytest.raises(ValueError):
        es.FrameSealer(bytes(16))


def test_read_frame_line_bounds():
    stream = io.BytesIO(b"QUJD\nrest")
    assert es.read_frame_line(stream) == b"QUJD\n"
    with pytest.raises(es.FrameError, match="middle of a frame"):
        es.read_frame_line(stream)
    assert es.read_frame_line(io.BytesIO(b"")) == b""
    with pytest.raises(es.FrameError, match="no newline within 8"):
        es.read_frame_line(io.BytesIO(b"A" * 20 + b"\n"), limit=8)


# ---------------------------------------------------------------- keys

def _hkdf_by_hand(salt, ikm, info):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_hkdf_matches_rfc5869_by_hand():
    k1, k2, h = os.urandom(32), os.urandom(32), os.urandom(32)
    c2s, s2c = es.derive_session_keys(k1, k2, h)
    assert c2s == _hkdf_by_hand(h, k1, b"eaxchat/1 session c2s")
    assert s2c == _hkdf_by_hand(h, k2, b"eaxchat/1 session s2c")
    with pytest.raises(ValueError):
        es.derive_session_keys(k1, k2, h[:31])


def test_fingerprint_and_key_text():
    # openssl: head -c 32 /dev/zero | openssl dgst -sha256 -binary | base64
    assert es.fingerprint(bytes(32)) == "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
    _, pub = es.generate_keypair()
    text = es.public_key_text(pub)
    assert text.startswith("x25519:") and text.endswith("=")
    assert es.parse_public_key(text) == pub
    for bad in ("ed25519:" + text[7:], "x25519:AAAA", "x25519:not base64!"):
        with pytest.raises(ValueError):
            es.parse_public_key(bad)


def test_identity_file_is_0600(tmp_path):
    priv, pub = es.generate_keypair()
    assert es.public_from_private(priv) == pub
    path = str(tmp_path / "id")
    old = os.umask(0)  # even with a permissive umask the file is 0600
    try:
        es.save_private_key(path, priv)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert es.load_private_key(path) == priv
    with pytest.raises(FileExistsError):
        es.save_private_key(path, priv)
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="0644"):
        es.load_private_key(path)


# ---------------------------------------------------------------- Rust interop (snow)

class Responder:
    """The session_responder example: one connection, `key=value` lines on
    stdout, drained by a thread so every wait here is bounded."""

    def __init__(self, relay_private: bytes):
        binary = _required("INTEROP_BIN", "path to the built session_responder example")
        self.proc = subprocess.Popen([binary, relay_private.hex()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.fields: dict = {}
        self._lock = threading.Lock()
        self._drain = threading.Thread(target=self._read_stdout, daemon=True)
        self._drain.start()
        self.port = int(self._wait_for("port"))

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            name, _, value = line.rstrip("\n").partition("=")
            with self._lock:
                self.fields.setdefault(name, []).append(value)

    def _wait_for(self, name: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self._lock:
                if name in self.fields:
                    return self.fields[name][0]
            if self.proc.poll() is not None and not self._drain.is_alive():
                break
            time.sleep(0.01)
        raise AssertionError(f"the responder did not print {name!r} within {WAIT} s")

    def finish(self) -> int:
        """Waits (bounded) for the responder to exit; returns its status."""
        self.proc.wait(WAIT)
        self._drain.join(WAIT)
        self.stderr = self.proc.stderr.read()
        return self.proc.returncode

    def field(self, name: str) -> str:
        return self.fields[name][0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        self._drain.join(WAIT)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def responder():
    started = []

    def start(relay_private: bytes) -> Responder:
        started.append(Responder(relay_private))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()


def test_interop_keys_and_frames_match_rust(responder):
    """Against the Rust responder: the same keys, a frame each way, and a
    replayed frame refused by the Rust side."""
    relay_priv, relay_pub = es.generate_keypair()
    rust = responder(relay_priv)
    assert rust.field("relay_public") == es.public_key_text(relay_pub)
    assert rust.field("relay_fingerprint") == es.fingerprint(relay_pub)
    client_priv, client_pub = es.generate_keypair()
    ini = es.Initiator(client_priv, relay_pub)
    with socket.create_connection(("127.0.0.1", rust.port), timeout=WAIT) as sock:
        sock.settimeout(WAIT)
        name, reader = es.handshake(sock, ini, b'{"v":1}')
        with reader:
            assert name == "alice"
            assert ini.session.open(es.read_frame_line(reader)) == b"hello from rust"
            line = ini.session.seal(b"hello from python")
            sock.sendall(line + line)                   # the second is a replay
            sock.shutdown(socket.SHUT_WR)
            assert rust.finish() == 0, rust.stderr
    assert rust.field("client_public") == es.public_key_text(client_pub)
    assert rust.field("client_fingerprint") == es.fingerprint(client_pub)
    assert rust.field("payload") == b'{"v":1}'.hex()
    assert rust.field("k1") == ini.k1.hex() and rust.field("k2") == ini.k2.hex()
    assert rust.field("h") == ini.handshake_hash.hex()
    assert rust.field("c2s") == ini.c2s.hex() and rust.field("s2c") == ini.s2c.hex()
    assert rust.field("sent") == b"hello from rust".hex()
    assert rust.fields["opened"] == [b"hello from python".hex()]
    assert "replay" in rust.field("frame_error")
    assert "done" in rust.fields


def test_interop_wrong_pin_is_refused_naming_both_fingerprints(responder):
    relay_priv, relay_pub = es.generate_keypair()
    _, other_pub = es.generate_keypair()
    rust = responder(relay_priv)
    client_priv, _ = es.generate_keypair()
    with socket.create_connection(("127.0.0.1", rust.port), timeout=WAIT) as sock:
        sock.settimeout(WAIT)
        with pytest.raises(es.Refused) as e:
            es.handshake(sock, es.Initiator(client_priv, other_pub))
    assert rust.finish() == 3, rust.stderr
    refusal = e.value
    assert refusal.pinned == es.fingerprint(other_pub)
    assert refusal.relay == es.fingerprint(relay_pub)
    assert refusal.pinned in str(refusal) and refusal.relay in str(refusal)
    assert "did not decrypt" in refusal.text
    assert rust.field("refused") == refusal.text
