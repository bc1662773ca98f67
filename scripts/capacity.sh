#!/usr/bin/env bash
# Capacity of one node on this machine (issue #7), generator and server
# sharing its cores: the loopback ceiling, then full IVR calls at a series
# of simultaneous-call levels (keys only, then with the callers' audio),
# then short calls at a series of rates. For each run: the load report
# (mensa load --json) and the server's CPU and memory sampled from /proc
# every second, one CSV line. docs/load.md explains the columns;
# scripts/capacity-plot.py draws them.
#
#   cargo build --release
#   scripts/capacity.sh [OUT.csv]        # default target/capacity/capacity.csv
#
# Settings (environment; an empty list skips that series): LEVELS, AUDIO_LEVELS, RATES, IVR_SECONDS (how long
# calls are started at each level, default 35; each level then takes about
# 60 s), SHORT_SECONDS (20), CEILING_SECONDS (3 per mode), BIN, GENERATOR_RT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/mensa}
WORK=${WORK:-target/capacity}
OUT=${1:-$WORK/capacity.csv}
LEVELS=${LEVELS-"250 500 1000 2000 3000 5000"}
AUDIO_LEVELS=${AUDIO_LEVELS-"250 500 1000 2000 2500"}
RATES=${RATES-"250 500 1000 1500 2000"}
IVR_SECONDS=${IVR_SECONDS:-35}
SHORT_SECONDS=${SHORT_SECONDS:-20}
CEILING_SECONDS=${CEILING_SECONDS:-3}
NOW="2026-12-07 19:00"
SIP=127.0.0.1:25060
HZ=$(getconf CLK_TCK)

[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
mkdir -p "$WORK"
max_level=0
for l in $LEVELS $AUDIO_LEVELS; do [ "$l" -gt "$max_level" ] && max_level=$l; done
python3 scripts/gen-load-data.py $((max_level * 2)) 2026 > "$WORK/load-data.toml"
cat > "$WORK/mensa.toml" <<TOML
[sip]
listen = "$SIP"
rtp_ports = "20000-49999"
allowed = ["127.0.0.1"]
max_concurrent_calls = 20000
max_calls_per_second = 10000
[sip.routes]
"800082653" = "default"
[media]
# Measure the node itself: no load shedding (503) when it falls behind.
overload_lateness_ms = 0
overload_lag_ms = 0
[ivr]
# Every call is a first call from a new number with a right code: each
# holds a count of the line's budget of wrong codes until its lookup gives
# it back. The derived budget's burst (a day's share of typos) would
# refuse calls in flight at these rates; measure the node, not the guard.
line_wrong_codes_per_year = 1000000
line_wrong_codes_burst = 1000000
TOML

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT"
ceiling=$("$BIN" load --ceiling "$CEILING_SECONDS" --json)
batched=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["batched_per_s"]))' "$ceiling")
single=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["one_call_per_packet_per_s"]))' "$ceiling")
echo "# loopback ceiling: batched $batched packets/s, one call per packet $single packets/s" >> "$OUT"
echo "ceiling: batched $batched/s, single $single/s" >&2
echo "kind,level,rate,audio,attempted,answered,completed,failed,failed_503,rtx_sent,rtx_seen,setup_p50_ms,setup_p99_ms,rx_packets_per_s,spacing_p99_ms,jitter_p99_ms,jitter_max_ms,lateness_p99_ms,loss_percent,key_to_prompt_p99_ms,store_ok,server_cpu_percent,server_cpu_p90_percent,server_rss_mib,generator_cpu_percent,ceiling_batched_per_s,load_avg_1m,udp_rcvbuf_errors,udp_sndbuf_errors,generator_socket_drops" >> "$OUT"

server_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT

start_server() {
    local dir=$1
    rm -rf "$dir"; mkdir -p "$dir"
    RUST_LOG=warn "$BIN" serve --demo --now "$NOW" --config "$WORK/mensa.toml" \
        --http-listen 127.0.0.1:0 --database-url "sqlite://$dir/mensa.db" \
        > "$dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        grep -q "demo line answers" "$dir/server.log" 2>/dev/null && break
        sleep 0.2
    done
    "$BIN" --database-url "sqlite://$dir/mensa.db" import "$WORK/load-data.toml" > /dev/null
}

# Samples the server's CPU ticks and RSS every second into $1 until killed.
sample() {
    while kill -0 "$server_pid" 2>/dev/null; do
        read -r -a st < "/proc/$server_pid/stat" || break
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
        echo "$(date +%s.%N) $((st[13] + st[14])) $rss"
        sleep 1
    done > "$1"
}

