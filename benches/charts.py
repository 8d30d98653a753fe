#!/usr/bin/env python3
"""Draws benches/run.sh's results as PNG charts, with matplotlib.

    python3 benches/charts.py RESULTS.jsonl OUT_DIR [--note TEXT]

RESULTS.jsonl is run.sh's raw output (one JSON object per relay-bench
run, tagged with its scenario, contender and repeat). Each chart plots the
median over repeats, as run.sh's table does, so the two agree:

- deliveries-per-second.png: deliveries/s against fan-out (1 -> 10, 100,
  1000), a line per relay compared;
- cpu-per-delivery.png: the relay process's CPU time per delivery, for each
  fan-out scenario and relay;
- latency-percentiles.png: latency at p50, p90, p99, p99.9 and max at
  10,000 msgs/s to 100 subscribers, a line per relay;
- idle-memory.png: RSS per idle connection (10,000 of them).

A chart whose scenario is not in the results is skipped, and so is a
relay with no runs. --note adds a line under each title (run.sh puts the
commit, date, repeats and load there).
"""

import argparse
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

# One colour per relay, the same in every chart.
COLOURS = {
    "eaxchat": "#1f6feb",
    "members": "#8250df",
    "floor": "#6e7781",
    "ncat": "#d1242f",
    "redis": "#bf8700",
}
LABELS = {
    "eaxchat": "eaxchat (AES-EAX, shared key)",
    "members": "eaxchat members mode (a key each)",
    "floor": "relay-floor (eaxchat's loop, no crypto)",
    "ncat": "ncat --broker (plain)",
    "redis": "Redis pub/sub (plain)",
}
FANOUTS = [("fanout-10", 10), ("fanout-100", 100), ("fanout-1000", 1000)]


def load(path):
    """The runs, by (scenario, contender); runs that failed are left out."""
    runs = {}
    with open(path) as lines:
        for line in lines:
            if not line.strip():
                continue
            run = json.loads(line)
            if run.get("errors", 0) < 0:
                continue
            runs.setdefault((run["bench"], run["contender"]), []).append(run)
    return runs


def median(runs, bench, contender, key):
    values = [r[key] for r in runs.get((bench, contender), []) if r.get(key) is not None]
    return statistics.median(values) if values else None


def cpu_per_delivery(runs, bench, contender):
    """Median over runs of the relay's CPU nanoseconds per delivery."""
    values = [
        r["relay_cpu_s"] * 1e9 / r["deliveries"]
        for r in runs.get((bench, contender), [])
        if r.get("relay_cpu_s") is not None and r.get("deliveries")
    ]
    return statistics.median(values) if values else None


def titled(ax, title, note):
    ax.figure.suptitle(title, fontsize=11)
    if note:
        ax.set_title(note, fontsize=8, color="#57606a")
    ax.grid(True, which="major", axis="y", alpha=0.3)


def save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"charts: {path}", file=sys.stderr)


