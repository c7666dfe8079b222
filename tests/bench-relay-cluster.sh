#!/usr/bin/env bash
# Relay cluster (issue 15): registration and lookup latency (p50/p99) at one relay without
# etcd against a cluster of 3 relays sharing a 3-member etcd on loopback (registration at one
# relay, lookup at another: from the store), then NAMES names registered across the 3 relays
# (round robin, 64 at a time): the time it took, each relay's RSS and etcd's database size.
# A hand-written python3 client registers (REGISTER, PROVE with an operator key, REGISTERED,
# close) from source addresses 127.0.X.Y, 20 names each (the relay's registration burst per
# address). Release build. MSOCK_BIN=/path/to/msock runs another build.
# Usage: bash tests/bench-relay-cluster.sh [NAMES] [SAMPLES]   (defaults 10000, 500)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
NAMES=${1:-10000}
SAMPLES=${2:-500}
command -v etcd >/dev/null || { echo "SKIPPED: etcd is not installed (apt-get install -y etcd-server)"; exit 0; }
command -v python3 >/dev/null || { echo "SKIPPED: needs python3 (apt-get install -y python3)"; exit 0; }
bench_build --bin msock
MSOCK=${MSOCK_BIN:-$MSOCK}
bench_tmp
export MSOCK_STATE_DIR=$tmp/state
kib() { sed -n "s/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

# A 3-member etcd on loopback.
initial="" clients=()
for i in 0 1 2; do
    c=$(free_port); p=$(free_port)
    clients+=("$c"); peers[i]=$p
    initial+="${initial:+,}m$i=http://127.0.0.1:$p"
done
for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$tmp/etcd$i" \
        --listen-client-urls "http://127.0.0.1:${clients[i]}" --advertise-client-urls "http://127.0.0.1:${clients[i]}" \
        --listen-peer-urls "http://127.0.0.1:${peers[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peers[i]}" \
        --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "bench-$$" \
        >/dev/null 2>"$tmp/etcd$i.log" &
done
ETCD=http://127.0.0.1:${clients[0]},http://127.0.0.1:${clients[1]},http://127.0.0.1:${clients[2]}
for i in 0 1 2; do wait_port "${clients[i]}"; done

openssl_hex() { python3 -c 'import os; print(os.urandom(32).hex())'; }
openssl_hex >"$tmp/cluster.key"
openssl_hex >"$tmp/auth.keys"
common=(--auth-keys "$tmp/auth.keys" --rate 0 --max-names $((NAMES * 2)) --json)
start_relay() { # NAME ARGS...: starts a relay, sets RELAY_<NAME> (address) and PID_<NAME>
    local n=$1; shift
    rm -f "$tmp/$n.err"
    "$MSOCK" proxy --listen 127.0.0.1:0 "${common[@]}" "$@" >"$tmp/$n.out" 2>"$tmp/$n.err" &
    printf -v "PID_$n" %s $!
    printf -v "RELAY_$n" %s "127.0.0.1:$(wait_line "$tmp/$n.err" '^msock: relay listening on 127.0.0.1:\([0-9]*\)$' $!)"
}
start_relay single
for r in a b c; do
    start_relay "$r" --etcd "$ETCD" --cluster-key-file "$tmp/cluster.key" --relay-id "$r"
done

cat >"$tmp/reg.py" <<'EOF'
# python3 reg.py MODE KEYFILE PREFIX COUNT FIRST_SOURCE RELAY... (MODE: register | lookup)
# register: registers PREFIX0..PREFIX{COUNT-1} round robin over the relays, 64 at a time;
# lookup: registers each (untimed) and, while its control connection stays open (a relay
# attaches a name only while its listener is connected), looks it up at the next relay.
# Prints: seconds p50_ms p99_ms failures
import hmac, hashlib, socket, struct, sys, time
from concurrent.futures import ThreadPoolExecutor
mode, key, prefix, count, first = sys.argv[1], open(sys.argv[2]).read().split()[0].encode(), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
relays = [(h, int(p)) for h, p in (r.rsplit(":", 1) for r in sys.argv[6:])]
PRE = b"MSOCK\x01"
def frame(ty, body): return struct.pack(">IB", len(body) + 1, ty) + body
def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
def read_frame(s):
    ln, ty = struct.unpack(">IB", read_exact(s, 5))
    return ty, read_exact(s, ln - 1)
def sock(src, relay):
    s = socket.socket()
    s.settimeout(30)
    s.bind(("127.%d.%d.%d" % (src // 62500 % 250, src // 250 % 250, src % 250 + 2), 0))
    s.connect(relay)
    return s
def register(s, name):
    s.sendall(PRE + frame(0x20, bytes([len(name)]) + name + b"\x00"))
    read_exact(s, 6); ty, nonce = read_frame(s)
    if ty != 0x21: return False
    proof = hmac.new(key, b"msock relay key v1" + bytes([len(name)]) + name + nonce, hashlib.sha256).digest()
    s.sendall(frame(0x22, b"\x00" * 32 + proof))
    ty, _ = read_frame(s)
    return ty == 0x23
def one(i):
    name = (prefix + str(i)).encode()
    src = first + i // 20
    socks = []
    try:
        if mode == "lookup":
            socks.append(sock(src, relays[i % len(relays)]))
            if not register(socks[0], name): return None
            t = time.perf_counter()
            s = sock(src, relays[(i + 1) % len(relays)])
            socks.append(s)
            s.sendall(PRE + frame(0x27, bytes([len(name)]) + name))
            read_exact(s, 6); ty, _ = read_frame(s)
            ok = ty == 0x28
        else:
            t = time.perf_counter()
            socks.append(sock(src, relays[i % len(relays)]))
            ok = register(socks[0], name)
    except Exception:
        ok = False
    finally:
        for s in socks: s.close()
    return time.perf_counter() - t if ok else None
t0 = time.perf_counter()
with ThreadPoolExecutor(64) as ex:
    got = list(ex.map(one, range(count)))
secs = time.perf_counter() - t0
lat = sorted(x for x in got if x is not None)
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")
print("%.2f %.2f %.2f %d" % (secs, pct(0.5), pct(0.99), got.count(None)))
EOF
# Latency: one at a time (SAMPLES each), single relay vs the cluster.
run() { python3 "$tmp/reg.py" "$@"; }
serial() { # MODE PREFIX FIRST RELAY...: SAMPLES operations one at a time (a pool of 1)
    sed 's/ThreadPoolExecutor(64)/ThreadPoolExecutor(1)/' "$tmp/reg.py" >"$tmp/reg1.py"
    python3 "$tmp/reg1.py" "$1" "$tmp/auth.keys" "$2" "$SAMPLES" "$3" "${@:4}"
}
read -r _ s_reg50 s_reg99 s_regf < <(serial register lat 0 "$RELAY_single")
read -r _ c_reg50 c_reg99 c_regf < <(serial register lat 1000 "$RELAY_a" "$RELAY_b" "$RELAY_c")
read -r _ s_look50 s_look99 s_lookf < <(serial lookup look 2000 "$RELAY_single")
read -r _ c_look50 c_look99 c_lookf < <(serial lookup look 3000 "$RELAY_a" "$RELAY_b" "$RELAY_c")

# NAMES names across the 3 relays, 64 at a time.
read -r secs _ _ fails < <(run register "$tmp/auth.keys" bulk "$NAMES" 10000 "$RELAY_a" "$RELAY_b" "$RELAY_c")
db=0
for i in 0 1 2; do
    s=$(stat -c %s "$tmp/etcd$i/member/snap/db" 2>/dev/null || echo 0)
    [ "$s" -gt "$db" ] && db=$s
done
echo "bench-relay-cluster: machine: $(nproc) cores; $SAMPLES operations one at a time for the latencies"
printf '%-44s %12s %12s\n' "" "single relay" "cluster (3)"
printf '%-44s %12s %12s\n' "registration p50 (ms)" "$s_reg50" "$c_reg50"
printf '%-44s %12s %12s\n' "registration p99 (ms)" "$s_reg99" "$c_reg99"
printf '%-44s %12s %12s\n' "lookup p50 (ms; cluster: at another relay)" "$s_look50" "$c_look50"
printf '%-44s %12s %12s\n' "lookup p99 (ms)" "$s_look99" "$c_look99"
printf '%-44s %12s %12s\n' "failures (reg, lookup)" "$s_regf,$s_lookf" "$c_regf,$c_lookf"
echo "$NAMES names across 3 relays (64 at a time): ${secs} s, $(python3 -c "print(round($NAMES/$secs))") names/s, $fails failed"
echo "relay RSS after: a $(kib "$PID_a") KiB, b $(kib "$PID_b") KiB, c $(kib "$PID_c") KiB (single relay, $((SAMPLES * 2)) names: $(kib "$PID_single") KiB)"
echo "etcd database: $((db / 1024)) KiB"
