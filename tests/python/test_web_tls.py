"""The page from anywhere (issue 27), in Debian's headless Chromium driven by
Playwright: the page over HTTPS from the relay itself (``--web-tls-cert``)
at a host name that is not localhost (``--host-resolver-rules`` maps
``chat.test`` to 127.0.0.1; the test's certificates are trusted by their
public-key pins, ``--ignore-certificate-errors-spki-list``), chatting both
ways with ``chat`` and the Python client; the same page over plain HTTP
at that name saying what is wrong and keeping no key; installable (no
installability errors), its service worker registered and the shell
opening offline; a notification for a private message while the tab is
hidden; a certificate replaced on disk; hostile TLS input while members
chat; and ``/metrics`` moved to ``--metrics``."""

from __future__ import annotations

import base64
import re
import hashlib
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from playwright.sync_api import sync_playwright

import eaxchat
import eaxsession as es
from conftest import WAIT, wait_until, write_members
from test_web import CHAT, CHROMIUM, CHROMIUM_ARGS, ChatProcess, page_lines, say, wait_for_line

NAME = "chat.test"
INVITE_LINK = re.compile(r"https://\S+/#invite=[A-Za-z0-9_-]{96}")

if not Path(CHROMIUM).exists():  # scripts/test installs it
    pytest.skip("no Debian chromium at /usr/bin/chromium", allow_module_level=True)


def make_cert(directory: Path, label: str) -> Tuple[Path, Path, str, bytes]:
    """A P-256 certificate for chat.test: its files, its public key's pin
    (base64 SHA-256 of the SPKI, as Chromium takes it) and its DER."""
    cert, key = directory / f"{label}.crt", directory / f"{label}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN={NAME} {label}", "-addext", f"subjectAltName=DNS:{NAME}"],
        check=True, capture_output=True, timeout=WAIT,
    )
    spki = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-pubkey"],
        check=True, capture_output=True, timeout=WAIT,
    ).stdout
    der_spki = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=spki,
        check=True, capture_output=True, timeout=WAIT,
    ).stdout
    pin = base64.b64encode(hashlib.sha256(der_spki).digest()).decode()
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return cert, key, pin, der


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> List[Tuple[Path, Path, str, bytes]]:
    directory = tmp_path_factory.mktemp("certs")
    return [make_cert(directory, "first"), make_cert(directory, "second")]


def chromium_args(certs) -> List[str]:
    pins = ",".join(pin for _, _, pin, _ in certs)
    return [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {NAME} 127.0.0.1",
            f"--ignore-certificate-errors-spki-list={pins}"]


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright, certs) -> Iterator[object]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(certs))
    yield browser
    browser.close()


def web_port(relay, scheme: str) -> int:
    line = relay.wait_for_log(f"web: the chat page on {scheme}://")
    return int(line.split(f"{scheme}://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def start_tls(start_relay, certs, tmp_path: Path, extra=()):
    """A relay serving TLS on --web with copies of the first certificate
    (the test may replace them)."""
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    cert.write_bytes(certs[0][0].read_bytes())
    key.write_bytes(certs[0][1].read_bytes())
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0", "--web-tls-cert", str(cert),
                               "--web-tls-key", str(key), *extra])
    relay.web_port = web_port(relay, "https")  # type: ignore[attr-defined]
    relay.cert_files = (cert, key)  # type: ignore[attr-defined]
    return relay


def origin(relay) -> str:
    return f"https://{NAME}:{relay.web_port}"


