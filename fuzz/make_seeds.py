#!/usr/bin/env python3
"""Writes the hand-made seeds of the `decrypt`, `frames` and `handshake` fuzz targets.

Run from the repository root:

    python3 fuzz/make_seeds.py [--relay target/debug/relay] [--only TARGET ...]

Seeds are named `seed-*` (git keeps those; libFuzzer's own finds are named by
their SHA-1 and ignored). Frames come from tests/vectors/pycryptodome_frames.json
(key 00 01 .. 0f, the key the targets use), from PyCryptodome with random
nonces, and, with --relay, from the real relay binary: it is started on
127.0.0.1 with that key, one client sends the PyCryptodome frames, and the
frames another client receives (resealed by the relay) become seeds.
The `relay` target's seeds are minimized fuzzer finds, kept by hand.
The `handshake` seeds are scripts of steps (see fuzz_targets/handshake.rs):
the target makes its hellos itself, so they need no crypto here.
"""

import argparse
import base64
import json
import os
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
KEY = bytes(range(16))
WAIT = 10.0


def seal(plaintext: bytes) -> bytes:
    """One frame as PyCryptodome seals it, without its newline."""
    from Crypto.Cipher import AES

    cipher = AES.new(KEY, AES.MODE_EAX)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return base64.b64encode(cipher.nonce + tag + ciphertext)


def relay_frames(relay: str, lines: list[bytes]) -> list[bytes]:
    """Sends `lines` through a relay started here; returns what it relayed."""
    proc = subprocess.Popen(
        [relay, "--listen", "127.0.0.1:0", "--key-hex", KEY.hex(), "--stats-interval", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "RUST_LOG": "info"},
    )
    try:
        addr = None
        deadline = time.monotonic() + WAIT
        while addr is None and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            if "listening on " in line:
                host, port = line.split("listening on ")[1].split(";")[0].rsplit(":", 1)
                addr = (host, int(port))
        if addr is None:
            raise SystemExit("relay did not log its address")
        with socket.create_connection(addr, WAIT) as sender, socket.create_connection(addr, WAIT) as receiver:
            receiver.settimeout(WAIT)
            time.sleep(0.2)  # let the relay admit both before the first frame
            sender.sendall(b"".join(line + b"\n" for line in lines))
            received = b""
            while received.count(b"\n") < len(lines):
                chunk = receiver.recv(65536)
                if not chunk:
                    break
                received += chunk
        return received.split(b"\n")[: len(lines)]
    finally:
        proc.kill()
        proc.wait(WAIT)


def write(target: str, name: str, data: bytes) -> None:
    path = CORPUS / target / f"seed-{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# The `handshake` target's steps (fuzz_targets/handshake.rs): c picks a
# connection among those open, d a device (0, 1 alice; 2 bob; 3 carol; 4
# device 0 for another relay's key).
def connect() -> list[int]:
    return [0]


def hello(c: int, d: int, cut: int = 0) -> list[int]:
    return [1, c, d, cut]


def garbage(c: int, data: bytes) -> list[int]:
    assert len(data) < 65
    return [2, c, len(data), *data]


def say(c: int, n: int) -> list[int]:
    return [3, c, n]


def replay(c: int, s: int) -> list[int]:
    return [4, c, s]


def reflect(c: int, s: int) -> list[int]:
    return [5, c, s]


def tick(tenths: int) -> list[int]:
    return [6, tenths]


def bye(c: int) -> list[int]:
    return [7, c]


def reload(mask: int) -> list[int]:
    return [8, mask]


def hello_and_more(c: int, d: int, extra: bytes) -> list[int]:
    assert 1 <= len(extra) <= 8
    return [9, c, d, len(extra) - 1, *extra]


def empty(c: int) -> list[int]:
    return [10, c, 0]


def truncated_hello(c: int, d: int, cut: int) -> list[int]:
    return [11, c, d, cut]


def key_request(c: int) -> list[int]:
    return [12, c]


