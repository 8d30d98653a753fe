"""The chat page (``relay --web``) in a real headless Chromium (Debian's,
driven by Playwright), its EAX against the published vectors in the
browser, a browser member chatting with ``chat`` and the Python client both
ways in shared-key and members mode, peers' markup shown as text, the
hostile WebSocket inputs each closing only its own connection, and
``/metrics`` read by Prometheus's own parser."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

import eaxchat
from conftest import REPO, WAIT, MembersFile, wait_until

CHROMIUM = "/usr/bin/chromium"
# As the probe of this machine runs it: no network of its own, no sandbox
# (root), a fresh profile per launch.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SHOTS = Path(os.environ.get("EAXCHAT_SHOTS", "/tmp/eaxchat-shots"))
CHAT = ["--history", "100", "--presence", "on"]

if not Path(CHROMIUM).exists():  # scripts/test installs it
    pytest.skip("no Debian chromium at /usr/bin/chromium", allow_module_level=True)


def web_address(relay) -> str:
    line = relay.wait_for_log("web: the chat page on http://")
    return line.split("http://", 1)[1].split("/", 1)[0]


def start_web(start_relay, extra=(), members=None):
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0", *extra], members=members)
    relay.web = web_address(relay)  # type: ignore[attr-defined]
    return relay


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, relay, key_hex: str, width: int = 900, height: int = 600):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: List[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://{relay.web}/#k={key_hex}")
    page.wait_for_selector("body[data-state=connected]", timeout=WAIT * 1000)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def page_lines(page) -> List[str]:
    return page.eval_on_selector_all("#messages .line", "els => els.map(e => e.textContent)")


def wait_for_line(page, text: str) -> None:
    wait_until(lambda: any(text in line for line in page_lines(page)), f"{text!r} on the page")


def say(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


class ChatProcess:
    """``chat --plain`` with piped stdin and stdout, its lines collected."""

    def __init__(self, binary, args: List[str]) -> None:
        self.process = subprocess.Popen(
            [str(binary), "--plain", "--linger-ms", "100", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()

    def wait_for(self, text: str) -> None:
        wait_until(lambda: any(text in line for line in self.lines), f"{text!r} from chat")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=WAIT)


def test_the_pages_eax_matches_the_published_vectors_in_the_browser(browser, start_relay):
    relay = start_web(start_relay)
    vectors = json.loads((REPO / "tests" / "vectors" / "eax_paper_vectors.json").read_text())
    wycheproof = json.loads((REPO / "tests" / "vectors" / "wycheproof_aes_eax_test.v1.json").read_text())
    cases = [
        {"key": v["key"], "nonce": v["nonce"], "aad": v["header"], "msg": v["msg"],
         "ct": v["ct"], "tag": v["tag"], "valid": True}
        for v in vectors["vectors"]
    ] + [
        {"key": t["key"], "nonce": t["iv"], "aad": t["aad"], "msg": t["msg"], "ct": t["ct"],
         "tag": t["tag"], "valid": t["result"] != "invalid"}
        for group in wycheproof["testGroups"] if group["tagSize"] == 128 and group["ivSize"] == 128
        for t in group["tests"] if len(t["key"]) != 48
    ]
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"http://{relay.web}/")
    failures = page.evaluate(
        """async (cases) => {
            const { EaxKey } = await import("/eax.js");
            const hex = (t) => Uint8Array.from(t.match(/../g) ?? [], (b) => parseInt(b, 16));
            const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
            const failures = [];
            for (const c of cases) {
                const key = await EaxKey.import(hex(c.key));
                const opened = await key.decrypt(hex(c.nonce), hex(c.ct), hex(c.tag), hex(c.aad));
                if (!c.valid) { if (opened !== null) failures.push(c); continue; }
                const [ct, tag] = await key.encrypt(hex(c.nonce), hex(c.msg), hex(c.aad));
                if (toHex(ct) !== c.ct || toHex(tag) !== c.tag || toHex(opened) !== c.msg) failures.push(c);
            }
            return failures;
        }""",
        cases,
    )
    assert len(cases) > 60
    assert failures == []
    context.close()


@pytest.mark.parametrize("mode", ["shared", "members"])
def test_a_browser_member_chats_with_chat_and_python(browser, bins, start_relay, tmp_path, mode):
    if mode == "members":
        members = MembersFile(bins.relay, tmp_path, ["alice", "bob", "carol"])
        relay = start_web(start_relay, members=members.path)
        page_key = members.key("bob").hex()
        python_key = eaxchat.load_key(members.key_files["alice"])
        chat_args = ["--key-file", str(members.key_files["carol"])]
        web_name, py_name, chat_name = "bob", "alice", "carol"
    else:
        relay = start_web(start_relay)
        page_key = relay.key_hex
        python_key = relay.key
        chat_args = ["--key-hex", relay.key_hex, "--name", "carol"]
        web_name, py_name, chat_name = "web", "alice", "carol"
    page = open_page(browser, relay, page_key)
    if mode == "shared":
        say(page, "/nick web")
        wait_for_line(page, "* you are now web")
    chat = ChatProcess(bins.chat, ["--connect", relay.addr, *chat_args])
    try:
        with eaxchat.Client(relay.host, relay.port, python_key, events=True) as python:
            if mode == "shared":
                python.nick(py_name)
            wait_for_line(page, f"* {py_name} joined #lobby")
            # chat is in the room too before anyone speaks: a member once it
            # has identified, a shared-key client once it is accepted.
            relay.wait_for_clients(2)
            if mode == "members":
                wait_for_line(page, f"* {chat_name} joined #lobby")
            # Browser -> Python and chat.
            say(page, "hello from the browser")
            event = python.recv_event(WAIT)
            while not event.is_message:
                event = python.recv_event(WAIT)
            assert (event.sender, event.text) == (web_name, "hello from the browser")
            chat.wait_for("hello from the browser")
            # Python -> browser.
            python.say("hi browser, Python here")
            wait_for_line(page, "hi browser, Python here")
            # chat -> browser.
            chat.send("and chat says hello")
            wait_for_line(page, "and chat says hello")
            if mode == "members":
                assert any(f"{chat_name}: and chat says hello" in l for l in page_lines(page))
                assert any("alice: hi browser, Python here" in l for l in page_lines(page))
            # A private message from the page, and the members panel.
            say(page, f"/msg {py_name} just for you")
            event = python.recv_event(WAIT)
            while event.kind != "private":
                event = python.recv_event(WAIT)
            assert (event.sender, event.text) == (web_name, "just for you")
            wait_until(lambda: py_name in page.inner_text("#member-list"), "the panel")
            SHOTS.mkdir(parents=True, exist_ok=True)
            shot = SHOTS / f"page-{mode}.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 5000
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        chat.stop()
        page.context.close()


def test_a_peers_markup_and_controls_are_shown_as_text(browser, start_relay):
    relay = start_web(start_relay)
    page = open_page(browser, relay, relay.key_hex)
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>\x1b[2J\u202eevil'
    with eaxchat.Client(relay.host, relay.port, relay.key) as peer:
        peer.send(hostile)
        wait_for_line(page, "evil")
    line = next(l for l in page_lines(page) if "evil" in l)
    assert '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>' in line
    assert "\u241b[2J" in line and "\ufffdevil" in line and "\u202e" not in line
    assert page.evaluate("document.querySelectorAll('#messages img, #messages script').length") == 0
    assert page.evaluate("window.pwned === undefined")
    # Forget the key: it is gone from the page, and so is the chat.
    page.click("#forget")
    assert page.evaluate("document.body.dataset.state") == "closed"
    assert page_lines(page) == []
    assert "#k=" not in page.url
    page.context.close()


def test_a_phone_width_page_reconnects_with_a_visible_state(browser, start_relay):
    relay = start_web(start_relay)
    page = open_page(browser, relay, relay.key_hex, width=380, height=700)
    assert page.evaluate("getComputedStyle(document.getElementById('members')).display") == "none"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 380, f"the page is {width} px wide on a 380 px screen"
    # The relay's web side goes away and comes back on the same address.
    web = relay.web
    relay.terminate()
    page.wait_for_selector("body[data-state=reconnecting]", timeout=WAIT * 1000)
    assert "reconnecting in" in page.inner_text("#state")
    again = start_relay(key_hex=relay.key_hex, extra=[*CHAT, "--web", web])
    web_address(again)
    page.wait_for_selector("body[data-state=connected]", timeout=20_000)
    page.context.close()


# -- hostile WebSocket input, over raw sockets -------------------------------


def raw_upgrade(web: str, origin: Optional[str] = None, extra: bytes = b"") -> Tuple[socket.socket, bytes]:
    host, port = web.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
        + (f"Origin: {origin}\r\n" if origin else "")
        + "\r\n"
    ).encode()
    sock.sendall(head + extra)
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return sock, reply


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_until_closed(sock: socket.socket, timeout: float = WAIT) -> bytes:
    """Everything the relay sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    pytest.fail(f"the relay did not close the connection; got {data!r}")