def deliveries(runs, out_dir, note):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    for contender in ["eaxchat", "ncat", "redis"]:
        points = [(n, median(runs, bench, contender, "deliveries_per_s")) for bench, n in FANOUTS]
        points = [(n, v / 1e6) for n, v in points if v is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", color=COLOURS[contender], label=LABELS[contender])
        for x, y in points:
            ax.annotate(f"{y:.1f}M", (x, y), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8, color=COLOURS[contender])
        drawn = True
    if not drawn:
        plt.close(fig)
        return
    ax.set_xscale("log")
    ax.set_xticks([n for _, n in FANOUTS], [f"1 -> {n}" for _, n in FANOUTS])
    ax.set_xlabel("fan-out (subscribers of one publisher), 64-byte messages")
    ax.set_ylabel("deliveries per second (millions)")
    ax.set_ylim(bottom=0)
    titled(ax, "Deliveries per second against fan-out (higher is better)", note)
    ax.legend(fontsize=8)
    save(fig, out_dir, "deliveries-per-second.png")


def cpu(runs, out_dir, note):
    benches = [b for b in ["fanout-10", "fanout-100", "fanout-1000", "members-100"]
               if any((b, c) in runs for c in COLOURS)]
    contenders = [c for c in ["eaxchat", "members", "ncat", "redis"]
                  if any(cpu_per_delivery(runs, b, c) is not None for b in benches)]
    if not benches or not contenders:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    width = 0.8 / len(contenders)
    labelled = set()
    for i, contender in enumerate(contenders):
        for j, bench in enumerate(benches):
            value = cpu_per_delivery(runs, bench, contender)
            if value is None:
                continue
            x = j + (i - (len(contenders) - 1) / 2) * width
            label = None if contender in labelled else LABELS[contender]
            labelled.add(contender)
            bar = ax.bar(x, value, width, color=COLOURS[contender], label=label)
            ax.bar_label(bar, fmt="%.0f", fontsize=7)
    names = {"fanout-10": "1 -> 10", "fanout-100": "1 -> 100", "fanout-1000": "1 -> 1000",
             "members-100": "1 -> 100,\n100 member keys"}
    ax.set_xticks(range(len(benches)), [names[b] for b in benches])
    ax.set_ylabel("relay CPU per delivery (ns)")
    titled(ax, "Relay CPU time per delivery (lower is better)", note)
    ax.legend(fontsize=8)
    save(fig, out_dir, "cpu-per-delivery.png")


def latency(runs, out_dir, note):
    percentiles = [("p50", "latency_p50_us"), ("p90", "latency_p90_us"), ("p99", "latency_p99_us"),
                   ("p99.9", "latency_p999_us"), ("max", "latency_max_us")]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    for contender in ["eaxchat", "floor", "ncat", "redis"]:
        points = [(i, median(runs, "latency-100", contender, key))
                  for i, (_, key) in enumerate(percentiles)]
        points = [(i, v / 1000) for i, v in points if v is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", color=COLOURS[contender], label=LABELS[contender])
        drawn = True
    if not drawn:
        plt.close(fig)
        return
    ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="target: p99 <= 1 ms")
    ax.set_yscale("log")
    ticks = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylim(min(ticks[0], ax.get_ylim()[0]), max(ax.get_ylim()[1], 1.5))
    ax.set_xticks(range(len(percentiles)), [name for name, _ in percentiles])
    ax.set_xlabel("percentile, 10,000 msgs/s from one publisher to 100 subscribers")
    ax.set_ylabel("latency (ms, log scale)")
    titled(ax, "Latency percentiles (lower is better)", note)
    ax.legend(fontsize=8)
    save(fig, out_dir, "latency-percentiles.png")


def idle(runs, out_dir, note):
    contenders = [c for c in ["eaxchat", "redis"]
                  if median(runs, "idle-10000", c, "relay_rss_per_conn_bytes") is not None]
    if not contenders:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    values = [median(runs, "idle-10000", c, "relay_rss_per_conn_bytes") for c in contenders]
    bars = ax.bar([LABELS[c] for c in contenders], values,
                  color=[COLOURS[c] for c in contenders], width=0.5)
    ax.bar_label(bars, fmt="%.0f B", fontsize=9)
    ax.axhline(1024, color="black", linestyle=":", linewidth=1, label="target: <= 1024 B")
    ax.set_ylabel("RSS per idle connection (bytes)")
    ax.set_xlabel("10,000 idle connections, a fresh server each run")
    titled(ax, "Memory per idle connection (lower is better)", note)
    ax.legend(fontsize=8)
    save(fig, out_dir, "idle-memory.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="run.sh's results.jsonl")
    parser.add_argument("out_dir", help="where the PNGs go")
    parser.add_argument("--note", default="", help="a line under each title")
    args = parser.parse_args()
    runs = load(args.results)
    os.makedirs(args.out_dir, exist_ok=True)
    for chart in [deliveries, cpu, latency, idle]:
        chart(runs, args.out_dir, args.note)


if __name__ == "__main__":
    main()