def open_chat(browser, url: str, **context_args):
    context = browser.new_context(**context_args)
    page = context.new_page()
    errors: List[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-state=connected]", timeout=WAIT * 1000)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def served_cert(port: int) -> bytes:
    """The certificate a new TLS connection to the relay gets (DER)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        with context.wrap_socket(raw, server_hostname=NAME) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return der


def https_get(port: int, path: str) -> Tuple[int, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", timeout=WAIT,
                                    context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def counter(port: int, reason: str) -> int:
    status, body = https_get(port, "/metrics")
    assert status == 200, body
    needle = f'eaxchat_web_tls_refused_total{{reason="{reason}"}} '
    line = next(l for l in body.decode().splitlines() if l.startswith(needle))
    return int(line.split()[-1])


def test_https_at_a_name_chats_both_ways_with_chat_and_python(browser, bins, start_relay,
                                                              certs, tmp_path):
    relay = start_tls(start_relay, certs, tmp_path)
    page = open_chat(browser, f"{origin(relay)}/#k={relay.key_hex}")
    assert page.evaluate("window.isSecureContext") is True
    # The key is gone from the address bar and from history.
    assert "#k=" not in page.url and relay.key_hex not in page.url
    # replaceState: the entry is the same one, its fragment gone.
    assert page.evaluate("location.hash") == ""
    say(page, "/nick web")
    wait_for_line(page, "* you are now web")
    chat = ChatProcess(bins.chat, ["--connect", relay.addr, "--key-hex", relay.key_hex,
                                   "--name", "carol"])
    try:
        with eaxchat.Client(relay.host, relay.port, relay.key, events=True) as python:
            python.nick("alice")
            wait_for_line(page, "* alice joined #lobby")
            relay.wait_for_clients(2)
            say(page, "hello over https")
            event = python.recv_event(WAIT)
            while not event.is_message:
                event = python.recv_event(WAIT)
            assert (event.sender, event.text) == ("web", "hello over https")
            chat.wait_for("hello over https")
            python.say("python answers over https")
            wait_for_line(page, "python answers over https")
            chat.send("chat answers over https")
            wait_for_line(page, "chat answers over https")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        chat.stop()
        page.context.close()


def test_plain_http_at_a_name_explains_and_keeps_no_key(browser, start_relay, certs, tmp_path):
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0"])
    port = web_port(relay, "http")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://{NAME}:{port}/#k={relay.key_hex}")
    page.wait_for_selector("#insecure:not([hidden])", timeout=WAIT * 1000)
    text = page.inner_text("#insecure")
    assert "https" in text and "--web-tls-cert" in text and "WebCrypto" in text
    assert page.evaluate("document.body.dataset.state") == "insecure"
    assert "#k=" not in page.url
    assert page.input_value("#key") == ""
    assert page.is_hidden("#key-form")
    context.close()
    # Plain HTTP to the TLS listener is sent to https, where the page works.
    tls_relay = start_tls(start_relay, certs, tmp_path)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://{NAME}:{tls_relay.web_port}/")  # type: ignore[attr-defined]
    page.wait_for_selector("#key-form:not([hidden])", timeout=WAIT * 1000)
    assert page.url.startswith(f"https://{NAME}:")
    assert page.is_hidden("#insecure")
    context.close()


def test_the_page_installs_and_its_shell_opens_offline(playwright, start_relay, certs, tmp_path):
    relay = start_tls(start_relay, certs, tmp_path)
    # A profile of its own: Chromium installs nothing from an incognito
    # context, which new_context() is.
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, args=chromium_args(certs))
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(f"{origin(relay)}/")
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{origin(relay)}/"
    cdp = context.new_cdp_session(page)
    seen: List[object] = []

    def installable() -> bool:
        seen[:] = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        return seen == []

    wait_until(installable, f"no installability errors (last: {seen})", timeout=WAIT)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and '"display": "standalone"' in manifest["data"]
    # The cache holds the shell only: no /ws, no /metrics, no fragment.
    cached = page.evaluate("""async () => {
        const names = await caches.keys();
        const urls = [];
        for (const name of names) for (const r of await (await caches.open(name)).keys()) urls.push(r.url);
        return urls;
    }""")
    paths = sorted(url.split(str(relay.web_port), 1)[1] for url in cached)  # type: ignore[attr-defined]
    assert "/" in paths and "/app.js" in paths and "/sw.js" not in paths
    assert not any(p.startswith(("/ws", "/metrics", "/healthz")) or "#" in p for p in paths)
    # Offline: the relay is gone and the network too; the shell opens.
    relay.terminate()
    context.set_offline(True)
    page.reload()
    page.wait_for_selector("#key-form:not([hidden])", timeout=WAIT * 1000)
    assert page.title() == "eaxchat"
    context.close()


def test_a_private_message_notifies_while_the_tab_is_hidden(browser, start_relay, certs,
                                                            tmp_path):
    relay = start_tls(start_relay, certs, tmp_path)
    url = f"{origin(relay)}/#k={relay.key_hex}"
    page = open_chat(browser, url, permissions=["notifications"])
    page.evaluate("navigator.serviceWorker.ready")
    say(page, "/nick web")
    wait_for_line(page, "* you are now web")
    assert page.inner_text("#notify") == "Notifications: off"
    page.click("#notify")
    wait_until(lambda: page.inner_text("#notify") == "Notifications: on", "notifications on")
    notes = "navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((ns) => ns.map((n) => [n.title, n.body]))"
    # Headless Chromium shows every tab (another in front, or a minimised
    # window, leaves visibilityState "visible"), so the tab's hidden state
    # is set as the browser would set it; the notification is the
    # browser's own, read back from the service worker's registration.
    hide = """(hidden) => {
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => hidden ? "hidden" : "visible" });
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    # Chromium's getNotifications() drops, as no longer shown, a notification
    # that is stored but not yet on screen, so reading them while one is
    # being shown can lose it (CI saw this once). The notifications are read
    # only once the browser has said one is shown: showNotification's promise
    # is counted as it settles.
    page.evaluate("""() => {
        window.shown = 0;
        const show = ServiceWorkerRegistration.prototype.showNotification;
        ServiceWorkerRegistration.prototype.showNotification = function (...args) {
            return show.apply(this, args).finally(() => { window.shown += 1; });
        };
    }""")

    def shown(count: int) -> list:
        wait_until(lambda: page.evaluate("window.shown") >= count, f"notification {count} shown")
        return page.evaluate(notes)

    with eaxchat.Client(relay.host, relay.port, relay.key, events=True) as python:
        python.nick("alice")
        wait_for_line(page, "* alice joined #lobby")
        # Visible: no notification.
        python.msg("web", "while you look")
        wait_for_line(page, "while you look")
        assert page.evaluate(notes) == []
        assert page.evaluate("window.shown") == 0
        page.evaluate(hide, True)
        python.msg("web", "the secret plan")
        assert shown(1) == [["Private message from alice", "Open eaxchat to read it."]]
        # The text only once the person opts in.
        page.evaluate(hide, False)
        page.check("#notify-text")
        page.evaluate(hide, True)
        python.msg("web", "second note")
        # The same tag: the second replaces the first.
        assert shown(2) == [["Private message from alice", "second note"]]
    page.context.close()