def close_code(data: bytes) -> Optional[int]:
    """The code of the close frame in what the relay sent, if any."""
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length = struct.unpack("!H", data[at:at + 2])[0]
            at += 2
        if opcode == 0x8:
            return struct.unpack("!H", data[at:at + 2])[0] if length >= 2 else None
        at += length
    return None


def test_hostile_websockets_close_only_themselves(start_relay):
    relay = start_web(start_relay, extra=["--max-frame", "1000", "--web-idle-timeout", "1"])
    web = relay.web
    # A good pair: a browser-like WebSocket member and a TCP client.
    with ws_connect(f"ws://{web}/ws", open_timeout=WAIT) as good, \
            eaxchat.Client(relay.host, relay.port, relay.key) as tcp:
        relay.wait_for_log("websocket from")
        relay.wait_for_clients(1)
        hostile_inputs(relay, web, good, tcp)


def hostile_inputs(relay, web, good, tcp) -> None:
    """Each hostile input on a connection of its own, the good pair
    chatting after each."""

    def still_chatting(n: int) -> None:
        good.send(eaxchat.seal(relay.key, f"from the browser {n}".encode()).decode().rstrip("\n"))
        assert tcp.recv_text(WAIT) == f"from the browser {n}"
        tcp.send(f"from tcp {n}")
        got = eaxchat.open_frame(relay.key, good.recv(timeout=WAIT).encode())
        assert got == f"from tcp {n}".encode()

    still_chatting(0)
    # A bad handshake: HTTP's answer, then the close.
    host, port = web.rsplit(":", 1)
    junk = socket.create_connection((host, int(port)), timeout=WAIT)
    junk.sendall(b"HELLO THERE\r\n\r\n")
    assert read_until_closed(junk).startswith(b"HTTP/1.1 400")
    # A wrong Origin.
    sock, reply = raw_upgrade(web, origin="http://evil.example")
    assert reply.startswith(b"HTTP/1.1 403"), reply
    read_until_closed(sock)
    still_chatting(1)
    cases = [
        ("binary", client_frame(0x2, b"\x00\x01"), 1003),
        ("oversized", client_frame(0x1, b"A" * 2000), 1009),
        ("fragmented flood", client_frame(0x1, b"A", fin=False)
         + b"".join(client_frame(0x0, b"A", fin=False) for _ in range(100)), 1009),
        ("unmasked", struct.pack("!BB", 0x81, 4) + b"abcd", 1002),
        ("wrong key", client_frame(0x1, eaxchat.seal(os.urandom(16), b"hi").rstrip(b"\n")), None),
    ]
    for name, frames, code in cases:
        sock, reply = raw_upgrade(web)
        assert reply.startswith(b"HTTP/1.1 101"), reply
        sock.sendall(frames)
        data = read_until_closed(sock)
        if code is not None:
            assert close_code(data) == code, f"{name}: {data!r}"
        still_chatting(2)
    # Idle: pinged after a second of silence, closed after two.
    sock, reply = raw_upgrade(web)
    started = time.monotonic()
    data = read_until_closed(sock, timeout=8)
    assert data[:1] == b"\x89", f"no ping first: {data!r}"
    assert close_code(data) == 1001
    assert time.monotonic() - started >= 1.5
    still_chatting(3)
    # The log says why each went.
    log = relay.log()
    for why in ("binary message", "longer than --max-frame", "more than 64 fragments",
                "unmasked client frame", "rejected frame: tag mismatch", "silent past --web-idle-timeout"):
        assert why in log, why


def test_metrics_parse_as_prometheus_text(start_relay):
    relay = start_web(start_relay)
    with ws_connect(f"ws://{relay.web}/ws", open_timeout=WAIT), \
            eaxchat.Client(relay.host, relay.port, relay.key) as tcp:
        tcp.send("hello")

        def scrape():
            body = urllib.request.urlopen(f"http://{relay.web}/metrics", timeout=WAIT).read()
            return {family.name: family for family in text_string_to_metric_families(body.decode())}

        def both_open():
            samples = scrape()["eaxchat_connections"].samples
            kinds = {s.labels["kind"]: s.value for s in samples}
            return kinds["tcp"] == 1 and kinds["web"] == 1 and scrape()

        families = wait_until(both_open, "one tcp and one web connection in /metrics")
    frames_in = families["eaxchat_frames_in"].samples[0]
    assert frames_in.name == "eaxchat_frames_in_total" and frames_in.value >= 1
    assert families["eaxchat_frames_in"].type == "counter"
    assert "eaxchat_bytes_queued" in families
    health = urllib.request.urlopen(f"http://{relay.web}/healthz", timeout=WAIT)
    assert health.read() == b"ok\n"
    page = urllib.request.urlopen(f"http://{relay.web}/", timeout=WAIT)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
