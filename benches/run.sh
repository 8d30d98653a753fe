#!/usr/bin/env bash
# Benchmarks eaxchat's relay against `ncat --broker` (and Redis pub/sub when
# redis-server is installed) with relay-bench, on loopback. The latency
# scenario also runs relay-floor (benches/relay-bench/src/floor.rs): eaxchat's loop
# with no lines and no crypto, the floor a relay of this shape can reach.
#
# Builds release binaries, starts every contender on its own port, runs each
# scenario REPEATS times with the contenders alternating (so drift and noisy
# neighbours hit them alike), and prints a table of medians with the ratio
# to ncat from this same run. Everything it starts is stopped on exit.
#
# web-100 runs 1 -> 100 to WebSocket subscribers of the relay's --web port
# against TCP subscribers and Redis pub/sub.
#
# rooms-100 runs 1 -> 100 in a room while 900 connections sit in other
# rooms, against the same fanout alone. The relays run with --history 0
# --presence off: relay-bench counts every byte a client gets.
#
# cluster-100 runs 1 -> 100 across three relays joined through NATS
# (relay --cluster; the publisher on relay A, the subscribers spread over A,
# B and C), against one relay alone and NATS's own 1 -> 100 fan-out to 100
# NATS subscribers (relay-bench --nats), alternating. cluster-latency paces
# 1,000 msgs/s from A to 100 subscribers on B (the NATS hop) and to 100 on
# A, then to 100 spread over A, B and C in one run, each relay's latency
# apart: the hop in the same run, which the target is judged on. Both need
# nats-server (Debian's package), else they are skipped.
#
# members-100 drives a members relay (`relay --members FILE`, 101 members
# with keys of their own: the publisher and 100 subscribers) against Redis
# pub/sub and the shared-key relay, alternating, with the ratio to Redis.
#
#   benches/run.sh                 # full run (about 10 minutes)
#   REPEATS=1 DURATION=1 benches/run.sh   # quick look
#   ONLY="fanout-100 idle" benches/run.sh # some scenarios only
#
# Raw results (one JSON object per run) are kept in $OUT (default
# target/relay-bench/results.jsonl); PNG charts of the medians go to
# $CHARTS (default docs/charts), drawn by benches/charts.py, with a copy
# of the raw results beside them.
set -euo pipefail

REPEATS=${REPEATS:-5}
DURATION=${DURATION:-3}
ONLY=${ONLY:-}
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/relay-bench/results.jsonl}
BIN=$TARGET/release

# Connections are descriptors: 10,000 idle clients need more than 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if ! command -v ncat >/dev/null; then
    echo "installing ncat (Debian package ncat)" >&2
    apt-get install -y ncat >/dev/null
fi
if ! command -v redis-server >/dev/null; then
    echo "installing redis-server (Debian package redis-server)" >&2
    apt-get install -y redis-server >/dev/null 2>&1 || echo "could not install redis-server: Redis is skipped" >&2
fi
HAVE_REDIS=0
command -v redis-server >/dev/null && HAVE_REDIS=1

# relay from the eaxchat package, the bench tools from benches/relay-bench;
# both land in the workspace's one target directory.
cargo build --release --quiet -p eaxchat-server --bin relay -p relay-bench --bin relay-bench --bin relay-floor

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

KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
RELAY_PORT=${RELAY_PORT:-17401}
IDLE_PORT=${IDLE_PORT:-17402}
NCAT_PORT=${NCAT_PORT:-17403}
REDIS_PORT=${REDIS_PORT:-17404}
REDIS_IDLE_PORT=${REDIS_IDLE_PORT:-17405}
FLOOR_PORT=${FLOOR_PORT:-17406}
MEMBERS_PORT=${MEMBERS_PORT:-17407}
WEB_PORT=${WEB_PORT:-17408}
NATS_PORT=${NATS_PORT:-17409}
CLUSTER_A=${CLUSTER_A:-17410}
CLUSTER_B=${CLUSTER_B:-17411}
CLUSTER_C=${CLUSTER_C:-17412}

