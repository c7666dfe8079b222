#!/usr/bin/env bash
# Stall time of an msock session when an address changes, as the receiving application sees
# it: the largest gap between its reads in the second after the change (for "both", after the
# moment both ends are reachable again), the gap spanning the change counted from the change. An upload from the client, either paced
# (1400 bytes a millisecond, ~11 Mbit/s) or saturated (as fast as the link takes it, so that
# the bottleneck's queue is full when the address changes), while
#   cli   the client's address changes, REPS times;
#   srv   the server's address changes, REPS times;
#   both  the client drops off its link, the server moves meanwhile (its RECONNECT cannot
#         reach the client), the client's hosts file learns the server's new address, and the
#         client comes back with a new address: it must find the server again by name.
#
# It measures in the shared namespace lab (netlab `mobile` topology, whose links get their
# one-way delay from a userspace emulator, since this kernel has no netem). Needs root and
# NETLAB pointing at the netlab script (default: ../shared/netlab/netlab next to this repo).
# Each case is measured with the default (encrypted) session and with --no-encrypt on both
# ends, alternating, so that the two are compared under the same machine load.
# Environment: MOBILITY_LOADS (default "paced saturated"), MOBILITY_MOVES ("cli srv both"),
# MOBILITY_MODES ("enc plain"); MOBILITY_TRACE=DIR keeps both ends' debug logs, each line
# stamped with the wall clock (DIR/LOAD-MODE-WHO-{listen,connect}.log.ts), next to the move
# times (DIR/LOAD-MODE-WHO-moves) and the arrival times (DIR/LOAD-MODE-WHO-arrivals).
# Usage: bash tests/bench-mobility.sh [REPS] [ONE-WAY-DELAY-PER-LINK] [ROUNDS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
REPS=${1:-20}
DELAY=${2:-10ms}
ROUNDS=${3:-1}
TRACE=${MOBILITY_TRACE:-}
LOADS=${MOBILITY_LOADS:-paced saturated}
MOVES=${MOBILITY_MOVES:-cli srv both}
MODES=${MOBILITY_MODES:-enc plain}
bench_netlab
# The client finds the server by this name in "both" (ip netns exec shows this file as the
# namespace's /etc/hosts); written in place, since the bind mount follows the inode.
HOSTS_DIR=/etc/netns/${NETLAB_PREFIX:-nl-}cli
NAME=msock-bench-server
trap 'rm -rf "$HOSTS_DIR"; "$NETLAB" down >/dev/null 2>&1 || true; bench_cleanup' EXIT
set_hosts() { printf '127.0.0.1 localhost\n%s %s\n' "$1" "$NAME" >"$HOSTS_DIR/hosts"; }

cat >"$tmp/pace.py" <<'EOF'
import os, sys, time
# paced: 1400 bytes every millisecond (~11 Mbit/s) for the given seconds, then end of input;
# saturated: 64 KiB writes as fast as they are taken, for the given seconds.
end = time.monotonic() + float(sys.argv[1])
if sys.argv[2] == "saturated":
    chunk = b"x" * 65536
    while time.monotonic() < end:
        os.write(1, chunk)
    sys.exit(0)
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
# For each event time m: the largest gap between two reads that ends after m and begins
# before m + 1 s, the gap spanning m counted from m (what the application waited from the
# change on); a later gap counts as its own length, not as how late after m it ends (a
# loss-recovery gap 600 ms after the move is no 700 ms stall). Also each largest gap whole
# (a gap spanning m from its start), for the log.
arr = [float(l) for l in open(sys.argv[1])]
moves = [float(l) for l in open(sys.argv[2])]
stalls, gaps = [], []
for m in moves:
    best = None
    for j in range(1, len(arr)):
        if arr[j] <= m:
            continue
        if arr[j - 1] >= m + 1.0:
            break
        g = arr[j] - arr[j - 1]
        waited = arr[j] - max(arr[j - 1], m)
        if best is None or waited > best[1]:
            best = (g, waited)
    if best is not None:
        gaps.append(best[0] * 1000)
        stalls.append(best[1] * 1000)
ms = sorted(stalls)
with open(sys.argv[3], "a") as f:
    f.write("".join("%.1f\n" % x for x in ms))
if ms:
    print("%d moves: median %.1f ms, worst %.1f ms, all: %s (largest gaps: %s)" % (
        len(ms), statistics.median(ms), ms[-1], " ".join("%.0f" % x for x in stalls),
        " ".join("%.0f" % x for x in gaps)))
else:
    print("no moves measured")
