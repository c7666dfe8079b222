#!/usr/bin/env bash
# `msock listen -k` serving many at once (issue 14): ACTIVE clients each sending BYTES/ACTIVE
# bytes from /dev/zero at the same time, first alone (on one listener), then on a fresh listener
# holding IDLE idle byte-stream sessions (opened by the in-process load generator
# examples/idle_sessions.rs, one process for all of them). Prints the second listener's RSS
# (with the idle sessions, and its peak with idle + active) against the target (128 MiB), and
# the active clients' aggregate goodput with the idle ones against alone (target: within 10%),
# medians of RUNS.
# Usage: bash tests/bench-idle-sessions.sh [IDLE] [ACTIVE] [BYTES] [RUNS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
IDLE=${1:-1000}
ACTIVE=${2:-10}
BYTES=${3:-2000000000}
RUNS=${4:-3}
bench_build --bin msock --example idle_sessions
IDLER=$TARGET/release/examples/idle_sessions
bench_tmp

kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

# Starts a listener; sets LPID and PORT.
start_listener() {
    rm -f "$tmp/listen.err"
    "$MSOCK" -v listen -k --max-sessions $((IDLE + ACTIVE + 10)) 127.0.0.1:0 \
        </dev/null >/dev/null 2>"$tmp/listen.err" &
    LPID=$!
    PORT=$(listen_port "$tmp/listen.err" "$LPID")
}
echo "msock listen -k: $IDLE idle + $ACTIVE active sessions, $BYTES bytes per round, $RUNS runs, $(nproc) cores"

# active: ACTIVE clients at once, each BYTES/ACTIVE; prints the aggregate goodput in MB/s.
PER=$((BYTES / ACTIVE))
active() {
    local t0 t1 pids=()
    t0=$(now)
    for _ in $(seq "$ACTIVE"); do
        (head -c "$PER" /dev/zero | "$MSOCK" connect "127.0.0.1:$PORT" >/dev/null) &
        pids+=($!)
    done
    wait "${pids[@]}"
    t1=$(now)
    mbps $((PER * ACTIVE)) $((t1 - t0))
}

start_listener
alone=()
for _ in $(seq "$RUNS"); do alone+=("$(active)"); done
echo "alone:          ${alone[*]} MB/s (aggregate per run)   listener RSS $(kib "$LPID" VmRSS) KiB, peak $(kib "$LPID" VmHWM) KiB"
kill "$LPID"; wait "$LPID" 2>/dev/null || true

start_listener
echo "fresh listener RSS: $(kib "$LPID" VmRSS) KiB"

"$IDLER" --stream "$IDLE" "127.0.0.1:$PORT" 2>"$tmp/idler.err" &
opened=$(BENCH_WAIT=120 wait_line "$tmp/idler.err" '^open \([0-9]*\)$' $!)
[ "$opened" = "$IDLE" ] || { echo "idle sessions did not open: $(cat "$tmp/idler.err")" >&2; exit 1; }
idle_rss=$(kib "$LPID" VmRSS)
echo "with $IDLE idle sessions open: listener RSS $idle_rss KiB"

loaded=()
for _ in $(seq "$RUNS"); do loaded+=("$(active)"); done
rss=$(kib "$LPID" VmRSS)
hwm=$(kib "$LPID" VmHWM)
echo "with $IDLE idle: ${loaded[*]} MB/s (aggregate per run)   listener RSS $rss KiB, peak $hwm KiB"
a=$(median "${alone[@]}")
l=$(median "${loaded[@]}")
echo
printf '%-44s %10s %12s\n' "" "measured" "target"
printf '%-44s %7s KiB %12s\n' "listener RSS, $IDLE idle sessions" "$idle_rss" "131072 KiB"
printf '%-44s %7s KiB %12s\n' "listener peak RSS, idle + $ACTIVE active" "$hwm" "131072 KiB"
printf '%-44s %6s MB/s %12s\n' "$ACTIVE active alone (median)" "$a" ""
printf '%-44s %6s MB/s %12s\n' "$ACTIVE active with $IDLE idle (median)" "$l" ""
printf '%-44s %10s %12s\n' "with idle / alone" "$(ratio "$l" "$a")" ">= 0.90"