# Starts a server in the background; its pid lands in $STARTED.
start() {
    local log=$1
    shift
    "$@" >"$WORK/$log.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

# Whether something listens on port $1 within five seconds.
port_up() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

wait_port() {
    if ! port_up "$1"; then
        echo "nothing listening on port $1" >&2
        exit 1
    fi
}

start relay "$BIN/relay" --listen "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --stats-interval 0 --max-per-address 0 \
    --history 0 --presence off --web "127.0.0.1:$WEB_PORT"
RELAY_PID=$STARTED
# ncat's broker uses select(): 1000 clients fit under FD_SETSIZE, 10,000 do not.
start ncat ncat --broker --listen 127.0.0.1 "$NCAT_PORT" --max-conns 2000 </dev/null
NCAT_PID=$STARTED
start floor "$BIN/relay-floor" --listen "127.0.0.1:$FLOOR_PORT"
FLOOR_PID=$STARTED
wait_port "$RELAY_PORT"
wait_port "$NCAT_PORT"
wait_port "$FLOOR_PORT"
# The members relay: one member for the publisher and one per subscriber.
MEMBERS=$WORK/members.txt
"$BIN/relay-bench" make-members --count 101 --file "$MEMBERS"
start members "$BIN/relay" --listen "127.0.0.1:$MEMBERS_PORT" --members "$MEMBERS" \
    --stats-interval 0 --max-per-address 0 --history 0 --presence off --rate 0
MEMBERS_PID=$STARTED
HAVE_MEMBERS=1
if ! port_up "$MEMBERS_PORT"; then
    HAVE_MEMBERS=0
    echo "the members relay did not start; members-100 is skipped:" >&2
    tail -n 3 "$WORK/members.log" >&2
fi
if [ "$HAVE_REDIS" = 1 ]; then
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --maxclients 20000
    REDIS_PID=$STARTED
    wait_port "$REDIS_PORT"
fi

# Three relays joined through one nats-server, for cluster-100 and
# cluster-latency.
HAVE_CLUSTER=0
if command -v nats-server >/dev/null; then
    start nats nats-server -a 127.0.0.1 -p "$NATS_PORT"
    NATS_PID=$STARTED
    wait_port "$NATS_PORT"
    CLUSTER_PIDS=()
    for port in "$CLUSTER_A" "$CLUSTER_B" "$CLUSTER_C"; do
        start "cluster-$port" "$BIN/relay" --listen "127.0.0.1:$port" --key-hex "$KEY" \
            --cluster "nats://127.0.0.1:$NATS_PORT" --cluster-key-file "$WORK/cluster.key" \
            --stats-interval 0 --max-per-address 0 --history 0 --presence off --rate 0
        CLUSTER_PIDS+=("$STARTED")
        wait_port "$port"
        # The first relay makes the cluster key; the others read it.
        for _ in $(seq 100); do
            [ -s "$WORK/cluster.key" ] && break
            sleep 0.05
        done
    done
    HAVE_CLUSTER=1
    sleep 1
fi

mkdir -p "$(dirname "$OUT")"
: >"$OUT"

# One relay-bench run; appends its JSON, tagged, to $OUT.
bench() {
    local scenario=$1 contender=$2 rep=$3
    shift 3
    local json status=0
    json=$("$BIN/relay-bench" --json --quiet "$@") || status=$?
    if [ -z "$json" ]; then
        json='{"errors":-1,"deliveries_per_s":0}'
        echo "  $scenario/$contender: relay-bench failed (status $status)" >&2
    fi
    echo "{\"bench\":\"$scenario\",\"contender\":\"$contender\",\"rep\":$rep,${json#\{}" >>"$OUT"
}

# Runs one scenario for every contender, REPEATS times, alternating.
# $2 names the contenders beside eaxchat and ncat: "redis", "redis floor"
# or "no".
scenario() {
    local name=$1 extras=$2
    shift 2
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then
        return
    fi
    echo "$name: $*" >&2
    for rep in $(seq "$REPEATS"); do
        bench "$name" eaxchat "$rep" "$@" --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        bench "$name" ncat "$rep" "$@" --addr "127.0.0.1:$NCAT_PORT" --plain --pid "$NCAT_PID"
        if [ "$HAVE_REDIS" = 1 ] && [[ " $extras " == *" redis "* ]]; then
            bench "$name" redis "$rep" "$@" --addr "127.0.0.1:$REDIS_PORT" --redis --pid "$REDIS_PID"
        fi
        if [[ " $extras " == *" floor "* ]]; then
            bench "$name" floor "$rep" "$@" --addr "127.0.0.1:$FLOOR_PORT" --plain --pid "$FLOOR_PID"
        fi
    done
}

D="--duration $DURATION"
scenario fanout-10 redis fanout --clients 10 $D
scenario fanout-100 redis fanout --clients 100 $D
scenario fanout-1000 redis fanout --clients 1000 $D

# fanout 1 -> 100 with 100 different keys: the members relay seals every
# message once per subscriber. Against Redis and the shared-key relay,
# alternating.
if [ "$HAVE_MEMBERS" = 1 ] && { [ -z "$ONLY" ] || [[ " $ONLY " == *" members-100 "* ]]; }; then
    echo "members-100: fanout --clients 100, 100 member keys" >&2
    for rep in $(seq "$REPEATS"); do
        bench members-100 members "$rep" fanout --clients 100 $D \
            --addr "127.0.0.1:$MEMBERS_PORT" --members-file "$MEMBERS" --pid "$MEMBERS_PID"
        bench members-100 eaxchat "$rep" fanout --clients 100 $D \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        if [ "$HAVE_REDIS" = 1 ]; then
            bench members-100 redis "$rep" fanout --clients 100 $D \
                --addr "127.0.0.1:$REDIS_PORT" --redis --pid "$REDIS_PID"
        fi
    done
fi
# fanout 1 -> 100 to WebSocket subscribers (the relay's --web port; the
# publisher on TCP), against TCP subscribers of the same relay and Redis
# pub/sub, alternating.
if [ -z "$ONLY" ] || [[ " $ONLY " == *" web-100 "* ]]; then
    echo "web-100: fanout --clients 100 --web (WebSocket subscribers)" >&2
    for rep in $(seq "$REPEATS"); do
        bench web-100 websocket "$rep" fanout --clients 100 $D --web "127.0.0.1:$WEB_PORT" \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        bench web-100 tcp "$rep" fanout --clients 100 $D \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        if [ "$HAVE_REDIS" = 1 ]; then
            bench web-100 redis "$rep" fanout --clients 100 $D \
                --addr "127.0.0.1:$REDIS_PORT" --redis --pid "$REDIS_PID"
        fi
    done
fi
# fanout 1 -> 100 in the default room while 900 bystanders sit in 9 other
# rooms (each sent /join first; any byte one receives is an error), against
# the same 1 -> 100 with nobody else connected, alternating, on the same
# relay: rooms must not slow the fan-out.
if [ -z "$ONLY" ] || [[ " $ONLY " == *" rooms-100 "* ]]; then
    echo "rooms-100: fanout --clients 100 --bystanders 900 --bystander-rooms 9" >&2
    for rep in $(seq "$REPEATS"); do
        bench rooms-100 rooms "$rep" fanout --clients 100 --bystanders 900 --bystander-rooms 9 $D \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        bench rooms-100 alone "$rep" fanout --clients 100 $D \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
    done
fi
# fanout 1 -> 100 across the three relays of a cluster, against one relay
# alone and NATS's own fan-out, alternating.
if [ "$HAVE_CLUSTER" = 1 ] && { [ -z "$ONLY" ] || [[ " $ONLY " == *" cluster-100 "* ]]; }; then
    echo "cluster-100: fanout --clients 100 over relays A, B and C" >&2
    for rep in $(seq "$REPEATS"); do
        bench cluster-100 cluster "$rep" fanout --clients 100 $D --key-hex "$KEY" \
            --addr "127.0.0.1:$CLUSTER_A" --subscribe-at "127.0.0.1:$CLUSTER_A" \
            --subscribe-at "127.0.0.1:$CLUSTER_B" --subscribe-at "127.0.0.1:$CLUSTER_C" \
            --pid "${CLUSTER_PIDS[0]}"
        bench cluster-100 single "$rep" fanout --clients 100 $D \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        bench cluster-100 nats "$rep" fanout --clients 100 $D \
            --addr "127.0.0.1:$NATS_PORT" --nats --pid "$NATS_PID"
    done
fi
# 1,000 msgs/s from relay A to 100 subscribers on relay B (through NATS)
# and to 100 on relay A itself, alternating: what the hop adds; then the
# same with 10 subscribers, where the two cores are not saturated.
if [ "$HAVE_CLUSTER" = 1 ] && { [ -z "$ONLY" ] || [[ " $ONLY " == *" cluster-latency "* ]]; }; then
    echo "cluster-latency: latency --clients 100 --rate 1000, on relay B and on relay A" >&2
    for rep in $(seq "$REPEATS"); do
        bench cluster-latency remote "$rep" latency --clients 100 --rate 1000 $D --key-hex "$KEY" \
            --addr "127.0.0.1:$CLUSTER_A" --subscribe-at "127.0.0.1:$CLUSTER_B" \
            --pid "${CLUSTER_PIDS[1]}"
        bench cluster-latency local "$rep" latency --clients 100 --rate 1000 $D --key-hex "$KEY" \
            --addr "127.0.0.1:$CLUSTER_A" --pid "${CLUSTER_PIDS[0]}"
        bench cluster-latency remote-10 "$rep" latency --clients 10 --rate 1000 $D --key-hex "$KEY" \
            --addr "127.0.0.1:$CLUSTER_A" --subscribe-at "127.0.0.1:$CLUSTER_B" \
            --pid "${CLUSTER_PIDS[1]}"
        bench cluster-latency local-10 "$rep" latency --clients 10 --rate 1000 $D --key-hex "$KEY" \
            --addr "127.0.0.1:$CLUSTER_A" --pid "${CLUSTER_PIDS[0]}"
        # The issue's own shape: 100 subscribers spread over A, B and C in
        # one run, latencies kept apart for each relay (latency_atN_*).
        bench cluster-latency spread "$rep" latency --clients 100 --rate 1000 $D --key-hex "$KEY" \
            --addr "127.0.0.1:$CLUSTER_A" --subscribe-at "127.0.0.1:$CLUSTER_A" \
            --subscribe-at "127.0.0.1:$CLUSTER_B" --subscribe-at "127.0.0.1:$CLUSTER_C" \
            --pid "${CLUSTER_PIDS[0]}"
    done
fi
# 500 messages of 4 KiB in flight stay under the relay's default 4 MiB
# --max-queue; 1000 would not.
scenario fanout-100-4k redis fanout --clients 100 --size 4096 --window 500 $D
scenario latency-100 "redis floor" latency --clients 100 --rate 10000 $D
scenario room-50 no room --clients 50 --verify-all $D

# Idle connections: a fresh relay (and Redis) each time, so memory freed by
# earlier scenarios cannot hide what the connections cost.
idle() {
    local contender=$1 rep=$2 port=$3
    shift 3
    start "idle-$contender" "$@"
    local pid=$STARTED
    wait_port "$port"
    local proto=(--key-hex "$KEY")
    [ "$contender" = redis ] && proto=(--redis)
    bench idle-10000 "$contender" "$rep" idle --clients 10000 --duration 1 \
        --addr "127.0.0.1:$port" --pid "$pid" "${proto[@]}"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
if [ -z "$ONLY" ] || [[ " $ONLY " == *" idle "* ]]; then
    echo "idle-10000: 10,000 idle connections" >&2
    for rep in $(seq "$REPEATS"); do
        idle eaxchat "$rep" "$IDLE_PORT" "$BIN/relay" --listen "127.0.0.1:$IDLE_PORT" \
            --key-hex "$KEY" --stats-interval 0 --max-clients 10000 --max-per-address 0 \
            --history 0 --presence off
        if [ "$HAVE_REDIS" = 1 ]; then
            idle redis "$rep" "$REDIS_IDLE_PORT" redis-server --port "$REDIS_IDLE_PORT" \
                --bind 127.0.0.1 --save '' --appendonly no --maxclients 20000
        fi
    done
fi

echo >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" <<'PY'
"""Medians per scenario and contender, ratios to ncat, and the targets."""
import json
import statistics
import sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {}
for run in runs:
    by.setdefault((run["bench"], run["contender"]), []).append(run)


def median(bench, contender, key):
    values = [r[key] for r in by.get((bench, contender), []) if r.get(key) is not None]
    return statistics.median(values) if values else None


def errors(bench, contender):
    return sum(r.get("errors", 0) for r in by.get((bench, contender), []))


def mps(v):
    return "-" if v is None else f"{v / 1e6:.2f}M/s"


def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}x"


targets = {
    "fanout-10": lambda e, n: (e >= 4e6, ">= 4M/s"),
    "fanout-100": lambda e, n: (e >= 6e6 and n and e >= 0.8 * n, ">= 6M/s and >= 0.8x ncat"),
    "fanout-1000": lambda e, n: (e >= 4e6, ">= 4M/s"),
    "fanout-100-4k": lambda e, n: (e >= 0.5e6, ">= 0.5M/s"),
}
def cpu_per_delivery(bench, contender):
    """Median over runs of the server's CPU nanoseconds per delivery."""
    values = [r["relay_cpu_s"] * 1e9 / r["deliveries"] for r in by.get((bench, contender), [])
              if r.get("relay_cpu_s") is not None and r.get("deliveries")]
    return f"{statistics.median(values):.0f}" if values else "-"


reps = max((r["rep"] for r in runs), default=0)
print(f"\nmedians of {reps} alternating runs; errors summed over all runs (eaxchat's)")
print("server ns/dlv: the server process's CPU time per delivery (eaxchat / ncat / redis)")
print("bench CPU: relay-bench's CPU time as a share of the run, driving eaxchat\n")
print(f"{'scenario':<15}{'eaxchat':>11}{'ncat':>11}{'redis':>11}{'vs ncat':>9}{'vs redis':>9}"
      f"{'errors':>8}{'server ns/dlv':>16}{'bench CPU':>10}  target")
for bench in ["fanout-10", "fanout-100", "fanout-1000", "fanout-100-4k", "room-50"]:
    if (bench, "eaxchat") not in by:
        continue
    e = median(bench, "eaxchat", "deliveries_per_s")
    n = median(bench, "ncat", "deliveries_per_s")
    x = median(bench, "redis", "deliveries_per_s")
    per = "/".join(cpu_per_delivery(bench, c) for c in ["eaxchat", "ncat", "redis"])
    bench_share = median(bench, "eaxchat", "cpu_share") or 0
    err = errors(bench, "eaxchat")
    if bench in targets:
        met, text = targets[bench](e, n)
    else:
        verified = median(bench, "eaxchat", "verified")
        met, text = err == 0 and verified == median(bench, "eaxchat", "deliveries"), "every delivery verified, none lost"
    print(f"{bench:<15}{mps(e):>11}{mps(n):>11}{mps(x):>11}{ratio(e, n):>9}{ratio(e, x):>9}"
          f"{err:>8}{per:>16}{bench_share:>10.0%}  {text}: {'met' if met and err == 0 else 'MISSED'}")

if ("members-100", "members") in by:
    print(f"\nmembers-100: fanout 1 -> 100, 64-byte messages, 100 member keys (a seal per subscriber)")
    print(f"{'contender':<11}{'dlv/s':>11}{'vs redis':>9}{'errors':>8}{'server ns/dlv':>15}{'bench CPU':>10}")
    x = median("members-100", "redis", "deliveries_per_s")
    for contender in ["members", "eaxchat", "redis"]:
        if ("members-100", contender) not in by:
            continue
        v = median("members-100", contender, "deliveries_per_s")
        share = median("members-100", contender, "cpu_share") or 0
        print(f"{contender:<11}{mps(v):>11}{ratio(v, x):>9}{errors('members-100', contender):>8}"
              f"{cpu_per_delivery('members-100', contender):>15}{share:>10.0%}")
    m = median("members-100", "members", "deliveries_per_s")
    err = errors("members-100", "members")
    met = x is not None and m >= x and err == 0
    print(f"target members >= 1.0x redis, no errors: {'met' if met else 'MISSED' if x else '- (no redis)'}")

if ("web-100", "websocket") in by:
    print("\nweb-100: fanout 1 -> 100, 64-byte messages, WebSocket subscribers (publisher on TCP)")
    print(f"{'contender':<11}{'dlv/s':>11}{'vs redis':>9}{'errors':>8}{'server ns/dlv':>15}{'bench CPU':>10}")
    x = median("web-100", "redis", "deliveries_per_s")
    for contender in ["websocket", "tcp", "redis"]:
        if ("web-100", contender) not in by:
            continue
        v = median("web-100", contender, "deliveries_per_s")
        share = median("web-100", contender, "cpu_share") or 0
        print(f"{contender:<11}{mps(v):>11}{ratio(v, x):>9}{errors('web-100', contender):>8}"
              f"{cpu_per_delivery('web-100', contender):>15}{share:>10.0%}")
    w = median("web-100", "websocket", "deliveries_per_s")
    err = errors("web-100", "websocket")
    met = x is not None and w >= x and err == 0
    print(f"target websocket >= 1.0x redis, no errors: {'met' if met else 'MISSED' if x else '- (no redis)'}")

if ("rooms-100", "rooms") in by:
    print("\nrooms-100: fanout 1 -> 100 in a room of 100, with 900 bystanders in 9 other rooms")
    print(f"{'contender':<11}{'dlv/s':>11}{'vs alone':>9}{'errors':>8}{'server ns/dlv':>15}")
    alone = median("rooms-100", "alone", "deliveries_per_s")
    for contender in ["rooms", "alone"]:
        v = median("rooms-100", contender, "deliveries_per_s")
        print(f"{contender:<11}{mps(v):>11}{ratio(v, alone):>9}{errors('rooms-100', contender):>8}"
              f"{cpu_per_delivery('rooms-100', contender):>15}")
    r = median("rooms-100", "rooms", "deliveries_per_s")
    err = errors("rooms-100", "rooms")
    met = alone and r >= 0.95 * alone and err == 0
    print(f"target rooms >= 0.95x alone (noise), no errors, no byte to a bystander: "
          f"{'met' if met else 'MISSED'}")

if ("cluster-100", "cluster") in by:
    print("\ncluster-100: fanout 1 -> 100, 64-byte messages; publisher on relay A, subscribers on A, B, C")
    print(f"{'contender':<11}{'dlv/s':>11}{'vs nats':>9}{'vs single':>10}{'errors':>8}{'p99 us':>9}")
    nats = median("cluster-100", "nats", "deliveries_per_s")
    single = median("cluster-100", "single", "deliveries_per_s")
    for contender in ["cluster", "single", "nats"]:
        if ("cluster-100", contender) not in by:
            continue
        v = median("cluster-100", contender, "deliveries_per_s")
        p99 = median("cluster-100", contender, "latency_p99_us")
        print(f"{contender:<11}{mps(v):>11}{ratio(v, nats):>9}{ratio(v, single):>10}"
              f"{errors('cluster-100', contender):>8}{p99:>9.0f}")
    c = median("cluster-100", "cluster", "deliveries_per_s")
    err = errors("cluster-100", "cluster")
    met = nats and c >= nats and err == 0
    print(f"target cluster >= 1.0x nats (1 -> 100 NATS subscribers), no errors: {'met' if met else 'MISSED'}")

if ("cluster-latency", "remote") in by:
    print("\ncluster-latency: 1,000 msgs/s from relay A, microseconds")
    print(f"{'subscribers':<16}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'errors':>8}{'relay ns/msg':>14}")
    for contender in ["remote", "local", "remote-10", "local-10"]:
        if ("cluster-latency", contender) not in by:
            continue
        cells = [median("cluster-latency", contender, f"latency_{p}_us") for p in ["p50", "p90", "p99", "p999"]]
        per_msg = [r["relay_cpu_s"] * 1e9 / r["messages"] for r in by.get(("cluster-latency", contender), [])
                   if r.get("relay_cpu_s") is not None and r.get("messages")]
        per = f"{statistics.median(per_msg):.0f}" if per_msg else "-"
        count = "10" if contender.endswith("-10") else "100"
        name = f"{count} on B (hop)" if contender.startswith("remote") else f"{count} on A"
        print(f"{name:<16}" + "".join(f"{c:>9.0f}" for c in cells)
              + f"{errors('cluster-latency', contender):>8}{per:>14}")
    hop = median("cluster-latency", "remote", "latency_p99_us") - median("cluster-latency", "local", "latency_p99_us")
    hop50 = median("cluster-latency", "remote", "latency_p50_us") - median("cluster-latency", "local", "latency_p50_us")
    err = errors("cluster-latency", "remote") + errors("cluster-latency", "local")
    print(f"100 subscribers: the NATS hop adds {hop50:.0f} us at p50, {hop:.0f} us at p99")
    if ("cluster-latency", "remote-10") in by:
        hop10 = median("cluster-latency", "remote-10", "latency_p99_us") - median("cluster-latency", "local-10", "latency_p99_us")
        hop10_50 = median("cluster-latency", "remote-10", "latency_p50_us") - median("cluster-latency", "local-10", "latency_p50_us")
        print(f"10 subscribers: the NATS hop adds {hop10_50:.0f} us at p50, {hop10:.0f} us at p99")
    print("(relay ns/msg: relay B's CPU per message taken from NATS and sealed for its subscribers, "
          "against relay A's per message relayed to its own)")
    spread = by.get(("cluster-latency", "spread"), [])
    if spread and all("latency_at2_p99_us" in r for r in spread):
        print("100 subscribers spread over A, B and C in one run (the same messages), microseconds:")
        for i, relay in enumerate(["A (publisher's)", "B", "C"]):
            p50 = statistics.median(r[f"latency_at{i}_p50_us"] for r in spread)
            p99 = statistics.median(r[f"latency_at{i}_p99_us"] for r in spread)
            print(f"  on {relay:<16} p50 {p50:>7.0f}  p99 {p99:>7.0f}")
        # Per run: the worse of B and C against A, then the median.
        hops = [max(r["latency_at1_p99_us"], r["latency_at2_p99_us"]) - r["latency_at0_p99_us"] for r in spread]
        hops50 = [max(r["latency_at1_p50_us"], r["latency_at2_p50_us"]) - r["latency_at0_p50_us"] for r in spread]
        print(f"  the NATS hop in the same run adds {statistics.median(hops50):.0f} us at p50, "
              f"{statistics.median(hops):.0f} us at p99 (median over runs of the worse of B and C against A)")
        hop = statistics.median(hops)
        err += errors("cluster-latency", "spread")
    print(f"target hop <= 1000 us at p99 (100 subscribers), no errors: "
          f"{'met' if hop <= 1000 and err == 0 else 'MISSED'}")

if ("latency-100", "eaxchat") in by:
    print(f"\nlatency-100 (10k msgs/s to 100 subscribers), microseconds")
    print(f"{'contender':<11}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'errors':>8}")
    for contender in ["eaxchat", "floor", "ncat", "redis"]:
        if (("latency-100", contender)) not in by:
            continue
        cells = [median("latency-100", contender, f"latency_{p}_us") for p in ["p50", "p90", "p99", "p999", "max"]]
        print(f"{contender:<11}" + "".join(f"{c:>9.0f}" for c in cells) + f"{errors('latency-100', contender):>8}")
    p99 = median("latency-100", "eaxchat", "latency_p99_us")
    floor = median("latency-100", "floor", "latency_p99_us")
    if floor:
        print(f"floor: eaxchat's loop with no lines and no crypto; eaxchat's p99 is {p99 / floor:.2f}x the floor's")
    print(f"target p99 <= 1000 us: {'met' if p99 <= 1000 else 'MISSED'}")

if ("idle-10000", "eaxchat") in by:
    print(f"\nidle-10000: relay RSS per idle connection (fresh process each run)")
    for contender in ["eaxchat", "redis"]:
        if ("idle-10000", contender) not in by:
            continue
        per = median("idle-10000", contender, "relay_rss_per_conn_bytes")
        after = median("idle-10000", contender, "relay_rss_after_message_kib")
        extra = f", {after:.0f} KiB in all after one message each" if after else ""
        print(f"{contender:<11}{per:>8.0f} B per connection{extra}, errors {errors('idle-10000', contender)}")
    per = median("idle-10000", "eaxchat", "relay_rss_per_conn_bytes")
    print(f"target <= 1024 B: {'met' if per <= 1024 else 'MISSED'}")
PY

# The same medians as PNG charts (benches/charts.py, matplotlib), into
# $CHARTS (default docs/charts, which docs/performance.md shows):
# deliveries/s against fan-out, relay CPU per delivery, latency
# percentiles, memory per idle connection. matplotlib comes from PyPI if
# missing; without it the charts are skipped, never the run.
CHARTS=${CHARTS:-docs/charts}
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    echo "installing matplotlib (PyPI)" >&2
    python3 -m pip install --quiet matplotlib >/dev/null 2>&1 || true
fi
if python3 -c 'import matplotlib' 2>/dev/null; then
    NOTE="$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit'), $(date +%Y-%m-%d),"
    CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/([^)]*)//g; s/ Processor//; s/ CPU.*//' | xargs)
    NOTE="$NOTE REPEATS=$REPEATS DURATION=${DURATION}s, $CPU, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
    python3 benches/charts.py "$OUT" "$CHARTS" --note "$NOTE"
    # The runs the charts were drawn from, beside them.
    cp "$OUT" "$CHARTS/results.jsonl"
else
    echo "matplotlib could not be installed: no charts" >&2
fi
