#!/usr/bin/env bash
# A session's seal of one read, this tree against another revision, in
# turn: N messages of 70 bytes (a stamped 64-byte text) sealed side by side
# under AES-256, as a session relay seals a read's messages for one
# recipient (`EaxKey::seal_frames_in_place`). For a change to the sealing
# code whose effect is smaller than the relay benchmarks' spread.
#
#   benches/seal-ab.sh REV [N ...]      (N defaults to 40 100 512)
#
# LINES=1 times the whole of a session's seal of the read instead
# (`--seal-lines N`: 71-byte messages sealed and encoded as lines,
# `Sealer::seal_joined`), the base64 step included.
#
# Builds the eax_key bench (`--seal-read N`, this tree's bench file in both)
# at REV in a temporary worktree and here, then runs the two in turn,
# PAIRS times (default 20) per N, pinned to one CPU, the first of each pair
# alternating. Prints, per N, the medians in ns a frame and the median of
# the pairs' ratios (this / REV): each pair's two runs are next to each
# other in time, so the machine's drift touches them least.
set -euo pipefail

REV=${1:?usage: benches/seal-ab.sh REV [N ...]}
shift
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(40 100 512)
PAIRS=${PAIRS:-20}
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
cleanup() {
    git worktree remove --force "$WORK/rev" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

bench_binary() { # DIR: builds its eax_key bench, prints the binary's path
    (cd "$1" && cargo bench -q -p eaxchat-proto --bench eax_key --no-run \
        --message-format=json 2>/dev/null) |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "eax_key" and m.get("executable"):
        print(m["executable"])'
}

git worktree add -q --detach "$WORK/rev" "$REV"
cp crates/proto/benches/eax_key.rs "$WORK/rev/crates/proto/benches/eax_key.rs"
echo "building $REV and this tree" >&2
if ! CARGO_TARGET_DIR=$WORK/target bench_binary "$WORK/rev" >"$WORK/rev.path" \
    || [ ! -s "$WORK/rev.path" ]; then
    echo "the eax_key bench of this tree does not build at $REV (it calls something $REV lacks?)" >&2
    exit 1
fi
cp "$(cat "$WORK/rev.path")" "$WORK/rev.bin"
THIS=$(bench_binary .)
CPU=${CPU:-0}
WHAT=--seal-read
[ "${LINES:-0}" = 1 ] && WHAT=--seal-lines

for n in "${COUNTS[@]}"; do
    for i in $(seq "$PAIRS"); do
        if [ $((i % 2)) = 1 ]; then
            a=$(taskset -c "$CPU" "$THIS" "$WHAT" "$n")
            b=$(taskset -c "$CPU" "$WORK/rev.bin" "$WHAT" "$n")
        else
            b=$(taskset -c "$CPU" "$WORK/rev.bin" "$WHAT" "$n")
            a=$(taskset -c "$CPU" "$THIS" "$WHAT" "$n")
        fi
        echo "$n $a $b"
    done
done | python3 -c '
import statistics as st, sys
rows = {}
for line in sys.stdin:
    n, a, b = line.split()
    rows.setdefault(int(n), []).append((float(a), float(b)))
print("%7s %9s %9s %9s  (medians; ratio: of the pairs)" % ("frames", "this ns", "rev ns", "this/rev"))
for n, pairs in rows.items():
    this, rev = st.median(a for a, _ in pairs), st.median(b for _, b in pairs)
    ratio = st.median(a / b for a, b in pairs)
    print(f"{n:>7} {this:>9.1f} {rev:>9.1f} {ratio:>8.3f}x")
'
