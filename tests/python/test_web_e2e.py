"""The chat page in an end-to-end room (#31), in Debian's Chromium driven by
Playwright as test_web.py does: two pages, each a session member of the
real relay (``relay --members FILE --identity FILE``) with its own MLS
device (ts-mls, the relay's /mls.js), talk in one E2E room: the one who
makes it (``/join ROOM --e2e``) creates the group, the other is added by
Welcome when it joins, text goes both ways encrypted and is shown
decrypted, the room list and header say end-to-end, ``/verify`` gives both
the same safety number, and after a reload a page keeps its device and
group (its decrypted history shown again, new messages read); a third
page joins, and when bob leaves, alice's next message first commits his
removal, and dave reads it. The relay never sees the text. And the page
with ``chat`` (openmls) in one E2E room, both ways. Every wait is bounded; the relay is stopped by
``start_relay``. Skipped while the relay was built without the page's MLS
(no node/npm at build time: /mls.js says so)."""

from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest

import eaxchat
from conftest import REPO, WAIT, relay_has_sessions, wait_until, write_members
from test_web import CHAT, ChatProcess, browser, page_lines, say, wait_for_line, web_address  # noqa: F401
from test_web_session import new_page, shown_identity

SAFETY = re.compile(r"safety number with \w+ \(\d+ devices?\): ((?:\d{5} ){11}\d{5})")


def admit(page, relay, members, known: str, name: str) -> str:
    """The page's first join is refused; its key goes into the members file
    as ``name``; its next join gets in. Returns the members file's text."""
    page.click("#session-join")
    page.wait_for_selector("body[data-state=refused]", timeout=WAIT * 1000)
    known += f"{name} {shown_identity(page)}\n"
    write_members(members, known)
    relay.wait_for_log(f"added {name}")
    page.click("#session-join")
    page.wait_for_selector("body[data-state=connected]", timeout=WAIT * 1000)
    wait_for_line(page, f"session open as {name}")
    return known


def safety_number(page, name: str) -> str:
    say(page, f"/verify {name}")
    found = wait_until(lambda: next((m.group(1) for line in page_lines(page) for m in [SAFETY.search(line)] if m), None),
                       f"the safety number with {name}")
    return str(found)


def test_two_pages_talk_in_an_end_to_end_room_of_the_real_relay(browser, bins, start_relay, tmp_path):  # noqa: F811
    if not relay_has_sessions(bins.relay):
        pytest.skip("pending: the relay has no session mode")
    relay_identity = tmp_path / "relay.identity"
    eaxchat.generate_identity(relay_identity)
    members = tmp_path / "members.txt"
    known = f"carol {eaxchat.generate_identity(tmp_path / 'carol.identity')}\n"
    write_members(members, known)
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0", "--identity", str(relay_identity)],
                        members=members)
    relay.web = web_address(relay)  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://{relay.web}/mls.js", timeout=WAIT) as answer:
        bundle = answer.read().decode()
    if "built without MLS" in bundle:
        pytest.skip("this relay was built without the page's MLS bundle (no node/npm at build time)")

    alice_context, alice = new_page(browser, relay.web)
    bob_context, bob = new_page(browser, relay.web)
    dave_context, dave = new_page(browser, relay.web)
    try:
        known = admit(alice, relay, members, known, "alice")
        known = admit(bob, relay, members, known, "bob")
        known = admit(dave, relay, members, known, "dave")

        # alice makes the room end-to-end: her device creates its group.
        say(alice, "/join secret --e2e")
        wait_for_line(alice, "#secret is end-to-end: this device made its group")
        alice.wait_for_selector("#room-list li[data-room=secret] .e2e-badge", timeout=WAIT * 1000)
        assert "end-to-end" in alice.text_content("#room")

        # bob joins it: alice's page adds his device, his page joins by Welcome.
        say(bob, "/join secret")
        wait_for_line(bob, "this device joined #secret's group")
        bob.wait_for_selector("#room-list li[data-room=secret] .e2e-badge", timeout=WAIT * 1000)

        say(alice, "hello bob, only we can read this")
        wait_for_line(bob, "alice: hello bob, only we can read this")
        say(bob, "hi alice, same here")
        wait_for_line(alice, "bob: hi alice, same here")
        assert "only we can read" not in relay.log()

        # Both sides see one safety number.
        assert safety_number(alice, "bob") == safety_number(bob, "alice")

        # bob reloads: the same device and group from IndexedDB; what he read
        # is shown again from his page's own store, and new text opens.
        bob.reload()
        bob.click("#session-join")
        bob.wait_for_selector("body[data-state=connected]", timeout=WAIT * 1000)
        bob.click("#room-list li[data-room=secret] .pick")
        wait_for_line(bob, "alice: hello bob, only we can read this")
        wait_for_line(bob, "bob: hi alice, same here")
        say(alice, "still there after the reload?")
        wait_for_line(bob, "alice: still there after the reload?")
        assert not any("did not open" in line for line in page_lines(bob))

        # dave joins: what was said before shows as unreadable, by design.
        say(dave, "/join secret")
        wait_for_line(dave, "this device joined #secret's group")
        wait_for_line(dave, "alice: (encrypted: sent before you joined)")
        # bob leaves: alice's next message first commits his removal.
        say(bob, "/part")
        wait_for_line(alice, "bob is to be removed from #secret's group")
        say(alice, "bob has gone")
        wait_for_line(dave, "alice: bob has gone")
        lines = page_lines(alice)
        assert not any("refused" in line or "error:" in line for line in lines), lines
        assert sum("bob has gone" in line for line in lines) == 1, lines
        assert all(p.errors == [] for p in (alice, bob, dave))  # type: ignore[attr-defined]
    finally:
        alice_context.close()
        bob_context.close()
        dave_context.close()


