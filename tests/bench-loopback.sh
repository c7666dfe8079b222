#!/usr/bin/env bash
# Loopback benchmark: BYTES (default 2 GiB) through `msock listen` / `msock connect`, and the
# same through plain TCP pairs in the same run, printing goodput and each side's peak RSS.
# Usage: bash tests/bench-loopback.sh [BYTES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
BYTES=${1:-2147483648}
RUNS=${2:-3}
cargo build --release --quiet
MSOCK=$PWD/target/release/msock
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

now() { date +%s%N; }
mbps() { echo "$1 $2" | awk '{ printf "%.0f", $1 / ($2 / 1e9) / 1e6 }'; }

# Starts `msock listen` on a free port in the background; sets PORT and LPID.
start_listener() {
    "$MSOCK" -v listen 127.0.0.1:0 --recv-only "$@" >/dev/null 2>"$tmp/listen.err" &
    LPID=$!
    for _ in $(seq 200); do
        PORT=$(sed -n 's/^msock: listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/listen.err")
        [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    echo "listener did not start: $(cat "$tmp/listen.err")" >&2
    exit 1
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
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 39123)
    nc -l 127.0.0.1 "$port" >/dev/null &
    local npid=$! t0 t1
    sleep 0.2
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
