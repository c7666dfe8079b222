#!/usr/bin/env bash
# Relay failover benchmark on loopback (release build): SESSIONS idle sessions go through relay
# A to a listener registered at relays A and B (`listen --relay A --relay B`); relay A is killed
# (SIGKILL); every client resumes through B. Prints the CDF of the resume times: how many
# sessions had resumed by 100, 200, 500 and 1000 ms, the median and the worst.
#
# A session's resume time is the client's own `stall_ms` (--json-events `session_resumed`:
# from the moment it lost its flowpath, which on loopback is the kill itself since the kernel
# closes a killed relay's sockets at once, to the session's resumption through relay B: new
# lookup at both relays, ROUTE, the listener's dial-back to B, the end-to-end attach). The
# time from the kill until B had spliced every session (polled every 10 ms) is printed too.
# The sessions are made to go through A by starting B only after they are up (their first
# lookup finds A alone); the listener registers at B as soon as it comes up.
# With `cluster` (CLUSTER mode), A and B are relays of one cluster (a one-member etcd on
# loopback, one cluster key): the listener registers at A and stands by at B (its relays of
# one cluster share one secret and hold one registration), and when A dies it registers at B
# with the cluster's secret, before A's lease in etcd runs out.
# Usage: bash tests/bench-relay-failover.sh [SESSIONS] [cluster]
# MSOCK_BIN=PATH uses that msock binary instead of building the release one (say so with the
# figures: a debug build's resume times are longer).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
SESSIONS=${1:-50}
MODE=${2:-standalone}
case $MODE in standalone | cluster) ;; *) echo "usage: $0 [SESSIONS] [cluster]" >&2; exit 2 ;; esac
if [ "$MODE" = cluster ] && ! command -v etcd >/dev/null; then
    echo "SKIPPED: etcd is not installed (apt-get install -y etcd-server)"
    exit 0
fi
if [ -n "${MSOCK_BIN:-}" ]; then MSOCK=$MSOCK_BIN; else bench_build --bin msock; fi
bench_tmp
export MSOCK_STATE_DIR=$tmp/state
: "${BENCH_WAIT:=30}"
BENCH_WAIT=$((BENCH_WAIT < 30 ? 30 : BENCH_WAIT))

cluster=()
if [ "$MODE" = cluster ]; then
    c=$(free_port) p=$(free_port)
    etcd --name m0 --data-dir "$tmp/etcd" \
        --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
        --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
        --initial-cluster "m0=http://127.0.0.1:$p" --initial-cluster-state new \
        >/dev/null 2>"$tmp/etcd.log" &
    wait_port "$c"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/cluster.key"
    cluster=(--etcd "http://127.0.0.1:$c" --cluster-key-file "$tmp/cluster.key")
fi

# relay NAME ADDR: starts `msock proxy` on ADDR (all sessions come from 127.0.0.1: the
# per-source limits are lifted; in cluster mode, a relay of the cluster with id NAME); sets
# RPID.
relay() {
    rm -f "$tmp/$1.err" "$tmp/$1.out"
    "$MSOCK" proxy --listen "$2" --rate 0 --max-flowpaths-per-source 1000000 \
        --max-pending-per-name 1000000 --json ${cluster[@]+"${cluster[@]}"} \
        ${cluster[@]+--relay-id "$1"} >"$tmp/$1.out" 2>"$tmp/$1.err" &
    RPID=$!
    wait_line "$tmp/$1.err" '^msock: relay listening on \(.*\)$' "$RPID" >/dev/null
}
splices() { grep -c '"event":"splice"' "$tmp/$1.out" || true; }
at_least() { [ "$(splices "$1")" -ge "$2" ]; }

A=127.0.0.1:$(free_port)
B=127.0.0.1:$(free_port)
relay a "$A"
APID=$RPID
"$MSOCK" listen --relay "$A" --relay "$B" ${cluster[@]+--relay-cluster} --name fo -k --max-sessions $((SESSIONS + 10)) \
    --recv-only >/dev/null 2>"$tmp/l.err" &
