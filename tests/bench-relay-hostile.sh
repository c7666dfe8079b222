#!/usr/bin/env bash
# Relay under attack (issue 13, items 1 and 3), on loopback, release build: goodput of a
# legitimate BYTES transfer through `msock proxy` to one name while a hostile client floods
#   - idle ROUTEs to another live name (half of them followed by the msock preamble and then
#     silence), held open and replaced as soon as the relay closes them, and
#   - REGISTERs of fresh names (proved with zero secrets, then closed at once),
# from one source address (127.0.0.2), then from ten (127.0.0.2 to 127.0.0.11), against the
# same transfer with no attack (median of RUNS each). Also the relay's RSS after each phase,
# and what the attacker got (connections opened, names registered). Target: goodput under
# attack >= 0.8 of the quiet run. On a machine with few cores the attacker, the relay and
# both ends share the CPU: the attacker's own CPU time is printed too.
# The relay runs with --max-flowpaths 500 (the issue's setting); the other limits at their
# defaults. MSOCK_BIN=/path/to/msock runs another build (e.g. an older one) instead.
# Usage: bash tests/bench-relay-hostile.sh [BYTES] [RUNS] [HOLD]   (HOLD: idle ROUTEs held
# per source, default 300)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BYTES=${1:-1073741824}
RUNS=${2:-3}
HOLD=${3:-300}
bench_build --bin msock
MSOCK=${MSOCK_BIN:-$MSOCK}
bench_tmp
export MSOCK_STATE_DIR=$tmp/state
command -v python3 >/dev/null || { echo "SKIPPED: needs python3 (apt-get install -y python3)"; exit 0; }

kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }

"$MSOCK" proxy --listen 127.0.0.1:0 --max-flowpaths 500 --json >"$tmp/relay.out" 2>"$tmp/relay.err" &
RPID=$!
RELAY=127.0.0.1:$(wait_line "$tmp/relay.err" '^msock: relay listening on 127.0.0.1:\([0-9]*\)$' "$RPID")
RHOST=${RELAY%:*}; RPORT=${RELAY##*:}

# The flooded name's listener stays up (-k) for the whole run.
"$MSOCK" listen --relay "$RELAY" --name victim -k >/dev/null 2>"$tmp/victim.err" &
wait_line "$tmp/victim.err" "^msock: \(registered\) .*" $! >/dev/null

cat >"$tmp/attack.py" <<'EOF'
# The hostile client: python3 attack.py HOST PORT NAME HOLD SOURCE...
import os, resource, signal, socket, struct, sys, time
host, port, name, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), int(sys.argv[4])
sources = sys.argv[5:]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
PRE = b"MSOCK\x01"
def frame(ty, body): return struct.pack(">IB", len(body) + 1, ty) + body
route = PRE + frame(0x26, bytes([len(name)]) + name)
stop = False
def done(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, done)
def conn(src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(2)
    s.connect((host, port))
    return s
def alive(s):  # False once the relay answered (a refusal) or closed
    try:
        s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
held = {src: [] for src in sources}
opened = registered = 0
n = 0
while not stop:
    for src in sources:
        held[src] = [s for s in held[src] if alive(s) or s.close()]
        if len(held[src]) < hold:
            try:
                s = conn(src)
                s.sendall(route + (PRE if opened % 2 else b""))
                s.setblocking(False)  # a socket with a timeout would wait in recv
                held[src].append(s)
                opened += 1
            except OSError:
                pass
        n += 1
        try:  # one squatting REGISTER per round and source
            s = conn(src)
            nm = b"squat%dx%d" % (os.getpid(), n)
            s.sendall(PRE + frame(0x20, bytes([len(nm)]) + nm + b"\0"))
            r = s.recv(6 + 5 + 16)
            if len(r) == 27 and r[10] == 0x21:
                s.sendall(frame(0x22, bytes(64)))
                if s.recv(5)[4:5] == b"\x23":
                    registered += 1
            s.close()
        except (OSError, IndexError):
            pass
    time.sleep(0.001)
print(f"opened {opened} registered {registered}", file=sys.stderr)
EOF

# transfer: BYTES from /dev/zero to name "bulk" from 127.0.0.200; prints MB/s (to both exits).
transfer() {
    local t0 t1 lpid
    rm -f "$tmp/bulk.err"
    "$MSOCK" listen --relay "$RELAY" --name bulk --recv-only >/dev/null 2>"$tmp/bulk.err" &
    lpid=$!
    wait_line "$tmp/bulk.err" "^msock: \(registered\) .*" "$lpid" >/dev/null
    t0=$(now)
    if ! head -c "$BYTES" /dev/zero | "$MSOCK" connect -s 127.0.0.200 "bulk@$RELAY" >/dev/null 2>"$tmp/client.err"; then
        kill "$lpid" 2>/dev/null || true
        echo "FAILED($(head -c 120 "$tmp/client.err" | tr '\n' ' '))"
        return
    fi
    wait "$lpid"
    t1=$(now)
    mbps "$BYTES" $((t1 - t0))
}

# phase LABEL SOURCES...: RUNS transfers while the attack runs from SOURCES (none: quiet).
phase() {
    local label=$1 apid="" runs=() r; shift
    if [ $# -gt 0 ]; then
        python3 "$tmp/attack.py" "$RHOST" "$RPORT" victim "$HOLD" "$@" 2>"$tmp/attack.err" &
        apid=$!
        sleep 3 # let the attack fill what it can before measuring
    fi
    for _ in $(seq "$RUNS"); do
        r=$(transfer)
        runs+=("$r")
    done
    local extra=""
    if [ -n "$apid" ]; then
        extra="   attacker CPU $(cpu_s "$apid") s"
        kill "$apid"; wait "$apid" 2>/dev/null || true
        extra="$extra, $(cat "$tmp/attack.err")"
    fi
    local med; med=$(median "${runs[@]/FAILED*/0}")
    printf '%-22s median %6s MB/s  (runs: %s)  relay RSS %s KiB%s\n' \
        "$label" "$med" "${runs[*]}" "$(kib "$RPID" VmRSS)" "$extra"
    LAST=$med
}

echo "msock relay under attack: $BYTES bytes per transfer, $RUNS runs, $HOLD idle ROUTEs held per source, $(nproc) cores"
phase "no attack"; quiet=$LAST
phase "attack, 1 source" 127.0.0.2; one=$LAST
ten_sources=()
for i in $(seq 2 11); do ten_sources+=("127.0.0.$i"); done
phase "attack, 10 sources" "${ten_sources[@]}"; ten=$LAST
echo "goodput vs no attack: 1 source $(ratio "$one" "$quiet"), 10 sources $(ratio "$ten" "$quiet") (target >= 0.80)"
echo "relay peak RSS $(kib "$RPID" VmHWM) KiB"
kill -INT "$RPID"; wait "$RPID" 2>/dev/null || true
grep '"summary"' "$tmp/relay.out" | sed 's/^/relay /' || true
