"""docs/architecture.md's map of the crates matches the crates' Cargo.toml
files: every workspace package is in the table, and its "uses" column lists
exactly its normal (non-dev) dependencies inside the workspace."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def documented() -> dict[str, set[str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## The crates", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        uses = set(re.findall(r"`([a-z0-9-]+)`", cells[2]))
        table[cells[0].strip("`")] = uses
    return table


def actual() -> dict[str, set[str]]:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    packages = json.loads(out)["packages"]
    members = {p["name"] for p in packages}
    return {
        p["name"]: {
            d["name"] for d in p["dependencies"] if d["kind"] is None and d["name"] in members
        }
        for p in packages
    }


def test_every_crate_is_on_the_map_with_its_dependencies() -> None:
    doc, cargo = documented(), actual()
    assert set(doc) == set(cargo), f"map lists {sorted(doc)}, workspace has {sorted(cargo)}"
    for name, uses in cargo.items():
        assert doc[name] == uses, f"{name}: the map says {sorted(doc[name])}, Cargo.toml says {sorted(uses)}"


def test_the_map_reads_its_own_table() -> None:
    # The parser must find rows, or the test above would pass on an empty map.
    assert "eaxchat-core" in documented()
    assert documented()["eaxchat-core"] == {"eaxchat-proto", "eaxchat-e2e"}
