#!/usr/bin/env bash
# Relay goodput in a namespace lab (release build): three network namespaces, client, relay and
# server, each on its own links, so that the relay is not a third process competing for the
# same loopback as the two ends:
#
#     cli 10.97.1.2 ==[rate R]== 10.97.1.1 rly 10.97.2.1 ==[rate R]== 10.97.2.2 srv
#     cli 10.97.3.1 ==[rate R]====================================== 10.97.3.2 srv  (direct)
#
# Every veth end sends through a `tc tbf` of RATE (burst 2 ms of traffic, queue QUEUE, then tail
# drop), so the two relay hops and the direct link are shaped alike. The relay does not
# forward IP: the client reaches the server directly only over the direct link, and the
# server's listener is registered at the relay only (no direct address published), so the
# relayed transfer goes client -> relay -> server on the two relay links.
#
# Cross-relay forwarded (issue 15): a cluster of two relays in rly, A and B, sharing a one-member
# etcd (in rly, on its loopback). The listener registers at A (10.97.2.1:7481) only, the client
# goes through B (bulk@10.97.1.1:7482): B finds the name attached at A in etcd and forwards the
# DIAL to A, A tells the listener to dial back to B (DIAL_AT), and B splices: the data path is
# one relay hop, on the same two links as the single relay. After the rounds the script checks
# the relays' status lines: every round spliced at B, none at A, A forwarded the DIALs. Without
# etcd (apt-get install -y etcd-server) that column is skipped and says so.
# Delay: this kernel has no netem and msock has no delay emulator of its own, so the base RTT
# is the veth's (printed, from ping when it is installed); under load each tbf queue adds up to
# QUEUE, which is the RTT a bulk transfer sees at a bottleneck.
#
# For each RATE: RUNS rounds of a BYTES transfer (zeros from stdin, `msock connect` to a
# `msock listen --recv-only`, timed from start to both exits) directly and through the relay,
# the order alternating between rounds; medians side by side and relay/direct (target >= 0.95).
# Also the relay process's CPU time (user + system) per GiB it carried.
# relay CPU is that of the relay that splices (B for the cross-relay column).
# Usage: sudo bash tests/bench-relay-lab.sh [BYTES] [RUNS] [RATES (Mbit/s, space separated)]
# Environment: QUEUE (tbf queue, default 10ms); OFFLOADS=off (see below); BEFORE=BINARY adds a second relay of that msock
# binary, measured in the same rounds (the before/after of a relay change); MSOCK_BIN=BINARY
# uses that binary instead of building the release one; CROSS=off leaves out the cross-relay
# column.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BYTES=${1:-1073741824}
RUNS=${2:-3}
RATES=${3:-1000}
QUEUE=${QUEUE:-10ms}
me=bench-relay-lab.sh
[ "$(id -u)" = 0 ] || { echo "SKIPPED: $me needs root (network namespaces)"; exit 0; }
for t in ip tc; do
    command -v "$t" >/dev/null || { echo "SKIPPED: $me needs $t (apt-get install -y iproute2)"; exit 0; }
done

P=mrl$$-
NODES=(cli rly srv)
lab_down() {
    local n
    for n in "${NODES[@]}"; do
        ip netns pids "$P$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$P$n" 2>/dev/null || true
    done
}
# in_ns NODE COMMAND...: in the foreground (a job started in the background runs `ip netns exec`
# itself, so that its PID is the program's).
in_ns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
for n in "${NODES[@]}"; do
    ip netns add "$P$n" 2>/dev/null || { lab_down; echo "SKIPPED: $me: cannot create network namespaces"; exit 0; }
    ip -n "$P$n" link set lo up
done
trap lab_down EXIT
# link A IF_A B IF_B NET: a veth pair; A gets NET.1, B NET.2.
link() {
    ip link add "$2" netns "$P$1" type veth peer name "$4" netns "$P$3"
    ip -n "$P$1" addr add "$5.1/24" dev "$2"
    ip -n "$P$3" addr add "$5.2/24" dev "$4"
    ip -n "$P$1" link set "$2" up
    ip -n "$P$3" link set "$4" up
}
link rly cli0 cli rly0 10.97.1 || { echo "SKIPPED: $me: cannot create veth pairs"; exit 0; }
link rly srv0 srv rly0 10.97.2
link cli srv0 srv cli0 10.97.3
# OFFLOADS=off: frames of at most the MTU, as a NIC without GRO delivers them (each packet its
# own buffer in the relay's splice pipe), instead of veth's 64 KiB GSO frames.
if [ "${OFFLOADS:-on}" = off ]; then
    command -v ethtool >/dev/null || { echo "SKIPPED: $me: OFFLOADS=off needs ethtool (apt-get install -y ethtool)"; exit 0; }
    for e in "rly cli0" "cli rly0" "rly srv0" "srv rly0" "cli srv0" "srv cli0"; do
        read -r node dev <<<"$e"
        in_ns "$node" ethtool -K "$dev" tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
    done
