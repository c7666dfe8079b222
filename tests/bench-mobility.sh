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
# MOBILITY_MODES ("enc plain"; also "mptcp1" and "mptcp2", the kernel MPTCP baseline, below);
# MOBILITY_TRACE=DIR keeps both ends' debug logs, each line
# stamped with the wall clock (DIR/LOAD-MODE-WHO-{listen,connect}.log.ts), next to the move
# times (DIR/LOAD-MODE-WHO-moves) and the arrival times (DIR/LOAD-MODE-WHO-arrivals).
# Kernel MPTCP baseline (client moves only; needs a kernel with net.mptcp.enabled): the same
# stream through an IPPROTO_MPTCP socket pair (what `mptcpize run` makes of a TCP program)
# instead of msock, the same move, the same stall measure:
#   mptcp1  one subflow: no path-manager endpoint, nothing can replace the subflow whose
#           address went away (MPTCP has no break-before-make of its own);
#   mptcp2  two subflows: a second, fixed address on the client's eth0 is a `subflow`
#           endpoint (limits 2 on both ends), so a second subflow joins at the start; the
#           moving address is an endpoint too, moved with the address in the same `ip -batch`
#           (as `netlab addr-move` does), so that the path manager opens a subflow from the new
#           address. The line also gives the MPTCP handshakes and joins the client counted (0
#           handshakes: it fell back to TCP). A move after which nothing more arrived before
#           the end of the stream (10 s after the last move) is "no recovery".
#   e.g. MOBILITY_LOADS=paced MOBILITY_MOVES=cli MOBILITY_MODES="enc mptcp1 mptcp2" ...
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
stalls, gaps, lost, unmeasured = [], [], [], 0
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
    # With the stream's end given (argv[4]): nothing arrived from within a second of the
    # move until a second before the end (what was in flight before it may still arrive).
    if len(sys.argv) > 4 and (not arr or arr[-1] < min(m + 1.0, float(sys.argv[4]) - 1.0)):
        lost.append(float(sys.argv[4]) - m)
    elif best is not None:
        gaps.append(best[0] * 1000)
        stalls.append(best[1] * 1000)
    else:
        unmeasured += 1
ms = sorted(stalls)
with open(sys.argv[3], "a") as f:
    f.write("".join("%.1f\n" % x for x in ms))
    f.write("".join("lost %.1f\n" % x for x in lost))
if lost:
    print("%d of %d moves: no recovery within %.1f s (the stream's end); %s" % (
        len(lost), len(moves), min(lost), "recovered: " + " ".join("%.0f ms" % x for x in stalls)
        if stalls else "none recovered"))
elif ms:
    print("%d moves: median %.1f ms, worst %.1f ms, all: %s (largest gaps: %s)" % (
        len(ms), statistics.median(ms), ms[-1], " ".join("%.0f" % x for x in stalls),
        " ".join("%.0f" % x for x in gaps)))
else:
    print("no moves measured")
if unmeasured:
    print("  (%d of %d moves unmeasured: nothing arrived after them)" % (unmeasured, len(moves)))