def test_a_replaced_certificate_reaches_new_pages_and_keeps_open_ones(browser, start_relay,
                                                                      certs, tmp_path):
    relay = start_tls(start_relay, certs, tmp_path)
    port = relay.web_port  # type: ignore[attr-defined]
    page = open_chat(browser, f"{origin(relay)}/#k={relay.key_hex}")
    assert served_cert(port) == certs[0][3]
    cert, key = relay.cert_files  # type: ignore[attr-defined]
    key.write_bytes(certs[1][1].read_bytes())
    cert.write_bytes(certs[1][0].read_bytes())
    wait_until(lambda: served_cert(port) == certs[1][3], "the new certificate served")
    relay.wait_for_log("reloaded")
    fresh = open_chat(browser, f"{origin(relay)}/#k={relay.key_hex}")
    with eaxchat.Client(relay.host, relay.port, relay.key) as python:
        # The page opened before the change is still connected and chats.
        assert page.evaluate("document.body.dataset.state") == "connected"
        say(page, "said after the renewal")
        wait_until(lambda: b"said after the renewal" in python.recv(WAIT), "the old page's line")
        python.send("both pages hear this")
        wait_for_line(page, "both pages hear this")
        wait_for_line(fresh, "both pages hear this")
    # The old page never lost its connection.
    assert not any("reconnecting" in line for line in page_lines(page))
    page.context.close()
    fresh.context.close()


def test_hostile_tls_closes_only_its_own_connection(browser, start_relay, certs, tmp_path):
    relay = start_tls(start_relay, certs, tmp_path, extra=["--web-tls-handshake-timeout", "1"])
    port = relay.web_port  # type: ignore[attr-defined]
    page = open_chat(browser, f"{origin(relay)}/#k={relay.key_hex}")
    rounds = iter(range(1, 100))

    def chat_both_ways(python) -> None:
        n = next(rounds)
        say(page, f"browser round {n}")
        wait_until(lambda: f"browser round {n}".encode() in python.recv(WAIT), "browser -> tcp")
        python.send(f"tcp round {n}")
        wait_for_line(page, f"tcp round {n}")

    def closed(sock: socket.socket) -> bool:
        sock.settimeout(WAIT)
        try:
            while sock.recv(4096):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def raw() -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout=WAIT)

    with eaxchat.Client(relay.host, relay.port, relay.key) as python:
        chat_both_ways(python)
        for reason, data in (
            ("garbage", bytes([0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5])),
            ("oversized_record", bytes([0x16, 3, 1, 0xFF, 0xFF]) + bytes(512)),
            ("handshake_timeout", bytes([0x16, 3, 1, 2, 0, 1, 0])),
        ):
            sock = raw()
            sock.sendall(data)
            began = time.monotonic()
            assert closed(sock), reason
            assert time.monotonic() - began < 4, reason
            sock.close()
            wait_until(lambda: counter(port, reason) >= 1, f"{reason} counted")
            # The log line may still be on its way through the pipe the
            # test reads the relay's log from when /metrics counts it.
            relay.wait_for_log(f"TLS refused ({reason})")
            chat_both_ways(python)
        # The flood from 127.0.0.2: the page and this test stay on
        # 127.0.0.1, whose own handshakes must still get in.
        def from_other() -> socket.socket:
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.settimeout(WAIT)
            sock.connect(("127.0.0.1", port))
            return sock

        flood = [from_other() for _ in range(48)]
        wait_until(lambda: counter(port, "flood_per_address") >= 10, "the flood bounded")
        chat_both_ways(python)
        for sock in flood:
            sock.close()
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


