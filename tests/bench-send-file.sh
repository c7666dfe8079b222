#!/usr/bin/env bash
# File-transfer benchmark against what people use: `msock send-file` to `msock listen
# --save-dir` (hashing, fsync and rename included) side by side with `scp` and `rsync -a
# --partial -e ssh` to a throwaway sshd on 127.0.0.1 (keys made for the run), and `nc` into a
# file (with and without a `sync` of it) for the big file. Four cases, each tool in turn in the
# same round, RUNS rounds, medians:
#   file     one BYTES-sized file (default 1 GiB)
#   file+r   the same, interrupted (sender killed) at half, then run again: the second run's
#            time (msock and rsync resume; scp sends everything again)
#   folder   a folder of FILES files of 4 KiB (default 10,000)
#   folder+r the folder, interrupted at half, then run again: the second run's time
# Times are the sender's wall time (msock's sender exits once every file is verified, synced
# and renamed on the receiver; scp and rsync do not sync). Prints the load average, since the
# numbers are only comparable within one run.
# Usage: bash tests/bench-send-file.sh [BYTES] [RUNS] [DIR] [FILES]   (DIR: where files go;
# default a temporary folder under $TMPDIR)
# Needs sshd (openssh-server), ssh, scp and rsync for those columns (apt-get install -y
# openssh-server openssh-client rsync); without them, their columns say "-". sshd run as root
# needs /run/sshd, made here.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BYTES=${1:-1073741824}
RUNS=${2:-3}
BASE=${3:-${TMPDIR:-/tmp}}
FILES=${4:-10000}
bench_build
bench_tmp "$BASE"

SSHD=$(command -v sshd || echo /usr/sbin/sshd)
have_ssh=1
for p in ssh scp ssh-keygen; do command -v "$p" >/dev/null || have_ssh=0; done
[ -x "$SSHD" ] || have_ssh=0
have_rsync=$have_ssh
command -v rsync >/dev/null || have_rsync=0
[ "$have_ssh" = 1 ] || echo "SKIPPED: scp and rsync columns: sshd/ssh missing (apt-get install -y openssh-server openssh-client)"
[ "$have_rsync" = 1 ] || echo "SKIPPED: rsync column: rsync or sshd missing (apt-get install -y rsync openssh-server)"

# The throwaway sshd (as tests/common/sshd.rs starts it).
if [ "$have_ssh" = 1 ]; then
    k=$tmp/ssh; mkdir -p "$k"
    ssh-keygen -q -t ed25519 -N "" -C msock-bench -f "$k/host_key"
    ssh-keygen -q -t ed25519 -N "" -C msock-bench -f "$k/user_key"
    cp "$k/user_key.pub" "$k/authorized_keys"
    user=$(id -un)
    cat >"$k/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $k/host_key
PidFile none
UsePAM no
AuthorizedKeysFile $k/authorized_keys
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers $user
Subsystem sftp internal-sftp
EOF
    [ "$(id -u)" = 0 ] && mkdir -p /run/sshd
    sport=$(free_port)
    "$SSHD" -D -e -f "$k/sshd_config" -p "$sport" 2>"$tmp/sshd.err" &
    spid=$!
    wait_line "$tmp/sshd.err" '^\(Server listening on 127.0.0.1\)' "$spid" >/dev/null
    SSH_OPTS=(-F /dev/null -i "$k/user_key" -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR)
    RSYNC_RSH="ssh ${SSH_OPTS[*]} -p $sport"
    export RSYNC_RSH
fi

echo "making the sources: one $BYTES-byte file, $FILES files of 4 KiB"
head -c "$BYTES" /dev/urandom >"$tmp/src.bin"
mkdir -p "$tmp/tree"
head -c $((FILES * 4096)) /dev/urandom | (cd "$tmp/tree" && split -b 4096 -a 6 -d - f)
mkdir -p "$tmp/dst"
sync

# bytes_in DIR: bytes of all files under DIR (hidden and partial ones included).
bytes_in() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# sender TOOL SRC: sets cmd to the command that sends SRC to "$tmp/dst" (for msock, to the
# listener on $port).
sender() {
    case $1 in
    msock) cmd=("$MSOCK" send-file -q "$2" "127.0.0.1:$port") ;;
    scp) cmd=(scp -q -r "${SSH_OPTS[@]}" -P "$sport" "$2" "$user@127.0.0.1:$tmp/dst/") ;;
    rsync) cmd=(rsync -a --partial "$2" "$user@127.0.0.1:$tmp/dst/") ;;
    esac
}

