"""benches/run.sh's summary: medians per scenario and contender from the
raw results (one JSON object per relay-bench run, tagged with its scenario
and contender), ratios to the baselines of the same run, and the targets.

    python3 benches/relay-bench/summary.py target/relay-bench/results.jsonl
"""
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
print("bench CPU: relay-bench's CPU time as a share of the run, driving eaxchat")
MAIN = ["fanout-10", "fanout-100", "fanout-1000", "fanout-100-4k", "room-50"]
if any((bench, "eaxchat") in by for bench in MAIN):
    print(f"\n{'scenario':<15}{'eaxchat':>11}{'ncat':>11}{'redis':>11}{'vs ncat':>9}{'vs redis':>9}"
          f"{'errors':>8}{'server ns/dlv':>16}{'bench CPU':>10}  target")
for bench in MAIN:
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

if ("wss-100", "wss") in by:
    print("\nwss-100: fanout 1 -> 100, 64-byte messages, subscribers over TLS (publisher on TCP)")
    print(f"{'contender':<11}{'dlv/s':>11}{'vs r-tls':>9}{'vs redis':>9}{'errors':>8}"
          f"{'server ns/dlv':>15}{'bench CPU':>10}")
    t = median("wss-100", "redis-tls", "deliveries_per_s")
    x = median("wss-100", "redis", "deliveries_per_s")
    for contender in ["wss", "redis-tls", "redis"]:
        if ("wss-100", contender) not in by:
            continue
        v = median("wss-100", contender, "deliveries_per_s")
        values = [r["deliveries_per_s"] for r in by[("wss-100", contender)]]
        spread = (max(values) - min(values)) / v if v else 0
        share = median("wss-100", contender, "cpu_share") or 0
        print(f"{contender:<11}{mps(v):>11}{ratio(v, t):>9}{ratio(v, x):>9}"
              f"{errors('wss-100', contender):>8}{cpu_per_delivery('wss-100', contender):>15}"
              f"{share:>10.0%}  (runs spread {spread:.0%})")
    w = median("wss-100", "wss", "deliveries_per_s")
    err = errors("wss-100", "wss")
    if t and x:
        print(f"target wss >= 1.5x redis over TLS: {'met' if w >= 1.5 * t and err == 0 else 'MISSED'}; "
              f">= 1.0x plain redis: {'met' if w >= x and err == 0 else 'MISSED'}")
    else:
        print("targets wss vs redis: - (no redis with TLS)")

if ("tls-handshakes", "relay") in by:
    print("\ntls-handshakes: full TLS 1.3 handshakes, one at a time (openssl s_time -new)")
    print(f"{'contender':<22}{'hs/s':>9}{'vs s_server':>12}{'server us/hs':>14}{'errors':>8}")
    base = median("tls-handshakes", "s_server", "handshakes_per_s")
    for contender, name in [("relay", "relay --web TLS"), ("s_server", "openssl s_server")]:
        if ("tls-handshakes", contender) not in by:
            continue
        rate = median("tls-handshakes", contender, "handshakes_per_s")
        cpu = median("tls-handshakes", contender, "relay_cpu_us_per_handshake")
        print(f"{name:<22}{'-' if rate is None else f'{rate:.0f}':>9}{ratio(rate, base):>12}"
              f"{'-' if cpu is None else f'{cpu:.0f}':>14}{errors('tls-handshakes', contender):>8}")