def test_the_page_and_chat_talk_in_an_end_to_end_room(browser, bins, start_relay, tmp_path):  # noqa: F811
    """ts-mls in Chromium and openmls in ``chat`` in one group through the
    real relay: the page makes the room, adds chat's device (an openmls
    KeyPackage into a ts-mls commit, a ts-mls Welcome opened by openmls),
    and each reads what the other says."""
    if not relay_has_sessions(bins.relay):
        pytest.skip("pending: the relay has no session mode")
    relay_identity = tmp_path / "relay.identity"
    relay_key = eaxchat.generate_identity(relay_identity)
    carol = tmp_path / "carol.identity"
    keygen = subprocess.run([str(bins.chat), "keygen", "--key-out", str(carol)], capture_output=True,
                            text=True, timeout=WAIT, stdin=subprocess.DEVNULL, check=True)
    known = f"carol {keygen.stdout.splitlines()[0]}\n"
    members = tmp_path / "members.txt"
    write_members(members, known)
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0", "--identity", str(relay_identity)],
                        members=members)
    relay.web = web_address(relay)  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://{relay.web}/mls.js", timeout=WAIT) as answer:
        if "built without MLS" in answer.read().decode():
            pytest.skip("this relay was built without the page's MLS bundle (no node/npm at build time)")
    context, page = new_page(browser, relay.web)
    chat = None
    try:
        admit(page, relay, members, known, "alice")
        say(page, "/join secret --e2e")
        wait_for_line(page, "#secret is end-to-end: this device made its group")
        chat = ChatProcess(bins.chat, [
            "--connect", relay.addr, "--key-file", str(carol), "--relay-key", relay_key,
            "--known-relays", str(tmp_path / "known_relays"),
        ])
        relay.wait_for_log("session as carol (")
        chat.send("/join secret")
        wait_until(lambda: any("secret" in line and "group" in line for line in chat.lines),
                   "chat in #secret's group")
        say(page, "hello chat, from ts-mls")
        chat.wait_for("alice: hello chat, from ts-mls")
        chat.send("hello page, from openmls")
        wait_for_line(page, "carol: hello page, from openmls")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        if chat is not None:
            chat.stop()
        context.close()


