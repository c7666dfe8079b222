#!/usr/bin/env bash
# Pairing benchmark: the time from "enter" on both sides to the first byte of the file at the
# receiver, on loopback with a local relay (`msock proxy`), for
#   code:   `msock listen --relay R --code --save-dir D` then, as soon as the code is printed,
#           `msock send-file --code CODE FILE R` (PAKE, then the session through the relay);
#   named:  `msock listen --relay R --name N --save-dir D` then `send-file FILE N@R` (the same
#           relay path, no PAKE: a known listener behind a relay);
#   direct: `msock listen 127.0.0.1:0 --save-dir D` then `send-file FILE 127.0.0.1:PORT` (a
#           known listener).
# Each run starts the listener at t0 and the sender the moment the listener is ready (for code,
# the moment it printed the code: a person needs longer to read and type it); "first byte" is
# the first moment a file under D has a byte. Prints each run and the medians, and the code's
# entropy and an attacker's chance per try. croc is not measured: it is not in Debian's
# packages (apt-cache policy croc: none) nor on crates.io (it is a Go program).
# Usage: bash tests/bench-pairing.sh [RUNS] [BYTES]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
RUNS=${1:-5}
BYTES=${2:-16777216}
bench_build
bench_tmp
head -c "$BYTES" /dev/urandom >"$tmp/src.bin"

rm -f "$tmp/relay.err"
"$MSOCK" proxy --listen 127.0.0.1:0 2>"$tmp/relay.err" &
rpid=$!
relay=$(wait_line "$tmp/relay.err" '^msock: relay listening on \(.*\)$' "$rpid")

# Waits until a file under $1 has a byte; prints the time then.
first_byte() {
    while [ -z "$(find "$1" -type f -size +0c -print -quit 2>/dev/null)" ]; do :; done
    now
}

echo "pairing benchmark: $BYTES-byte file, $RUNS runs, $(nproc) cores, relay $relay"
code_ms=(); named_ms=(); direct_ms=(); pake_ms=()
for i in $(seq "$RUNS"); do
    # code
    d=$tmp/dst-code-$i; rm -f "$tmp/l.err"; mkdir -p "$d"
    t0=$(now)
    MSOCK_STATE_DIR=$tmp/state-l "$MSOCK" listen --relay "$relay" --code --save-dir "$d" 2>"$tmp/l.err" &
    lpid=$!
    code=$(wait_line "$tmp/l.err" '^code: \(.*\)$' "$lpid")
    tc=$(now)
    MSOCK_STATE_DIR=$tmp/state-s "$MSOCK" send-file -q --code "$code" "$tmp/src.bin" "$relay" &
    spid=$!
    t1=$(first_byte "$d")
    wait "$spid"; wait "$lpid"
    cmp -s "$tmp/src.bin" "$d/src.bin" || { echo "code: received file differs!" >&2; exit 1; }
    c=$(( (t1 - t0) / 1000000 )); code_ms+=("$c"); p=$(( (t1 - tc) / 1000000 )); pake_ms+=("$p")
    # named (known listener behind the relay)
    d=$tmp/dst-named-$i; rm -f "$tmp/l.err"; mkdir -p "$d"
    t0=$(now)
    MSOCK_STATE_DIR=$tmp/state-l "$MSOCK" listen --relay "$relay" --name "bench$i" --save-dir "$d" 2>"$tmp/l.err" &
    lpid=$!
    wait_line "$tmp/l.err" '^\(msock: registered\).*$' "$lpid" >/dev/null
    "$MSOCK" send-file -q "$tmp/src.bin" "bench$i@$relay" &
    spid=$!
    t1=$(first_byte "$d")
    wait "$spid"; wait "$lpid"
    n=$(( (t1 - t0) / 1000000 )); named_ms+=("$n")
    # direct (known listener)
    d=$tmp/dst-direct-$i; rm -f "$tmp/l.err"; mkdir -p "$d"
    t0=$(now)
    "$MSOCK" listen 127.0.0.1:0 --save-dir "$d" 2>"$tmp/l.err" &
    lpid=$!
    port=$(listen_port "$tmp/l.err" "$lpid")
    "$MSOCK" send-file -q "$tmp/src.bin" "127.0.0.1:$port" &
    spid=$!
    t1=$(first_byte "$d")
    wait "$spid"; wait "$lpid"
    r=$(( (t1 - t0) / 1000000 )); direct_ms+=("$r")
    printf 'run %d: code %4d ms (sender enter -> first byte %4d ms)   named via relay %4d ms   direct %4d ms\n' \
        "$i" "$c" "$p" "$n" "$r"
done
echo "median ms from enter to first file byte: code $(median "${code_ms[@]}") (after the code was shown: $(median "${pake_ms[@]}")), named via relay $(median "${named_ms[@]}"), direct $(median "${direct_ms[@]}"); croc: not installable here"
echo "code: 3 words of 7776 (EFF large list) = 38.8 bits; an attacker's chance per try 1/7776^3 = 2.1e-12, at most 3 tries per code (6.4e-12)"
