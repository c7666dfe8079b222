#!/usr/bin/env bash
# Hostile-session memory benchmark on loopback (release build), issue 13 item 5:
#  1. listener RSS (VmHWM, the peak, and VmRSS after the attack) with 1 and with SESSIONS
#     hostile sessions at once, each sending 1-byte DATA frames at every other offset of the
#     4 MiB window (examples/hostile_client.rs, --no-encrypt wire, file-transfer sessions,
#     which a listener with --save-dir serves concurrently). Targets: the worst hostile
#     session costs <= 2x its window (8 MiB above the idle listener); SESSIONS of them keep
#     the listener under 256 MiB.
#  2. goodput of a legitimate BYTES transfer (msock connect -> listen) alone, then while
#     SESSIONS fragmenting sessions and an attach flood of FLOOD HELLO(attach) for its own
#     session id run against the same listener. Target: attacked/quiet >= 0.80.
# Usage: bash tests/bench-hostile-memory.sh [SESSIONS] [BYTES] [FLOOD]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
SESSIONS=${1:-100}
BYTES=${2:-1073741824}
FLOOD=${3:-3000}
bench_build --bin msock --example hostile_client
HOSTILE=$TARGET/release/examples/hostile_client
bench_tmp
mkdir -p "$tmp/save"

kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
mib() { echo "$1" | awk '{ printf "%.1f", $1 / 1024 }'; }

# listener: a fresh `msock listen -k --no-encrypt --save-dir`; sets PORT and LPID.
listener() {
    rm -f "$tmp/l.err"
    "$MSOCK" -v listen -k --no-encrypt --save-dir "$tmp/save" 127.0.0.1:0 \
        >/dev/null 2>"$tmp/l.err" </dev/null &
    LPID=$!
    PORT=$(listen_port "$tmp/l.err" "$LPID")
}

echo "msock hostile-memory benchmark: $(nproc) cores, 4 MiB window (default)"
echo "== 1. listener memory under fragmenting sessions"
printf '%-10s %12s %12s %14s %12s %s\n' sessions idle_MiB peak_MiB per_session_MiB after_MiB ended
for n in 1 "$SESSIONS"; do
    listener
    idle=$(kib "$LPID" VmRSS)
    "$HOSTILE" --fragment --file --sessions "$n" --hold 1 "127.0.0.1:$PORT" 2>"$tmp/h.err"
    ended=$(grep -c "ended by the listener" "$tmp/h.err" || true)
    peak=$(kib "$LPID" VmHWM)
    sleep 1
    after=$(kib "$LPID" VmRSS)
    per=$(echo "$peak $idle $n" | awk '{ printf "%.1f", ($1 - $2) / 1024 / $3 }')
    printf '%-10s %12s %12s %14s %12s %s\n' "$n" "$(mib "$idle")" "$(mib "$peak")" "$per" \
        "$(mib "$after")" "$ended/$n"
    kill "$LPID"; wait "$LPID" 2>/dev/null || true
done
echo "   targets: per_session <= 8 MiB (2x window), peak with $SESSIONS < 256 MiB"

echo "== 2. a legitimate transfer's goodput, quiet and under attack"
# transfer: BYTES through one session; prints MB/s. Under attack, the hostile client starts
# once the session id is known.
transfer() {
    local attack=$1 t0 t1 id
    listener
    rm -f "$tmp/c.err"
    t0=$(now)
    head -c "$BYTES" /dev/zero | "$MSOCK" -v connect --no-encrypt "127.0.0.1:$PORT" \
        >/dev/null 2>"$tmp/c.err" &
    local CPID=$!
    if [ "$attack" = 1 ]; then
        id=$(wait_line "$tmp/c.err" '.*session \([0-9a-f]\{16\}\) open.*' "$CPID")
        "$HOSTILE" --fragment --file --sessions "$SESSIONS" --attach-flood "$FLOOD" \
            --session "$id" --hold 1 "127.0.0.1:$PORT" 2>"$tmp/h2.err" &
    fi
    wait "$CPID"
    t1=$(now)
    kill "$LPID"; wait "$LPID" 2>/dev/null || true
    wait 2>/dev/null || true
    mbps "$BYTES" $((t1 - t0))
}
quiet=$(transfer 0)
attacked=$(transfer 1)
printf '%-22s %10s\n' run MB/s quiet "$quiet" "attacked" "$attacked"
echo "attacked/quiet: $(ratio "$attacked" "$quiet")   (target >= 0.80)"
