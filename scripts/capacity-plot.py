#!/usr/bin/env python3
"""Draws scripts/capacity.sh's CSV: server CPU, memory and lateness
(receiver jitter p99, |spacing - 20 ms|) against simultaneous IVR calls,
keys only and with the callers' audio, and short calls against their rate.

    pip install matplotlib
    scripts/capacity-plot.py target/capacity/capacity.csv docs/capacity.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    notes, rows = [], []
    with open(path) as f:
        lines = [l for l in f if l.strip()]
    notes = [l[1:].strip() for l in lines if l.startswith("#")]
    rows = list(csv.DictReader(l for l in lines if not l.startswith("#")))
    return notes, rows


def series(rows, kind, y):
    pts = [(float(r["level"]), float(r[y])) for r in rows if r["kind"] == kind and r[y] != ""]
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/capacity/capacity.csv"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/capacity.png"
    notes, rows = load(src)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        (axes[0][0], "server_cpu_p90_percent", "server CPU, p90 of 1 s samples (% of one core)"),
        (axes[0][1], "server_rss_mib", "server RSS (MiB)"),
        (axes[1][0], "jitter_p99_ms", "received packet spacing |gap - 20 ms|, p99 (ms)"),
    ]
    for ax, col, title in panels:
        for kind, label in [("ivr-keys", "IVR calls, keys only"), ("ivr-audio", "IVR calls, with audio")]:
            x, y = series(rows, kind, col)
            if x:
                ax.plot(x, y, marker="o", label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("simultaneous calls")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[1][0].axhline(2.0, color="red", linestyle="--", linewidth=1, label="aim: 2 ms")
    ax = axes[1][1]
    x, y = series(rows, "short", "server_cpu_p90_percent")
    if x:
        ax.plot(x, y, marker="o", label="server CPU p90 (%)")
        ok = [float(r["level"]) for r in rows if r["kind"] == "short" and r["failed"] == "0" and r["rtx_sent"] == "0"]
        bad = [float(r["level"]) for r in rows if r["kind"] == "short" and not (r["failed"] == "0" and r["rtx_sent"] == "0")]
        ax.scatter(ok, [0] * len(ok), color="green", marker="^", label="no failure, no retransmission")
        ax.scatter(bad, [0] * len(bad), color="red", marker="x", label="failures or retransmissions")
    ax.set_title("short calls (answer, 1 s, BYE)", fontsize=10)
    ax.set_xlabel("calls per second")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("mensa serve --demo with mensa load on the same 2 cores\n" + " | ".join(notes), fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=100)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
