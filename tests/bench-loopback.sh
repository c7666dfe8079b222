#!/usr/bin/env bash
# Loopback benchmark of the everyday pipe: BYTES (default 1 GiB) from /dev/zero through
# `msock connect` -> `msock listen` to /dev/null, encrypted (the default) and `--no-encrypt`,
# against socat over plain TCP (the anchor), in the same run: each round runs every contender
# in turn (the order rotates from round to round), and the summary gives each one's median
# goodput, its ratio to socat's median, and the CPU time (user + system, both ends and `head`)
# per GiB. `msock --plain` (a plain TCP client to the listener) and `nc` are shown when asked
# for with EXTRA=1; with BASE=/path/to/another/msock, that binary's encrypted and
# `--no-encrypt` runs join the rounds too (an A/B of two builds on a busy machine).
# Usage: [EXTRA=1] [BASE=BIN] bash tests/bench-loopback.sh [BYTES] [RUNS]   (needs socat)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BYTES=${1:-1073741824}
RUNS=${2:-3}
if ! command -v socat >/dev/null; then
    echo "SKIPPED: socat is not installed (apt-get install -y socat)"
    exit 0
fi
bench_build
bench_tmp

# Cumulative CPU seconds (user + system) of this shell's waited-for children (`times` runs in
# this shell: inside a `$(...)` it would see the subshell's children only).
child_cpu() {
    times >"$tmp/times"
    awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$tmp/times"
}

# Starts `msock listen` on a free port in the background (--allow-plain: the --plain run is a
# plain TCP client); sets PORT and LPID.
start_listener() {
    rm -f "$tmp/listen.err"
    "$BIN" -v listen 127.0.0.1:0 --recv-only --allow-plain "$@" >/dev/null 2>"$tmp/listen.err" &
    LPID=$!
    PORT=$(listen_port "$tmp/listen.err" "$LPID")
}

# Each contender: one transfer, timed from the first byte written until both ends exited;
# prints "MB/s CPU-seconds".
msock_run() { # msock_run LISTEN-ARGS -- CONNECT-ARGS
    local largs=() t0 t1 c0 c1
    while [ "$1" != -- ]; do largs+=("$1"); shift; done
    shift
    start_listener "${largs[@]}"
    child_cpu >"$tmp/c0"; t0=$(now)
    head -c "$BYTES" /dev/zero | "$BIN" connect "127.0.0.1:$PORT" "$@" >/dev/null 2>"$tmp/conn.err"
    wait "$LPID"
    t1=$(now); child_cpu >"$tmp/c1"; c0=$(cat "$tmp/c0"); c1=$(cat "$tmp/c1")
    echo "$(mbps "$BYTES" $((t1 - t0))) $(echo "$c0 $c1" | awk '{ printf "%.2f", $2 - $1 }')"
}
BIN=$MSOCK
c_encrypted() { msock_run -- ; }
c_no_encrypt() { msock_run --no-encrypt -- --no-encrypt; }
c_plain() { msock_run -- --plain; }
c_base_encrypted() { BIN=$BASE msock_run -- ; }
c_base_no_encrypt() { BIN=$BASE msock_run --no-encrypt -- --no-encrypt; }
c_socat() {
    local port t0 t1 c0 c1 spid
    port=$(free_port)
    # 256 KiB copies (socat's default is 8 KiB, which makes it slow for its own syscalls):
    # the anchor is plain TCP as fast as a copying program gets it, as in bench-forward.sh.
    socat -u -b 262144 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" - >/dev/null &
    spid=$!
    wait_port "$port" "$spid"
    child_cpu >"$tmp/c0"; t0=$(now)
    head -c "$BYTES" /dev/zero | socat -u -b 262144 - "TCP:127.0.0.1:$port"
    wait "$spid"
    t1=$(now); child_cpu >"$tmp/c1"; c0=$(cat "$tmp/c0"); c1=$(cat "$tmp/c1")
    echo "$(mbps "$BYTES" $((t1 - t0))) $(echo "$c0 $c1" | awk '{ printf "%.2f", $2 - $1 }')"
}
c_nc() {
    local port t0 t1 c0 c1 npid
    port=$(free_port)
    nc -l 127.0.0.1 "$port" >/dev/null &
    npid=$!
    wait_port "$port" "$npid"
    child_cpu >"$tmp/c0"; t0=$(now)
    head -c "$BYTES" /dev/zero | nc -N 127.0.0.1 "$port"
    wait "$npid"
    t1=$(now); child_cpu >"$tmp/c1"; c0=$(cat "$tmp/c0"); c1=$(cat "$tmp/c1")
    echo "$(mbps "$BYTES" $((t1 - t0))) $(echo "$c0 $c1" | awk '{ printf "%.2f", $2 - $1 }')"
}

names=(socat encrypted no_encrypt)
if [ -n "${BASE:-}" ]; then names+=(base_encrypted base_no_encrypt); fi
if [ "${EXTRA:-0}" = 1 ]; then
    names+=(plain)
    if command -v nc >/dev/null && nc -h 2>&1 | grep -q -- '-N'; then names+=(nc); fi
fi
declare -A label=([socat]="socat (plain TCP)" [encrypted]="msock (encrypted)"
    [no_encrypt]="msock --no-encrypt" [plain]="msock --plain (TCP)" [nc]="nc (plain TCP)"
    [base_encrypted]="BASE (encrypted)" [base_no_encrypt]="BASE --no-encrypt")
declare -A speeds cpus

echo "msock loopback pipe benchmark: $BYTES bytes per transfer, $RUNS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
    line="round $i:"
    n=${#names[@]}
    for k in $(seq 0 $((n - 1))); do
        name=${names[$(((k + i - 1) % n))]}
        read -r s c < <("c_$name")
        speeds[$name]="${speeds[$name]:-} $s"
        cpus[$name]="${cpus[$name]:-} $c"
        line="$line  $name $s MB/s ${c}s"
    done
    echo "$line"
done
# shellcheck disable=SC2086 # the lists are words on purpose
base=$(median ${speeds[socat]})
printf '%-22s %10s %10s %14s   %s\n' contender "MB/s" "x socat" "CPU s per GiB" "rounds (MB/s)"
for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    m=$(median ${speeds[$name]})
    # shellcheck disable=SC2086
    c=$(median ${cpus[$name]})
    printf '%-22s %10s %10s %14s  %s\n' "${label[$name]}" "$m" "$(ratio "$m" "$base")" \
        "$(echo "$c $BYTES" | awk '{ printf "%.2f", $1 * 1073741824 / $2 }')" "${speeds[$name]}"
done
# The lines tests/bench-compare.sh reads (medians), in the format it knows.
# shellcheck disable=SC2086
printf '%-22s %6s MB/s\n' "msock session" "$(median ${speeds[encrypted]})"
if [ -n "${speeds[plain]:-}" ]; then
    # shellcheck disable=SC2086
    printf '%-22s %6s MB/s\n' "msock --plain (TCP)" "$(median ${speeds[plain]})"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