# run TOOL SRC HALF: fresh (HALF empty) or interrupted at HALF bytes and run again; prints the
# (second) run's nanoseconds. The receiving side is fresh and empty each time.
run() {
    local tool=$1 src=$2 half=$3 lpid="" t0 t1 pid cmd
    rm -rf "$tmp/dst"; mkdir -p "$tmp/dst"; sync
    if [ "$tool" = msock ]; then
        rm -f "$tmp/l.err"
        "$MSOCK" listen 127.0.0.1:0 -k --resume-timeout 1m --save-dir "$tmp/dst" 2>"$tmp/l.err" &
        lpid=$!; port=$(listen_port "$tmp/l.err" "$lpid")
    fi
    if [ -n "$half" ]; then
        sender "$tool" "$src"
        "${cmd[@]}" </dev/null >/dev/null 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null && [ "$(bytes_in "$tmp/dst")" -lt "$half" ]; do
            sleep 0.01
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        # rsync's ssh child goes on its own: wait until nothing grows any more.
        local was=-1 is; is=$(bytes_in "$tmp/dst")
        while [ "$is" != "$was" ]; do sleep 0.2; was=$is; is=$(bytes_in "$tmp/dst"); done
        echo "$is" >"$tmp/held"
    fi
    sender "$tool" "$src"
    t0=$(now)
    "${cmd[@]}" </dev/null >&2
    t1=$(now)
    [ -n "$lpid" ] && { kill "$lpid" 2>/dev/null || true; wait "$lpid" 2>/dev/null || true; }
    if [ -d "$src" ]; then
        diff -rq "$src" "$tmp/dst/$(basename "$src")" >/dev/null || { echo "$tool: received folder differs!" >&2; exit 1; }
    else
        cmp -s "$src" "$tmp/dst/$(basename "$src")" || { echo "$tool: received file differs!" >&2; exit 1; }
    fi
    echo $((t1 - t0))
}

tools=(msock)
[ "$have_ssh" = 1 ] && tools+=(scp)
[ "$have_rsync" = 1 ] && tools+=(rsync)
cases=(file file+r folder folder+r)
declare -A res held
nc_t=(); nc_s=()
echo "send-file benchmark: $RUNS rounds, $(nproc) cores, files in $BASE; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
    # nc into a file, and that file synced: the floor for the big file.
    rm -rf "$tmp/dst"/* "$tmp/nc.out"; sync
    nport=$(free_port)
    nc -l 127.0.0.1 "$nport" >"$tmp/nc.out" &
    npid=$!; wait_port "$nport" "$npid"
    t0=$(now); nc -N 127.0.0.1 "$nport" <"$tmp/src.bin"; wait "$npid"; t1=$(now)
    sync -f "$tmp/nc.out"; t2=$(now)
    nc_t+=("$((t1 - t0))"); nc_s+=("$((t2 - t0))")
    rm -f "$tmp/nc.out"
    line="round $i:"
    for c in "${cases[@]}"; do
        case $c in
        file) src=$tmp/src.bin half= ;;
        file+r) src=$tmp/src.bin half=$((BYTES / 2)) ;;
        folder) src=$tmp/tree half= ;;
        folder+r) src=$tmp/tree half=$((FILES * 4096 / 2)) ;;
        esac
        for t in "${tools[@]}"; do
            ns=$(run "$t" "$src" "$half")
            res[$c.$t]="${res[$c.$t]:-} $ns"
            [ -n "$half" ] && held[$c.$t]="${held[$c.$t]:-} $(cat "$tmp/held")"
            line+=" $c $t $(awk -v n="$ns" 'BEGIN { printf "%.2f", n / 1e9 }') s;"
        done
    done
    echo "$line"
done

secs() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1e9 }'; }
echo
echo "medians of $RUNS rounds (seconds; lower is better), load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s' case; for t in "${tools[@]}"; do printf '%10s' "$t"; done
printf '%14s%14s\n' "scp/msock" "rsync/msock"
for c in "${cases[@]}"; do
    printf '%-10s' "$c"
    declare -A med=()
    for t in "${tools[@]}"; do
        # shellcheck disable=SC2086 # one number a word
        med[$t]=$(median ${res[$c.$t]})
        printf '%10s' "$(secs "${med[$t]}")"
    done
    for t in scp rsync; do
        if [ -n "${med[$t]:-}" ]; then printf '%14s' "$(ratio "${med[$t]}" "${med[msock]}")"; else printf '%14s' -; fi
    done
    echo
    unset med
done
for c in file+r folder+r; do
    for t in "${tools[@]}"; do
        # shellcheck disable=SC2086
        echo "  $c $t: interrupted with $(median ${held[$c.$t]}) bytes on the receiver (median)"
    done
done
mt=$(median "${nc_t[@]}"); ms=$(median "${nc_s[@]}")
# shellcheck disable=SC2086
mf=$(median ${res[file.msock]})
echo "big file: nc $(mbps "$BYTES" "$mt") MB/s ($(mbps "$BYTES" "$ms") with its file synced), msock send-file $(mbps "$BYTES" "$mf") MB/s"