def test_metrics_leaves_the_page_listener_with_metrics(start_relay, certs, tmp_path):
    relay = start_tls(start_relay, certs, tmp_path, extra=["--metrics", "127.0.0.1:0"])
    line = relay.wait_for_log("metrics: /metrics and /healthz on http://")
    metrics = line.split("http://", 1)[1].split("/", 1)[0]
    port = relay.web_port  # type: ignore[attr-defined]
    assert https_get(port, "/metrics")[0] == 404
    assert https_get(port, "/healthz") == (200, b"ok\n")
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=WAIT) as response:
        assert b"eaxchat_web_tls_handshakes_total" in response.read()


def test_the_page_joins_at_an_invite_link_over_https(browser, bins, start_relay, certs,
                                                    tmp_path):
    """Invites (issue 26) in the page: opened at `relay invite`'s https link,
    at a host name that is not localhost, the page makes its own
    non-extractable identity, joins with the link's secret, pins the relay's
    key, drops the secret from the address bar, and chats with a Python
    member; the spent link is refused with the relay's words."""
    from test_web_session import FACTS

    relay_identity = tmp_path / "relay.identity"
    relay_public = es.parse_public_key(eaxchat.generate_identity(relay_identity))
    alice = tmp_path / "alice.identity"
    members = tmp_path / "members.txt"
    write_members(members, f"alice {eaxchat.generate_identity(alice)}\n")
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    cert.write_bytes(certs[0][0].read_bytes())
    key.write_bytes(certs[0][1].read_bytes())
    relay = start_relay(extra=["--web", "127.0.0.1:0", "--web-tls-cert", str(cert),
                               "--web-tls-key", str(key), "--identity", str(relay_identity),
                               "--history", "0", "--presence", "on"], members=members)
    port = web_port(relay, "https")
    seen = relay.count_log("invites, ")
    out = subprocess.run(
        [str(bins.relay), "invite", "gwen", "--file", str(members), "--identity",
         str(relay_identity), "--addr", relay.addr, "--web", f"https://{NAME}:{port}"],
        capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    found = INVITE_LINK.search(out.stdout)
    assert found, out.stdout
    link = found.group(0)
    relay.wait_for_log("invites, ", count=seen + 1)
    page = open_chat(browser, link, bypass_csp=True)
    try:
        assert page.evaluate("window.isSecureContext") is True
        wait_for_line(page, "joined by invite as gwen")
        assert "invite=" not in page.url, "the secret stays in the address bar"
        facts = page.evaluate(FACTS)
        assert facts["pin"] == es.public_key_text(relay_public)
        assert facts["identity"]["extractable"] is False
        assert "gwen x25519:" in members.read_text()
        with eaxchat.Client(relay.host, relay.port, identity=alice, relay_key=relay_public,
                            events=True) as python:
            wait_for_line(page, "alice joined")
            say(page, "hello from the invited page")
            event = python.recv_event(WAIT)
            while not (event.is_message and event.sender == "gwen"):
                event = python.recv_event(WAIT)
            assert event.text == "hello from the invited page"
        other = browser.new_context(bypass_csp=True)
        try:
            again = other.new_page()
            again.goto(link)
            again.wait_for_selector("body[data-state=refused]", timeout=WAIT * 1000)
            assert any("used already" in line for line in page_lines(again))
        finally:
            other.close()
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()
