#!/usr/bin/env bash
# Relay benchmark on loopback (release build), all in one run:
#  1. goodput of BYTES through `msock proxy` vs directly (RUNS transfers each, alternating;
#     target: relay/direct >= 0.90);
#  2. connection setup: wall time of SETUPS empty sessions (process start to exit) directly and
#     through the relay (the relayed one includes the LOOKUP and the listener's dial-back);
#  3. ACTIVE sessions at once (BYTES/ACTIVE each), first alone, then while IDLE idle sessions
#     are held through the same relay: aggregate goodput of each, and the relay's RSS
#     (target: relay RSS <= 200 MiB, active goodput within 10% of the alone case).
# On loopback every byte through the relay crosses the kernel's TCP stack twice and the relay
# is a third busy process: on a machine with few cores the ends and the relay compete for the
# CPU, so compare the relay's own CPU time (printed below) with the ends'.
# Usage: bash tests/bench-relay.sh [BYTES] [RUNS] [IDLE] [ACTIVE] [SETUPS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BYTES=${1:-2147483648}
RUNS=${2:-3}
IDLE=${3:-1000}
ACTIVE=${4:-10}
SETUPS=${5:-20}
bench_build --bin msock --example idle_sessions
IDLER=$TARGET/release/examples/idle_sessions
bench_tmp
export MSOCK_STATE_DIR=$tmp/state

kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

# All sessions come from one address (127.0.0.1): lift the per-source limits.
"$MSOCK" proxy --listen 127.0.0.1:0 --rate 0 --max-flowpaths-per-source 1000000 \
    --max-pending-per-name 1000000 --json >"$tmp/relay.out" 2>"$tmp/relay.err" &
RPID=$!
RELAY=127.0.0.1:$(wait_line "$tmp/relay.err" '^msock: relay listening on 127.0.0.1:\([0-9]*\)$' "$RPID")

# direct_listener ARGS...: sets PORT and LPID.
direct_listener() {
    rm -f "$tmp/l.err"
    "$MSOCK" -v listen 127.0.0.1:0 --recv-only "$@" >/dev/null 2>"$tmp/l.err" &
    LPID=$!
    PORT=$(listen_port "$tmp/l.err" "$LPID")
}
# named_listener NAME ARGS...: relay only (no port of its own); sets LPID.
named_listener() {
    local name=$1; shift
    rm -f "$tmp/$name.err"
    "$MSOCK" -v listen --relay "$RELAY" --name "$name" --recv-only "$@" >/dev/null 2>"$tmp/$name.err" &
    LPID=$!
    wait_line "$tmp/$name.err" "^msock: \(registered\) .*" "$LPID" >/dev/null
}
# transfer DEST: BYTES from /dev/zero; prints MB/s (timed to both exits).
transfer() {
    local t0 t1
    t0=$(now)
    head -c "$BYTES" /dev/zero | "$MSOCK" connect "$1" >/dev/null
    wait "$LPID"
    t1=$(now)
    mbps "$BYTES" $((t1 - t0))
}

echo "msock relay benchmark: $BYTES bytes per transfer, $RUNS runs, $(nproc) cores"
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
echo "== 1. goodput, one session"
direct_sum=0; relay_sum=0
relay_cpu0=$(cpu_s "$RPID")
for i in $(seq "$RUNS"); do
    direct_listener; d=$(transfer "127.0.0.1:$PORT")
    named_listener bulk; r=$(transfer "bulk@$RELAY")
    printf 'run %d: direct %6s MB/s   through relay %6s MB/s\n' "$i" "$d" "$r"
    direct_sum=$((direct_sum + d)); relay_sum=$((relay_sum + r))
done
awk -v d="$direct_sum" -v r="$relay_sum" -v n="$RUNS" \
    'BEGIN { printf "mean:  direct %6.0f MB/s   through relay %6.0f MB/s   ratio %.3f\n", d/n, r/n, r/d }'
awk -v a="$relay_cpu0" -v b="$(cpu_s "$RPID")" -v n="$RUNS" -v by="$BYTES" \
    'BEGIN { c = (b - a) / n; printf "relay CPU per transfer: %.2f s (%.0f MB per CPU-second)\n", c, by / c / 1e6 }'

echo "== 2. setup time ($SETUPS empty sessions each, median wall time per session)"
setup() { # DEST
    local t0 ns=()
    for _ in $(seq "$SETUPS"); do
        t0=$(now)
        "$MSOCK" connect "$1" </dev/null >/dev/null
        ns+=($(($(now) - t0)))
    done
    median "${ns[@]}" | awk '{ printf "%.1f", $1 / 1e6 }'
}
direct_listener -k; d=$(setup "127.0.0.1:$PORT"); kill "$LPID"
named_listener setup -k; r=$(setup "setup@$RELAY"); kill "$LPID"
echo "direct ${d} ms   through relay ${r} ms"

echo "== 3. $ACTIVE active sessions ($((BYTES / ACTIVE)) bytes each), alone and with $IDLE idle ones"
PER=$((BYTES / ACTIVE))
for i in $(seq "$ACTIVE"); do named_listener "act$i" -k; done
# Wait only for the clients: they are the newest jobs.
active() {
    local t0 t1 pids=()
    t0=$(now)
    for i in $(seq "$ACTIVE"); do
        (head -c "$PER" /dev/zero | "$MSOCK" connect "act$i@$RELAY" >/dev/null) &
        pids+=($!)
    done
    wait "${pids[@]}"
    t1=$(now)
    mbps $((PER * ACTIVE)) $((t1 - t0))
}
alone=$(active)
echo "alone:            aggregate $alone MB/s   relay RSS $(kib "$RPID" VmRSS) KiB"
"$MSOCK" listen --relay "$RELAY" --name idle --save-dir "$tmp/idle" -k --max-sessions $((IDLE + 10)) >/dev/null 2>"$tmp/idle.err" &
wait_line "$tmp/idle.err" "^msock: \(registered\) .*" $! >/dev/null
"$IDLER" "$IDLE" "idle@$RELAY" 2>"$tmp/idler.err" &
opened=$(BENCH_WAIT=60 wait_line "$tmp/idler.err" '^open \([0-9]*\)$' $!)
[ "$opened" = "$IDLE" ] || { echo "idle sessions did not open: $(cat "$tmp/idler.err")" >&2; exit 1; }
idle_rss=$(kib "$RPID" VmRSS)
loaded=$(active)
echo "with $IDLE idle:  aggregate $loaded MB/s   relay RSS $(kib "$RPID" VmRSS) KiB (with idle only: $idle_rss KiB, peak $(kib "$RPID" VmHWM) KiB)"
awk -v a="$alone" -v l="$loaded" 'BEGIN { printf "active goodput with idle / alone: %.3f\n", l/a }'
kill -INT "$RPID"; wait "$RPID" 2>/dev/null || true
grep '"summary"' "$tmp/relay.out" || true
