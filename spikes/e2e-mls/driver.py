"""Interop driver: one MLS group across openmls (Rust), ts-mls (node) and the PyO3 binding.

Each client is its own process speaking the line protocol of mlscore/src/bin/rust-client.rs
over stdin/stdout; this script plays the relay (Delivery Service): it forwards the bytes,
orders commits (first commit per epoch wins), and as an external sender proposes a removal.
Exit status 0 only if every check passed.
"""
import base64
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUST = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "target")), "release", "rust-client")
PY = os.path.join(HERE, "py", ".venv", "bin", "python")
JS = os.environ.get("JS_CLIENT", os.path.join(HERE, "js", "client.mjs"))

failures = 0


def check(ok: bool, what: str) -> None:
    global failures
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    failures += 0 if ok else 1


class Proc:
    """One client process; `call` sends a command line and returns the answer's words."""

    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE)

    def call(self, *words: str) -> list[str]:
        assert self.p.stdin and self.p.stdout
        self.p.stdin.write(" ".join(words) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited")
        return line.split()

    def ok(self, *words: str) -> list[str]:
        answer = self.call(*words)
        if answer[0] != "ok":
            raise RuntimeError(f"{self.name} {words[0]}: {' '.join(answer)}")
        return answer[1:]

    def stop(self) -> None:
        assert self.p.stdin
        self.p.stdin.close()
        self.p.wait(timeout=10)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class DeliveryService:
    """The relay's part: reads only the clear header (epoch, content type) of handshake
    messages, accepts the first commit for each epoch and refuses later ones."""

    def __init__(self, peeker: Proc):
        self.peeker = peeker
        self.epoch = 0

    def submit_commit(self, sender: Proc, commit: str) -> bool:
        """Accept (sender merges it: `confirm`) or refuse (sender `discard`s it)."""
        epoch, kind = self.peeker.ok("peek", commit)
        if kind != "commit" or int(epoch) != self.epoch:
            sender.ok("discard")
            return False
        self.epoch += 1
        sender.ok("confirm")
        return True


blockers = 0


def blocked(ok: bool, what: str) -> None:
    """A known upstream blocker: reported and counted apart from the spike's own checks."""
    global blockers
    blockers += 1
    print(("BLOCKED " if ok else "BLOCKED (unexpected form) ") + what, flush=True)


def expect_text(receiver: Proc, msg: str, text: str, sender: str) -> None:
    answer = receiver.call("recv", msg)
    got = base64.b64decode(answer[2]).decode() if answer[:2] == ["ok", "app"] else " ".join(answer)
    check(got == text, f"{receiver.name} decrypts {sender}'s message: {got!r}")


def expect_refused(receiver: Proc, msg: str, what: str) -> None:
    answer = receiver.call("recv", msg)
    check(answer[0] == "err", f"{receiver.name} cannot open {what}: {' '.join(answer)[:110]}")


def main() -> int:
    relay = Proc("relay", [RUST, "relay"])
    alice = Proc("alice(rust)", [RUST, "alice"])
    if os.environ.get("BOB") == "browser":  # bob is the bundled page in headless Chromium
        bob = Proc("bob(chromium)", ["node", os.path.join(os.path.dirname(JS), "browser-client.mjs"), "bob"])
    else:
        bob = Proc("bob(js)", ["node", JS, "bob"])
    carol = Proc("carol(py)", [PY, "py/client.py", "carol"])
    dave = Proc("dave(rust)", [RUST, "dave"])
    ds = DeliveryService(relay)
    gid = b64("room-e2e")

    ds_key = relay.ok("dskey")[0]
    alice.ok("create", gid, ds_key)
    kp_bob, kp_carol = bob.ok("kp")[0], carol.ok("kp")[0]
    print(f"KeyPackage sizes: ts-mls {len(base64.b64decode(kp_bob))} B, openmls {len(base64.b64decode(kp_carol))} B")
    commit, welcome = alice.ok("add", kp_bob, kp_carol)
    check(ds.submit_commit(alice, commit), "DS accepts alice's commit for epoch 0")
    print(f"Commit (add 2) {len(base64.b64decode(commit))} B, Welcome {len(base64.b64decode(welcome))} B")
    check(bob.ok("join", welcome) == ["1"], "bob (ts-mls) joins from openmls Welcome at epoch 1")
    check(carol.ok("join", welcome) == ["1"], "carol (python) joins from the Welcome at epoch 1")
    check(bob.ok("members") == carol.ok("members") == alice.ok("members"), f"same members: {alice.ok('members')[0]}")

    early = {}
    for sender, others in ((alice, (bob, carol)), (bob, (alice, carol)), (carol, (alice, bob))):
        text = f"hello from {sender.name} at epoch 1"
        msg = sender.ok("send", b64(text))[0]
        early[sender.name] = msg
        for receiver in others:
            expect_text(receiver, msg, text, sender.name)

    kp_dave = dave.ok("kp")[0]
    commit, welcome = carol.ok("add", kp_dave)
    check(ds.submit_commit(carol, commit), "DS accepts carol's (python) commit for epoch 1")
    check(alice.ok("recv", commit) == ["commit", "2", "member"], "alice processes carol's Add commit")
    check(bob.ok("recv", commit) == ["commit", "2", "member"], "bob (ts-mls) processes carol's Add commit")
    check(dave.ok("join", welcome) == ["2"], "late joiner dave joins at epoch 2 from a python Welcome")
    for name, msg in early.items():
        expect_refused(dave, msg, f"{name}'s message from before his join")

    for sender, others in ((dave, (alice, bob, carol)), (bob, (alice, carol, dave))):
        text = f"epoch 2 from {sender.name}"
        msg = sender.ok("send", b64(text))[0]
        for receiver in others:
            expect_text(receiver, msg, text, sender.name)

    # Racing commits at epoch 2: bob (ts-mls) removes carol while alice (openmls) commits too.
    commit = bob.ok("remove", "carol")[0]
    racing = alice.ok("commit")[0]
    check(ds.submit_commit(bob, commit), "DS accepts bob's (ts-mls) Remove commit for epoch 2 (first)")
    check(not ds.submit_commit(alice, racing), "DS refuses alice's racing commit for epoch 2; alice discards it")
    for receiver in (alice, dave):
        check(receiver.ok("recv", commit) == ["commit", "3", "member"], f"{receiver.name} processes the Remove commit")
    retry = alice.ok("commit")[0]
    check(ds.submit_commit(alice, retry), "alice's rebased commit is accepted for epoch 3")
    for receiver in (bob, dave):
        check(receiver.ok("recv", retry) == ["commit", "4", "member"], f"{receiver.name} processes alice's retried commit")
    secret = "after carol's removal"
    msg = dave.ok("send", b64(secret))[0]
    expect_text(bob, msg, secret, "dave")
    expect_refused(carol, msg, "a message sent after her removal, with her state kept from before the commit")
    check(carol.ok("recv", commit) == ["commit", "3", "removed"], "carol processes the commit and sees she is removed")
    check(carol.call("send", b64("still here?"))[0] == "err", "carol can no longer send")
    expect_refused(carol, msg, "the same message after processing her removal")

    # External proposal: the relay (never a member) proposes removing dave.
    leaf = bob.ok("leaf", "dave")[0]
    proposal = relay.ok("dsremove", gid, str(ds.epoch), leaf)[0]
    for receiver in (alice, dave):
        check(receiver.ok("recv", proposal) == ["proposal"], f"{receiver.name} accepts the relay's external Remove proposal")
    answer = bob.call("recv", proposal)
    if answer[:2] == ["ok", "proposal"]:
        check(True, "bob (ts-mls) accepts the relay's external Remove proposal")
        commit = bob.ok("commit")[0]  # commits the stored proposal by reference
        check(ds.submit_commit(bob, commit), "DS accepts bob's (ts-mls) commit of the relay's proposal for epoch 4")
    else:
        blocked(answer[0] == "err", f"bob (ts-mls) cannot process the relay's external proposal: {' '.join(answer)}")
        # Fallback: a member commits the Remove itself (by value), as the relay asks it to.
        commit = bob.ok("remove", "dave")[0]
        check(ds.submit_commit(bob, commit), "DS accepts bob's (ts-mls) member Remove of dave for epoch 4")
    check(alice.ok("recv", commit) == ["commit", "5", "member"], "alice processes the removal commit")
    check(dave.ok("recv", commit) == ["commit", "5", "removed"], "dave processes it and is removed")
    check(bob.ok("members") == alice.ok("members") == ["alice,bob"], f"members now: {bob.ok('members')}")
    text = "epoch 5, dave gone"
    msg = alice.ok("send", b64(text))[0]
    expect_text(bob, msg, text, "alice")
    expect_refused(dave, msg, "a message after his removal")

    # External Commits from a GroupInfo, as the relay would hand it out while nobody is online.
    erin = Proc("erin(js)", ["node", JS, "erin"])
    info = alice.ok("groupinfo")[0]
    print(f"GroupInfo (openmls, with ratchet tree, 2 members) {len(base64.b64decode(info))} B")
    answer = erin.call("extjoin", info)
    if answer[0] == "ok":
        commit = answer[1]
        check(ds.submit_commit(erin, commit), "DS accepts erin's (ts-mls) External Commit from an openmls GroupInfo")
        for receiver in (alice, bob):
            got = receiver.call("recv", commit)
            check(got[:3] == ["ok", "commit", "6"], f"{receiver.name} processes erin's External Commit: {' '.join(got)[:100]}")
        text = "erin joined by external commit"
        msg = erin.ok("send", b64(text))[0]
        for receiver in (alice, bob):
            expect_text(receiver, msg, text, "erin")
    else:
        blocked(True, f"erin (ts-mls) External Commit from openmls GroupInfo: {' '.join(answer)[:200]}")
        erin.stop()
        erin = None
    frank = Proc("frank(rust)", [RUST, "frank"])
    info = bob.ok("groupinfo")[0]
    answer = frank.call("extjoin", info)
    if answer[0] == "ok":
        commit = answer[1]
        check(ds.submit_commit(frank, commit), "DS accepts frank's (openmls) External Commit from a ts-mls GroupInfo")
        others = [p for p in (alice, bob, erin) if p]
        for receiver in others:
            got = receiver.call("recv", commit)
            check(got[:3] == ["ok", "commit", str(ds.epoch)], f"{receiver.name} processes frank's External Commit: {' '.join(got)[:100]}")
        text = "frank joined by external commit"
        msg = frank.ok("send", b64(text))[0]
        for receiver in others:
            expect_text(receiver, msg, text, "frank")
    else:
        check(False, f"frank (openmls) External Commit from ts-mls GroupInfo: {' '.join(answer)[:200]}")
    if erin:
        erin.stop()
    frank.stop()

    for proc in (relay, alice, bob, carol, dave):
        proc.stop()
    print(f"{failures} failed, {blockers} blocked upstream")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
