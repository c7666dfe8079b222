#!/usr/bin/env bash
# Multipath goodput: msock --stripe over wifi0 + cell0, msock on each link alone, and Linux
# kernel MPTCP and plain TCP (iperf3) on the same links, in the same run.
#
# It measures in the shared namespace lab (netlab `twopath`: wifi0 and cell0 to a router, each
# link shaped by tbf with a userspace delay emulator). Needs root, NETLAB pointing at the
# netlab script (default: ../shared/netlab/netlab next to this repo), and for the MPTCP
# baseline mptcpize and iperf3 (apt-get install -y mptcpize iperf3).
# Usage: bash tests/bench-multipath.sh [SECONDS] [WIFI-RATE CELL-RATE]...   e.g. 10 40 15 30 10
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
SECS=${1:-10}
# Every TCP connection, msock's and the baselines', uses the same congestion control.
CC=${CC:-cubic}
shift || true
RATES=("$@")
[ ${#RATES[@]} -ge 2 ] || RATES=(40 15 30 10)
bench_netlab
BASELINE=$(dirname "$NETLAB")/mptcp-baseline.sh

cat >"$tmp/recv.py" <<'EOF'
import hashlib, os, sys, time
# Receiver goodput, as iperf3 reports it: bytes over the time from the first byte read to the
# last. Also a hash, to check the bytes.
h, n, first, last = hashlib.sha256(), 0, None, None
while True:
    b = os.read(0, 1 << 20)
    if not b:
        break
    now = time.monotonic()
    first = first or now
    last = now
    n += len(b)
    h.update(b)
print(n, (last - first) if n else 0, h.hexdigest())
EOF

# msock_run RATE-MBIT ARGS...: uploads RATE * SECS worth of bytes, prints receiver goodput.
msock_run() {
    local mbit=$1 bytes got secs digest port
    shift
    bytes=$((mbit * 125000 * SECS))
    head -c "$bytes" /dev/urandom >"$tmp/src"
    rm -f "$tmp/l.err"
    "$NETLAB" exec srv -- "$MSOCK" listen 0 --recv-only --congestion "$CC" 2>"$tmp/l.err" \
        | python3 "$tmp/recv.py" >"$tmp/recv" &
    local lpid=$!
    port=$(listen_port "$tmp/l.err" "$lpid")
    "$NETLAB" exec cli -- "$MSOCK" -v connect "$("$NETLAB" addr srv eth0):$port" \
        --congestion "$CC" "$@" \
        <"$tmp/src" 2>"$tmp/c.err" || { echo "connect failed:"; tail -3 "$tmp/c.err"; }
    wait "$lpid" || { echo "listen failed:"; tail -3 "$tmp/l.err"; }
    read -r got secs digest <"$tmp/recv"
    [ "$got" = "$bytes" ] && [ "$digest" = "$(sha256sum <"$tmp/src" | cut -d' ' -f1)" ] \
        || echo "MISMATCH: received $got bytes, or different ones"
    echo "$got $secs" | awk '{ printf "%.2f", $1 * 8 / $2 / 1e6 }'
}

while [ ${#RATES[@]} -ge 2 ]; do
    W=${RATES[0]} C=${RATES[1]}
    RATES=("${RATES[@]:2}")
    opts=(--wifi-rate "${W}mbit" --cell-rate "${C}mbit")
    echo "== wifi ${W} Mbit/s 10 ms, cell ${C} Mbit/s 30 ms, ${SECS} s each, upload, $CC"
    if command -v mptcpize >/dev/null && command -v iperf3 >/dev/null; then
        NETLAB_QUIET=1 bash "$BASELINE" -t "$SECS" -d up -c "$CC" -- "${opts[@]}" 2>/dev/null \
            | python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l)
    print("%-22s %6s Mbit/s" % ("kernel " + r["what"], r.get("mbps", r.get("error"))))'
    else
        echo "(no mptcpize/iperf3: kernel MPTCP baseline skipped)"
    fi
    "$NETLAB" up twopath "${opts[@]}" >/dev/null 2>&1
    printf '%-22s %6s Mbit/s\n' "msock --stripe" "$(msock_run $((W + C)) --stripe)"
    grep -E '^path [0-9]+ \(' "$tmp/c.err" | sed 's/^/    /'
    printf '%-22s %6s Mbit/s\n' "msock --iface wifi0" "$(msock_run "$W" --iface wifi0)"
    printf '%-22s %6s Mbit/s\n' "msock --iface cell0" "$(msock_run "$C" --iface cell0)"
    "$NETLAB" down >/dev/null 2>&1
done
