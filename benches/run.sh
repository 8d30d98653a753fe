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
# rooms ("rooms"), 1 -> 100 to eaxchat/1 subscribers each also in 9 other
# rooms ("multi": relay-bench --events --extra-rooms 9) and in that room
# only ("events": --events), against the same fanout alone. The relays run
# with --history 0 --presence off: relay-bench counts every byte a client
# gets.
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
# sessions-100 drives a session relay (`relay --members FILE --identity
# FILE`, 101 members of public keys; relay-bench shakes hands as each, from
# identities made by `relay-bench make-members --sessions`) against the
# members relay and Redis pub/sub, alternating; sessions-10 and
# sessions-1000 do the same at 1 -> 10 and 1 -> 1000 against Redis (1,001
# members when sessions-1000 is selected). handshakes opens
# connections that each finish a handshake and close, 16 in flight and one
# at a time, against full TLS 1.3 handshakes of `openssl s_server` (a
# throwaway P-256 certificate) counted by `openssl s_time -new`, with each
# server's CPU per handshake. idle-sessions holds $IDLE_SESSIONS (10,000)
# idle sessions on a fresh session relay, against as many idle connections
# of a fresh shared-key relay: RSS per connection. The session scenarios
# need the relay's session mode; handshakes' TLS side needs openssl.
#
# e2e-100 (and e2e-10) drives the session relay in an end-to-end room
# (relay-bench fanout --e2e: a real MLS group of the publisher and every
# subscriber made through the relay before the run, then MLS application
# messages of 64-byte texts sent as /mls) against, alternating on the same
# relay: session fan-out of 64-byte messages ("sessions", as sessions-100),
# session fan-out of messages padded so that each line is as long as the
# e2e run's mean line ("sessions-long", the size worked out from the first
# e2e run), and Redis pub/sub. Target (#31): e2e >= sessions.
#
# wss-100 runs 1 -> 100 to TLS WebSocket subscribers of a relay serving
# --web over TLS (--web-tls-cert; relay-bench --subscribe-tls, rustls),
# against Redis pub/sub with its subscribers on Redis's --tls-port and
# against plain Redis, the publisher on plain TCP in all three, alternating
# (targets: wss >= 1.5x Redis over TLS, >= 1.0x plain Redis).
# tls-handshakes counts full TLS 1.3 handshakes on the relay's --web TLS
# port with `openssl s_time -new`, next to `openssl s_server` with the same
# P-256 certificate, alternating.
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
SESSIONS_PORT=${SESSIONS_PORT:-17413}
TLS_PORT=${TLS_PORT:-17414}
WSS_RELAY_PORT=${WSS_RELAY_PORT:-17415}
WSS_PORT=${WSS_PORT:-17416}
REDIS_TLS_PLAIN_PORT=${REDIS_TLS_PLAIN_PORT:-17417}
REDIS_TLS_PORT=${REDIS_TLS_PORT:-17418}
IDLE_SESSIONS=${IDLE_SESSIONS:-10000}

