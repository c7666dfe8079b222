#!/usr/bin/env bash
# Encryption benchmark on loopback (release build), all in the same run, RUNS rounds:
#  1. `msock bench` single flowpath, encrypted vs --no-encrypt (in-memory source and sink);
#  2. BYTES through stdin/stdout: msock (encrypted) vs `ncat --ssl` and socat OPENSSL (TLS),
#     each piping the same bytes from /dev/zero to /dev/null;
#  3. connection setup: wall time of N tiny `msock connect` sessions, encrypted vs not.
# Usage: bash tests/bench-encryption.sh [RUNS] [BYTES] [N]   (needs ncat, socat, openssl)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
BYTES=${2:-2147483648}
N=${3:-50}
cargo build --release --quiet
M=$PWD/target/release/msock
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
export MSOCK_CONFIG_DIR=$tmp/config
now() { date +%s%N; }
gbps() { python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9))"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

start() { # start NAME ARGS...: a -k listener; sets PORT_<NAME>
    local p; p=$(free_port)
    "$M" listen -k --recv-only "127.0.0.1:$p" "${@:2}" >/dev/null 2>"$tmp/$1.err" &
    eval "PORT_$1=$p"
}
start enc
start plain --no-encrypt
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/k.pem" -out "$tmp/c.pem" -subj /CN=bench -days 1 2>/dev/null
sleep 0.5

echo "encryption benchmark: $RUNS rounds, $BYTES bytes through pipes, $N setups, $(nproc) cores"
enc=(); plain=(); ratio=(); mp=(); nc=(); so=()
for i in $(seq "$RUNS"); do
    e=$("$M" bench -t 4s -i 0 --json "127.0.0.1:$PORT_enc" | gbps)
    p=$("$M" bench -t 4s -i 0 --json --no-encrypt "127.0.0.1:$PORT_plain" | gbps)
    r=$(python3 -c "print('%.2f' % ($e / $p))")
    enc+=("$e"); plain+=("$p"); ratio+=("$r")
    # The same bytes through pipes: msock (encrypted), ncat --ssl, socat with TLS.
    t0=$(now); head -c "$BYTES" /dev/zero | "$M" connect "127.0.0.1:$PORT_enc" >/dev/null; t1=$(now)
    m=$(python3 -c "print('%.0f' % ($BYTES / (($t1 - $t0) / 1e9) / 1e6))"); mp+=("$m")
    q=$(free_port); ncat --ssl -l 127.0.0.1 "$q" >/dev/null 2>&1 & np=$!; sleep 0.3
    t0=$(now); head -c "$BYTES" /dev/zero | ncat --ssl --send-only 127.0.0.1 "$q" 2>/dev/null; wait "$np" || true; t1=$(now)
    n=$(python3 -c "print('%.0f' % ($BYTES / (($t1 - $t0) / 1e9) / 1e6))"); nc+=("$n")
    q=$(free_port); socat -u "OPENSSL-LISTEN:$q,bind=127.0.0.1,reuseaddr,cert=$tmp/c.pem,key=$tmp/k.pem,verify=0" - >/dev/null 2>&1 & sp=$!; sleep 0.3
    t0=$(now); head -c "$BYTES" /dev/zero | socat -u - "OPENSSL:127.0.0.1:$q,verify=0" 2>/dev/null; wait "$sp" || true; t1=$(now)
    s=$(python3 -c "print('%.0f' % ($BYTES / (($t1 - $t0) / 1e9) / 1e6))"); so+=("$s")
    printf 'round %d: bench encrypted %s Gbit/s, --no-encrypt %s Gbit/s (ratio %s); pipes: msock %s MB/s, ncat --ssl %s MB/s, socat TLS %s MB/s\n' \
        "$i" "$e" "$p" "$r" "$m" "$n" "$s"
done
echo "median: encrypted/--no-encrypt $(median "${ratio[@]}") ($(median "${enc[@]}") vs $(median "${plain[@]}") Gbit/s); pipes msock $(median "${mp[@]}"), ncat --ssl $(median "${nc[@]}"), socat $(median "${so[@]}") MB/s"

setup() { # setup PORT ARGS...: mean wall ms of N sessions carrying one line
    local t0 t1; t0=$(now)
    for _ in $(seq "$N"); do echo x | "$M" connect "127.0.0.1:$1" "${@:2}" >/dev/null; done
    t1=$(now); python3 -c "print('%.2f' % (($t1 - $t0) / 1e6 / $N))"
}
se=$(setup "$PORT_enc"); sp=$(setup "$PORT_plain" --no-encrypt)
echo "connection setup (process start to exit, one line sent): encrypted $se ms, --no-encrypt $sp ms, handshake adds $(python3 -c "print('%.2f' % ($se - $sp))") ms"