# The kernel's UDP counters (/proc/net/snmp): datagrams dropped for a full
# receive or send buffer, anyone's — ours, the server's.
udp_counters() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) n[$i] = i; h = 1 } else print $n["RcvbufErrors"], $n["SndbufErrors"] }' /proc/net/snmp
}

row() { # kind level rate audio dir
    python3 - "$@" "$HZ" "$batched" <<'PY'
import json, sys
kind, level, rate, audio, d, hz, ceiling = sys.argv[1:8]
before = list(map(int, open(f"{d}/udp-before.txt").read().split()))
after = list(map(int, open(f"{d}/udp-after.txt").read().split()))
r = json.load(open(f"{d}/report.json"))
samples = [tuple(map(float, l.split())) for l in open(f"{d}/cpu.txt") if l.strip()]
cpu = []
for (t0, c0, _), (t1, c1, _) in zip(samples, samples[1:]):
    cpu.append(100 * (c1 - c0) / float(hz) / (t1 - t0))
busy = [c for c in cpu if c > 0] or [0]
avg = sum(busy) / len(busy)
p90 = sorted(busy)[int(0.9 * (len(busy) - 1))]
rss = max((s[2] for s in samples), default=0) / 1024
def f(k, q):
    v = r.get(k)
    return "" if v is None else f"{v[q]:.3f}"
check = r.get("store_check")
print(",".join(map(str, [
    kind, level, rate, audio, r["attempted"], r["answered"], r["completed"], r["failed"],
    r["failed_by_reason"].get("503", 0), r["sip_retransmissions_sent"],
    r["sip_retransmissions_seen"], f("setup_latency", "p50_ms"), f("setup_latency", "p99_ms"),
    round(r["rtp_received"] / max(r["wall_s"], 1e-9)), f("rx_spacing", "p99_ms"),
    f("rx_jitter", "p99_ms"), f("rx_jitter", "max_ms"), f("rx_lateness", "p99_ms"),
    f"{r['rtp_loss_percent']:.4f}", f("key_to_prompt", "p99_ms"),
    "" if check is None else str(check["ok"]).lower(), f"{avg:.1f}", f"{p90:.1f}",
    f"{rss:.1f}", f"{r['generator_cpu']['percent_of_one_core']:.1f}", ceiling,
    open("/proc/loadavg").read().split()[0], after[0] - before[0], after[1] - before[1],
    "" if r.get("generator_socket_drops") is None else r["generator_socket_drops"],
])))
PY
}

run_level() { # kind level rate audio-flag extra-args...
    local kind=$1 level=$2 rate=$3 audio=$4; shift 4
    local dir="$WORK/$kind-$level"
    start_server "$dir"
    sample "$dir/cpu.txt" &
    local sampler=$!
    udp_counters > "$dir/udp-before.txt"
    # GENERATOR_RT=N: the generator under SCHED_FIFO too (the server's
    # media tickers are, by default), so on a shared machine it is not the
    # one squeezed out (chrt; needs root or CAP_SYS_NICE).
    ${GENERATOR_RT:+chrt -f "$GENERATOR_RT"} "$BIN" load --target "$SIP" --json "$audio" "$@" \
        --store-check "$dir/mensa.db" > "$dir/report.json" 2> "$dir/progress.txt" || true
    udp_counters > "$dir/udp-after.txt"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    row "$kind" "$level" "$rate" "$audio" "$dir" | tee -a "$OUT" >&2
    stop_server
}

for level in $LEVELS; do
    rate=$(( (level + 19) / 20 ))
    run_level ivr-keys "$level" "$rate" --no-audio --script ivr --codes "$WORK/load-data.toml" \
        --concurrent "$level" --rate "$rate" --duration "$IVR_SECONDS"
done
for level in $AUDIO_LEVELS; do
    rate=$(( (level + 19) / 20 ))
    run_level ivr-audio "$level" "$rate" --audio --script ivr --codes "$WORK/load-data.toml" \
        --concurrent "$level" --rate "$rate" --duration "$IVR_SECONDS"
done
for rate in $RATES; do
    run_level short "$rate" "$rate" --no-audio --script short --concurrent $((rate * 3)) \
        --rate "$rate" --duration "$SHORT_SECONDS" --setup-timeout 5
done
echo "wrote $OUT" >&2
