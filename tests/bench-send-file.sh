#!/usr/bin/env bash
# File-transfer benchmark: one BYTES-sized file (default 2 GiB) sent with `msock send-file` to
# `msock listen --save-dir` (hashing, fsync and rename included), and the same file piped
# through nc into a file (no hashing, no fsync; also shown with a `sync` of that file
# counted, the durable equivalent), alternating in the same run. Prints goodput,
# each msock side's peak RSS, and the median ratio.
# Usage: bash tests/bench-send-file.sh [BYTES] [RUNS] [DIR]   (DIR: where files go; default a
# temporary folder under $TMPDIR, e.g. give /dev/shm to take the disk out of the measurement)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BYTES=${1:-2147483648}
RUNS=${2:-3}
BASE=${3:-${TMPDIR:-/tmp}}
bench_build
bench_tmp "$BASE"

head -c "$BYTES" /dev/urandom >"$tmp/src.bin"
mkdir -p "$tmp/dst"
echo "send-file benchmark: $BYTES-byte file, $RUNS runs, $(nproc) cores, files in $BASE"
ours=(); theirs=(); synced=()
for i in $(seq "$RUNS"); do
    rm -rf "$tmp/dst"/* "$tmp/nc.out"; sync
    port=$(free_port)
    nc -l 127.0.0.1 "$port" >"$tmp/nc.out" &
    npid=$!; wait_port "$port" "$npid"
    t0=$(now); nc -N 127.0.0.1 "$port" <"$tmp/src.bin"; wait "$npid"; t1=$(now)
    sync -f "$tmp/nc.out"; t2=$(now)
    n=$(mbps "$BYTES" $((t1 - t0))); theirs+=("$n")
    ns=$(mbps "$BYTES" $((t2 - t0))); synced+=("$ns")
    rm -f "$tmp/nc.out"; sync
    rm -f "$tmp/l.err"
    /usr/bin/time -f "%M" -o "$tmp/l.rss" "$MSOCK" listen 127.0.0.1:0 --save-dir "$tmp/dst" 2>"$tmp/l.err" &
    lpid=$!; port=$(listen_port "$tmp/l.err" "$lpid")
    t0=$(now)
    /usr/bin/time -f "%M" -o "$tmp/s.rss" "$MSOCK" send-file -q "$tmp/src.bin" "127.0.0.1:$port"
    wait "$lpid"; t1=$(now)
    m=$(mbps "$BYTES" $((t1 - t0))); ours+=("$m")
    cmp -s "$tmp/src.bin" "$tmp/dst/src.bin" || { echo "received file differs!" >&2; exit 1; }
    printf 'run %d: nc %5s MB/s (%5s MB/s with its file synced)   msock send-file %5s MB/s   RSS listen %s KiB, send-file %s KiB\n' \
        "$i" "$n" "$ns" "$m" "$(cat "$tmp/l.rss")" "$(cat "$tmp/s.rss")"
done
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
ms=$(median "${synced[@]}")
echo "median: nc $mt MB/s (synced: $ms), msock send-file $mo MB/s; ratio $(ratio "$mo" "$mt") (vs synced nc $(ratio "$mo" "$ms"))"