# Starts a server in the background; its pid lands in $STARTED.
start() {
    local log=$1
    shift
    "$@" >"$WORK/$log.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

# Whether scenario $1 is to run.
selected() {
    [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]
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
# The session relay: the same 101 members as public keys, each member's
# identity for relay-bench beside the file; the relay makes its own on start.
SESSIONS=$WORK/sessions.txt
RELAY_IDENTITY=$WORK/relay.identity
# sessions-1000 needs 1001 members; the other scenarios take the first ones.
SESSION_MEMBERS=101
selected sessions-1000 && SESSION_MEMBERS=1001
"$BIN/relay-bench" make-members --sessions --count "$SESSION_MEMBERS" --file "$SESSIONS"
start sessions "$BIN/relay" --listen "127.0.0.1:$SESSIONS_PORT" --members "$SESSIONS" \
    --identity "$RELAY_IDENTITY" --stats-interval 0 --max-per-address 0 --history 0 \
    --presence off --rate 0
SESSIONS_PID=$STARTED
HAVE_SESSIONS=1
if ! port_up "$SESSIONS_PORT"; then
    HAVE_SESSIONS=0
    echo "the session relay did not start; the session scenarios are skipped:" >&2
    tail -n 3 "$WORK/sessions.log" >&2
fi
SESSION_ARGS=(--sessions-file "$SESSIONS" --relay-identity "$RELAY_IDENTITY")
# A TLS 1.3 server for handshakes: openssl s_server with a throwaway
# self-signed P-256 certificate (X25519 is its key exchange, not its key).
HAVE_TLS=0
if { selected handshakes || selected tls-handshakes || selected wss-100; } \
    && command -v openssl >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj /CN=127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
    start tls openssl s_server -accept "127.0.0.1:$TLS_PORT" -cert "$WORK/tls.crt" \
        -key "$WORK/tls.key" -tls1_3 -www -quiet </dev/null
    TLS_PID=$STARTED
    wait_port "$TLS_PORT"
    HAVE_TLS=1
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
# fanout 1 -> N with N sessions (sessions-10, -100, -1000): the session
# relay seals every message once per subscriber session. Against Redis,
# alternating, and at 100 against the members relay too.
for n in 10 100 1000; do
    if [ "$HAVE_SESSIONS" != 1 ] || ! selected "sessions-$n"; then
        continue
    fi
    echo "sessions-$n: fanout --clients $n, $n sessions" >&2
    for rep in $(seq "$REPEATS"); do
        bench "sessions-$n" sessions "$rep" fanout --clients "$n" $D \
            --addr "127.0.0.1:$SESSIONS_PORT" "${SESSION_ARGS[@]}" --pid "$SESSIONS_PID"
        if [ "$HAVE_MEMBERS" = 1 ] && [ "$n" = 100 ]; then
            bench "sessions-$n" members "$rep" fanout --clients "$n" $D \
                --addr "127.0.0.1:$MEMBERS_PORT" --members-file "$MEMBERS" --pid "$MEMBERS_PID"
        fi
        if [ "$HAVE_REDIS" = 1 ]; then
            bench "sessions-$n" redis "$rep" fanout --clients "$n" $D \
                --addr "127.0.0.1:$REDIS_PORT" --redis --pid "$REDIS_PID"
        fi
    done
done
# fanout 1 -> N in an end-to-end room (e2e-10, e2e-100): the e2e run first
# in each round, then session fan-out of 64-byte messages, of lines as long
# as the e2e run's (its mean line_len: the session line of a SIZE-byte
# message is the base64 of the `m000: ` stamp, SIZE bytes and 32 of nonce
# and tag, and its newline), and Redis.
STAMP_LEN=$(( SESSION_MEMBERS > 1000 ? 7 : 6 ))
for n in 10 100; do
    if [ "$HAVE_SESSIONS" != 1 ] || ! selected "e2e-$n"; then
        continue
    fi
    echo "e2e-$n: fanout --e2e --clients $n against sessions, sessions of as long lines, redis" >&2
    LONG_SIZE=
    for rep in $(seq "$REPEATS"); do
        bench "e2e-$n" e2e "$rep" fanout --e2e --clients "$n" $D \
            --addr "127.0.0.1:$SESSIONS_PORT" "${SESSION_ARGS[@]}" --pid "$SESSIONS_PID"
        if [ -z "$LONG_SIZE" ]; then
            line=$(tail -n 1 "$OUT" | python3 -c 'import json, sys; print(int(json.load(sys.stdin).get("line_len") or 0))')
            if [ "$line" -gt 0 ]; then
                LONG_SIZE=$(( ((line - 1) * 3 + 2) / 4 - 32 - STAMP_LEN ))
                echo "  e2e-$n: lines of $line bytes; sessions-long sends $LONG_SIZE-byte messages" >&2
            fi
        fi
        bench "e2e-$n" sessions "$rep" fanout --clients "$n" $D \
            --addr "127.0.0.1:$SESSIONS_PORT" "${SESSION_ARGS[@]}" --pid "$SESSIONS_PID"
        if [ -n "$LONG_SIZE" ]; then
            bench "e2e-$n" sessions-long "$rep" fanout --clients "$n" --size "$LONG_SIZE" $D \
                --addr "127.0.0.1:$SESSIONS_PORT" "${SESSION_ARGS[@]}" --pid "$SESSIONS_PID"
        fi
        if [ "$HAVE_REDIS" = 1 ]; then
            bench "e2e-$n" redis "$rep" fanout --clients "$n" $D \
                --addr "127.0.0.1:$REDIS_PORT" --redis --pid "$REDIS_PID"
        fi
    done
done
# Handshakes for $DURATION seconds: the session relay's, 16 in flight and
# one at a time (as s_time makes them), against full TLS 1.3 handshakes.
if [ "$HAVE_SESSIONS" = 1 ] && selected handshakes; then
    echo "handshakes: relay-bench handshakes against the session relay, s_time -new against s_server" >&2
    for rep in $(seq "$REPEATS"); do
        bench handshakes sessions "$rep" handshakes --clients 16 $D \
            --addr "127.0.0.1:$SESSIONS_PORT" "${SESSION_ARGS[@]}" --pid "$SESSIONS_PID"
        bench handshakes sessions-serial "$rep" handshakes --clients 1 $D \
            --addr "127.0.0.1:$SESSIONS_PORT" "${SESSION_ARGS[@]}" --pid "$SESSIONS_PID"
        if [ "$HAVE_TLS" = 1 ]; then
            bench handshakes tls "$rep" handshakes --tls $D --addr "127.0.0.1:$TLS_PORT" --pid "$TLS_PID"
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
# fanout 1 -> 100 to TLS WebSocket subscribers (a relay with --web over TLS),
# against Redis with TLS subscribers (its --tls-port) and plain subscribers
# (its plain port, the same process); every publisher on plain TCP.
if [ "$HAVE_TLS" = 1 ] && { selected wss-100 || selected tls-handshakes; }; then
    start wss "$BIN/relay" --listen "127.0.0.1:$WSS_RELAY_PORT" --key-hex "$KEY" \
        --stats-interval 0 --max-per-address 0 --history 0 --presence off --rate 0 \
        --web "127.0.0.1:$WSS_PORT" --web-tls-cert "$WORK/tls.crt" --web-tls-key "$WORK/tls.key"
    WSS_PID=$STARTED
    wait_port "$WSS_PORT"
fi
if [ "$HAVE_TLS" = 1 ] && selected wss-100; then
    echo "wss-100: fanout --clients 100 --web --subscribe-tls, against Redis over TLS and plain" >&2
    HAVE_REDIS_TLS=0
    if [ "$HAVE_REDIS" = 1 ]; then
        start redis-tls redis-server --port "$REDIS_TLS_PLAIN_PORT" --tls-port "$REDIS_TLS_PORT" \
            --tls-cert-file "$WORK/tls.crt" --tls-key-file "$WORK/tls.key" --tls-auth-clients no \
            --bind 127.0.0.1 --save '' --appendonly no --maxclients 20000
        REDIS_TLS_PID=$STARTED
        port_up "$REDIS_TLS_PORT" && HAVE_REDIS_TLS=1
    fi
    for rep in $(seq "$REPEATS"); do
        bench wss-100 wss "$rep" fanout --clients 100 $D --web "127.0.0.1:$WSS_PORT" \
            --subscribe-tls --addr "127.0.0.1:$WSS_RELAY_PORT" --key-hex "$KEY" --pid "$WSS_PID"
        if [ "$HAVE_REDIS_TLS" = 1 ]; then
            bench wss-100 redis-tls "$rep" fanout --clients 100 $D --redis \
                --addr "127.0.0.1:$REDIS_TLS_PLAIN_PORT" --subscribe-at "127.0.0.1:$REDIS_TLS_PORT" \
                --subscribe-tls --pid "$REDIS_TLS_PID"
            bench wss-100 redis "$rep" fanout --clients 100 $D --redis \
                --addr "127.0.0.1:$REDIS_TLS_PLAIN_PORT" --pid "$REDIS_TLS_PID"
        fi
    done
fi
# TLS 1.3 handshakes, one at a time as s_time makes them: the relay's --web
# TLS port against openssl s_server, the same certificate, alternating.
if [ "$HAVE_TLS" = 1 ] && selected tls-handshakes; then
    echo "tls-handshakes: openssl s_time -new against the relay's TLS port and s_server" >&2
    for rep in $(seq "$REPEATS"); do
        bench tls-handshakes relay "$rep" handshakes --tls $D --addr "127.0.0.1:$WSS_PORT" \
            --pid "$WSS_PID"
        bench tls-handshakes s_server "$rep" handshakes --tls $D --addr "127.0.0.1:$TLS_PORT" \
            --pid "$TLS_PID"
    done
fi
# fanout 1 -> 100 in the default room while 900 bystanders sit in 9 other
# rooms (each sent /join first; any byte one receives is an error); to 100
# subscribers that said /hello eaxchat/1 and joined 9 more rooms each
# (their deliveries are msg events), and to 100 that only said /hello;
# against the same 1 -> 100 with nobody else connected, alternating, on the
# same relay: rooms must not slow the fan-out.
if [ -z "$ONLY" ] || [[ " $ONLY " == *" rooms-100 "* ]]; then
    echo "rooms-100: fanout --clients 100 --bystanders 900 --bystander-rooms 9" >&2
    for rep in $(seq "$REPEATS"); do
        bench rooms-100 rooms "$rep" fanout --clients 100 --bystanders 900 --bystander-rooms 9 $D \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        bench rooms-100 multi "$rep" fanout --clients 100 --events --extra-rooms 9 $D \
            --addr "127.0.0.1:$RELAY_PORT" --key-hex "$KEY" --pid "$RELAY_PID"
        bench rooms-100 events "$rep" fanout --clients 100 --events $D \
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
# earlier scenarios cannot hide what the connections cost. `idle SCENARIO
# CONTENDER REP PORT COUNT SERVER...` runs relay-bench with $IDLE_ARGS.
idle() {
    local name=$1 contender=$2 rep=$3 port=$4 count=$5
    shift 5
    start "idle-$contender" "$@"
    local pid=$STARTED
    wait_port "$port"
    bench "$name" "$contender" "$rep" idle --clients "$count" --duration 1 \
        --addr "127.0.0.1:$port" --pid "$pid" "${IDLE_ARGS[@]}"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
SHARED_IDLE=("$BIN/relay" --listen "127.0.0.1:$IDLE_PORT" --key-hex "$KEY" --stats-interval 0
    --max-per-address 0 --history 0 --presence off)
if selected idle; then
    echo "idle-10000: 10,000 idle connections" >&2
    for rep in $(seq "$REPEATS"); do
        IDLE_ARGS=(--key-hex "$KEY")
        idle idle-10000 eaxchat "$rep" "$IDLE_PORT" 10000 "${SHARED_IDLE[@]}" --max-clients 10000
        # The same, each connection having said /hello eaxchat/1 and joined
        # 2 more rooms: in 3 rooms each.
        IDLE_ARGS=(--key-hex "$KEY" --events --extra-rooms 2)
        idle idle-10000 eaxchat-3-rooms "$rep" "$IDLE_PORT" 10000 "${SHARED_IDLE[@]}" --max-clients 10000
        if [ "$HAVE_REDIS" = 1 ]; then
            IDLE_ARGS=(--redis)
            idle idle-10000 redis "$rep" "$REDIS_IDLE_PORT" 10000 redis-server \
                --port "$REDIS_IDLE_PORT" --bind 127.0.0.1 --save '' --appendonly no \
                --maxclients 20000
        fi
    done
fi
# Idle sessions: $IDLE_SESSIONS members, each connected once and idle after
# its handshake, on a fresh session relay each run; against as many idle
# connections of a fresh shared-key relay.
if [ "$HAVE_SESSIONS" = 1 ] && selected idle-sessions; then
    echo "idle-sessions: $IDLE_SESSIONS idle sessions (making $IDLE_SESSIONS identities first)" >&2
    IDLE_MEMBERS=$WORK/idle-sessions.txt
    "$BIN/relay-bench" make-members --sessions --count "$IDLE_SESSIONS" --file "$IDLE_MEMBERS"
    for rep in $(seq "$REPEATS"); do
        IDLE_ARGS=(--sessions-file "$IDLE_MEMBERS" --relay-identity "$WORK/idle.identity")
        idle idle-sessions sessions "$rep" "$IDLE_PORT" "$IDLE_SESSIONS" "$BIN/relay" \
            --listen "127.0.0.1:$IDLE_PORT" --members "$IDLE_MEMBERS" \
            --identity "$WORK/idle.identity" --stats-interval 0 --max-clients "$IDLE_SESSIONS" \
            --max-per-address 0 --history 0 --presence off
        IDLE_ARGS=(--key-hex "$KEY")
        idle idle-sessions eaxchat "$rep" "$IDLE_PORT" "$IDLE_SESSIONS" "${SHARED_IDLE[@]}" \
            --max-clients "$IDLE_SESSIONS"
    done
fi

echo >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 benches/relay-bench/summary.py "$OUT"

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
