"""The chat page's rooms (#28) in a real headless Chromium (Debian's, driven
by Playwright, as in test_web.py): the room list with unread and mention
badges and the title's count, every message going out as ``/in ROOM …``,
the list folded into a menu on a phone-width screen, and a room's older
history fetched page by page when scrolled to the top, with no gap and no
duplicate. The peer is the Python client on a plain connection; every wait
is bounded, and the relay is stopped by ``start_relay``."""

from __future__ import annotations

import time
from typing import List

import pytest

import eaxchat
from conftest import WAIT, wait_until
from test_web import browser, open_page, page_lines, say, start_web, wait_for_line, web_address  # noqa: F401


def current_room(page) -> str:
    return page.evaluate("document.querySelector('#room-list li.current')?.dataset.room ?? ''")


def badge(page, room: str, kind: str = "badge") -> str:
    return page.evaluate(
        "([room, kind]) => document.querySelector(`#room-list li[data-room='${room}'] .${kind}`)?.textContent ?? ''",
        [room, kind],
    )


def join(page, room: str) -> None:
    say(page, f"/join {room}")
    wait_until(lambda: current_room(page) == room, f"the page looking at #{room}")


def pick(page, room: str) -> None:
    page.click(f"#room-list li[data-room='{room}'] .pick")
    wait_until(lambda: current_room(page) == room, f"the page looking at #{room}")


