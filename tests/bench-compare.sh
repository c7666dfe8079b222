#!/usr/bin/env bash
# Before/after: the benchmarks a change to the core, handshake or runtime can move, run for an
# earlier revision BASE and for the working tree, alternating in the same run (ROUNDS rounds;
# each round runs BASE first, then this tree), then the median of each figure side by side.
#  - `msock bench` (the built-in loopback comparison): goodput of plain TCP, msock over one
#    flowpath and over three;
#  - `tests/bench-loopback.sh BYTES 1`: msock session and --no-encrypt through stdin/stdout;
#  - `tests/bench-relay.sh BYTES 1 IDLE`: direct vs relayed goodput, setup times, and ten
#    active sessions alone and next to IDLE idle ones.
# BASE is checked out in a git worktree under target/bench-base/ and built there (both kept
# between runs, so that only what changed is rebuilt). Both sides run this tree's benchmark
# scripts (BENCH_PREBUILT points them at the side's build), so that a script fixed since BASE
# measures BASE too (BASE's own bench-relay.sh, before --max-sessions, could not open its idle
# sessions and stopped the whole comparison in its first round). A benchmark that fails is
# reported with the end of its output and its figures show as "-"; the others go on.
# Usage: bash tests/bench-compare.sh BASE [ROUNDS] [BYTES] [IDLE]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BASE=${1:?usage: bash tests/bench-compare.sh BASE [ROUNDS] [BYTES] [IDLE]}
ROUNDS=${2:-3}
BYTES=${3:-1073741824}
IDLE=${4:-1000}
bench_build --bin msock --example idle_sessions
bench_tmp
base_rev=$(git rev-parse --short "$BASE")
here_rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo +changes)"
# BASE's own target folder, seeded with this tree's built dependencies the first time; its
# tree's target/ is a link to it (older scripts build there).
BASE_TARGET=$TARGET/bench-base
BASE_TREE=$BASE_TARGET/tree
[ -d "$BASE_TARGET/release" ] || { mkdir -p "$BASE_TARGET" && cp -a "$TARGET/release" "$BASE_TARGET/"; }
if [ -d "$BASE_TREE" ]; then
    git -C "$BASE_TREE" checkout --quiet --detach "$BASE"
else
    git worktree add --quiet --detach "$BASE_TREE" "$BASE"
fi
ln -sfn "$BASE_TARGET" "$BASE_TREE/target"
(cd "$BASE_TREE" && CARGO_TARGET_DIR=$BASE_TARGET cargo build --release --quiet --bin msock --example idle_sessions)

# step SIDE ROUND KIND COMMAND...: runs COMMAND with its output in $tmp/SIDE.ROUND.KIND; if it
# fails, says so with the end of that output and goes on (its figures are then missing).
step() {
    local out=$tmp/$1.$2.$3 rc=0
    shift 3
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        echo "  ${out##*/} failed (exit $rc); its last lines:" >&2
        tail -5 "$out" | sed 's/^/    /' >&2
    fi
}

# run SIDE ROUND: one round of every benchmark for SIDE (base|here); figures go to
# $tmp/SIDE.ROUND.*.
run() {
    local side=$1 r=$2 target
    if [ "$side" = base ]; then target=$BASE_TARGET; else target=$TARGET; fi
    step "$side" "$r" bench "$target/release/msock" bench
    step "$side" "$r" loop env BENCH_PREBUILT="$target" bash tests/bench-loopback.sh "$BYTES" 1
    step "$side" "$r" relay env BENCH_PREBUILT="$target" bash tests/bench-relay.sh "$BYTES" 1 "$IDLE"
}

# figure SIDE KIND SED-REGEX: the figure (its \1) of every round of SIDE, one per line (a
# figure with a unit, "514.07 Mbit", in Gbit/s).
figure() {
    local r
    for r in $(seq "$ROUNDS"); do
        sed -n "s/$3/\1/p" "$tmp/$1.$r.$2" 2>/dev/null | head -1 |
            awk '{ v = $1; if ($2 == "Mbit") v /= 1000; if ($2 == "Kbit") v /= 1e6; print v }'
    done
}

echo "msock before/after: $base_rev (base) vs $here_rev (this tree), $ROUNDS rounds, $(nproc) cores"
for r in $(seq "$ROUNDS"); do
    for side in base here; do
        run "$side" "$r"
    done
    echo "round $r done"
done

# row NAME UNIT KIND SED-REGEX: the medians of both sides and their ratio.
row() {
    local b h
    # shellcheck disable=SC2046 # one figure per word
    b=$(median $(figure base "$3" "$4"))
    # shellcheck disable=SC2046
    h=$(median $(figure here "$3" "$4"))
    local q=-
    if [ -n "$b" ] && [ -n "$h" ] && [ "$b" != 0 ]; then q=$(ratio "$h" "$b"); fi
    printf '%-44s %10s %10s %s   %s\n' "$1" "${b:--}" "${h:--}" "$2" "$q"
    printf '%s\n' "  rounds: base $(figure base "$3" "$4" | tr '\n' ' ')/ here $(figure here "$3" "$4" | tr '\n' ' ')"
}
printf '%-44s %10s %10s %s   %s\n' "median of $ROUNDS" "$base_rev" "here" "unit" "here/base"
row "msock bench: plain TCP" Gbit/s bench '^│ plain TCP *┆ *[0-9]* ┆ *\([0-9.]* [GMK]bit\).*'
row "msock bench: msock, 1 flowpath" Gbit/s bench '^│ msock, 1 flowpath *┆ *[0-9]* ┆ *\([0-9.]* [GMK]bit\).*'
row "msock bench: msock, 3 flowpaths" Gbit/s bench '^│ msock, 3 flowpaths *┆ *[0-9]* ┆ *\([0-9.]* [GMK]bit\).*'
row "bench-loopback: msock session" MB/s loop '^msock session *\([0-9]*\) MB\/s.*'
row "bench-loopback: msock --no-encrypt" MB/s loop '^msock --no-encrypt *\([0-9]*\) .*'
row "bench-relay: direct" MB/s relay '^mean: *direct *\([0-9]*\) MB\/s.*'
row "bench-relay: through relay" MB/s relay '^mean: .*through relay *\([0-9]*\) MB\/s.*'
row "bench-relay: setup direct" ms relay '^direct \([0-9.]*\) ms.*'
row "bench-relay: setup through relay" ms relay '^direct .* through relay \([0-9.]*\) ms.*'
row "bench-relay: 10 active, alone" MB/s relay '^alone: *aggregate \([0-9]*\) MB\/s.*'
row "bench-relay: 10 active, with $IDLE idle" MB/s relay '^with [0-9]* idle: *aggregate \([0-9]*\) MB\/s.*'
row "bench-relay: relay RSS with idle" KiB relay '^with [0-9]* idle: .*relay RSS \([0-9]*\) KiB.*'
