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
# members-100 (101 members, each with a key of their own, 1 -> 100);
# events-100 (shared key, 1 -> 100 subscribers that said /hello eaxchat/1,
# relay-bench --events) and rooms-100 (the same, but this tree's
# subscribers each also join $EXTRA_ROOMS more rooms, default 9, while the
# baseline's stay in the one room: against a baseline from before a
# connection could be in several rooms, where /join moves it); idle-10000
# (10,000 idle connections, a fresh relay each run: relay RSS per
# connection), idle-events (the same, every connection having said /hello
# eaxchat/1) and idle-3-rooms (as idle-events, this tree's connections each
# also joining 2 more rooms, the baseline's in their one room); sessions-100 (101 members of public keys, a session relay:
# --members FILE --identity FILE, relay-bench shaking hands as each). Both
# relays run with the same flags; this tree's relay-bench drives both, so a
# baseline must speak the same wire format. Prints, per scenario, the
# medians of deliveries/s and of relay CPU per delivery for each relay and
# the ratio this/baseline. Everything it starts is stopped on exit.
# CLIENTS=10 (or 1000) runs the fan-out scenarios 1 -> 10 (1 -> 1000)
# under the same names. Each repeat's two runs are also compared with each
# other, and the median of those ratios printed: they are next to each
# other in time, so the machine's drift touches them least. KEEP=FILE
# keeps every run's figures (JSON lines).
set -euo pipefail

: "${BASELINE:?set BASELINE to the baseline relay binary}"
REPEATS=${REPEATS:-7}
DURATION=${DURATION:-3}
ONLY=${ONLY:-fanout-100 members-100}
# Subscribers of the fan-out scenarios (named for the default, 100).
CLIENTS=${CLIENTS:-100}
EXTRA_ROOMS=${EXTRA_ROOMS:-9}
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
"$BIN/relay-bench" make-members --count "$((CLIENTS + 1))" --file "$MEMBERS"
FLAGS=(--stats-interval 0 --max-per-address 0 --history 0 --presence off --rate 0)
SESSIONS=$WORK/sessions.txt
[[ " $ONLY " == *" sessions-100 "* ]] &&
    "$BIN/relay-bench" make-members --sessions --count "$((CLIENTS + 1))" --file "$SESSIONS"

# name binary port: starts a shared-key relay and a members relay.
declare -A SHARED_PID MEMBERS_PID SHARED_PORT MEMBERS_PORT SESSIONS_PID
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
    if [ -f "$SESSIONS" ]; then
        # A session relay makes its identity on start, at $WORK/NAME.identity.
        "$binary" --listen "127.0.0.1:$((port + 2))" --members "$SESSIONS" \
            --identity "$WORK/$name.identity" "${FLAGS[@]}" >"$WORK/$name-sessions.log" 2>&1 &
        SESSIONS_PID[$name]=$!
        PIDS+=("$!")
        port_up "$((port + 2))"
    fi
}
start_pair this "$BIN/relay" 17501
start_pair baseline "$BASELINE" 17511

OUT=$WORK/results.jsonl
run() {
    local scenario=$1 who=$2
    local json
    case $scenario in
        fanout-100)
            json=$("$BIN/relay-bench" --json --quiet fanout --clients "$CLIENTS" --duration "$DURATION" \
                --addr "127.0.0.1:${SHARED_PORT[$who]}" --key-hex "$KEY" --pid "${SHARED_PID[$who]}") ;;
        events-100 | rooms-100)
            local rooms=()
            if [ "$scenario" = rooms-100 ] && [ "$who" = this ]; then
                rooms=(--extra-rooms "$EXTRA_ROOMS")
            fi
            json=$("$BIN/relay-bench" --json --quiet fanout --clients "$CLIENTS" --duration "$DURATION" \
                --events "${rooms[@]}" \
                --addr "127.0.0.1:${SHARED_PORT[$who]}" --key-hex "$KEY" --pid "${SHARED_PID[$who]}") ;;
        idle-10000 | idle-events | idle-3-rooms)
            local rooms=() pid
            [ "$scenario" != idle-10000 ] && rooms=(--events)
            if [ "$scenario" = idle-3-rooms ] && [ "$who" = this ]; then
                rooms=(--events --extra-rooms 2)
            fi
            local binary=$BIN/relay port=17521
            [ "$who" = baseline ] && binary=$BASELINE
            "$binary" --listen "127.0.0.1:$port" --key-hex "$KEY" "${FLAGS[@]}" --max-clients 10000 \
                >"$WORK/idle-$who.log" 2>&1 &
            pid=$!
            PIDS+=("$pid")
            port_up "$port"
            json=$("$BIN/relay-bench" --json --quiet idle --clients 10000 --duration 1 "${rooms[@]}" \
                --addr "127.0.0.1:$port" --key-hex "$KEY" --pid "$pid")
            kill "$pid"
            wait "$pid" 2>/dev/null || true ;;
        sessions-100)
            json=$("$BIN/relay-bench" --json --quiet fanout --clients "$CLIENTS" --duration "$DURATION" \
                --addr "127.0.0.1:$((${SHARED_PORT[$who]} + 2))" --sessions-file "$SESSIONS" \
                --relay-identity "$WORK/$who.identity" --pid "${SESSIONS_PID[$who]}") ;;
        members-100)
            json=$("$BIN/relay-bench" --json --quiet fanout --clients "$CLIENTS" --duration "$DURATION" \
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

[ -n "${KEEP:-}" ] && cp "$OUT" "$KEEP"
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
    if bench.startswith("idle"):
        t = med(bench, "this", lambda r: r["relay_rss_per_conn_bytes"])
        b = med(bench, "baseline", lambda r: r["relay_rss_per_conn_bytes"])
        errors = sum(r.get("errors", 0) for r in rows if r["bench"] == bench)
        print(f"{bench:<12} relay RSS per idle connection: this {t:.0f} B, baseline {b:.0f} B, "
              f"ratio {t / b:.3f}x   errors {errors}")
        continue
    t, b = med(bench, "this", lambda r: r["deliveries_per_s"]), med(bench, "baseline", lambda r: r["deliveries_per_s"])
    tc, bc = med(bench, "this", cpu_ns), med(bench, "baseline", cpu_ns)
    errors = sum(r.get("errors", 0) for r in rows if r["bench"] == bench)
    print(f"{bench:<12} {t:>14,.0f} {b:>14,.0f} {t / b:>6.3f}x   {tc:>13.1f} {bc:>9.1f} {tc / bc:>6.3f}x   {errors}")
    this = [r for r in rows if r["bench"] == bench and r["who"] == "this"]
    base = [r for r in rows if r["bench"] == bench and r["who"] == "baseline"]
    pairs = [(x, y) for x, y in zip(this, base) if x.get("deliveries") and y.get("deliveries")]
    if pairs:
        speed = statistics.median(x["deliveries_per_s"] / y["deliveries_per_s"] for x, y in pairs)
        cpu = statistics.median(cpu_ns(x) / cpu_ns(y) for x, y in pairs)
        label = "pairs, run by run:"
        print(f"{'':<12} {label:>29} {speed:>6.3f}x   {'':>23} {cpu:>6.3f}x   (medians of {len(pairs)} ratios)")
PY