fi
ENDS=("rly cli0" "cli rly0" "rly srv0" "srv rly0" "cli srv0" "srv cli0")
# shape MBIT: a tbf on every veth end.
shape() {
    local e node dev burst=$(($1 * 250)) # 2 ms of traffic
    [ "$burst" -ge 3028 ] || burst=3028
    for e in "${ENDS[@]}"; do
        read -r node dev <<<"$e"
        tc -n "$P$node" qdisc replace dev "$dev" root tbf rate "$1mbit" burst "$burst" latency "$QUEUE"
    done
}

if [ -n "${MSOCK_BIN:-}" ]; then MSOCK=$MSOCK_BIN; else bench_build --bin msock; fi
bench_tmp
trap 'lab_down; bench_cleanup' EXIT
export MSOCK_STATE_DIR=$tmp/state

# start_relay KEY BINARY: a relay in rly; sets RPID_KEY and RPORT_KEY.
start_relay() {
    ip netns exec "${P}rly" "$2" proxy --listen 0 --rate 0 >/dev/null 2>"$tmp/relay-$1.err" &
    printf -v "RPID_$1" %s "$!"
    printf -v "RPORT_$1" %s "$(wait_line "$tmp/relay-$1.err" '^msock: relay listening on .*:\([0-9]*\)$' "$!")"
}
start_relay new "$MSOCK"
KINDS=(new)
if [ -n "${BEFORE:-}" ]; then start_relay old "$BEFORE"; KINDS+=(old); fi
# The column's name in the figures.
declare -A LABEL=([new]="one relay" [old]="one relay (before)" [fwd]="cross-relay forwarded")

# The cluster: etcd (one member) and relays A (7481, the listener's) and B (7482, the
# client's) in rly; their status lines (--json) in $tmp/relay-fa.out and relay-fb.out.
etcd_ok() { in_ns rly etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1; }
start_cluster() {
    ETCD=http://127.0.0.1:2379
    ip netns exec "${P}rly" etcd --name m0 --data-dir "$tmp/etcd" \
        --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster m0=http://127.0.0.1:2380 --initial-cluster-state new \
        --initial-cluster-token "lab-$$" >/dev/null 2>"$tmp/etcd.log" &
    EPID=$!
    # etcd takes its time to come up on a loaded machine.
    BENCH_WAIT=$((${BENCH_WAIT:-10} < 60 ? 60 : BENCH_WAIT)) wait_until "$EPID" etcd_ok || bench_not_ready "etcd in the lab" "$EPID" "$tmp/etcd.log"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/cluster.key"
    local id port
    for id in fa fb; do
        port=7481; [ "$id" = fa ] || port=7482
        ip netns exec "${P}rly" "$MSOCK" proxy --listen "0.0.0.0:$port" --rate 0 --json \
            --etcd "$ETCD" --cluster-key-file "$tmp/cluster.key" --relay-id "$id" \
            --advertise "10.97.2.1:$port" >"$tmp/relay-$id.out" 2>"$tmp/relay-$id.err" &
        printf -v "RPID_$id" %s "$!"
        printf -v "RPORT_$id" %s "$port"
        wait_line "$tmp/relay-$id.err" '^msock: relay listening on .*:\([0-9]*\)$' "$!" >/dev/null
    done
}
if [ "${CROSS:-on}" = off ]; then
    echo "cross-relay column: left out (CROSS=off)"
elif ! command -v etcd >/dev/null; then
    echo "cross-relay column: SKIPPED: etcd is not installed (apt-get install -y etcd-server)"
elif ! command -v etcdctl >/dev/null; then
    echo "cross-relay column: SKIPPED: etcdctl is not installed (apt-get install -y etcd-client)"
else
    start_cluster
    KINDS+=(fwd)
fi
# count KIND EVENT: status lines EVENT of cluster relay KIND (fa, fb).
count() { grep -c "\"event\":\"$2\"" "$tmp/relay-$1.out" || true; }