LPID=$!
wait_line "$tmp/l.err" "^msock: \(registered\) 'fo' at relay $A" "$LPID" >/dev/null

# Idle clients: stdin held open by a sleep, so that the sessions stay up. One at a time, each
# session open before the next starts (50 handshakes at once on a loaded machine can exceed
# the 10 s handshake timeout: that would measure the setup, not the failover).
# Their pids are kept: killing the jobs kills the sleeps only, and a client whose input ended
# with no relay left would keep trying to finish for its resume timeout (5 min), loading
# whatever runs next.
CPIDS=()
trap 'kill "${CPIDS[@]}" 2>/dev/null || true; bench_cleanup' EXIT
for i in $(seq "$SESSIONS"); do
    sleep 600 | "$MSOCK" connect --json-events "fo@$A,$B" >/dev/null 2>"$tmp/c$i.err" &
    CPIDS+=($!)
    wait_line "$tmp/c$i.err" '.*"event":"\(session_open\)".*' >/dev/null
done
wait_until "$APID" at_least a "$SESSIONS" || bench_not_ready "$SESSIONS splices at relay A" "$APID" "$tmp/a.err"

relay b "$B"
BPID=$RPID
if [ "$MODE" = cluster ]; then
    # B is of A's cluster: the listener stands by there (no line of its own; its retries
    # back off to 5 s at most, and a standing-by relay is woken at once when A is lost).
    sleep 6
else
    wait_line "$tmp/l.err" "^msock: \(registered\) fo at $B" "$LPID" >/dev/null
fi

t0=$(now)
kill -9 "$APID"
wait "$APID" 2>/dev/null || true # reaped quietly (bash would report the kill as an error)
all_b=""
until [ -n "$all_b" ]; do
    if at_least b "$SESSIONS"; then all_b=$((($(now) - t0) / 1000000)); fi
    [ $((($(now) - t0) / 1000000000)) -lt "$BENCH_WAIT" ] || break
    sleep 0.01
done
# Every client's first stall after the kill (a client that did not resume counts as lost).
resumed() { [ "$(grep -l '"event":"session_resumed"' "$tmp"/c*.err | wc -l)" -ge "$SESSIONS" ]; }
wait_until "" resumed || true
stalls=()
lost=0
for i in $(seq "$SESSIONS"); do
    s=$(sed -n 's/.*"event":"session_resumed".*"stall_ms":\([0-9.]*\).*/\1/p;s/.*"stall_ms":\([0-9.]*\).*"event":"session_resumed".*/\1/p' \
        "$tmp/c$i.err" | head -n 1)
    if [ -n "$s" ]; then stalls+=("$s"); else lost=$((lost + 1)); fi
done
kill "$LPID" "$BPID" "${CPIDS[@]}" 2>/dev/null || true
# BENCH_KEEP=DIR keeps the logs (relays' status lines, the listener's and clients' stderr).
[ -z "${BENCH_KEEP:-}" ] || cp -r "$tmp" "$BENCH_KEEP"

n=${#stalls[@]}
by() { printf '%s\n' "${stalls[@]}" | awk -v t="$1" '$1 <= t { c++ } END { print c + 0 }'; }
worst=$(printf '%s\n' "${stalls[@]}" | sort -g | tail -n 1)
echo "relay failover ($MODE), $SESSIONS idle sessions through relay A, listener at A and B, A killed:"
printf '  resumed by  100 ms: %3d   200 ms: %3d   500 ms: %3d   1000 ms: %3d   (of %d; %d not resumed)\n' \
    "$(by 100)" "$(by 200)" "$(by 500)" "$(by 1000)" "$SESSIONS" "$lost"
printf '  resume time (client stall_ms): median %.0f ms, worst %.0f ms over %d sessions\n' \
    "$(median "${stalls[@]}")" "$worst" "$n"
echo "  all $SESSIONS spliced through relay B: ${all_b:-not within $BENCH_WAIT s}${all_b:+ ms after the kill}"
[ "$lost" -eq 0 ]