EOF
cat >"$tmp/mptcp.py" <<'EOF'
import os, socket, sys, time
# The kernel MPTCP baseline's two ends (IPPROTO_MPTCP sockets, what mptcpize makes of a TCP
# program): "listen PORT SECS" takes one connection and copies it to stdout; "connect HOST
# PORT SECS" copies stdin to the server. Each gives up SECS after its start (a connection
# that never recovers from a move blocks forever otherwise) and exits quietly.
end = time.monotonic() + float(sys.argv[-1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, getattr(socket, "IPPROTO_MPTCP", 262))
s.settimeout(1.0)
def left():
    if time.monotonic() > end:
        sys.exit(0)
if sys.argv[1] == "listen":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen(1)
    while True:
        try:
            c, _ = s.accept()
            break
        except socket.timeout:
            left()
    c.settimeout(1.0)
    while True:
        try:
            b = c.recv(1 << 16)
        except socket.timeout:
            left()
            continue
        except OSError:
            sys.exit(0)
        if not b:
            sys.exit(0)
        os.write(1, b)
else:
    s.connect((sys.argv[2], int(sys.argv[3])))
    while True:
        b = os.read(0, 1 << 16)
        if not b:
            break
        while b:
            try:
                b = b[s.send(b):]
            except socket.timeout:
                left()
            except OSError:
                sys.exit(0)
    s.shutdown(socket.SHUT_WR)
EOF
cat >"$tmp/summary.py" <<'EOF'
import os, sys, statistics
# "n median worst" of every stall recorded in the given file, or "- - -"
f = sys.argv[1]
lines = [l.split() for l in open(f) if l.strip()] if os.path.exists(f) else []
lost = [float(l[1]) for l in lines if l[0] == "lost"]
ms = sorted(float(l[0]) for l in lines if l[0] != "lost")
if lost:
    # e.g. "  3 none 3 in 11s": that many moves, and of them this many never recovered
    print("%3d %17s" % (len(lost) + len(ms), "none %d in %.0fs" % (len(lost), min(lost))))
    sys.exit(0)
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
# The MPTCP baseline sets MOVE_FROM (the moving address, when eth0 has a second one) and
# MOVE_EP (the id of the MPTCP endpoint on it, which moves with it).
MOVE_FROM='' MOVE_EP=''
move() {
    local who=$1 old new gw ep_del='' ep_add=''
    old=${MOVE_FROM:-$("$NETLAB" addr "$who" eth0)}
    new=${old%.*}.$(( ${old##*.} + 1 ))
    gw=${old%.*}.1
    if [ -n "$MOVE_EP" ]; then
        ep_del="mptcp endpoint delete id $MOVE_EP"
        ep_add="mptcp endpoint add $new id $MOVE_EP dev eth0 subflow"
    fi
    [ -n "$MOVE_FROM" ] && MOVE_FROM=$new
    [ -z "${2:-}" ] && date +%s.%N >>"$tmp/moves"
    ip -n "${NETLAB_PREFIX:-nl-}$who" -batch - <<EOB
$ep_del
addr del $old/24 dev eth0
addr add $new/24 dev eth0
route replace default via $gw dev eth0 metric 100
$ep_add
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
    # The stream outlasts every move: a move of both ends takes about 1 s of its own besides
    # the pause (at 20 moves the last two once came after the stream's end, unmeasured).
    secs=$(python3 -c "print(int($REPS * ($pause + ('$who' == 'both')) + 4))")
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
# run_mptcp LOAD MODE: the kernel MPTCP baseline (mptcp1 or mptcp2, see the top) of a client
# move, measured like run's.
run_mptcp() {
    local load=$1 mode=$2 pause=1.5 tail=10 secs ns=${NETLAB_PREFIX:-nl-} cli extra='' lpid cpid
    local m0 j0 stream_end
    secs=$(python3 -c "print(int($REPS * $pause + 2 + $tail))")
    cli=$("$NETLAB" addr cli eth0)
    for n in cli srv; do ip -n "$ns$n" mptcp endpoint flush; done
    if [ "$mode" = mptcp2 ]; then
        extra=${cli%.*}.200
        # the moving address is eth0's primary: its removal must not take the second one
        ip netns exec "${ns}cli" sh -c 'echo 1 >/proc/sys/net/ipv4/conf/eth0/promote_secondaries'
        ip -n "${ns}cli" addr add "$extra/24" dev eth0
        ip -n "${ns}cli" mptcp endpoint add "$extra" id 2 dev eth0 subflow
        ip -n "${ns}cli" mptcp endpoint add "$cli" id 1 dev eth0 subflow
        MOVE_FROM=$cli MOVE_EP=1
        for n in cli srv; do ip -n "$ns$n" mptcp limits set subflow 2 add_addr_accepted 2; done
    else
        for n in cli srv; do ip -n "$ns$n" mptcp limits set subflow 0 add_addr_accepted 0; done
    fi
    m0=$(mptcp_mib MPTcpExtMPCapableSYNACKRX) j0=$(mptcp_mib MPTcpExtMPJoinSynAckRx)
    : >"$tmp/moves"
    "$NETLAB" exec srv -- python3 "$tmp/mptcp.py" listen 5202 $((secs + 5)) \
        | python3 "$tmp/stamp.py" "$tmp/arrivals" &
    lpid=$!
    for _ in $(seq 100); do
        ip netns exec "${ns}srv" ss -Hltn 'sport = :5202' | grep -q . && break
        sleep 0.05
    done
    stream_end=$(python3 -c "import time; print(time.time() + $secs)")
    python3 "$tmp/pace.py" "$secs" "$load" 2>/dev/null | "$NETLAB" exec cli -- python3 "$tmp/mptcp.py" \
        connect "$SRV" 5202 $((secs + 3)) &
    cpid=$!
    sleep 2
    for _ in $(seq "$REPS"); do
        move cli
        sleep "$pause"
    done
    wait "$cpid" || true
    wait "$lpid" || true
    if [ -n "$extra" ]; then ip -n "${ns}cli" addr del "$extra/24" dev eth0; fi
    for n in cli srv; do ip -n "$ns$n" mptcp endpoint flush; done
    MOVE_FROM='' MOVE_EP=''
    [ -n "$TRACE" ] && cp "$tmp/moves" "$TRACE/$load-$mode-cli-moves"
    [ -n "$TRACE" ] && cp "$tmp/arrivals" "$TRACE/$load-$mode-cli-arrivals"
    printf '%-9s %-5s %-10s ' "$load" "$mode" "cli move:"
    printf '(MPTCP handshakes %s, joins %s) ' "$(($(mptcp_mib MPTcpExtMPCapableSYNACKRX) - m0))" \
        "$(($(mptcp_mib MPTcpExtMPJoinSynAckRx) - j0))"
    python3 "$tmp/stall.py" "$tmp/arrivals" "$tmp/moves" "$tmp/stalls-$load-$mode-cli" "$stream_end"
}
# mptcp_mib NAME: the client's MPTCP counter NAME
mptcp_mib() {
    ip netns exec "${NETLAB_PREFIX:-nl-}cli" nstat -asz "$1" | awk -v k="$1" '$1 == k {n = $2} END {print n + 0}'
}
case " $MODES " in
*" mptcp"*)
    [ "$(cat /proc/sys/net/mptcp/enabled 2>/dev/null)" = 1 ] || {
        echo "bench-mobility: MOBILITY_MODES has mptcp but this kernel has no MPTCP enabled" >&2
        exit 2
    }
    ;;
esac
[ -n "$TRACE" ] && mkdir -p "$TRACE"
mkdir -p "$HOSTS_DIR"
for _ in $(seq "$ROUNDS"); do
    for load in $LOADS; do
        for who in $MOVES; do
            for mode in $MODES; do
                case $mode-$who in
                mptcp*-cli) run_mptcp "$load" "$mode" ;;
                mptcp*) ;; # the MPTCP baseline is of client moves only
                *) run "$load" "$mode" "$who" ;;
                esac
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