# direct_listener: sets PORT and LPID.
direct_listener() {
    rm -f "$tmp/l.err"
    ip netns exec "${P}srv" "$MSOCK" -v listen 10.97.3.2:0 --recv-only >/dev/null 2>"$tmp/l.err" &
    LPID=$!
    PORT=$(listen_port "$tmp/l.err" "$LPID")
}
# named_listener PORT: at the relay on PORT only (of 10.97.2.1); sets LPID.
named_listener() {
    rm -f "$tmp/n.err"
    ip netns exec "${P}srv" "$MSOCK" -v listen --relay "10.97.2.1:$1" --name bulk --recv-only >/dev/null 2>"$tmp/n.err" &
    LPID=$!
    wait_line "$tmp/n.err" "^msock: \(registered\) .*" "$LPID" >/dev/null
}
# transfer DEST: BYTES from /dev/zero; prints MB/s with one decimal (timed to both exits).
transfer() {
    local t0 t1
    t0=$(now)
    head -c "$BYTES" /dev/zero | in_ns cli "$MSOCK" connect "$1" >/dev/null
    wait "$LPID"
    t1=$(now)
    echo "$BYTES $((t1 - t0))" | awk '{ printf "%.1f", $1 / ($2 / 1e9) / 1e6 }'
}
ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; } # PID's user, system (clock ticks)
direct() { direct_listener; transfer "10.97.3.2:$PORT"; }
# relayed KIND: through relay KIND (new; old: the BEFORE binary; fwd: registered at cluster
# relay A, the client at B); the splicing relay's CPU to $tmp/cpu-KIND.
relayed() {
    local pid port at a b
    pid=RPID_$1; port=RPORT_$1; at=$port
    if [ "$1" = fwd ]; then pid=RPID_fb; port=RPORT_fb; at=RPORT_fa; fi
    pid=${!pid}; port=${!port}; at=${!at}
    named_listener "$at"
    a=$(ticks "$pid")
    transfer "bulk@10.97.1.1:$port"
    b=$(ticks "$pid")
    echo "$a $b" | awk '{ print $3 - $1, $4 - $2 }' >>"$tmp/cpu-$1"
}
cpu_per_gib() { # KIND
    awk -v hz="$(getconf CLK_TCK)" -v by="$BYTES" '{ u += $1; s += $2; n++ }
        END { g = by * n / 1073741824; printf "%.3f s (user %.3f, system %.3f)", (u + s) / hz / g, u / hz / g, s / hz / g }' "$tmp/cpu-$1"
}

echo "msock relay lab benchmark: $BYTES bytes per transfer, $RUNS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), tbf queue $QUEUE, offloads ${OFFLOADS:-on}, kernel $(uname -r)"
[ -z "${BEFORE:-}" ] || echo "relay 'old' is $BEFORE, in the same rounds (the ends are always $MSOCK)"
if command -v ping >/dev/null; then
    rtt() { in_ns "$1" ping -c 5 -i 0.2 -q "$2" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p'; }
    echo "idle RTT (ping, avg): direct $(rtt cli 10.97.3.2) ms, client-relay $(rtt cli 10.97.1.1) ms, relay-server $(rtt rly 10.97.2.2) ms"
else
    echo "idle RTT: not measured (apt-get install -y iputils-ping)"
fi
for rate in $RATES; do
    shape "$rate"
    echo "== $rate Mbit/s on every link (line rate $((rate / 8)) MB/s less headers)"
    ds=(); declare -A rs=(); rm -f "$tmp"/cpu-*
    for i in $(seq "$RUNS"); do
        # The order turns every round: direct first, then last.
        line=""
        order=(direct "${KINDS[@]}")
        [ $((i % 2)) = 1 ] || order=("${KINDS[@]}" direct)
        for k in "${order[@]}"; do
            if [ "$k" = direct ]; then
                d=$(direct); ds+=("$d")
            else
                relayed "$k" >"$tmp/r"; rs[$k]="${rs[$k]:-} $(cat "$tmp/r")"
            fi
        done
        line=$(printf 'direct %7s MB/s' "$d")
        for k in "${KINDS[@]}"; do
            line+=$(printf '   %s %7s MB/s' "${LABEL[$k]}" "$(awk '{ print $NF }' <<<"${rs[$k]}")")
        done
        echo "round $i: $line"
    done
    d=$(median "${ds[@]}")
    for k in "${KINDS[@]}"; do
        # shellcheck disable=SC2086 # one figure a word
        r=$(median ${rs[$k]})
        awk -v d="$d" -v r="$r" -v k="${LABEL[$k]}" 'BEGIN { printf "median: direct %7.1f MB/s   %s %7.1f MB/s   ratio %.3f\n", d, k, r, r/d }'
        echo "${LABEL[$k]}: relay CPU per GiB: $(cpu_per_gib "$k")"
    done
done
if [[ " ${KINDS[*]} " == *" fwd "* ]]; then
    # Where the cross-relay flowpaths were spliced: every one at B (the client's relay), none
    # at A, which forwarded the DIALs.
    n=$(($(wc -w <<<"$RATES") * RUNS))
    sb=$(count fb splice) sa=$(count fa splice) fa=$(count fa forwarded_dial)
    echo "cross-relay: $n transfers; spliced at B (the client's relay) $sb, at A $sa; DIALs forwarded by A $fa"
    if [ "$sb" -lt "$n" ] || [ "$sa" != 0 ] || [ "$fa" -lt "$n" ]; then
        echo "cross-relay: the splices were not where they should be (relay status lines in $tmp/relay-fa.out, relay-fb.out)" >&2
        exit 1
    fi
fi
