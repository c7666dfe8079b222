#!/usr/bin/env bash
# A server with many sessions changes its address (the msocket paper's Figure 8): five client
# namespaces at RTTs of 80, 90, 100, 110 and 120 ms hold COUNT established sessions in all
# (spread evenly), each a slow paced upload to one `msock listen -k` whose every session
# runs its own receiving program; the server's address changes once; each session's resume
# time is the gap at its receiving program from the change to its first byte afterwards.
# Every session's upload runs until a while after the move (one pacer feeds them all), and
# the move waits until every session is established: a fixed input length and a fixed wait
# let the first of 100 sessions end before the move while the last were still starting
# (what left most sessions unmeasured before). The gap is measured by the application, so a
# machine so loaded that the listener drains old bytes late (load average far above its
# cores) blurs it: say the load with the figures.
#
# Prints, per COUNT, the resume times' median and worst and how many sessions resumed within
# 100, 150, 200, 300 ms and within 2.5 RTT + 50 ms of their own RTT (the target: all of them,
# whatever the count). Writes the CDFs as a table (server-move.tsv) and, when gnuplot is
# installed, a plot (server-move.png) into OUT (default target/bench).
#
# Measures in the shared namespace lab (netlab `mobile`, whose client link is the first
# client's; the other four get links of their own from netlab's link emulator). Needs root
# and NETLAB (default ../shared/netlab/netlab next to this repo).
# Usage: bash tests/bench-server-move.sh [COUNTS] [OUT]     e.g. "20 60 100"
# KEEP=DIR keeps each run's logs (msock -v on both ends, the arrival times) in DIR/COUNT.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
COUNTS=${1:-"20 40 60 80 100"}
OUT=${2:-$PWD/target/bench}
# A lab of our own (namespaces ${P}cli, ${P}rt, ...), so that another script's netlab `mobile`
# (the default prefix nl-) can run at the same time.
export NETLAB_PREFIX=${NETLAB_PREFIX:-nl-sm-}
P=$NETLAB_PREFIX
bench_netlab
LINKEM=$(dirname "$NETLAB")/linkem.py
mkdir -p "$OUT"
# Each session sends 200 bytes every PACE_MS ms. At 10 ms, 100 sessions saturate this
# machine's 2 cores before anything moves (measured: the 100 client processes took 104 % of
# a core, the userspace link emulators of the four extra clients 74 %, 0 % idle), and the
# figures were the harness's overload, not the server's work; at 50 ms the same sessions
# leave the machine about half idle. A resume is not quantised by the pacing: what was
# written during the stall goes out at once when the session is back.
PACE_MS=${PACE_MS:-50}
# An arrival gap longer than this is a stall (4.5 intervals at 10 ms; 1.5 beyond).
GAP=$(awk -v p="$PACE_MS" 'BEGIN { g = 1.5 * p; if (g < 45) g = 45; print g / 1000 }')

cat >"$tmp/pace.py" <<'EOF'
import os, signal, sys, time
# 200 bytes into every given pipe every PACE milliseconds, until the file STOP exists; then
# end of input on all of them. One process paces every session: a hundred pacers of their
# own would load the machine whose timing is being measured.
stop, step, paths = sys.argv[1], float(sys.argv[2]) / 1000, sys.argv[3:]
pipes = [os.open(p, os.O_WRONLY) for p in paths]  # each waits for its client to open it
nxt = time.monotonic()
while not os.path.exists(stop) and pipes:
    for fd in list(pipes):
        try:
            os.write(fd, b"x" * 200)
        except BrokenPipeError:  # that client is gone (its exit status says why)
            pipes.remove(fd)
    nxt += step
    time.sleep(max(0.0, nxt - time.monotonic()))
EOF
cat >"$tmp/stamp.py" <<'EOF'
import os, sys, time
# The wall-clock time of every read from stdin, one per line, into the given file (line by
# line: the program may be killed with the listener at the end).
with open(sys.argv[1], "w", buffering=1) as out:
    while True:
        b = os.read(0, 1 << 16)
        if not b:
            break
        out.write("%.6f\n" % time.time())
EOF
cat >"$tmp/resume.py" <<'EOF'
import glob, os, sys
# Resume time of each session: the first arrival after the stall that spans the move.
move, gap, rtts = float(open(sys.argv[1]).read()), float(sys.argv[3]), {}
WINDOW = 1.5  # seconds after the move in which the stall is looked for
for line in open(sys.argv[4]):
    session, rtt = line.split()
    rtts[session] = float(rtt)
