#!/usr/bin/env bash
# Stall time of an msock session when an address changes: from the moment of the change to
# the first byte delivered afterwards to the receiving application, over REPS changes of the
# client's address and REPS of the server's, on a path with a known RTT.
#
# It measures in the shared namespace lab (netlab `mobile` topology, whose links get their
# one-way delay from a userspace emulator, since this kernel has no netem). Needs root and
# NETLAB pointing at the netlab script (default: ../shared/netlab/netlab next to this repo).
# Each direction is measured with the default (encrypted) session and with --no-encrypt on
# both ends, alternating rounds, so that the two are compared under the same machine load.
# MOBILITY_TRACE=DIR keeps both ends' debug logs, each line stamped with the wall clock
# (DIR/MODE-WHO-{listen,connect}.log.ts), next to the move times (DIR/MODE-WHO-moves).
# Usage: bash tests/bench-mobility.sh [REPS] [ONE-WAY-DELAY-PER-LINK] [ROUNDS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
REPS=${1:-20}
DELAY=${2:-10ms}
ROUNDS=${3:-1}
TRACE=${MOBILITY_TRACE:-}
bench_netlab

cat >"$tmp/pace.py" <<'EOF'
import os, sys, time
# 1400 bytes every millisecond (~11 Mbit/s) for the given seconds, then end of input.
end = time.monotonic() + float(sys.argv[1])
chunk = b"x" * 1400
nxt = time.monotonic()
while time.monotonic() < end:
    os.write(1, chunk)
    nxt += 0.001
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
EOF
cat >"$tmp/stamp.py" <<'EOF'
import os, sys, time
# Writes the wall-clock time of every read from stdin, one per line.
out = open(sys.argv[1], "w")
while True:
    b = os.read(0, 1 << 16)
    if not b:
        break
    out.write("%.6f\n" % time.time())
EOF
cat >"$tmp/tslog.py" <<'EOF'
import sys, time
# Copies stdin to the file, each line prefixed with the wall-clock time it arrived.
out = open(sys.argv[1], "w")
for line in sys.stdin:
    out.write("%.6f %s" % (time.time(), line))
    out.flush()
EOF
cat >"$tmp/stall.py" <<'EOF'
import sys, statistics
# stall = first arrival after the gap that follows a move, minus the move's time.
arr = [float(l) for l in open(sys.argv[1])]
moves = [float(l) for l in open(sys.argv[2])]
gap = 0.015  # normal arrivals are ~1 ms apart
stalls = []
for m in moves:
    after = [i for i, t in enumerate(arr) if t > m]
    if not after:
        continue
    i0 = after[0]
    stall = None
    for j in range(max(i0, 1), len(arr)):
        if arr[j] > m + 3.0:
            break
        if arr[j] - arr[j - 1] > gap and arr[j - 1] < m + 1.0:
            stall = arr[j] - m
            break
    stalls.append(stall if stall is not None else arr[i0] - m)
ms = sorted(s * 1000 for s in stalls)
with open(sys.argv[3], "a") as f:
    f.write("".join("%.1f\n" % x for x in ms))
print("%d moves: median %.1f ms, worst %.1f ms, all: %s" % (
    len(ms), statistics.median(ms), ms[-1], " ".join("%.0f" % x for x in ms)))
EOF
cat >"$tmp/summary.py" <<'EOF'
import sys, statistics
# median and worst of every stall recorded in the given files
ms = sorted(float(l) for f in sys.argv[1:] for l in open(f) if l.strip())
print("%3d moves: median %6.1f ms, worst %6.1f ms" % (len(ms), statistics.median(ms), ms[-1]) if ms else "no moves")
EOF

