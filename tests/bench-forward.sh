#!/usr/bin/env bash
# Port forwarding benchmark on loopback (release build), all in the same run, RUNS rounds,
# medians printed side by side with their anchors:
#  1. goodput of BYTES from a client program through a forward to a sink (the sink closes after
#     reading everything, so the time includes delivery), encrypted: msock `connect --local` +
#     `listen --forward` (with --psk-file) against `ssh -L` to a throwaway sshd (target: >= 1.5x);
#  2. the same with --no-encrypt against two socat relays (plaintext, two hops like the other
#     two; target: >= 0.8x), and direct TCP for reference;
#  3. time to first byte: N connections to a server that writes one byte at once, each timed
#     from connect() to the byte, through msock, through ssh -L, and direct.
# Usage: bash tests/bench-forward.sh [RUNS] [BYTES] [N]   (needs sshd, ssh, ssh-keygen, socat)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
RUNS=${1:-3}
BYTES=${2:-1073741824}
N=${3:-20}
for t in ssh ssh-keygen socat python3; do
    command -v "$t" >/dev/null || { echo "bench-forward: needs $t (apt-get install -y openssh-server openssh-client socat)" >&2; exit 2; }
done
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || { echo "bench-forward: needs sshd (apt-get install -y openssh-server)" >&2; exit 2; }
bench_build
bench_tmp

# The sink: reads everything, then closes (so the sender sees end of stream after delivery).
SINK=$(free_port)
socat -u "TCP-LISTEN:$SINK,bind=127.0.0.1,fork,reuseaddr" OPEN:/dev/null 2>/dev/null &
wait_port "$SINK" $!
# The greeter: writes one byte as soon as a connection is accepted.
GREET=$(free_port)
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128)
while True:
    c, _ = s.accept(); c.sendall(b"x"); c.close()
' "$GREET" &
wait_port "$GREET" $!

# A throwaway sshd (host and user keys of this run only) and ssh -L in front of it.
ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/user_key"
cp "$tmp/user_key.pub" "$tmp/authorized_keys"
SSH_PORT=$(free_port)
user=$(id -un)
cat >"$tmp/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $tmp/host_key
PidFile none
UsePAM no
AuthorizedKeysFile $tmp/authorized_keys
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers $user
EOF
[ "$user" = root ] && mkdir -p /run/sshd
"$SSHD" -D -e -f "$tmp/sshd_config" -p "$SSH_PORT" 2>"$tmp/sshd.err" &
wait_port "$SSH_PORT" $!
SSH_L=$(free_port); SSH_LG=$(free_port)
ssh -F /dev/null -i "$tmp/user_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o BatchMode=yes -o LogLevel=ERROR -N -p "$SSH_PORT" \
    -L "$SSH_L:127.0.0.1:$SINK" -L "$SSH_LG:127.0.0.1:$GREET" "$user@127.0.0.1" &
wait_port "$SSH_L" $!
wait_port "$SSH_LG" $!

# msock: a forwarding listener and a --local in front of it, per target and encryption setting.
echo "bench forward key" >"$tmp/psk"
msock_pair() { # NAME TARGET_PORT ARGS...: sets pair_port to the --local port (ARGS on both ends)
    "$MSOCK" listen -k 127.0.0.1:0 --forward "127.0.0.1:$2" "${@:3}" ${ANYONE:+"$ANYONE"} 2>"$tmp/$1.l.err" &
    local lp; lp=$(listen_port "$tmp/$1.l.err" $!)
    "$MSOCK" connect --local 0 "${@:3}" "127.0.0.1:$lp" 2>"$tmp/$1.c.err" &
    pair_port=$(listen_port "$tmp/$1.c.err" $!)
}
msock_pair enc "$SINK" --psk-file "$tmp/psk"; PORT_enc=$pair_port
ANYONE=--allow-anyone msock_pair plain "$SINK" --no-encrypt; PORT_plain=$pair_port
msock_pair greet "$GREET" --psk-file "$tmp/psk"; PORT_greet=$pair_port
# socat forwarding, two hops like the others (a client side and a server side relay).
SO2=$(free_port); SO1=$(free_port)
socat "TCP-LISTEN:$SO2,bind=127.0.0.1,fork,reuseaddr" "TCP:127.0.0.1:$SINK" 2>/dev/null &
wait_port "$SO2" $!
socat "TCP-LISTEN:$SO1,bind=127.0.0.1,fork,reuseaddr" "TCP:127.0.0.1:$SO2" 2>/dev/null &
wait_port "$SO1" $!

send() { # PORT: MB/s of BYTES sent to PORT until the sink closed
    local t0 t1; t0=$(now)
    head -c "$BYTES" /dev/zero | socat -t 60 -b 262144 - "TCP:127.0.0.1:$1" >/dev/null
    t1=$(now); mbps "$BYTES" $((t1 - t0))
}
ttfb() { # PORT: median ms from connect() to the first byte, over N connections
    python3 -c '
import socket, sys, time
port, n, t = int(sys.argv[1]), int(sys.argv[2]), []
for _ in range(n):
    t0 = time.perf_counter(); s = socket.create_connection(("127.0.0.1", port))
    assert s.recv(1) == b"x"; t.append((time.perf_counter() - t0) * 1e3); s.close()
t.sort(); print("%.2f" % t[(n - 1) // 2])
' "$1" "$N"
}

echo "forward benchmark: $RUNS rounds, $BYTES bytes, $N connections for time to first byte, $(nproc) cores"
enc=(); ssh=(); plain=(); so=(); direct=(); t_m=(); t_s=(); t_d=()
for i in $(seq "$RUNS"); do
    e=$(send "$PORT_enc"); s=$(send "$SSH_L"); p=$(send "$PORT_plain"); o=$(send "$SO1"); d=$(send "$SINK")
    tm=$(ttfb "$PORT_greet"); ts=$(ttfb "$SSH_LG"); td=$(ttfb "$GREET")
    enc+=("$e"); ssh+=("$s"); plain+=("$p"); so+=("$o"); direct+=("$d"); t_m+=("$tm"); t_s+=("$ts"); t_d+=("$td")
    printf 'round %d: encrypted msock %s MB/s, ssh -L %s MB/s; plaintext msock %s MB/s, socat %s MB/s, direct TCP %s MB/s; first byte msock %s ms, ssh -L %s ms, direct %s ms\n' \
        "$i" "$e" "$s" "$p" "$o" "$d" "$tm" "$ts" "$td"
done
me=$(median "${enc[@]}"); ms=$(median "${ssh[@]}"); mp=$(median "${plain[@]}"); mo=$(median "${so[@]}")
echo "median goodput, encrypted: msock --local/--forward $me MB/s vs ssh -L $ms MB/s: $(ratio "$me" "$ms")x (target >= 1.5)"
echo "median goodput, plaintext: msock --no-encrypt $mp MB/s vs socat forwarding $mo MB/s: $(ratio "$mp" "$mo")x (target >= 0.8); direct TCP $(median "${direct[@]}") MB/s"
echo "median time to first byte: msock $(median "${t_m[@]}") ms (new session per connection), ssh -L $(median "${t_s[@]}") ms (channel on an open connection), direct TCP $(median "${t_d[@]}") ms"
