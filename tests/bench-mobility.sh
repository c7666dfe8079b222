#!/usr/bin/env bash
# Stall time of an msock session when an address changes: from the moment of the change to
# the first byte delivered afterwards to the receiving application, over REPS changes of the
# client's address and REPS of the server's, on a path with a known RTT.
#
# It measures in the shared namespace lab (netlab `mobile` topology, whose links get their
# one-way delay from a userspace emulator, since this kernel has no netem). Needs root and
# NETLAB pointing at the netlab script (default: ../shared/netlab/netlab next to this repo).
# Usage: bash tests/bench-mobility.sh [REPS] [ONE-WAY-DELAY-PER-LINK]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
REPS=${1:-20}
DELAY=${2:-10ms}
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
print("%d moves: median %.1f ms, worst %.1f ms, all: %s" % (
    len(ms), statistics.median(ms), ms[-1], " ".join("%.0f" % x for x in ms)))
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
    ip -n "nl-$who" -batch - <<EOB
addr del $old/24 dev eth0
addr add $new/24 dev eth0
route replace default via $gw dev eth0 metric 100
EOB
}

# run WHO: a paced upload while WHO (cli or srv) changes its address REPS times.
run() {
    local who=$1 secs=$((REPS * 3 / 2 + 4))
    : >"$tmp/moves"
    rm -f "$tmp/listen.err"
    "$NETLAB" exec srv -- "$MSOCK" listen 0 --recv-only 2>"$tmp/listen.err" \
        | python3 "$tmp/stamp.py" "$tmp/arrivals" &
    local lpid=$! port
    port=$(listen_port "$tmp/listen.err" "$lpid")
    python3 "$tmp/pace.py" "$secs" | "$NETLAB" exec cli -- "$MSOCK" connect "$SRV:$port" \
        2>"$tmp/connect.err" &
    local cpid=$!
    sleep 2 # the upload settles before the first move (pacing, like the 1.5 s between moves)
    for _ in $(seq "$REPS"); do
        move "$who"
        sleep 1.5
    done
    wait "$cpid" || { echo "connect failed:"; cat "$tmp/connect.err"; }
    wait "$lpid" || { echo "listen failed:"; cat "$tmp/listen.err"; }
    SRV=$("$NETLAB" addr srv eth0)
    printf '%-14s ' "$who move:"
    python3 "$tmp/stall.py" "$tmp/arrivals" "$tmp/moves"
}
run cli
run srv
echo "targets: client move <= 50 ms + 2 RTT, server move <= 50 ms + 2.5 RTT"