rows, missing = [], []
for f in glob.glob(os.path.join(sys.argv[2], "*")):
    arr = [float(l) for l in open(f) if l.strip()]
    before = [t for t in arr if t <= move]
    after = [t for t in arr if t > move]
    if not before or not after:
        missing.append("not established before the move" if not before else "nothing after it")
        continue
    # The largest gap from the last arrival before the move through the window after it:
    # bytes sent before the move keep arriving for up to a one-way delay (and later when the
    # receiving programs fall behind), so the first gap over GAP after the move can be an
    # ordinary jitter gap among them (at 100 sessions on 2 cores arrivals jitter by 30-70 ms)
    # and not the stall.
    seq = [before[-1]] + [t for t in after if t <= move + WINDOW]
    gaps = [(b - a, b) for a, b in zip(seq, seq[1:])]
    if not gaps or max(gaps)[0] <= gap:
        # No stall longer than the gap: resumed within one pacing interval of the move.
        rows.append((after[0] - move, rtts.get(os.path.basename(f), 0)))
        continue
    rows.append((max(gaps)[1] - move, rtts.get(os.path.basename(f), 0)))
for r, rtt in sorted(rows):
    print("%.1f %.1f" % (r * 1000, rtt))
for why in sorted(set(missing)):
    print("  unmeasured: %d %s" % (missing.count(why), why), file=sys.stderr)
EOF

"$NETLAB" up mobile --cli-delay 30ms --srv-delay 10ms --cli-rate 0 --srv-rate 0 >/dev/null
# Four more clients: ${P}cK behind a link ${P}lk-cK (linkem, one-way delay D) to the router.
extra_clients=""
cleanup_clients() {
    for k in $extra_clients; do
        ip netns pids "${P}lk-c$k" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns pids "${P}c$k" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "${P}c$k" 2>/dev/null || true
        ip netns del "${P}lk-c$k" 2>/dev/null || true
    done
}
trap 'cleanup_clients; "$NETLAB" down >/dev/null 2>&1 || true; bench_cleanup' EXIT
for k in 2 3 4 5; do
    d=$((25 + 5 * k)) # one-way ms: 35 40 45 50, plus the server link's 10: RTT 90..120
    net=10.71.$((10 + k))
    extra_clients="$extra_clients $k"
    ip netns add "${P}c$k"
    ip netns add "${P}lk-c$k"
    ip link add ea netns "${P}lk-c$k" type veth peer name eth0 netns "${P}c$k"
    ip link add eb netns "${P}lk-c$k" type veth peer name "c${k}0" netns "${P}rt"
    for side in "${P}lk-c$k ea" "${P}lk-c$k eb" "${P}c$k eth0" "${P}rt c${k}0"; do
        # shellcheck disable=SC2086 # "NS IF"
        set -- $side
        ip netns exec "$1" ethtool -K "$2" tx off sg off tso off gso off gro off >/dev/null
        ip -n "$1" link set dev "$2" up
    done
    ip -n "${P}lk-c$k" link set dev ea promisc on
    ip -n "${P}lk-c$k" link set dev eb promisc on
    ip -n "${P}c$k" link set lo up
    ip -n "${P}c$k" addr add "$net.2/24" dev eth0
    ip -n "${P}c$k" route add default via "$net.1"
    ip -n "${P}rt" addr add "$net.1/24" dev "c${k}0"
    ip netns exec "${P}lk-c$k" setsid python3 "$LINKEM" ea eb --delay-ms "$d" \
        </dev/null >>"$tmp/linkem-c$k.log" 2>&1 &
done
CLIENTS="${P}cli:80 ${P}c2:90 ${P}c3:100 ${P}c4:110 ${P}c5:120"
cat >"$tmp/reach.py" <<'EOF'
import socket, sys, time
# Waits (at most 10 s) until the server answers a TCP connection attempt (refused counts).
end = time.time() + 10
while time.time() < end:
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((sys.argv[1], 9)); sys.exit(0)
    except ConnectionRefusedError:
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
    finally:
        s.close()
sys.exit("the server is unreachable")
EOF
for c in $CLIENTS; do # every client reaches the server before the runs
    ip netns exec "${c%:*}" python3 "$tmp/reach.py" "$("$NETLAB" addr srv eth0)"
done
echo "msock server-move benchmark: sessions from 5 clients at RTT 80..120 ms, one server move per count"
printf '%-8s %-9s %-9s %-8s %-8s %-8s %-8s %s\n' sessions median worst "<=100ms" "<=150ms" "<=200ms" \
    "<=300ms" "<=2.5RTT+50ms"
: >"$OUT/server-move.tsv"