EOF
cat >"$tmp/summary.py" <<'EOF'
import os, sys, statistics
# "n median worst" of every stall recorded in the given file, or "- - -"
f = sys.argv[1]
ms = sorted(float(l) for l in open(f) if l.strip()) if os.path.exists(f) else []
print("%3d %8.1f %8.1f" % (len(ms), statistics.median(ms), ms[-1]) if ms else "  0        -        -")
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
# With a second argument, the time is not recorded (both_move records its own).
move() {
    local who=$1 old new gw
    old=$("$NETLAB" addr "$who" eth0)
    new=${old%.*}.$(( ${old##*.} + 1 ))
    gw=${old%.*}.1
    [ -z "${2:-}" ] && date +%s.%N >>"$tmp/moves"
    ip -n "${NETLAB_PREFIX:-nl-}$who" -batch - <<EOB
addr del $old/24 dev eth0
addr add $new/24 dev eth0
route replace default via $gw dev eth0 metric 100
EOB
}

# both: the client's link goes down, the server moves and the name follows it, the link
# comes back and the client gets a new address; the time is taken when both are reachable.
both_move() {
    "$NETLAB" link cli eth0 down >/dev/null
    move srv nostamp
    set_hosts "$("$NETLAB" addr srv eth0)"
    sleep 0.5
    "$NETLAB" link cli eth0 up >/dev/null
    move cli
}

# run LOAD MODE WHO: an upload (LOAD paced or saturated) while WHO (cli, srv or both) moves
# REPS times; MODE is enc (the default, encrypted session) or plain (--no-encrypt on both).
run() {
    local load=$1 mode=$2 who=$3 pause=1.5 flags=() lerr cerr dest
    [ "$who" = both ] && pause=3
    local secs
    secs=$(python3 -c "print(int($REPS * $pause + 4))")
    [ "$mode" = plain ] && flags=(--no-encrypt)
    : >"$tmp/moves"
    rm -f "$tmp/listen.err"
    lerr=$tmp/listen.err cerr=$tmp/connect.err
    if [ -n "$TRACE" ]; then
        export MSOCK_LOG=msock=debug
        lerr=$TRACE/$load-$mode-$who-listen.log cerr=$TRACE/$load-$mode-$who-connect.log
    fi
    dest=$SRV
    if [ "$who" = both ]; then
        set_hosts "$SRV"
        dest=$NAME
    fi
    "$NETLAB" exec srv -- "$MSOCK" listen 0 -4 --recv-only "${flags[@]}" \
        2> >(tee "$tmp/listen.err" | python3 "$tmp/tslog.py" "$lerr.ts") \
        | python3 "$tmp/stamp.py" "$tmp/arrivals" &
    local lpid=$! port
    port=$(listen_port "$tmp/listen.err" "$lpid")
    python3 "$tmp/pace.py" "$secs" "$load" | "$NETLAB" exec cli -- "$MSOCK" connect \
        "$dest:$port" "${flags[@]}" 2> >(python3 "$tmp/tslog.py" "$cerr.ts") &
    local cpid=$!
    sleep 2 # the upload settles before the first move (pacing, like the time between moves)
    for _ in $(seq "$REPS"); do
        if [ "$who" = both ]; then both_move; else move "$who"; fi
        sleep "$pause"
    done
    wait "$cpid" || { echo "connect failed:"; cat "$cerr.ts"; }
    wait "$lpid" || { echo "listen failed:"; cat "$tmp/listen.err"; }
    unset MSOCK_LOG
    if [ -n "$TRACE" ]; then
        cp "$tmp/moves" "$TRACE/$load-$mode-$who-moves"
        cp "$tmp/arrivals" "$TRACE/$load-$mode-$who-arrivals"
    fi
    SRV=$("$NETLAB" addr srv eth0)
    printf '%-9s %-5s %-10s ' "$load" "$mode" "$who move:"
    python3 "$tmp/stall.py" "$tmp/arrivals" "$tmp/moves" "$tmp/stalls-$load-$mode-$who"
}
[ -n "$TRACE" ] && mkdir -p "$TRACE"
mkdir -p "$HOSTS_DIR"
for _ in $(seq "$ROUNDS"); do
    for load in $LOADS; do
        for who in $MOVES; do
            for mode in $MODES; do
                run "$load" "$mode" "$who"
            done
        done
    done
done
# targets (issue 19) at this RTT: paced client 1 RTT + 30 ms, paced server 50 ms + 2.5 RTT,
# saturated client 150 ms and server 170 ms (at RTT 40 ms), both: retry interval (1 s) +
# lookup + 2 RTT.
target() {
    case $1-$2 in
    paced-cli) echo "$RTT" | awk '{ printf "%.0f", $1 + 30 }' ;;
    paced-srv) echo "$RTT" | awk '{ printf "%.0f", 50 + 2.5 * $1 }' ;;
    saturated-cli) echo 150 ;;
    saturated-srv) echo 170 ;;
    *-both) echo "$RTT" | awk '{ printf "%.0f", 1000 + 2 * $1 }' ;;
    esac
}
echo "summary, stall in ms (RTT ${RTT} ms, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  %-9s %-5s %6s' load move target
for mode in $MODES; do printf ' | %-5s %3s %8s %8s' "$mode" n median worst; done
echo
for load in $LOADS; do
    for who in $MOVES; do
        printf '  %-9s %-5s %6s' "$load" "$who" "$(target "$load" "$who")"
        for mode in $MODES; do
            printf ' | %-5s %s' "$mode" "$(python3 "$tmp/summary.py" "$tmp/stalls-$load-$mode-$who")"
        done
        echo
    done
done
