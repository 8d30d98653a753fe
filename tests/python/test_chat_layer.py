"""The chat layer from Python: the original notebook client's code sees
notices and history as readable lines; ``eaxchat.Client(events=True)``
gets structured events, with ``join``, ``who``, ``rooms``, ``msg``, ``me``
and ``say``; and the client installs as a package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

import eaxchat
from conftest import REPO, WAIT, MembersFile, wait_until
from test_seed_bursts import seed_notebook

CHAT = ["--history", "100", "--presence", "on"]


def shown_lines(notebook) -> List[str]:
    """What the notebook printed, one line each (a paced frame can carry
    several messages, joined by newlines)."""
    return [
        line.removeprefix("[chat] ")
        for shown in list(notebook.shown)
        for line in shown.splitlines()
        if line
    ]


def test_the_original_notebook_client_reads_history_and_notices(bins, start_relay, tmp_path):
    members = MembersFile(bins.relay, tmp_path, ["alice", "bob", "carol"])
    relay = start_relay(members=members.path, extra=CHAT)
    relay.wait_for_log("members mode: 3 members")
    alice = eaxchat.Client(relay.host, relay.port, eaxchat.load_key(members.key_files["alice"]))
    try:
        alice.send("said before the notebook came")
        notebook = seed_notebook(relay.host, relay.port, members.key("bob"))
        try:
            notebook.send_message("hello from the notebook")
            assert alice.recv_text(WAIT) == "* bob joined #lobby (2 here)"
            assert alice.recv_text(WAIT) == "bob: hello from the notebook"
            wait_until(lambda: len(shown_lines(notebook)) >= 2, "the history", WAIT)
            assert shown_lines(notebook)[:2] == [
                "* the last 1 message in #lobby:",
                "alice: said before the notebook came",
            ]
            carol = eaxchat.Client(relay.host, relay.port, eaxchat.load_key(members.key_files["carol"]))
            try:
                wait_until(
                    lambda: "* carol joined #lobby (3 here)" in shown_lines(notebook),
                    "carol's join notice",
                    WAIT,
                )
                carol.send("/me waves")
                alice.send("/msg bob only for you")
                wait_until(
                    lambda: "[private] alice: only for you" in shown_lines(notebook),
                    "the private message",
                    WAIT,
                )
                assert "* carol waves" in shown_lines(notebook)
            finally:
                carol.close()
            wait_until(
                lambda: "* carol left #lobby (2 here)" in shown_lines(notebook),
                "carol's leave notice",
                WAIT,
            )
            assert not notebook.died, notebook.died
        finally:
            notebook.sock.close()
    finally:
        alice.close()


def test_structured_events_and_commands(start_relay):
    relay = start_relay(extra=CHAT)
    with eaxchat.Client(relay.host, relay.port, relay.key, events=True) as alice, \
            eaxchat.Client(relay.host, relay.port, relay.key, events=True) as bob:
        welcome = alice.recv_event(WAIT)
        assert (welcome.kind, welcome.room, welcome.sender) == ("welcome", "lobby", None)
        assert welcome.is_notice
        assert bob.recv_event(WAIT).kind == "welcome"
        alice.nick("alice")
        assert alice.recv_event(WAIT).text == "* you are now alice"
        joined = bob.recv_event(WAIT)
        assert (joined.kind, joined.data["name"], joined.data["count"]) == ("join", "alice", 2)
        bob.nick("bob")
        assert bob.recv_event(WAIT).kind == "notice"
        assert alice.recv_event(WAIT).line() == "* bob joined #lobby (2 here)"
        assert alice.who() == ["alice", "bob"]
        assert [(entry.room, entry.count) for entry in alice.rooms()] == [("lobby", 2)]

        bob.say("/etc/motd is a path, not a command")
        said = alice.recv_event(WAIT)
        assert (said.kind, said.sender, said.text, said.history) == (
            "msg", "bob", "/etc/motd is a path, not a command", False)
        assert said.is_message and said.ts and said.room == "lobby"
        bob.me("waves")
        assert alice.recv_event(WAIT).line() == "* bob waves"
        bob.msg("alice", "psst")
        private = alice.recv_event(WAIT)
        assert (private.kind, private.sender, private.text) == ("private", "bob", "psst")
        assert bob.recv_event(WAIT).line() == "[private to alice] psst"

        # With events, joining adds a room: alice stays in the lobby too.
        alice.join("dev")
        assert alice.recv_event(WAIT).line() == "* alice joined #dev (1 here)"
        assert alice.recv_event(WAIT).line() == "* your rooms: #lobby, #dev (now in #dev)"
        assert alice.rooms_joined == ["lobby", "dev"] and alice.current_room == "dev"
        alice.say("first words in dev")
        alice.msg("carol", "hi")
        refused = alice.recv_event(WAIT)
        assert (refused.kind, refused.text) == ("error", "error: no one named carol is here")
        with eaxchat.Client(relay.host, relay.port, relay.key, events=True) as carol:
            assert carol.recv_event(WAIT).kind == "welcome"
            # The lobby's history first: what bob said there.
            lobby = carol.recv_event(WAIT)
            assert (lobby.kind, lobby.room, lobby.data["count"]) == ("history", "lobby", 2)
            assert [carol.recv_event(WAIT).line() for _ in range(2)] == [
                "bob: /etc/motd is a path, not a command",
                "* bob waves",
            ]
            carol.join("dev")
            assert carol.recv_event(WAIT).kind == "notice"  # "* you joined #dev"
            start = carol.recv_event(WAIT)
            assert (start.kind, start.data["count"]) == ("history", 1)
            old = carol.recv_event(WAIT)
            assert (old.sender, old.text, old.history) == ("alice", "first words in dev", True)
            assert carol.recv_event(WAIT).kind == "myrooms"
            alice.say("live in dev")
            live = carol.recv_event(WAIT)
            assert (live.text, live.history) == ("live in dev", False)
        # bob, in the lobby only, heard none of #dev.
        with pytest.raises(TimeoutError):
            bob.recv_event(0.3)


def test_plain_clients_are_untouched_by_another_asking_for_events(start_relay):
    relay = start_relay(extra=CHAT)
    with eaxchat.Client(relay.host, relay.port, relay.key, events=True) as rich, \
            eaxchat.Client(relay.host, relay.port, relay.key) as plain:
        assert rich.recv_event(WAIT).kind == "welcome"
        relay.wait_for_clients(2)
        rich.nick("rich")
        assert rich.recv_event(WAIT).kind == "notice"
        assert plain.recv_text(WAIT) == "* rich joined #lobby (2 here)"
        rich.say("hello")
        assert plain.recv_text(WAIT) == "hello"
        plain.send("/who")
        assert plain.recv_text(WAIT) == "* here in #lobby: rich, and 1 with no name"


def test_the_client_installs_as_a_package(tmp_path):
    # From a copy: an in-tree build leaves build/ and egg-info behind.
    source = tmp_path / "source"
    shutil.copytree(REPO / "clients" / "python", source)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    out = subprocess.run(
        [sys.executable, "-c", "import eaxchat, sys; print(eaxchat.__file__, eaxchat.PROTOCOL)"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    path, protocol = out.stdout.split()
    assert Path(path).parent.parent == target and protocol == "eaxchat/1"
