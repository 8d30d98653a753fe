"""An openmls peer for the node tests (tests/web/mls-external.test.mjs):
devices of the ``eaxchat_mls`` binding (PyO3 over crates/e2e, so openmls,
the MLS of ``chat``, the Python client and the relay) driven one JSON line
at a time on stdin, each answered with one JSON line on stdout.

A request is ``{"device": NAME, "call": METHOD, "args": [...]}``: METHOD
of ``eaxchat_mls.E2eRooms`` on device NAME (made on first use in the
directory given as the first argument). Bytes go both ways as strings
``"b64:..."``; an attribute (``signature_key``) is read. The answer is ``{"ok": RESULT}`` or ``{"error": TEXT}``.
Exits 3 when the binding is not installed (the test says to build it)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, Dict

try:
    import eaxchat_mls
except ImportError as error:
    print(f"eaxchat_mls is not installed: {error}", file=sys.stderr)
    sys.exit(3)


def unwire(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("b64:"):
        return base64.b64decode(value[4:])
    if isinstance(value, list):
        return [unwire(v) for v in value]
    return value


def wire(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "b64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (list, tuple)):
        return [wire(v) for v in value]
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    return value


def main() -> None:
    directory = Path(sys.argv[1])
    devices: Dict[str, Any] = {}
    for line in sys.stdin:
        request = json.loads(line)
        name = request["device"]
        try:
            if name not in devices:
                devices[name] = eaxchat_mls.E2eRooms(str(directory / name), name)
            attribute = getattr(devices[name], request["call"])
            result = attribute(*unwire(request.get("args", []))) if callable(attribute) else attribute
            answer = {"ok": wire(result)}
        except eaxchat_mls.E2eError as error:
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
