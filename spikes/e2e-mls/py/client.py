"""A Python client process for the interop driver, over the eaxmls binding (PyO3 over
openmls). Same line protocol as rust-client: `ok ...` / `err ...`, base64 byte strings."""
import base64
import sys

import eaxmls

b64 = lambda b: base64.b64encode(b).decode()
unb64 = base64.b64decode


def main() -> None:
    client = eaxmls.Client(sys.argv[1] if len(sys.argv) > 1 else "py")
    ops = {
        "kp": lambda: b64(client.key_package()),
        "create": lambda gid, ds=None: client.create_group(unb64(gid), unb64(ds) if ds else None) or "",
        "add": lambda *kps: " ".join(b64(x) for x in client.add_members([unb64(k) for k in kps])),
        "remove": lambda name: b64(client.remove_member(name)),
        "commit": lambda: b64(client.commit_pending()),
        "confirm": lambda: str(client.confirm()),
        "discard": lambda: client.discard() or "",
        "join": lambda w: str(client.join(unb64(w))),
        "send": lambda text: b64(client.encrypt(unb64(text))),
        "recv": lambda msg: recv(client, unb64(msg)),
        "members": lambda: ",".join(client.members()),
        "epoch": lambda: str(client.epoch()),
        "leaf": lambda name: str(client.leaf_of(name)),
    }
    for line in sys.stdin:
        op, *args = line.split()
        try:
            answer = "ok " + ops[op](*args)
        except Exception as e:  # noqa: BLE001 - every failure is reported to the driver
            answer = "err " + f"{type(e).__name__}: {e}".replace("\n", " ")
        sys.stdout.write(answer.rstrip() + "\n")
        sys.stdout.flush()


def recv(client, msg: bytes) -> str:
    event = client.process(msg)
    if event[0] == "app":
        return "app " + b64(event[1])
    if event[0] == "commit":
        return f"commit {event[1]} {'removed' if event[2] else 'member'}"
    return "proposal"


if __name__ == "__main__":
    main()