"$NETLAB" up mobile --cli-delay "$DELAY" --srv-delay "$DELAY" >/dev/null
SRV=$("$NETLAB" addr srv eth0)
RTT=$("$NETLAB" exec cli -- python3 - "$SRV" <<'EOF'
import socket, sys, time
# RTT of a TCP handshake to the server's discard-free port (refused = one round trip).
best = 1e9
for _ in range(5):
    s = socket.socket(); t = time.time()
    try: s.connect((sys.argv[1], 9))
    except OSError: pass
    best = min(best, time.time() - t); s.close()
print("%.1f" % (best * 1000))
EOF
)
echo "msock stall-time benchmark: $REPS moves each, link delay $DELAY per link, RTT ${RTT} ms"

# move WHO: a new address on eth0 (host part + 1) in one `ip -batch`, so that the old one
# is gone and the new one with its default route is there within a millisecond of the
# timestamp: what a DHCP renumbering looks like to the host.
move() {
    local who=$1 old new gw
    old=$("$NETLAB" addr "$who" eth0)
    new=${old%.*}.$(( ${old##*.} + 1 ))
    gw=${old%.*}.1
    date +%s.%N >>"$tmp/moves"
    ip -n "${NETLAB_PREFIX:-nl-}$who" -batch - <<EOB
addr del $old/24 dev eth0
addr add $new/24 dev eth0
route replace default via $gw dev eth0 metric 100
EOB
}

# run MODE WHO: a paced upload while WHO (cli or srv) changes its address REPS times; MODE
# is enc (the default, encrypted session) or plain (--no-encrypt on both ends).
run() {
    local mode=$1 who=$2 secs=$((REPS * 3 / 2 + 4)) flags=() lerr cerr
    [ "$mode" = plain ] && flags=(--no-encrypt)
    : >"$tmp/moves"
    rm -f "$tmp/listen.err"
    lerr=$tmp/listen.err cerr=$tmp/connect.err
    if [ -n "$TRACE" ]; then
        export MSOCK_LOG=msock=debug
        lerr=$TRACE/$mode-$who-listen.log cerr=$TRACE/$mode-$who-connect.log
    fi
    "$NETLAB" exec srv -- "$MSOCK" listen 0 --recv-only "${flags[@]}" \
        2> >(tee "$tmp/listen.err" | python3 "$tmp/tslog.py" "$lerr.ts") \
        | python3 "$tmp/stamp.py" "$tmp/arrivals" &
    local lpid=$! port
    port=$(listen_port "$tmp/listen.err" "$lpid")
    python3 "$tmp/pace.py" "$secs" | "$NETLAB" exec cli -- "$MSOCK" connect "$SRV:$port" \
        "${flags[@]}" 2> >(python3 "$tmp/tslog.py" "$cerr.ts") &
    local cpid=$!
    sleep 2 # the upload settles before the first move (pacing, like the 1.5 s between moves)
    for _ in $(seq "$REPS"); do
        move "$who"
        sleep 1.5
    done
    wait "$cpid" || { echo "connect failed:"; cat "$cerr.ts"; }
    wait "$lpid" || { echo "listen failed:"; cat "$tmp/listen.err"; }
    unset MSOCK_LOG
    [ -n "$TRACE" ] && cp "$tmp/moves" "$TRACE/$mode-$who-moves"
    SRV=$("$NETLAB" addr srv eth0)
    printf '%-6s %-10s ' "$mode" "$who move:"
    python3 "$tmp/stall.py" "$tmp/arrivals" "$tmp/moves" "$tmp/stalls-$mode-$who"
}
[ -n "$TRACE" ] && mkdir -p "$TRACE"
for _ in $(seq "$ROUNDS"); do
    for who in cli srv; do
        run enc "$who"
        run plain "$who"
    done
done
echo "summary (RTT ${RTT} ms, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)):"
for who in cli srv; do
    for mode in enc plain; do
        printf '  %-4s %-6s ' "$who" "$mode"
        python3 "$tmp/summary.py" "$tmp/stalls-$mode-$who"
    done
done
echo "targets: client move <= 50 ms + 2 RTT, server move <= 50 ms + 2.5 RTT; encrypted <= --no-encrypt"
