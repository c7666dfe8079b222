#!/usr/bin/env bash
# Encryption benchmark on loopback (release build), all in the same run, RUNS rounds:
#  1. `msock bench` single flowpath, encrypted vs --no-encrypt (in-memory source and sink);
#  2. BYTES through stdin/stdout: msock (encrypted) vs `ncat --ssl` and socat OPENSSL (TLS),
#     each piping the same bytes from /dev/zero to /dev/null;
#  3. connection setup: wall time of N tiny `msock connect` sessions, encrypted vs not.
# Usage: bash tests/bench-encryption.sh [RUNS] [BYTES] [N]   (needs ncat, socat, openssl)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
RUNS=${1:-3}
BYTES=${2:-2147483648}
N=${3:-50}
bench_build
bench_tmp
export MSOCK_CONFIG_DIR=$tmp/config
gbps() { python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9))"; }

start() { # start NAME ARGS...: a -k listener on port 0 in the background, stderr to $tmp/NAME.err
    "$MSOCK" listen -k --recv-only 127.0.0.1:0 "${@:2}" >/dev/null 2>"$tmp/$1.err" &
}
start enc; enc_pid=$!
start plain --no-encrypt; plain_pid=$!
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/k.pem" -out "$tmp/c.pem" -subj /CN=bench -days 1 2>/dev/null
PORT_enc=$(listen_port "$tmp/enc.err" "$enc_pid")
PORT_plain=$(listen_port "$tmp/plain.err" "$plain_pid")

echo "encryption benchmark: $RUNS rounds, $BYTES bytes through pipes, $N setups, $(nproc) cores"
enc=(); plain=(); ratio=(); mp=(); nc=(); so=()
for i in $(seq "$RUNS"); do
    e=$("$MSOCK" bench -t 4s -i 0 --json "127.0.0.1:$PORT_enc" | gbps)
    p=$("$MSOCK" bench -t 4s -i 0 --json --no-encrypt "127.0.0.1:$PORT_plain" | gbps)
    r=$(ratio "$e" "$p")
    enc+=("$e"); plain+=("$p"); ratio+=("$r")
    # The same bytes through pipes: msock (encrypted), ncat --ssl, socat with TLS.
    t0=$(now); head -c "$BYTES" /dev/zero | "$MSOCK" connect "127.0.0.1:$PORT_enc" >/dev/null; t1=$(now)
    m=$(mbps "$BYTES" $((t1 - t0))); mp+=("$m")
    q=$(free_port); ncat --ssl -l 127.0.0.1 "$q" >/dev/null 2>&1 & np=$!; wait_port "$q" "$np"
    t0=$(now); head -c "$BYTES" /dev/zero | ncat --ssl --send-only 127.0.0.1 "$q" 2>/dev/null; wait "$np" || true; t1=$(now)
    n=$(mbps "$BYTES" $((t1 - t0))); nc+=("$n")
    q=$(free_port); socat -u "OPENSSL-LISTEN:$q,bind=127.0.0.1,reuseaddr,cert=$tmp/c.pem,key=$tmp/k.pem,verify=0" - >/dev/null 2>&1 & sp=$!; wait_port "$q" "$sp"
    t0=$(now); head -c "$BYTES" /dev/zero | socat -u - "OPENSSL:127.0.0.1:$q,verify=0" 2>/dev/null; wait "$sp" || true; t1=$(now)
    s=$(mbps "$BYTES" $((t1 - t0))); so+=("$s")
    printf 'round %d: bench encrypted %s Gbit/s, --no-encrypt %s Gbit/s (ratio %s); pipes: msock %s MB/s, ncat --ssl %s MB/s, socat TLS %s MB/s\n' \
        "$i" "$e" "$p" "$r" "$m" "$n" "$s"
done
echo "median: encrypted/--no-encrypt $(median "${ratio[@]}") ($(median "${enc[@]}") vs $(median "${plain[@]}") Gbit/s); pipes msock $(median "${mp[@]}"), ncat --ssl $(median "${nc[@]}"), socat $(median "${so[@]}") MB/s"

setup() { # setup PORT ARGS...: mean wall ms of N sessions carrying one line
    local t0 t1; t0=$(now)
    for _ in $(seq "$N"); do echo x | "$MSOCK" connect "127.0.0.1:$1" "${@:2}" >/dev/null; done
    t1=$(now); python3 -c "print('%.2f' % (($t1 - $t0) / 1e6 / $N))"
}
se=$(setup "$PORT_enc"); sp=$(setup "$PORT_plain" --no-encrypt)
echo "connection setup (process start to exit, one line sent): encrypted $se ms, --no-encrypt $sp ms, handshake adds $(python3 -c "print('%.2f' % ($se - $sp))") ms"
