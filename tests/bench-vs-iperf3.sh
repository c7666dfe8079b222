#!/usr/bin/env bash
# msock bench against iperf3 on loopback (release build), alternating in the same run, with the
# same iperf3 flags on both: for each configuration, ROUNDS rounds of `msock bench` (to a
# `msock listen -k`, encrypted unless --no-encrypt is given) and `iperf3 -c` (to an
# `iperf3 -s`), SECONDS each; medians of the goodput (end.sum_received.bits_per_second, read
# from both tools' -J output by the same code). Configurations: -P 1, -P 4, and -b 1G (paced:
# each tool's goodput against the 1 Gbit/s asked for; target within 2 %).
# Usage: bash tests/bench-vs-iperf3.sh [ROUNDS] [SECONDS] [MORE FLAGS FOR BOTH...]
# (--no-encrypt is given to msock's listener and client only)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
command -v iperf3 >/dev/null || { echo "SKIPPED: no iperf3 (apt-get install -y iperf3)"; exit 0; }
ROUNDS=${1:-3}
SECS=${2:-5}
shift 2 2>/dev/null || shift $#
bench_build
bench_tmp
mflags=(); iflags=(); lflags=()
for a in "$@"; do
    case $a in
        --no-encrypt) mflags+=("$a"); lflags+=("$a") ;;
        *) mflags+=("$a"); iflags+=("$a") ;;
    esac
done
"$MSOCK" listen -k 127.0.0.1:0 "${lflags[@]}" >/dev/null 2>"$tmp/l.err" &
mp=$(listen_port "$tmp/l.err" $!)
ip=$(free_port)
iperf3 -s -p "$ip" >/dev/null 2>&1 &
wait_port "$ip" $!
# Gbit/s received, and the sender's retransmits, from an iperf3 -J document on stdin (either
# tool's: msock writes iperf3's schema).
goodput() {
    python3 -c 'import json,sys; d=json.load(sys.stdin)["end"]; print(d["sum_received"]["bits_per_second"]/1e9, d["sum_sent"]["retransmits"])'
}
echo "loopback, $ROUNDS rounds of $SECS s, alternating; flags for both: ${*:-none}"
for conf in "-P 1" "-P 4" "-b 1G"; do
    read -ra c <<<"$conf"
    ours=(); theirs=(); ratio=()
    for i in $(seq "$ROUNDS"); do
        read -r m mr < <("$MSOCK" bench -t "${SECS}s" -i 0 -J "${c[@]}" "${mflags[@]}" "127.0.0.1:$mp" | goodput)
        read -r p pr < <(iperf3 -c 127.0.0.1 -p "$ip" -t "$SECS" -i 0 -J "${c[@]}" "${iflags[@]}" | goodput)
        r=$(ratio "$m" "$p")
        ours+=("$m"); theirs+=("$p"); ratio+=("$r")
        printf '  %-5s round %d: msock %.3f Gbit/s (retr %s), iperf3 %.3f Gbit/s (retr %s); msock/iperf3 %s\n' \
            "$conf" "$i" "$m" "$mr" "$p" "$pr" "$r"
    done
    mm=$(median "${ours[@]}"); pm=$(median "${theirs[@]}")
    line=$(printf '%-5s median msock/iperf3 %s (msock %.3f, iperf3 %.3f Gbit/s)' "$conf" "$(median "${ratio[@]}")" "$mm" "$pm")
    if [ "$conf" = "-b 1G" ]; then
        line+=$(echo "$mm $pm" | awk '{ printf "; off the 1G asked: msock %+.2f %%, iperf3 %+.2f %%", ($1 - 1) * 100, ($2 - 1) * 100 }')
    fi
    echo "$line"
done
