#!/usr/bin/env bash
# A long outage (a laptop's sleep): during a paced upload through `msock connect`, the
# client's link is down for DOWN seconds, and the server changes its address meanwhile (its
# RECONNECT cannot reach the client; the client's hosts file learns the new address, as a
# name service would). Measures the recovery: from the link's return to the first byte at the
# receiving program, against the target --retry-interval + 2 RTT; and prints what `-v` told
# the user on both ends ("back after ... away").
#
# Measures in the shared namespace lab (netlab `mobile`, RTT 40 ms, under its own prefix
# nl-ou- so another netlab script can run at once). Needs root and NETLAB (default
# ../shared/netlab/netlab next to this repo).
# Usage: bash tests/bench-outage.sh [DOWN_SECONDS] [REPETITIONS]     (default 60 1)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
DOWN=${1:-60}
REPS=${2:-1}
RETRY_MS=1000
RTT_MS=40
export NETLAB_PREFIX=${NETLAB_PREFIX:-nl-ou-}
P=$NETLAB_PREFIX
bench_netlab
hosts_dir=/etc/netns/${P}cli
trap 'rm -rf "$hosts_dir"; "$NETLAB" down >/dev/null 2>&1 || true; bench_cleanup' EXIT

cat >"$tmp/pace.py" <<'EOF'
import os, sys, time
# 200 bytes every 10 ms until the file STOP exists.
stop, nxt = sys.argv[1], time.monotonic()
while not os.path.exists(stop):
    os.write(1, b"x" * 200)
    nxt += 0.01
    time.sleep(max(0.0, nxt - time.monotonic()))
EOF
cat >"$tmp/stamp.py" <<'EOF'
import os, sys, time
# The wall-clock time of every read from stdin, one per line.
with open(sys.argv[1], "w", buffering=1) as out:
    while True:
        if not os.read(0, 1 << 16):
            break
        out.write("%.6f\n" % time.time())
EOF

"$NETLAB" up mobile --cli-delay 10ms --srv-delay 10ms --cli-rate 0 --srv-rate 0 >/dev/null
mkdir -p "$hosts_dir"
echo "msock: link down for $DOWN s while the server moves; target: back within retry interval" \
    "$RETRY_MS ms + 2 RTT ($RTT_MS ms) of the link's return"
for r in $(seq "$REPS"); do
    srv=$("$NETLAB" addr srv eth0)
    printf '127.0.0.1 localhost\n%s msock-server\n' "$srv" >"$hosts_dir/hosts"
    rm -f "$tmp/stop" "$tmp/arr" "$tmp"/*.err
    "$NETLAB" exec srv -- "$MSOCK" -v listen 0 -k --allow-anyone \
        --sh-exec "exec python3 '$tmp/stamp.py' '$tmp/arr'" 2>"$tmp/srv.err" &
    lpid=$!
    port=$(listen_port "$tmp/srv.err" "$lpid")
    python3 "$tmp/pace.py" "$tmp/stop" |
        "$NETLAB" exec cli -- "$MSOCK" -v connect "msock-server:$port" \
            --retry-interval "${RETRY_MS}ms" 2>"$tmp/cli.err" &
    cpid=$!
    wait_until "$cpid" test -s "$tmp/arr" || bench_not_ready "bytes at the receiver" "$cpid"
    sleep 1
    "$NETLAB" link cli eth0 down
    sleep 5
    new=$("$NETLAB" addr-move srv eth0)
    printf '127.0.0.1 localhost\n%s msock-server\n' "$new" >"$hosts_dir/hosts"
    sleep $((DOWN - 5))
    up=$(date +%s.%N)
    "$NETLAB" link cli eth0 up
    sleep 3
    touch "$tmp/stop"
    wait "$cpid" || echo "  run $r: the client failed: $(tail -3 "$tmp/cli.err")"
    kill "$lpid" 2>/dev/null || true
    wait "$lpid" 2>/dev/null || true
    back=$(awk -v up="$up" '$1 > up { printf "%.1f", ($1 - up) * 1000; exit }' "$tmp/arr")
    echo "run $r: first byte ${back:-never} ms after the link's return" \
        "(target $((RETRY_MS + 2 * RTT_MS)) ms)"
    echo "  client: $(grep -o 'back after .* away' "$tmp/cli.err" | head -1)"
    echo "  server: $(grep -o 'back after .* away' "$tmp/srv.err" | head -1)"
done
