# shellcheck shell=bash
# Helpers shared by the tests/bench-*.sh scripts, each defined here once. A script sources it
# right after `set -euo pipefail`:
#     source "$(dirname "$0")/bench-lib.sh"
# Sourcing it changes to the repository root (where cargo runs and target/ is).
#
# Setup
#   bench_build [CARGO-ARGS...]  `cargo build --release --quiet ARGS...`; sets TARGET (the target
#                                folder, $CARGO_TARGET_DIR if set) and MSOCK (the release binary).
#                                With BENCH_PREBUILT=DIR, builds nothing and takes DIR as TARGET
#   bench_tmp [DIR]              sets tmp to a new temporary folder (under DIR if given), keeps
#                                msock's keys there (MSOCK_CONFIG_DIR) and traps EXIT with
#                                bench_cleanup
#   bench_cleanup                kills the script's background jobs and removes $tmp
#   bench_netlab                 for the scripts that measure in the shared namespace lab: exits
#                                with 2 and a message unless run as root with NETLAB (default
#                                ../shared/netlab/netlab next to this repo) executable; then
#                                bench_build and bench_tmp, with `$NETLAB down` on EXIT too
# Figures
#   now                          wall-clock time in nanoseconds
#   mbps BYTES NANOSECONDS       goodput in MB/s (10^6 bytes per second), no decimals
#   ratio A B                    A / B with two decimals
#   median X...                  the middle of the numbers (of an even count, the lower middle)
# Readiness: never a fixed sleep. Each waits at most BENCH_WAIT seconds (default 10; a whole
# number), polling every 20 ms, and with a PID stops as soon as that process has exited; when
# readiness does not come it says what it waited for on stderr and exits with 1 (inside a
# `$(...)`, that subshell: the assignment then fails and `set -e` stops the script).
#   free_port                    a TCP port free on 127.0.0.1 now, for tools that cannot be told
#                                to listen on port 0 and say which port they got
#   wait_port PORT [PID]         waits until a socket listens on TCP PORT (any address), read
#                                from /proc/net/tcp{,6} without connecting, so that a listener
#                                which serves one connection (`nc -l`, `ncat -l`) keeps it
#   wait_line FILE REGEX [PID]   waits until a line of FILE matches the sed REGEX; prints its \1
#   listen_port FILE [PID]       waits for `msock listen` to say "listening on ADDR:PORT" in its
#                                stderr FILE; prints PORT (the first one, if it says several)
# Remove a log FILE before starting the process that writes it, so that waiting on it cannot
# match a line left by the previous run.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
: "${BENCH_WAIT:=10}"

# shellcheck disable=SC2034,SC2119,SC2120 # sets TARGET and MSOCK for the scripts; ARGS optional
bench_build() {
    if [ -n "${BENCH_PREBUILT:-}" ]; then
        # Another revision's build (tests/bench-compare.sh): measured as it is, nothing built.
        TARGET=$BENCH_PREBUILT
    else
        cargo build --release --quiet "$@"
        TARGET=${CARGO_TARGET_DIR:-$PWD/target}
    fi
    MSOCK=$TARGET/release/msock
}

# shellcheck disable=SC2119,SC2120 # DIR is optional
bench_tmp() {
    tmp=$(mktemp -d ${1:+"$1/msock-bench.XXXXXX"})
    # Keys (the listeners' and the pinned ones) of this run only, not the user's.
    export MSOCK_CONFIG_DIR=$tmp/config
    trap bench_cleanup EXIT
}

bench_cleanup() {
    # shellcheck disable=SC2046 # one job id a word
    kill $(jobs -p) 2>/dev/null || true
    rm -rf "$tmp"
}

bench_netlab() {
    local me; me=$(basename "$0" .sh)
    NETLAB=${NETLAB:-$PWD/../shared/netlab/netlab}
    [ "$(id -u)" = 0 ] || { echo "$me: needs root (network namespaces)" >&2; exit 2; }
    [ -x "$NETLAB" ] || { echo "$me: netlab not found at $NETLAB (set NETLAB=)" >&2; exit 2; }
    bench_build
    bench_tmp
    trap '"$NETLAB" down >/dev/null 2>&1 || true; bench_cleanup' EXIT
}

now() { date +%s%N; }
mbps() { echo "$1 $2" | awk '{ printf "%.0f", $1 / ($2 / 1e9) / 1e6 }'; }
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_until PID COMMAND...: runs COMMAND every 20 ms until it succeeds (status 0) or BENCH_WAIT
# seconds have passed or PID (unless empty) has exited (status 1, after a last try).
wait_until() {
    local pid=$1 deadline=$(($(now) + BENCH_WAIT * 1000000000))
    shift
    until "$@"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            "$@"
            return
        fi
        [ "$(now)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

# bench_not_ready WHAT PID [FILE]: the readiness error, with FILE's contents; exits the script.
bench_not_ready() {
    local why="within $BENCH_WAIT s"
    [ -n "$2" ] && ! kill -0 "$2" 2>/dev/null && why="before process $2 exited"
    echo "bench: not ready: no $1 $why${3:+: $(cat "$3" 2>/dev/null)}" >&2
    exit 1
}

listening() { # PORT: does a TCP socket (IPv4 or IPv6) listen on PORT? (state 0A is LISTEN)
    local f files=()
    for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && files+=("$f"); done
    awk -v p="$(printf ':%04X' "$1")" \
        'substr($2, length($2) - 4) == p && $4 == "0A" { found = 1 } END { exit !found }' "${files[@]}"
}

wait_port() {
    wait_until "${2:-}" listening "$1" || bench_not_ready "listener on TCP port $1" "${2:-}"
}

first_match() { [ -f "$1" ] && sed -n "/$2/{s//\1/p;q;}" "$1"; }
has_match() { [ -n "$(first_match "$1" "$2")" ]; }

wait_line() {
    wait_until "${3:-}" has_match "$1" "$2" || bench_not_ready "line /$2/ in $1" "${3:-}" "$1"
    first_match "$1" "$2"
}

listen_port() { wait_line "$1" '^msock: listening on .*:\([0-9]*\)$' "${2:-}"; }