# established COUNT: every client said its session is open, and COUNT receiving programs have
# recorded bytes.
established() {
    local i n=0 f
    for i in $(seq "$1"); do grep -q '"session_open"' "$tmp/c$i.err" 2>/dev/null || return 1; done
    for f in "$tmp"/arr/*; do [ -s "$f" ] && n=$((n + 1)); done
    [ "$n" -ge "$1" ]
}

# run COUNT: COUNT sessions, one move of the server's address, the resume times.
run() {
    local count=$1 srv port i c ns lpid pacer
    srv=$("$NETLAB" addr srv eth0)
    rm -rf "$tmp/arr" "$tmp"/c*.err && mkdir -p "$tmp/arr" && : >"$tmp/rtts" && rm -f "$tmp/listen.err"
    "$NETLAB" exec srv -- env ARR="$tmp/arr" "$MSOCK" ${KEEP:+-v} listen 0 -k --max-sessions 1000 \
        --allow-anyone --sh-exec "exec python3 '$tmp/stamp.py' \"\$ARR/\$MSOCK_SESSION\"" \
        2>"$tmp/listen.err" &
    lpid=$!
    port=$(listen_port "$tmp/listen.err" "$lpid")
    local pids=() fifos=()
    rm -f "$tmp/stop" "$tmp"/in.*
    for i in $(seq "$count"); do
        c=$(echo "$CLIENTS" | cut -d' ' -f$(((i - 1) % 5 + 1)))
        ns=${c%:*}
        mkfifo "$tmp/in.$i"
        fifos+=("$tmp/in.$i")
        ip netns exec "$ns" "$MSOCK" ${KEEP:+-v} connect "$srv:$port" --json-events \
            <"$tmp/in.$i" 2>"$tmp/c$i.err" &
        pids+=($!)
    done
    python3 "$tmp/pace.py" "$tmp/stop" "$PACE_MS" "${fifos[@]}" &
    pacer=$!
    # Every session established and its bytes arriving at its program (a hundred handshakes
    # on a loaded machine take a while: wait for them, not for a fixed time).
    local BENCH_WAIT=$((30 + count))
    wait_until "" established "$count" || bench_not_ready "$count established sessions" ""
    sleep 1
    # Sessions by id (the receiving program's file name) → their client's RTT.
    for i in $(seq "$count"); do
        local sid
        sid=$(sed -n 's/.*"session_open".*"session":"\([0-9a-f]*\)".*/\1/p' "$tmp/c$i.err" | head -1)
        c=$(echo "$CLIENTS" | cut -d' ' -f$(((i - 1) % 5 + 1)))
        [ -n "$sid" ] && echo "$sid ${c#*:}" >>"$tmp/rtts"
    done
    local old new
    old=$srv new=${srv%.*}.$((${srv##*.} + 1))
    date +%s.%N >"$tmp/move"
    ip -n "${P}srv" -batch - <<EOB
addr del $old/24 dev eth0
addr add $new/24 dev eth0
route replace default via ${old%.*}.1 dev eth0 metric 100
EOB
    # How late the change itself came (a loaded machine starts `ip` late): the resume times
    # are from the moment before it, so they include this.
    local late
    late=$(awk -v a="$(cat "$tmp/move")" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
    [ "$late" -le 20 ] || echo "  (the address change took $late ms to make: the machine is loaded)"
    sleep 3 # every session resumed (the slowest should take 2.5 RTT + 50 ms = 350 ms)
    touch "$tmp/stop"
    wait "$pacer" || true
    local failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    kill "$lpid" 2>/dev/null || true
    wait "$lpid" 2>/dev/null || true
    python3 "$tmp/resume.py" "$tmp/move" "$tmp/arr" "$GAP" "$tmp/rtts" >"$tmp/resume"
    awk -v n="$count" -v failed="$failed" '
        { r[NR] = $1; if ($1 <= 100) a++; if ($1 <= 150) b++; if ($1 <= 200) c++
          if ($1 <= 300) d++; if ($1 <= 2.5 * $2 + 50) e++ }
        END { printf "%-8s %-9.1f %-9.1f %-8s %-8s %-8s %-8s %s%s\n", n, r[int((NR + 1) / 2)],
              r[NR], a + 0, b + 0, c + 0, d + 0, e + 0,
              (NR < n ? sprintf("  (%d of %d measured; %d clients failed)", NR, n, failed) : "") }
    ' "$tmp/resume"
    awk -v n="$count" '{ printf "%s\t%.1f\t%.4f\n", n, $1, NR }' "$tmp/resume" |
        awk -v total="$count" -F'\t' '{ printf "%s\t%s\t%.4f\n", $1, $2, $3 / total }' \
            >>"$OUT/server-move.tsv"
    if [ -n "${KEEP:-}" ]; then
        rm -rf "${KEEP:?}/$count" && mkdir -p "$KEEP/$count"
        cp -r "$tmp/arr" "$tmp"/c*.err "$tmp/listen.err" "$tmp/move" "$tmp/rtts" "$tmp/resume" \
            "$KEEP/$count/"
    fi
    # The server keeps its new address for the next run.
}
for n in $COUNTS; do run "$n"; done
echo "CDF table: $OUT/server-move.tsv (sessions, resume ms, fraction resumed)"
if command -v gnuplot >/dev/null; then
    plot="plot"
    for n in $COUNTS; do
        plot="$plot '$OUT/server-move.tsv' using (\$1==$n?\$2:1/0):3 with steps title '$n sessions',"
    done
    gnuplot <<EOG
set terminal png size 900,600
set output '$OUT/server-move.png'
set xlabel 'resume time after the server address change (ms)'
set ylabel 'fraction of sessions resumed'
set key bottom right
set grid
${plot%,}
EOG
    echo "plot: $OUT/server-move.png"
else
    echo "no plot: gnuplot is not installed (apt-get install -y gnuplot-nox)"
fi