if ("rooms-100", "rooms") in by:
    print("\nrooms-100: fanout 1 -> 100 in a room of 100, with 900 bystanders in 9 other rooms (rooms),")
    print("to eaxchat/1 subscribers each in 9 more rooms (multi) or in this one only (events)")
    print(f"{'contender':<11}{'dlv/s':>11}{'vs alone':>9}{'errors':>8}{'server ns/dlv':>15}")
    alone = median("rooms-100", "alone", "deliveries_per_s")
    for contender in ["rooms", "multi", "events", "alone"]:
        if ("rooms-100", contender) not in by:
            continue
        v = median("rooms-100", contender, "deliveries_per_s")
        print(f"{contender:<11}{mps(v):>11}{ratio(v, alone):>9}{errors('rooms-100', contender):>8}"
              f"{cpu_per_delivery('rooms-100', contender):>15}")
    r = median("rooms-100", "rooms", "deliveries_per_s")
    err = errors("rooms-100", "rooms")
    met = alone and r >= 0.95 * alone and err == 0
    print(f"target rooms >= 0.95x alone (noise), no errors, no byte to a bystander: "
          f"{'met' if met else 'MISSED'}")
    if ("rooms-100", "multi") in by:
        m = median("rooms-100", "multi", "deliveries_per_s")
        e = median("rooms-100", "events", "deliveries_per_s")
        err = errors("rooms-100", "multi")
        met = e and m >= 0.95 * e and err == 0
        print(f"target multi >= 0.95x events (subscribers in 10 rooms against 1), no errors: "
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
    for contender in ["eaxchat", "eaxchat-3-rooms", "redis"]:
        if ("idle-10000", contender) not in by:
            continue
        per = median("idle-10000", contender, "relay_rss_per_conn_bytes")
        after = median("idle-10000", contender, "relay_rss_after_message_kib")
        extra = f", {after:.0f} KiB in all after one message each" if after else ""
        print(f"{contender:<16}{per:>8.0f} B per connection{extra}, errors {errors('idle-10000', contender)}")
    per = median("idle-10000", "eaxchat", "relay_rss_per_conn_bytes")
    print(f"target <= 1024 B: {'met' if per <= 1024 else 'MISSED'}")

for n in [10, 100, 1000]:
    bench = f"sessions-{n}"
    if (bench, "sessions") not in by:
        continue
    print(f"\n{bench}: fanout 1 -> {n}, 64-byte messages, {n} sessions (a seal per subscriber session)")
    print(f"{'contender':<11}{'dlv/s':>11}{'vs redis':>9}{'errors':>8}{'server ns/dlv':>15}{'bench CPU':>10}")
    x = median(bench, "redis", "deliveries_per_s")
    for contender in ["sessions", "members", "redis"]:
        if (bench, contender) not in by:
            continue
        v = median(bench, contender, "deliveries_per_s")
        share = median(bench, contender, "cpu_share") or 0
        print(f"{contender:<11}{mps(v):>11}{ratio(v, x):>9}{errors(bench, contender):>8}"
              f"{cpu_per_delivery(bench, contender):>15}{share:>10.0%}")
    if n != 100:
        continue
    s = median(bench, "sessions", "deliveries_per_s")
    m = median(bench, "members", "deliveries_per_s")
    print(f"sessions vs members (static keys): {ratio(s, m)}")
    err = errors(bench, "sessions")
    met = x and m and s / x >= m / x and err == 0
    print(f"target sessions/redis >= members/redis, no errors: "
          f"{'met' if met else 'MISSED' if x and m else '- (no redis or members relay)'}")
    ns = cpu_per_delivery(bench, "sessions")
    fast = x and s / x >= 1.5 and ns != "-" and float(ns) <= 100 and err == 0
    print(f"target (#30) sessions >= 1.5x redis, <= 100 ns a delivery, no errors: "
          f"{'met' if fast else 'MISSED' if x else '- (no redis)'}")

if ("handshakes", "sessions") in by:
    print("\nhandshakes: full handshakes, each on a new connection; TLS 1.3 is openssl s_server "
          "measured by openssl s_time -new (one at a time)")
    print(f"{'contender':<22}{'hs/s':>9}{'vs tls':>8}{'server us/hs':>14}{'tls/this':>10}"
          f"{'load gen CPU':>14}{'errors':>8}")
    names = {"sessions": "relay, 16 in flight", "sessions-serial": "relay, one at a time",
             "tls": "TLS 1.3 (s_time)"}
    tls_rate = median("handshakes", "tls", "handshakes_per_s")
    tls_cpu = median("handshakes", "tls", "relay_cpu_us_per_handshake")
    for contender in ["sessions", "sessions-serial", "tls"]:
        if ("handshakes", contender) not in by:
            continue
        rate = median("handshakes", contender, "handshakes_per_s")
        cpu = median("handshakes", contender, "relay_cpu_us_per_handshake")
        share = median("handshakes", contender, "cpu_share") or 0
        print(f"{names[contender]:<22}{'-' if rate is None else f'{rate:.0f}':>9}{ratio(rate, tls_rate):>8}"
              f"{'-' if cpu is None else f'{cpu:.0f}':>14}{ratio(tls_cpu, cpu):>10}{share:>14.0%}"
              f"{errors('handshakes', contender):>8}")
    serial = median("handshakes", "sessions-serial", "handshakes_per_s")
    cpu = median("handshakes", "sessions", "relay_cpu_us_per_handshake")
    err = errors("handshakes", "sessions") + errors("handshakes", "sessions-serial")
    if tls_rate and serial and cpu and tls_cpu:
        met = serial >= tls_rate and tls_cpu >= cpu and err == 0
        print(f"target relay >= 1.0x TLS (handshakes/s one at a time, and server CPU per handshake), "
              f"no errors: {'met' if met else 'MISSED'}")
    else:
        print("target relay >= 1.0x TLS: - (no TLS run)")

if ("idle-sessions", "sessions") in by:
    print("\nidle-sessions: relay RSS per idle connection (fresh relay each run)")
    for contender, name in [("sessions", "sessions"), ("eaxchat", "shared key")]:
        if ("idle-sessions", contender) not in by:
            continue
        per = median("idle-sessions", contender, "relay_rss_per_conn_bytes")
        clients = median("idle-sessions", contender, "clients")
        after = median("idle-sessions", contender, "relay_rss_after_message_kib")
        extra = f", {after:.0f} KiB in all after one message each" if after else ""
        print(f"{name:<11}{per:>8.0f} B per connection ({clients:.0f} connections){extra}, "
              f"errors {errors('idle-sessions', contender)}")

for n in [10, 100]:
    bench = f"e2e-{n}"
    if (bench, "e2e") not in by:
        continue
    print(f"\n{bench}: fanout 1 -> {n} in an end-to-end (MLS) room of the session relay, against "
          f"session fan-out of 64-byte texts and of lines as long, and Redis")
    print(f"{'contender':<15}{'dlv/s':>11}{'vs sess':>9}{'vs redis':>9}{'errors':>8}"
          f"{'server ns/dlv':>15}{'bench CPU':>10}{'line B':>8}")
    s = median(bench, "sessions", "deliveries_per_s")
    x = median(bench, "redis", "deliveries_per_s")
    for contender in ["e2e", "sessions", "sessions-long", "redis"]:
        if (bench, contender) not in by:
            continue
        v = median(bench, contender, "deliveries_per_s")
        share = median(bench, contender, "cpu_share") or 0
        line = median(bench, contender, "line_len") or 0
        print(f"{contender:<15}{mps(v):>11}{ratio(v, s):>9}{ratio(v, x):>9}{errors(bench, contender):>8}"
              f"{cpu_per_delivery(bench, contender):>15}{share:>10.0%}{line:>8.0f}")
    e = median(bench, "e2e", "deliveries_per_s")
    long = median(bench, "sessions-long", "deliveries_per_s")
    err = errors(bench, "e2e")
    print(f"e2e vs sessions at equal text: {ratio(e, s)}; at equal line length: {ratio(e, long)}")
    if e and s:
        print(f"target e2e >= 1.0x sessions (64-byte texts), no errors: "
              f"{'met' if e >= s and err == 0 else 'MISSED'}")