def test_a_page_without_mls_says_so_and_sends_nothing_into_an_end_to_end_room(
        browser, bins, start_relay, tmp_path):  # noqa: F811
    """The /mls.js of a relay built without node and npm (build.rs writes
    it; served here in its place): the page says end-to-end rooms are
    unavailable, still marks the room end-to-end, and refuses to send there."""
    if not relay_has_sessions(bins.relay):
        pytest.skip("pending: the relay has no session mode")
    without = (REPO / "crates" / "server" / "build.rs").read_text()
    body = re.search(r'const WITHOUT_MLS: &str = "(.*?)";\n', without, re.S)
    assert body, "build.rs's WITHOUT_MLS"
    module = body.group(1).replace("\\n\\\n", "\n").replace('\\"', '"').replace("\\n", "\n")
    assert "export const available = false;" in module
    relay_identity = tmp_path / "relay.identity"
    eaxchat.generate_identity(relay_identity)
    members = tmp_path / "members.txt"
    known = f"carol {eaxchat.generate_identity(tmp_path / 'carol.identity')}\n"
    write_members(members, known)
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0", "--identity", str(relay_identity)],
                        members=members)
    relay.web = web_address(relay)  # type: ignore[attr-defined]
    alice_context, alice = new_page(browser, relay.web)
    # No service worker: its own fetches would pass by the route.
    eve_context = browser.new_context(service_workers="block")
    eve_context.route("**/mls.js", lambda route: route.fulfill(
        status=200, content_type="text/javascript; charset=utf-8", body=module))
    eve = eve_context.new_page()
    errors: list = []
    eve.on("pageerror", lambda error: errors.append(str(error)))
    eve.goto(f"http://{relay.web}/")
    try:
        known = admit(alice, relay, members, known, "alice")
        say(alice, "/join secret --e2e")
        wait_for_line(alice, "this device made its group")
        known = admit(eve, relay, members, known, "eve")
        say(eve, "/join secret")
        eve.wait_for_selector("#room-list li[data-room=secret] .e2e-badge", timeout=WAIT * 1000)
        say(eve, "can anyone read this?")
        wait_for_line(eve, "#secret is end-to-end, and this relay was built without MLS: end-to-end rooms are unavailable on the page")
        assert eve.input_value("#text") == "can anyone read this?"
        say(alice, "only members' devices read this")
        wait_for_line(eve, "alice: (encrypted: this page cannot open end-to-end messages)")
        assert not any("can anyone read" in line for line in page_lines(alice))
        assert errors == []
    finally:
        alice_context.close()
        eve_context.close()


def test_chat_python_and_the_page_talk_in_one_end_to_end_room(browser, bins, start_relay, tmp_path):  # noqa: F811
    """The three clients in one group through the real relay: the page
    (ts-mls) makes the room, ``chat`` (openmls) and the Python client
    (openmls through the PyO3 binding) join it and are added, and what
    each says the two others read."""
    if not relay_has_sessions(bins.relay):
        pytest.skip("pending: the relay has no session mode")
    try:
        import eaxchat_mls  # noqa: F401
    except ImportError:
        pytest.skip("the Python binding (crates/e2e-py) is not installed: scripts/test builds it")
    relay_identity = tmp_path / "relay.identity"
    relay_key = eaxchat.generate_identity(relay_identity)
    carol = tmp_path / "carol.identity"
    keygen = subprocess.run([str(bins.chat), "keygen", "--key-out", str(carol)], capture_output=True,
                            text=True, timeout=WAIT, stdin=subprocess.DEVNULL, check=True)
    bob = tmp_path / "bob.identity"
    known = f"carol {keygen.stdout.splitlines()[0]}\nbob {eaxchat.generate_identity(bob)}\n"
    members = tmp_path / "members.txt"
    write_members(members, known)
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0", "--identity", str(relay_identity)],
                        members=members)
    relay.web = web_address(relay)  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://{relay.web}/mls.js", timeout=WAIT) as answer:
        if "built without MLS" in answer.read().decode():
            pytest.skip("this relay was built without the page's MLS bundle (no node/npm at build time)")
    context, page = new_page(browser, relay.web)
    chat = None
    python = None
    try:
        admit(page, relay, members, known, "alice")
        say(page, "/join secret --e2e")
        wait_for_line(page, "#secret is end-to-end: this device made its group")
        chat = ChatProcess(bins.chat, [
            "--connect", relay.addr, "--key-file", str(carol), "--relay-key", relay_key,
            "--known-relays", str(tmp_path / "known_relays"),
        ])
        relay.wait_for_log("session as carol (")
        chat.send("/join secret")
        wait_until(lambda: any("secret" in line and "group" in line for line in chat.lines),
                   "chat in #secret's group")
        python = eaxchat.Client(relay.host, relay.port, identity=bob, known_relays=tmp_path / "known_relays",
                                events=True, e2e=True, e2e_dir=tmp_path / "bob-e2e")
        wait_until(lambda: python.rooms_joined, "the Python client's welcome")
        python.join("secret", e2e=True)
        wait_until(lambda: python.e2e.epoch("secret") is not None
                   and sorted(n for n, _ in python.e2e.members("secret")) == ["alice", "bob", "carol"],
                   "the Python client in #secret's group with alice and carol")
        said = {"page": "from the page, ts-mls", "chat": "from chat, openmls", "python": "from python, pyo3"}
        say(page, said["page"])
        chat.send(said["chat"])
        python.say(said["python"], room="secret")
        chat.wait_for(f"alice: {said['page']}")
        chat.wait_for(f"bob: {said['python']}")
        wait_for_line(page, f"carol: {said['chat']}")
        wait_for_line(page, f"bob: {said['python']}")
        heard = set()

        def python_heard() -> bool:
            try:
                event = python.recv_event(0.2)
            except TimeoutError:
                return False
            if event.kind == "msg" and event.e2e:
                heard.add((event.sender, event.text))
            return {("alice", said["page"]), ("carol", said["chat"])} <= heard

        wait_until(python_heard, "the Python client reading the page and chat")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        if python is not None:
            python.close()
        if chat is not None:
            chat.stop()
        context.close()


