#!/usr/bin/env bash
# Loopback benchmark: BYTES (default 2 GiB) through `msock listen` / `msock connect`, and the
# same through plain TCP pairs in the same run, printing goodput and each side's peak RSS.
# Usage: bash tests/bench-loopback.sh [BYTES] [RUNS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BYTES=${1:-2147483648}
RUNS=${2:-3}
bench_build
bench_tmp

# Starts `msock listen` on a free port in the background (--allow-plain: the --plain run is a
# plain TCP client); sets PORT and LPID.
start_listener() {
    rm -f "$tmp/listen.err"
    "$MSOCK" -v listen 127.0.0.1:0 --recv-only --allow-plain >/dev/null 2>"$tmp/listen.err" &
    LPID=$!
    PORT=$(listen_port "$tmp/listen.err" "$LPID")
}

rss() { sed -n 's/.*peak RSS \([0-9]*\) KiB.*/\1/p' "$1" | tail -1; }

# run NAME CONNECT-ARGS...: one transfer, timed from the first byte written to both exits.
run() {
    local name=$1; shift
    start_listener
    local t0 t1
    t0=$(now)
    head -c "$BYTES" /dev/zero | "$MSOCK" -v connect "127.0.0.1:$PORT" "$@" >/dev/null 2>"$tmp/conn.err"
    wait "$LPID"
    t1=$(now)
    printf '%-22s %6s MB/s   listen RSS %6s KiB   connect RSS %6s KiB\n' \
        "$name" "$(mbps "$BYTES" $((t1 - t0)))" "$(rss "$tmp/listen.err")" "$(rss "$tmp/conn.err")"
}

run_nc() {
    local port
    port=$(free_port)
    nc -l 127.0.0.1 "$port" >/dev/null &
    local npid=$! t0 t1
    wait_port "$port" "$npid"
    t0=$(now)
    head -c "$BYTES" /dev/zero | nc -N 127.0.0.1 "$port"
    wait "$npid"
    t1=$(now)
    printf '%-22s %6s MB/s\n' "nc (plain TCP)" "$(mbps "$BYTES" $((t1 - t0)))"
}

echo "msock loopback benchmark: $BYTES bytes per transfer, $RUNS runs, $(nproc) cores"
for i in $(seq "$RUNS"); do
    echo "-- run $i"
    run "msock session"
    run "msock --plain (TCP)" --plain
    if command -v nc >/dev/null && nc -h 2>&1 | grep -q -- '-N'; then run_nc; fi
done