def wait_text(peer: eaxchat.Client, text: str) -> List[str]:
    """The plain peer's lines up to the first that holds ``text``."""
    seen: List[str] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            line = peer.recv_text(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        seen.append(line)
        if text in line:
            return seen
    pytest.fail(f"the peer never got {text!r}; it got {seen}")


def test_unread_badges_and_the_title_follow_the_room_looked_at(browser, start_relay):
    relay = start_web(start_relay)
    page = open_page(browser, relay, relay.key_hex)
    say(page, "/nick web")
    wait_for_line(page, "* you are now web")
    join(page, "a")
    # The other way to join: the field under the list.
    page.fill("#join-room", "#B")
    page.press("#join-room", "Enter")
    wait_until(lambda: current_room(page) == "b", "the page looking at #b")
    pick(page, "a")
    assert page.title() == "eaxchat"
    with eaxchat.Client(relay.host, relay.port, relay.key) as peer:
        peer.send("/join b")
        wait_text(peer, "you joined")
        # The page's words carry their room: what it says in #a never
        # reaches #b, what it says in #b does, in order.
        say(page, "said in a")
        pick(page, "b")
        say(page, "said in b")
        assert not any("said in a" in line for line in wait_text(peer, "said in b"))
        pick(page, "a")
        peer.send("one")
        peer.send("two")
        peer.send("three, web")
        wait_until(lambda: badge(page, "b") == "3", "#b's badge at 3")
        assert page.title() == "(3) eaxchat"
        assert badge(page, "b", "mention-badge") == "@"
        assert badge(page, "a") == ""
        assert not any("three, web" in line for line in page_lines(page))  # #a is shown
        pick(page, "b")
        assert badge(page, "b") == "" and badge(page, "b", "mention-badge") == ""
        assert page.title() == "eaxchat"
        said = [line[5:] for line in page_lines(page) if line.endswith(("one", "two", "three, web"))]
        assert said == ["one", "two", "three, web"]
        assert page.evaluate("document.querySelector('#messages .line.mention')?.textContent ?? ''").endswith("three, web")
        # A topic, set by the peer, above #b's lines.
        peer.send("/topic release friday")
        wait_until(lambda: page.inner_text("#topic") == "release friday", "the topic above #b")
        pick(page, "a")
        assert page.is_hidden("#topic")
        # Parting #b from the list: it goes, and the peer is told.
        page.click("#room-list li[data-room='b'] .part")
        wait_until(lambda: page.evaluate("!document.querySelector(\"#room-list li[data-room='b']:not(.other)\")"),
                   "#b gone from the list")
        wait_text(peer, "left #b")
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


def test_a_phone_width_page_folds_the_room_list_into_a_menu(browser, start_relay):
    relay = start_web(start_relay)
    page = open_page(browser, relay, relay.key_hex, width=375, height=700)
    wait_until(lambda: current_room(page) == "lobby", "the page in #lobby")
    join(page, "dev")
    assert page.is_hidden("#rooms")
    assert page.is_visible("#rooms-toggle")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide on a 375 px screen"
    page.click("#rooms-toggle")
    assert page.is_visible("#rooms")
    assert page.is_visible("#room-list li[data-room='lobby']")
    page.click("#room-list li[data-room='lobby'] .pick")
    wait_until(lambda: page.is_hidden("#rooms"), "the menu closed")
    assert current_room(page) == "lobby"
    assert page.inner_text("#room") == "#lobby"
    # Open and closed by the button alone, too.
    page.click("#rooms-toggle")
    assert page.is_visible("#rooms")
    page.click("#rooms-toggle")
    assert page.is_hidden("#rooms")
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


# The first message line at the top of the box, and how far above it.
TOP_LINE = """(() => {
    const box = document.getElementById('messages');
    const top = box.getBoundingClientRect().top;
    const line = [...box.querySelectorAll('.line[data-id]')].find((l) => l.getBoundingClientRect().bottom > top);
    return [line.dataset.id, Math.round(line.getBoundingClientRect().top - top)];
})()"""


def message_ids(page) -> List[int]:
    return page.eval_on_selector_all("#messages .line[data-id]", "els => els.map(e => Number(e.dataset.id))")


def test_scrolling_to_the_top_fetches_older_history_with_no_gap_and_no_duplicate(browser, start_relay, tmp_path):
    said = 130
    # Memory keeps 40 of the room's messages (the burst on joining); the
    # log keeps all of them, and pages reach back into it.
    relay = start_relay(extra=["--history", "40", "--presence", "on", "--log", str(tmp_path / "log"),
                               "--log-key", str(tmp_path / "log.key"), "--web", "127.0.0.1:0"])
    relay.web = web_address(relay)  # type: ignore[attr-defined]
    with eaxchat.Client(relay.host, relay.port, relay.key) as peer:
        peer.send("/join deep")
        wait_text(peer, "you joined")
        for n in range(said):
            peer.send(f"m{n}")
        peer.send("/who")  # answered after every message before it
        wait_text(peer, "here in #deep")
    page = open_page(browser, relay, relay.key_hex, width=900, height=500)
    join(page, "deep")
    wait_until(lambda: len(message_ids(page)) >= 40, "the burst of 40")
    ids = message_ids(page)
    assert ids == list(range(said - 40, said)), ids
    # At the bottom: nothing older asked for yet.
    assert page.evaluate("(() => { const b = document.getElementById('messages'); return b.scrollHeight > b.clientHeight; })()")
    page.wait_for_timeout(200)
    assert len(message_ids(page)) == 40
    pages = 0
    while not any("* the start of #deep" in line for line in page_lines(page)):
        before = len(message_ids(page))
        top = page.evaluate("""() => {
            const box = document.getElementById('messages');
            box.scrollTop = 0;
            box.dispatchEvent(new Event('scroll'));
            const line = box.querySelector('.line[data-id]');
            return [line.dataset.id, line.getBoundingClientRect().top];
        }""")
        wait_until(lambda: len(message_ids(page)) > before or any("* the start of #deep" in l for l in page_lines(page)),
                   "an older page")
        pages += 1
        assert pages <= 4, "more pages than 130 messages need"
        # The view held still: the line that was at the top is where it was.
        moved = page.evaluate("""(id) => document.querySelector(`#messages .line[data-id='${id}']`).getBoundingClientRect().top""", top[0])
        assert abs(moved - top[1]) < 2, (moved, top)
    ids = message_ids(page)
    assert ids == list(range(said)), ids
    texts = page.eval_on_selector_all("#messages .line[data-id]", "els => els.map(e => e.textContent.replace(/^\\d\\d:\\d\\d/, ''))")
    assert texts == [f"m{n}" for n in range(said)]
    # Switching rooms and back puts the view on the line it was on.
    page.evaluate("document.getElementById('messages').scrollTop = 1000")
    page.wait_for_timeout(100)  # the scroll event; asks nothing (not near the top, nothing older)
    at_top = page.evaluate(TOP_LINE)
    pick(page, "lobby")
    assert not any(line.endswith("m64") for line in page_lines(page))
    pick(page, "deep")
    assert page.evaluate(TOP_LINE) == at_top
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()