def test_the_page_joins_by_external_commit_while_no_member_is_online(browser, bins, start_relay, tmp_path):  # noqa: F811
    """The Python client (openmls) makes an end-to-end room and goes away;
    the page joins the room with nobody online to add it, so after a short
    wait it joins from the GroupInfo the relay keeps (a ts-mls External
    Commit, which the relay checks with openmls), says something, and
    uploads the new GroupInfo. Back, the Python client takes the commit
    and the page's message from the room's history, and the page reads
    its answer."""
    if not relay_has_sessions(bins.relay):
        pytest.skip("pending: the relay has no session mode")
    try:
        import eaxchat_mls  # noqa: F401
    except ImportError:
        pytest.skip("the Python binding (crates/e2e-py) is not installed: scripts/test builds it")
    relay_identity = tmp_path / "relay.identity"
    eaxchat.generate_identity(relay_identity)
    bob = tmp_path / "bob.identity"
    known = f"bob {eaxchat.generate_identity(bob)}\n"
    members = tmp_path / "members.txt"
    write_members(members, known)
    relay = start_relay(extra=[*CHAT, "--web", "127.0.0.1:0", "--identity", str(relay_identity)],
                        members=members)
    relay.web = web_address(relay)  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://{relay.web}/mls.js", timeout=WAIT) as answer:
        if "built without MLS" in answer.read().decode():
            pytest.skip("this relay was built without the page's MLS bundle (no node/npm at build time)")

    def python_client() -> eaxchat.Client:
        client = eaxchat.Client(relay.host, relay.port, identity=bob, known_relays=tmp_path / "known_relays",
                                events=True, e2e=True, e2e_dir=tmp_path / "bob-e2e")
        wait_until(lambda: client.rooms_joined, "the Python client's welcome")
        return client

    def heard(client: eaxchat.Client, text: str) -> eaxchat.Event:
        found: list = []

        def got() -> bool:
            try:
                event = client.recv_event(0.2)
            except TimeoutError:
                return False
            if event.kind == "msg" and event.text == text:
                found.append(event)
            return bool(found)

        wait_until(got, f"the Python client reading {text!r}")
        return found[0]

    python = python_client()
    context, page = new_page(browser, relay.web)
    try:
        python.join("secret", e2e=True)
        wait_until(lambda: python.e2e.epoch("secret") == 0, "the Python client's group in #secret")
        python.close()  # nobody in #secret's group is online now
        admit(page, relay, members, known, "alice")
        say(page, "/join secret")
        wait_for_line(page, "this device joined #secret's group by itself (no member was online to add it)")
        say(page, "from the page, joined alone")
        python = python_client()
        got = heard(python, "from the page, joined alone")
        # From the room's history, or live when the page's encryption took
        # longer than bob's reconnecting: either way bob's device opened it
        # after taking the page's External Commit.
        assert (got.sender, got.e2e) == ("alice", True)
        assert sorted(n for n, _ in python.e2e.members("secret")) == ["alice", "bob"]
        python.say("welcome, page", room="secret")
        wait_for_line(page, "bob: welcome, page")
        lines = page_lines(page)
        assert not any("refused" in line or "error" in line or "did not" in line for line in lines), lines
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        python.close()
        context.close()
