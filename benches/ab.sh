#!/usr/bin/env bash
# A against B: this tree's relay against another build of it, in one run,
# alternating, with medians. For any change that must not slow the relay
# down (a refactor, a new feature beside the hot path).
#
#   git worktree add /tmp/before main~3
#   (cd /tmp/before && cargo build --release --bin relay)
#   BASELINE=/tmp/before/target/release/relay benches/ab.sh
#
# Scenarios (ONLY picks some): fanout-100 (shared key, 1 -> 100) and
# members-100 (101 members, each with a key of their own, 1 -> 100). Both
# relays run with the same flags; this tree's relay-bench drives both, so a
# baseline must speak the same wire format. Prints, per scenario, the
# medians of deliveries/s and of relay CPU per delivery for each relay and
# the ratio this/baseline. Everything it starts is stopped on exit.
set -euo pipefail

: "${BASELINE:?set BASELINE to the baseline relay binary}"
REPEATS=${REPEATS:-7}
DURATION=${DURATION:-3}
ONLY=${ONLY:-fanout-100 members-100}
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet -p eaxchat-server --bin relay -p relay-bench --bin relay-bench

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_up() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on port $1" >&2
    exit 1
}

KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
MEMBERS=$WORK/members.txt
"$BIN/relay-bench" make-members --count 101 --file "$MEMBERS"
FLAGS=(--stats-interval 0 --max-per-address 0 --history 0 --presence off --rate 0)

# name binary port: starts a shared-key relay and a members relay.
declare -A SHARED_PID MEMBERS_PID SHARED_PORT MEMBERS_PORT
start_pair() {
    local name=$1 binary=$2 port=$3
    "$binary" --listen "127.0.0.1:$port" --key-hex "$KEY" "${FLAGS[@]}" >"$WORK/$name-shared.log" 2>&1 &
    SHARED_PID[$name]=$!
    PIDS+=("$!")
    SHARED_PORT[$name]=$port
    "$binary" --listen "127.0.0.1:$((port + 1))" --members "$MEMBERS" "${FLAGS[@]}" >"$WORK/$name-members.log" 2>&1 &
    MEMBERS_PID[$name]=$!
    PIDS+=("$!")
    MEMBERS_PORT[$name]=$((port + 1))
    port_up "$port"
    port_up "$((port + 1))"
}
start_pair this "$BIN/relay" 17501
start_pair baseline "$BASELINE" 17511

OUT=$WORK/results.jsonl
run() {
    local scenario=$1 who=$2
    local json
    case $scenario in
        fanout-100)
            json=$("$BIN/relay-bench" --json --quiet fanout --clients 100 --duration "$DURATION" \
                --addr "127.0.0.1:${SHARED_PORT[$who]}" --key-hex "$KEY" --pid "${SHARED_PID[$who]}") ;;
        members-100)
            json=$("$BIN/relay-bench" --json --quiet fanout --clients 100 --duration "$DURATION" \
                --addr "127.0.0.1:${MEMBERS_PORT[$who]}" --members-file "$MEMBERS" --pid "${MEMBERS_PID[$who]}") ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    echo "{\"bench\":\"$scenario\",\"who\":\"$who\",${json#\{}" >>"$OUT"
}

for scenario in $ONLY; do
    echo "$scenario: $REPEATS alternating runs of ${DURATION}s each" >&2
    for rep in $(seq "$REPEATS"); do
        # Alternate which goes first, so a drift in the machine hits both.
        if [ $((rep % 2)) = 1 ]; then run "$scenario" this; run "$scenario" baseline
        else run "$scenario" baseline; run "$scenario" this; fi
    done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(bench, who, f):
    vals = [f(r) for r in rows if r["bench"] == bench and r["who"] == who]
    return statistics.median(vals) if vals else float("nan")
def cpu_ns(r):
    return 1e9 * r["relay_cpu_s"] / r["deliveries"] if r.get("deliveries") else float("nan")
print(f"{'scenario':<12} {'this deliv/s':>14} {'baseline':>14} {'ratio':>7}   {'this ns/deliv':>13} {'baseline':>9} {'ratio':>7}   errors")
for bench in dict.fromkeys(r["bench"] for r in rows):
    t, b = med(bench, "this", lambda r: r["deliveries_per_s"]), med(bench, "baseline", lambda r: r["deliveries_per_s"])
    tc, bc = med(bench, "this", cpu_ns), med(bench, "baseline", cpu_ns)
    errors = sum(r.get("errors", 0) for r in rows if r["bench"] == bench)
    print(f"{bench:<12} {t:>14,.0f} {b:>14,.0f} {t / b:>6.3f}x   {tc:>13.1f} {bc:>9.1f} {tc / bc:>6.3f}x   {errors}")
PY
