#!/usr/bin/env bash
# Session-open cost of a handshake change, on loopback (release build), before and after in the
# same run, RUNS rounds (medians printed side by side):
#  1. connection setup: mean wall time of N tiny `msock connect` sessions (process start to
#     exit, one line sent), encrypted and --no-encrypt, each binary against its own listener;
#  2. `msock bench` built-in (loopback, single flowpath, encrypted) goodput of each binary.
# BEFORE is another msock release binary (e.g. built from the base commit with
#   git archive BASE | tar -x -C /tmp/before && (cd /tmp/before && cargo build --release)).
# Usage: bash tests/bench-handshake.sh BEFORE [RUNS] [N]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BEFORE=${1:?usage: bench-handshake.sh BEFORE-BINARY [RUNS] [N]}
RUNS=${2:-3}
N=${3:-50}
bench_build
bench_tmp
AFTER=$MSOCK

start() { # start NAME BINARY ARGS...: a -k listener on port 0, stderr to $tmp/NAME.err
    MSOCK_CONFIG_DIR=$tmp/$1.config "$2" listen -k --recv-only 127.0.0.1:0 "${@:3}" \
        >/dev/null 2>"$tmp/$1.err" &
}
setup() { # setup BINARY PORT ARGS...: mean wall ms of N sessions carrying one line
    local t0 t1; t0=$(now)
    for _ in $(seq "$N"); do echo x | "$1" connect "127.0.0.1:$2" "${@:3}" >/dev/null; done
    t1=$(now); python3 -c "print('%.3f' % (($t1 - $t0) / 1e6 / $N))"
}
gbps() { # gbps BINARY: built-in bench goodput (Gbit/s), encrypted
    "$1" bench -t 3s --json | python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9))"
}

start b_enc "$BEFORE"; p1=$!
start b_plain "$BEFORE" --no-encrypt; p2=$!
start a_enc "$AFTER"; p3=$!
start a_plain "$AFTER" --no-encrypt; p4=$!
B_ENC=$(listen_port "$tmp/b_enc.err" "$p1"); B_PLAIN=$(listen_port "$tmp/b_plain.err" "$p2")
A_ENC=$(listen_port "$tmp/a_enc.err" "$p3"); A_PLAIN=$(listen_port "$tmp/a_plain.err" "$p4")
# First contact pins each listener's key; not part of the measurement.
echo x | MSOCK_CONFIG_DIR=$tmp/cb "$BEFORE" connect "127.0.0.1:$B_ENC" >/dev/null
echo x | MSOCK_CONFIG_DIR=$tmp/ca "$AFTER" connect "127.0.0.1:$A_ENC" >/dev/null

echo "handshake benchmark: $RUNS rounds, $N setups each, $(nproc) cores; before $BEFORE, after $AFTER"
be=(); bp=(); ae=(); ap=(); bg=(); ag=()
for i in $(seq "$RUNS"); do
    x=$(MSOCK_CONFIG_DIR=$tmp/cb setup "$BEFORE" "$B_ENC"); be+=("$x")
    y=$(MSOCK_CONFIG_DIR=$tmp/ca setup "$AFTER" "$A_ENC"); ae+=("$y")
    u=$(MSOCK_CONFIG_DIR=$tmp/cb setup "$BEFORE" "$B_PLAIN" --no-encrypt); bp+=("$u")
    v=$(MSOCK_CONFIG_DIR=$tmp/ca setup "$AFTER" "$A_PLAIN" --no-encrypt); ap+=("$v")
    g=$(MSOCK_CONFIG_DIR=$tmp/cb gbps "$BEFORE"); bg+=("$g")
    h=$(MSOCK_CONFIG_DIR=$tmp/ca gbps "$AFTER"); ag+=("$h")
    printf 'round %d: setup encrypted before %s ms, after %s ms; --no-encrypt before %s ms, after %s ms; bench before %s Gbit/s, after %s Gbit/s\n' \
        "$i" "$x" "$y" "$u" "$v" "$g" "$h"
done
echo "median: setup encrypted before $(median "${be[@]}") ms, after $(median "${ae[@]}") ms; --no-encrypt before $(median "${bp[@]}") ms, after $(median "${ap[@]}") ms; bench before $(median "${bg[@]}") Gbit/s, after $(median "${ag[@]}") Gbit/s"
