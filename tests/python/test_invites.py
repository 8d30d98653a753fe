"""Invites end to end: `relay invite` prints a link; the Python client
(`eaxsession.join_invite`) and `chat --join` in a pseudo-terminal each join a
running session relay with it, and then chat; a spent link and a wrong secret
are refused with the relay's words. Every wait is bounded; every process is
stopped at teardown."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pexpect
import pyte
import pytest

import eaxchat
import eaxsession as es
from conftest import WAIT, write_members

LINK = re.compile(r"eaxchat://\S+/join/[A-Za-z0-9_-]{96}")


def _session_relay(start_relay, tmp_path: Path):
    relay_identity = tmp_path / "relay.identity"
    eaxchat.generate_identity(relay_identity)
    alice = tmp_path / "alice.identity"
    members = tmp_path / "members.txt"
    write_members(members, f"alice {eaxchat.generate_identity(alice)}\n")
    relay = start_relay(extra=["--identity", str(relay_identity)], members=members)
    return relay, alice, members, relay_identity


def _invite(bins, relay, members: Path, relay_identity: Path, name: str, *extra: str) -> str:
    seen = relay.count_log("invites, ")
    out = subprocess.run(
        [str(bins.relay), "invite", name, "--file", str(members), "--identity",
         str(relay_identity), "--addr", relay.addr, *extra],
        capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    link = LINK.search(out.stdout)
    assert link, out.stdout
    # The running relay reads the invites file within a second.
    relay.wait_for_log("invites, ", count=seen + 1)
    return link.group(0)


def _message_from(client, sender: str) -> str:
    event = client.recv_event(WAIT)
    while not (event.is_message and event.sender == sender):
        event = client.recv_event(WAIT)
    return event.text


def test_python_joins_by_link_then_chats_and_reconnects(bins, start_relay, tmp_path):
    relay, alice, members, relay_identity = _session_relay(start_relay, tmp_path)
    link = _invite(bins, relay, members, relay_identity, "dan")
    known = es.KnownRelays(tmp_path / "dan_known_relays")
    dan_identity = tmp_path / "dan" / "identity"
    dan_identity.parent.mkdir(mode=0o700)
    with eaxchat.Client(relay.host, relay.port, identity=alice,
                        known_relays=tmp_path / "alice_known", events=True) as a:
        joined = es.join_invite(link, dan_identity, known)
        try:
            assert joined.name == "dan"
            relay.wait_for_clients(2)
            joined.sock.sendall(joined.session.seal(b"dan joined by a link"))
            assert _message_from(a, "dan") == "dan joined by a link"
        finally:
            joined.sock.close()
        assert stat.S_IMODE(os.stat(dan_identity).st_mode) == 0o600
        assert known.get(relay.addr) == es.parse_invite(link).relay_public
        # From now on the identity and the pin are all dan needs.
        with eaxchat.Client(relay.host, relay.port, identity=dan_identity,
                            known_relays=known.path, events=True) as d:
            assert (d.name, d.pinned_now) == ("dan", False)
            d.say("and back again")
            assert _message_from(a, "dan") == "and back again"
    text = members.read_text()
    assert "dan x25519:" in text
    secret = es.parse_invite(link).secret
    assert base64_url(secret) not in text and "secret" not in text


def base64_url(raw: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_python_join_refusals_spent_and_wrong_secret(bins, start_relay, tmp_path):
    relay, _, members, relay_identity = _session_relay(start_relay, tmp_path)
    link = _invite(bins, relay, members, relay_identity, "erin")
    invite = es.parse_invite(link)
    wrong = es.Invite(invite.address, invite.relay_public, invite.invite_id, os.urandom(32))
    token = base64_url(invite.relay_public + invite.invite_id + wrong.secret)
    wrong_link = f"eaxchat://{invite.address}/join/{token}"
    known = es.KnownRelays(tmp_path / "known")
    with pytest.raises(es.Refused, match=r"wrong invite secret.*\(7 tries left"):
        es.join_invite(wrong_link, tmp_path / "erin-wrong.identity", known)
    assert known.get(relay.addr) is None, "a refused join pins nothing"
    es.join_invite(link, tmp_path / "erin.identity", known).sock.close()
    with pytest.raises(es.Refused, match="used already"):
        es.join_invite(link, tmp_path / "erin-2.identity", es.KnownRelays(tmp_path / "k2"))
    with pytest.raises(ValueError, match="damaged"):
        es.parse_invite(link[:-3])


def test_chat_joins_by_link_in_a_terminal(bins, start_relay, tmp_path):
    relay, alice, members, relay_identity = _session_relay(start_relay, tmp_path)
    link = _invite(bins, relay, members, relay_identity, "fern")
    config = tmp_path / "config"
    screen = pyte.Screen(100, 24)
    stream = pyte.ByteStream(screen)
    child = pexpect.spawn(
        str(bins.chat), ["--join", link], dimensions=(24, 100),
        env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
             "XDG_CONFIG_HOME": str(config), "HOME": str(tmp_path)})
    try:
        with eaxchat.Client(relay.host, relay.port, identity=alice,
                            known_relays=tmp_path / "alice_known", events=True) as a:
            _wait_screen(child, stream, screen, "connected to")
            child.send("hello from a terminal\r")
            assert _message_from(a, "fern") == "hello from a terminal"
    finally:
        child.terminate(force=True)
    identity = config / "eaxchat" / "identity"
    assert stat.S_IMODE(os.stat(identity).st_mode) == 0o600
    assert relay.addr in (config / "eaxchat" / "known_relays").read_text()
    assert "fern x25519:" in members.read_text()


def _wait_screen(child, stream, screen, text: str) -> None:
    import time
    deadline = time.monotonic() + WAIT
    while not any(text in row for row in screen.display):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {text!r}; screen:\n" + "\n".join(screen.display))
        try:
            stream.feed(child.read_nonblocking(65536, timeout=0.05))
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            pytest.fail("chat exited; screen:\n" + "\n".join(screen.display))


# The page joining at an invite link runs over HTTPS at a host name that is
# not localhost: test_web_tls.py, test_the_page_joins_at_an_invite_link_over_https.

# ---------------------------------------------------------------- short codes

CODE = re.compile(r"code ([0-9]+(?:-[a-z]+){3})")


def test_python_joins_by_short_code_and_a_wrong_code_is_refused(bins, start_relay, tmp_path):
    relay, alice, members, relay_identity = _session_relay(start_relay, tmp_path)
    seen = relay.count_log("invites, ")
    out = subprocess.run(
        [str(bins.relay), "invite", "hugo", "--code", "--file", str(members), "--identity",
         str(relay_identity), "--addr", relay.addr],
        capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    code = CODE.search(out.stdout).group(1)
    relay.wait_for_log("invites, ", count=seen + 1)
    words = code.split("-")
    wrong = "-".join([*words[:3], "acorn" if words[3] != "acorn" else "adult"])
    known = es.KnownRelays(tmp_path / "known")
    with pytest.raises(es.Refused, match="wrong code"):
        es.join_invite(wrong, tmp_path / "hugo-wrong.identity", known, address=relay.addr)
    assert known.get(relay.addr) is None
    joined = es.join_invite(code.upper(), tmp_path / "hugo.identity", known, address=relay.addr)
    try:
        assert joined.name == "hugo"
        relay_public = es.parse_public_key(eaxchat.load_identity(relay_identity).public_key)
        assert known.get(relay.addr) == relay_public
    finally:
        joined.sock.close()
    assert "hugo x25519:" in members.read_text()
    with pytest.raises(es.Refused, match="used already"):
        es.join_invite(code, tmp_path / "hugo-2.identity", es.KnownRelays(tmp_path / "k2"),
                       address=relay.addr)
