#!/usr/bin/env bash
# Session-open cost of a handshake change, on loopback (release build), before and after in the
# same run, RUNS rounds (medians printed side by side):
#  1. connection setup: mean wall time of N tiny `msock connect` sessions (process start to
#     exit, one line sent), encrypted and --no-encrypt, each binary against its own listener,
#     the two binaries' sessions interleaved;
#  2. time to the server's first byte: `msock connect` started against a one-shot
#     `msock listen` that writes one line from its stdin; wall time from starting the client to
#     its first byte of output, N interleaved samples per binary, median (encrypted);
#  3. `msock bench` built-in (loopback, encrypted): goodput of its "msock, 1 flowpath" test and its
#     ratio to plain TCP in the same bench run, each binary.
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
setup() { # setup PORT-BEFORE PORT-AFTER ARGS...: mean wall ms of N one-line sessions of each
    # binary, interleaved (before, after, before, ...) so that both see the same machine load
    local t0 t1 tb=0 ta=0
    for _ in $(seq "$N"); do
        t0=$(now); echo x | MSOCK_CONFIG_DIR=$tmp/cb "$BEFORE" connect "127.0.0.1:$1" "${@:3}" >/dev/null; t1=$(now)
        tb=$((tb + t1 - t0))
        t0=$(now); echo x | MSOCK_CONFIG_DIR=$tmp/ca "$AFTER" connect "127.0.0.1:$2" "${@:3}" >/dev/null; t1=$(now)
        ta=$((ta + t1 - t0))
    done
    python3 -c "print('%.3f %.3f' % ($tb / 1e6 / $N, $ta / 1e6 / $N))"
}
ttfb() { # ttfb: median ms to the server's first byte, before and after (interleaved)
    python3 - "$BEFORE" "$AFTER" "$N" "$tmp" <<'PY'
import os, re, statistics, subprocess, sys, time
before, after, n, tmp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def sample(binary, tag):
    env = dict(os.environ, MSOCK_CONFIG_DIR=f"{tmp}/ttfb-{tag}-srv")
    l = subprocess.Popen([binary, "listen", "127.0.0.1:0"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    port = re.search(rb"listening on 127.0.0.1:(\d+)", l.stderr.readline()).group(1).decode()
    l.stdin.write(b"hello\n"); l.stdin.close()
    env = dict(os.environ, MSOCK_CONFIG_DIR=f"{tmp}/ttfb-{tag}-cli")
    t = time.perf_counter()
    c = subprocess.Popen([binary, "connect", "--recv-only", f"127.0.0.1:{port}"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
    c.stdout.read(1)
    ms = (time.perf_counter() - t) * 1000
    c.wait(); l.wait()
    return ms
b, a = [], []
for _ in range(n):
    b.append(sample(before, "b")); a.append(sample(after, "a"))
print("%.3f %.3f" % (statistics.median(b), statistics.median(a)))
PY
}
gbps() { # gbps BINARY: built-in bench "msock, 1 flowpath" goodput (Gbit/s) and /plain TCP
    "$1" bench -t 3s --json | python3 -c "
import json, sys
s = {t['name']: t['bits_per_second'] for t in json.load(sys.stdin)['summary']}
print('%.2f %.2f' % (s['msock, 1 flowpath'] / 1e9, s['msock, 1 flowpath'] / s['plain TCP']))"
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
be=(); bp=(); ae=(); ap=(); bg=(); ag=(); br=(); ar=(); bt=(); at=()
for i in $(seq "$RUNS"); do
    read -r x y < <(setup "$B_ENC" "$A_ENC"); be+=("$x"); ae+=("$y")
    read -r u v < <(setup "$B_PLAIN" "$A_PLAIN" --no-encrypt); bp+=("$u"); ap+=("$v")
    read -r tb ta < <(ttfb); bt+=("$tb"); at+=("$ta")
    read -r g gr < <(MSOCK_CONFIG_DIR=$tmp/cb gbps "$BEFORE"); bg+=("$g"); br+=("$gr")
    read -r h hr < <(MSOCK_CONFIG_DIR=$tmp/ca gbps "$AFTER"); ag+=("$h"); ar+=("$hr")
    printf 'round %d: setup encrypted before %s ms, after %s ms; --no-encrypt before %s ms, after %s ms; first server byte before %s ms, after %s ms; bench before %s Gbit/s (%s of TCP), after %s Gbit/s (%s of TCP)\n' \
        "$i" "$x" "$y" "$u" "$v" "$tb" "$ta" "$g" "$gr" "$h" "$hr"
done
echo "median: setup encrypted before $(median "${be[@]}") ms, after $(median "${ae[@]}") ms; --no-encrypt before $(median "${bp[@]}") ms, after $(median "${ap[@]}") ms; first server byte before $(median "${bt[@]}") ms, after $(median "${at[@]}") ms; bench before $(median "${bg[@]}") Gbit/s ($(median "${br[@]}") of TCP), after $(median "${ag[@]}") Gbit/s ($(median "${ar[@]}") of TCP)"