def invite_join(c: int, k: int) -> list[int]:
    """k: 0 the invite's secret, 1 a wrong one, 2 an id the relay does not hold."""
    return [13, c, k]


def code_start(c: int, wrong: bool = False) -> list[int]:
    """A SPAKE2 code start for the invite's short code (or a wrong one)."""
    return [14, c, 1 if wrong else 0]


def handshake_seeds() -> None:
    def script(name: str, mask: int, *steps: list[int]) -> None:
        write("handshake", name, bytes([mask] + [b for step in steps for b in step]))

    alice_bob = 0b0111
    script("invite-join-ok", alice_bob, connect(), invite_join(0, 0), say(0, 5))
    script(
        "invite-join-wrong-then-ok", alice_bob, connect(), invite_join(0, 1),
        connect(), invite_join(1, 0), say(1, 4),
    )
    script("invite-join-unknown", 0b1111, connect(), invite_join(0, 2))
    script(
        "invite-code", alice_bob, connect(), code_start(0), invite_join(0, 0),
        connect(), code_start(0, True), key_request(0), connect(), code_start(0), hello(0, 0),
    )
    script(
        "invite-join-twice", alice_bob, connect(), invite_join(0, 0),
        connect(), invite_join(1, 0), replay(1, 0),
    )
    script(
        "welcome-chat", alice_bob, connect(), connect(), connect(),
        hello(0, 0), hello(1, 2, 40), hello(2, 1), say(0, 5), say(1, 7), empty(2), say(2, 3),
    )
    script("unknown-key", alice_bob, connect(), connect(), hello(0, 0), hello(1, 3), say(0, 4))
    # Each refused connection is removed at the end of its step: the next is 0.
    script(
        "bad-hellos", alice_bob, *[connect()] * 5,
        garbage(0, b"!!!!\n"), hello(0, 4), garbage(0, b"\r\n"),
        hello_and_more(0, 0, b"AAAA\n"), truncated_hello(0, 0, 60), garbage(0, b"\n"),
    )
    script("oversized-hello", alice_bob, connect(), *[garbage(0, b"A" * 64)] * 17)
    script(
        "replays", alice_bob, *[connect()] * 3,
        hello(0, 0), hello(1, 2), say(0, 5), replay(0, 0), say(0, 3), replay(1, 0),
    )
    script(
        "cross-session", alice_bob, *[connect()] * 3,
        hello(0, 0), hello(1, 0), hello(2, 2), say(0, 4), replay(1, 0), say(0, 2),
    )
    script(
        "reflect", alice_bob, connect(), connect(),
        hello(0, 0), hello(1, 2), say(0, 4), reflect(1, 1),
    )
    script(
        "deadline", alice_bob, connect(), connect(),
        truncated_hello(1, 2, 30), tick(99), connect(), tick(1), tick(100),
    )
    script(
        "reload", 0b1111, *[connect()] * 4,
        hello(0, 0), hello(1, 1), hello(2, 2), hello(3, 3), say(3, 2), reload(0b0101),
        say(0, 3), reload(0b1111), connect(), hello(2, 1), say(2, 1), bye(0), say(1, 6),
    )
    script(
        "replayed-hello", alice_bob, *[connect()] * 3,
        hello(0, 0), replay(1, 0), hello(2, 2), say(2, 4), say(1, 3),
    )
    script("decoy-before-hello", alice_bob, connect(), say(0, 5), connect(), empty(0))
    # Trust on first use: asked once then a hello; asked twice; asked in a
    # read with more; asked once welcomed; asked, then silent past the deadline.
    script(
        "key-request", alice_bob, *[connect()] * 4,
        key_request(0), hello(0, 0), key_request(1), key_request(1), say(0, 2),
        garbage(1, b"BA==\nBA==\r\n"), key_request(0), connect(), key_request(1), tick(101),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relay", help="path to a built relay binary")
    parser.add_argument(
        "--only", nargs="+", choices=["decrypt", "frames", "handshake"],
        help="write only these targets' seeds (decrypt and frames go together; handshake's need no PyCryptodome)",
    )
    args = parser.parse_args()
    if not args.only or "handshake" in args.only:
        handshake_seeds()
    if args.only and not {"decrypt", "frames"} & set(args.only):
        return

    vectors = json.loads((ROOT / "tests/vectors/pycryptodome_frames.json").read_text())
    pyc = [frame["line"].encode().rstrip(b"\n") for frame in vectors["frames"]]
    relayed = relay_frames(args.relay, pyc) if args.relay else []

    # decrypt: the input is one line, without its terminator.
    for i, line in enumerate(pyc):
        write("decrypt", f"pycryptodome-{i}", line)
    for i, line in enumerate(relayed):
        write("decrypt", f"relay-{i}", line)
    # Padding: 32 + n bytes decode to lines ending "=", "" and "==".
    for n in range(3):
        write("decrypt", f"pad-{n}", seal(bytes(n)))
    one = pyc[1]  # ends "=="
    write("decrypt", "lf", one + b"\n")
    write("decrypt", "crlf", one + b"\r\n")
    write("decrypt", "pad-missing", one.rstrip(b"="))
    write("decrypt", "pad-extra", one + b"=")
    write("decrypt", "pad-inside", one[:8] + b"=" + one[9:])
    write("decrypt", "pad-only", b"====")
    write("decrypt", "trailing-bits", one[:-3] + b"h==")
    write("decrypt", "urlsafe", pyc[2].replace(b"+", b"-").replace(b"/", b"_"))
    write("decrypt", "space", one[:20] + b" " + one[21:])
    write("decrypt", "short", b"QUJD")
    write("decrypt", "empty", b"")
    # The tampering path: [op, at, plaintext_len, plaintext.., patch..].
    write("decrypt", "tamper-none", bytes([0, 0, 5]) + b"hello")
    write("decrypt", "tamper-truncate", bytes([1, 44, 5]) + b"hello")
    write("decrypt", "tamper-overwrite", bytes([2, 30, 5]) + b"hello" + b"AAAA")
    write("decrypt", "tamper-insert-cr", bytes([3, 48, 5]) + b"hello" + b"\r")
    write("decrypt", "tamper-append-pad", bytes([4, 0, 0]) + b"==")

    # frames: [max_line, stop_after, n, n read sizes.., stream..].
    def frames(name: str, max_line: int, stop: int, sizes: list[int], stream: bytes) -> None:
        write("frames", name, bytes([max_line, stop, len(sizes), *sizes]) + stream)

    text = b"hello\nworld\r\n\n\r\nlast"
    frames("lines", 255, 0, [], text)
    frames("lines-bytewise", 255, 0, [1], text)
    frames("lines-stop", 255, 2, [3], text)
    frames("too-long", 4, 0, [], b"1234\n12345\n")
    frames("too-long-crlf", 4, 0, [], b"123\r\n1234\r\n")
    frames("too-long-unterminated", 4, 0, [2], b"12345678")
    f1, f2 = pyc[0], pyc[1]
    frames("newline-less", 255, 0, [len(f1), len(f2)], f1 + f2)
    frames("newline-less-split", 255, 0, [10, len(f1) - 10, len(f2)], f1 + f2)
    frames("frame-then-lf", 255, 0, [len(f1), 1, 0], f1 + b"\n" + f2 + b"\n")
    frames("frame-then-crlf", 255, 0, [len(f1), 1, 1, 0], f1 + b"\r\n" + f2 + b"\r\n")
    frames("frame-exact-limit", len(f1), 0, [], f1 + b"\n" + f1 + b"\r\n")
    frames("pycryptodome", 255, 0, [7], b"".join(line + b"\n" for line in pyc))
    if relayed:
        frames("relay", 255, 0, [], b"".join(line + b"\n" for line in relayed))


if __name__ == "__main__":
    main()
