#!/usr/bin/env bash
# File-transfer benchmark: one BYTES-sized file (default 2 GiB) sent with `msock send-file` to
# `msock listen --save-dir` (hashing, fsync and rename included), and the same file piped
# through nc into a file (no hashing, no fsync; also shown with a `sync` of that file
# counted, the durable equivalent), alternating in the same run. Prints goodput,
# each msock side's peak RSS, and the median ratio.
# Usage: bash tests/bench-send-file.sh [BYTES] [RUNS] [DIR]   (DIR: where files go; default a
# temporary folder under $TMPDIR, e.g. give /dev/shm to take the disk out of the measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
BYTES=${1:-2147483648}
RUNS=${2:-3}
BASE=${3:-${TMPDIR:-/tmp}}
cargo build --release --quiet
MSOCK=$PWD/target/release/msock
tmp=$(mktemp -d "$BASE/msock-bench.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
now() { date +%s%N; }
mbps() { echo "$1 $2" | awk '{ printf "%.0f", $1 / ($2 / 1e9) / 1e6 }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

head -c "$BYTES" /dev/urandom >"$tmp/src.bin"
mkdir -p "$tmp/dst"
echo "send-file benchmark: $BYTES-byte file, $RUNS runs, $(nproc) cores, files in $BASE"
ours=(); theirs=(); synced=()
for i in $(seq "$RUNS"); do
    rm -rf "$tmp/dst"/* "$tmp/nc.out"; sync
    port=$(free_port)
    nc -l 127.0.0.1 "$port" >"$tmp/nc.out" &
    npid=$!; sleep 0.2
    t0=$(now); nc -N 127.0.0.1 "$port" <"$tmp/src.bin"; wait "$npid"; t1=$(now)
    sync -f "$tmp/nc.out"; t2=$(now)
    n=$(mbps "$BYTES" $((t1 - t0))); theirs+=("$n")
    ns=$(mbps "$BYTES" $((t2 - t0))); synced+=("$ns")
    rm -f "$tmp/nc.out"; sync
    port=$(free_port)
    /usr/bin/time -f "%M" -o "$tmp/l.rss" "$MSOCK" listen "127.0.0.1:$port" --save-dir "$tmp/dst" 2>"$tmp/l.err" &
    lpid=$!; sleep 0.2
    t0=$(now)
    /usr/bin/time -f "%M" -o "$tmp/s.rss" "$MSOCK" send-file -q "$tmp/src.bin" "127.0.0.1:$port"
    wait "$lpid"; t1=$(now)
    m=$(mbps "$BYTES" $((t1 - t0))); ours+=("$m")
    cmp -s "$tmp/src.bin" "$tmp/dst/src.bin" || { echo "received file differs!" >&2; exit 1; }
    printf 'run %d: nc %5s MB/s (%5s MB/s with its file synced)   msock send-file %5s MB/s   RSS listen %s KiB, send-file %s KiB\n' \
        "$i" "$n" "$ns" "$m" "$(cat "$tmp/l.rss")" "$(cat "$tmp/s.rss")"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
ms=$(median "${synced[@]}")
echo "median: nc $mt MB/s (synced: $ms), msock send-file $mo MB/s; ratio $(echo "$mo $mt" | awk '{ printf "%.2f", $1 / $2 }') (vs synced nc $(echo "$mo $ms" | awk '{ printf "%.2f", $1 / $2 }'))"
