"""examples/chat.ipynb executed headless (nbclient) against a relay started
here, with a Python peer in the room that answers the notebook's greeting:
once with the ipywidgets chat box, once with plain ``send_message`` calls,
and once in members mode with a member's key file."""

from __future__ import annotations

import queue

import nbformat
import pytest
from nbclient import NotebookClient

import eaxchat
from conftest import REPO, WAIT

NOTEBOOK = REPO / "examples" / "chat.ipynb"
GREETING = "notebook-test: hello from the notebook"
REPLY = "peer: hello notebook \x1b[2J"
SAFE_REPLY = "peer: hello notebook \ufffd[2J"

# Appended (in memory only) to drive the chat box as a person would, then
# check the reply also reached the output area.
WIDGET_CELL = """
text_box.value = "typed in the box"
assert text_box.value == "", "the box is cleared once the message is sent"
assert any(%r in out.get("text", "") for out in chat_output.outputs), chat_output.outputs
""" % SAFE_REPLY
PLAIN_CELL = """
assert widgets is None
send_message("a plain call")
"""


def run_notebook(relay, monkeypatch, widgets: bool, extra_cell: str, expected: int, key_file=None):
    """Executes the notebook with a peer in the room; returns the executed
    notebook and the ``expected`` messages the peer received (waiting for
    them, bounded), checking no more came. With ``key_file`` the notebook
    reads its key from that file (``EAXCHAT_KEY_FILE``) instead of
    ``EAXCHAT_KEY``."""
    heard: "queue.Queue[str]" = queue.Queue()

    def answer(data: bytes) -> None:
        text = data.decode()
        heard.put(text)
        if text.endswith("hello from the notebook"):
            peer.send(REPLY)

    peer = eaxchat.Client(relay.host, relay.port, relay.key, on_message=answer)
    try:
        relay.wait_for_clients(1)
        for name, value in {
            "EAXCHAT_HOST": relay.host,
            "EAXCHAT_PORT": str(relay.port),
            "EAXCHAT_KEY": relay.key_hex,
            "EAXCHAT_NAME": "notebook-test",
            "EAXCHAT_WIDGETS": "1" if widgets else "0",
            "EAXCHAT_WAIT": str(WAIT),
        }.items():
            monkeypatch.setenv(name, value)
        if key_file is not None:
            monkeypatch.delenv("EAXCHAT_KEY")
            monkeypatch.setenv("EAXCHAT_KEY_FILE", str(key_file))
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell(extra_cell))
        NotebookClient(
            notebook,
            timeout=60,
            startup_timeout=60,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        ).execute()
        try:
            messages = [heard.get(timeout=WAIT) for _ in range(expected)]
        except queue.Empty:
            pytest.fail(f"the peer heard fewer than {expected} messages:\n{relay.log()}")
        # The kernel has shut down: the relay sees the notebook leave.
        relay.wait_for_log("closed: peer closed")
        assert heard.empty(), heard.get_nowait()
        return notebook, messages
    finally:
        peer.close()


def cell_text(notebook, source_start: str) -> str:
    """The stream output of the cell whose source starts with
    ``source_start``."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.startswith(source_start):
            return "".join(out.get("text", "") for out in cell.outputs)
    pytest.fail(f"no cell starting with {source_start!r}")


def test_the_notebook_chats_with_widgets(relay, monkeypatch):
    """The widget UI is shown, the greeting and a message typed in the box
    reach the peer, and the peer's reply (made safe) reaches the notebook."""
    notebook, messages = run_notebook(relay, monkeypatch, True, WIDGET_CELL, 2)
    assert messages == [GREETING, "notebook-test: typed in the box"]
    shown = [
        out
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert shown, "the chat widgets were displayed"
    arrived = cell_text(notebook, "import time")
    assert "1 message(s) received:" in arrived
    assert SAFE_REPLY in arrived


def test_the_notebook_falls_back_to_send_message_calls(relay, monkeypatch):
    """Without widgets the notebook says so and ``send_message`` calls chat."""
    notebook, messages = run_notebook(relay, monkeypatch, False, PLAIN_CELL, 2)
    assert messages == [GREETING, "notebook-test: a plain call"]
    assert "No widgets" in cell_text(notebook, "try:")
    assert SAFE_REPLY in cell_text(notebook, "import time")


def test_the_notebook_runs_in_members_mode_with_a_member_key_file(relay, monkeypatch, tmp_path):
    """Given a member's key file, the notebook identifies itself with its
    first frame, ``/hello eaxchat/1`` (a command: never relayed), and sends
    its messages without a name (a members relay stamps it). The relay here
    holds the same key as its shared key, so the peer hears just the
    messages."""
    key_file = tmp_path / "notebook-test.key"
    key_file.write_text(f"# eaxchat member key for notebook-test\n{relay.key_hex}\n")
    notebook, messages = run_notebook(relay, monkeypatch, False, PLAIN_CELL, 2, key_file)
    assert messages == ["hello from the notebook", "a plain call"]
    assert "as notebook-test (members mode" in cell_text(notebook, "import sys")
    assert SAFE_REPLY in cell_text(notebook, "import time")
