#!/usr/bin/env bash
# msock bench against iperf3 on loopback (release build), alternating in the same run: each
# round runs `msock bench --compare-tcp` (msock over one flowpath, then one plain TCP
# connection, to a `msock listen -k`) and `iperf3 -c` (to an `iperf3 -s`), SECONDS each.
# Usage: bash tests/bench-vs-iperf3.sh [ROUNDS] [SECONDS] [MSOCK BENCH FLAGS...]
# (--no-encrypt among the flags is given to the listener too)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
shift 2 2>/dev/null || shift $#
cargo build --release --quiet
M=$PWD/target/release/msock
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
export MSOCK_CONFIG_DIR=$tmp/config
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mp=$(free_port); ip=$(free_port)
lflags=()
for a in "$@"; do [ "$a" = --no-encrypt ] && lflags+=(--no-encrypt); done
"$M" listen -k "127.0.0.1:$mp" "${lflags[@]}" >/dev/null 2>"$tmp/l.err" &
iperf3 -s -p "$ip" >/dev/null 2>&1 &
sleep 0.5
ours=(); tcp=(); theirs=(); ratio=()
for i in $(seq "$ROUNDS"); do
    read -r m t < <("$M" bench -t "${SECS}s" -i 0 --compare-tcp --json "$@" "127.0.0.1:$mp" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["end"]["sum_received"]["bits_per_second"]/1e9, d["compare_tcp"]["end"]["sum_received"]["bits_per_second"]/1e9)')
    p=$(iperf3 -c 127.0.0.1 -p "$ip" -t "$SECS" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')
    r=$(python3 -c "print('%.2f' % ($m / $p))")
    ours+=("$m"); tcp+=("$t"); theirs+=("$p"); ratio+=("$r")
    printf 'round %d: msock 1 flowpath %.2f Gbit/s, its plain TCP leg %.2f, iperf3 %.2f; msock/iperf3 %s\n' "$i" "$m" "$t" "$p" "$r"
done
echo "median msock/iperf3: $(median "${ratio[@]}") (msock $(median "${ours[@]}"), iperf3 $(median "${theirs[@]}") Gbit/s)"
