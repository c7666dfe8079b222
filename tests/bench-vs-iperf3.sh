#!/usr/bin/env bash
# msock bench against iperf3 on loopback (release build), alternating in the same run: each
# round runs `msock bench --compare-tcp` (msock over one flowpath, then one plain TCP
# connection, to a `msock listen -k`) and `iperf3 -c` (to an `iperf3 -s`), SECONDS each.
# Usage: bash tests/bench-vs-iperf3.sh [ROUNDS] [SECONDS] [MSOCK BENCH FLAGS...]
# (--no-encrypt among the flags is given to the listener too)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
ROUNDS=${1:-3}
SECS=${2:-5}
shift 2 2>/dev/null || shift $#
bench_build
bench_tmp
export MSOCK_CONFIG_DIR=$tmp/config
lflags=()
for a in "$@"; do [ "$a" = --no-encrypt ] && lflags+=(--no-encrypt); done
"$MSOCK" listen -k 127.0.0.1:0 "${lflags[@]}" >/dev/null 2>"$tmp/l.err" &
mp=$(listen_port "$tmp/l.err" $!)
ip=$(free_port)
iperf3 -s -p "$ip" >/dev/null 2>&1 &
wait_port "$ip" $!
ours=(); tcp=(); theirs=(); ratio=()
for i in $(seq "$ROUNDS"); do
    read -r m t < <("$MSOCK" bench -t "${SECS}s" -i 0 --compare-tcp --json "$@" "127.0.0.1:$mp" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["end"]["sum_received"]["bits_per_second"]/1e9, d["compare_tcp"]["end"]["sum_received"]["bits_per_second"]/1e9)')
    p=$(iperf3 -c 127.0.0.1 -p "$ip" -t "$SECS" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')
    r=$(ratio "$m" "$p")
    ours+=("$m"); tcp+=("$t"); theirs+=("$p"); ratio+=("$r")
    printf 'round %d: msock 1 flowpath %.2f Gbit/s, its plain TCP leg %.2f, iperf3 %.2f; msock/iperf3 %s\n' "$i" "$m" "$t" "$p" "$r"
done
echo "median msock/iperf3: $(median "${ratio[@]}") (msock $(median "${ours[@]}"), iperf3 $(median "${theirs[@]}") Gbit/s)"
