#!/usr/bin/env bash
# Slices benchmark (issue #5): `readlink /stork/PKG/current` and `storkctl pin` latency
# with 1,000 slices holding pins, against none. Run on demand (not in CI), as root:
#
#     cargo build --release --workspace && bash tests/bench/slices.sh
#
# It makes a small repository (lib 1.0, 2.0, 3.0; app 1.0 depending on 'lib (<< 3)'),
# serves it with `stork-repo serve` on 127.0.0.1, mounts it with `storkfs` (allow_other),
# and drives it with tests/bench/slices_client.py, which forks one child per uid and
# drops to that uid, so each request carries a real slice's uid (in the socket's peer
# credentials, and in the FUSE request for readlink).
#
# Measured, each before and after uids 20000..20999 pin (even uids lib@1.0, odd uids app,
# which pins lib 2.0 as automatic):
#   - readlink of /MNT/lib/current, READLINKS_PER_UID calls by each of the 1,000 uids
#     (checked: each uid sees 3.0 without pins, 1.0 or 2.0 with);
#   - a pin request on the control socket (connect, send, answer), by PIN_SAMPLES fresh
#     uids (30000.., each unpinning afterwards, so the number of slices holding pins
#     stays put);
#   - `storkctl pin lib@1.0` as a whole command (exec included), as root, STORKCTL_SAMPLES
#     times.
# Latencies are measured inside the calling process (time.perf_counter_ns).
#
# Environment: BIN (target/release), READLINKS_PER_UID (10), PIN_SAMPLES (200),
# STORKCTL_SAMPLES (100), KEEP=1 keeps the work directory, BENCH_DIR (/tmp).
# Needs: python3 (/usr/bin/python3), umount, a working /dev/fuse.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
PER_UID=${READLINKS_PER_UID:-10}
PIN_SAMPLES=${PIN_SAMPLES:-200}
STORKCTL_SAMPLES=${STORKCTL_SAMPLES:-100}
CLIENT=$ROOT/tests/bench/slices_client.py
PY=/usr/bin/python3

say() { echo "slices.sh: $*" >&2; }
die() { say "$*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (it mounts, and acts as 2,000 uids)"
[[ -x $PY ]] || die "$PY is needed"
for b in storkfs storkctl stork-repo; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing: run cargo build --release --workspace (or set BIN)"
done

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/stork-slices-XXXXXX")
chmod 755 "$WORK"
MNT=$WORK/mnt
SOCK=$WORK/ctl.sock
SERVER=
cleanup() {
    if mountpoint -q "$MNT" 2>/dev/null; then
        umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    fi
    [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null || true
    if [[ "${KEEP:-}" == 1 ]]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- 1. a repository, served --------------------------------------------------------------
say "making a repository in $WORK/repo"
R=$BIN/stork-repo
"$R" keygen --out "$WORK/repo.key" >/dev/null 2>&1
PUB=$("$R" keygen --out "$WORK/alice.key" 2>/dev/null)
"$R" init "$WORK/repo" --key "$WORK/repo.key" >/dev/null 2>&1
add() { # name version [depends]
    local src=$WORK/src/$1-$2
    mkdir -p "$src/bin"
    echo "$1 $2" >"$src/VERSION"
    printf '#!/bin/sh\necho %s %s\n' "$1" "$2" >"$src/bin/$1"
    chmod 755 "$src/bin/$1"
    local dep=()
    [[ -n ${3:-} ]] && dep=(--depends "$3")
    "$R" add "$WORK/repo" --key "$WORK/alice.key" --name "$1" --version "$2" "${dep[@]}" "$src" >/dev/null 2>&1
}
add lib 1.0
add lib 2.0
add lib 3.0
add app 1.0 'lib (<< 3)'
"$R" publish "$WORK/repo" --key "$WORK/repo.key" >/dev/null 2>&1

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$R" serve "$WORK/repo" --listen "127.0.0.1:$PORT" --quiet 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.log" >&2; die "stork-repo serve exited"; }
    sleep 0.1 # polling a server's start-up, not synchronising on it
done
cat >"$WORK/trust.toml" <<EOF
[repository]
key = "$(cat "$WORK/repo.key.pub")"

[[publisher]]
name = "alice"
key = "$PUB"
packages = ["*"]
EOF

# --- 2. the mount ---------------------------------------------------------------------------
mkdir -p "$MNT"
say "mounting on $MNT"
"$BIN/storkfs" "http://127.0.0.1:$PORT/" "$MNT" \
    -o "cache=$WORK/cache,trust=$WORK/trust.toml,socket=$SOCK,allow_other,log=$WORK/storkfs.log"
CTL=("$BIN/storkctl" --socket "$SOCK")
[[ $(readlink "$MNT/lib/current") == 3.0 ]] || die "lib/current is not 3.0"
"${CTL[@]}" prefetch app >/dev/null 2>&1 # manifests and files in, so no sample waits on HTTP
DAEMON=$("${CTL[@]}" status --json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
rss() { awk '/^VmRSS/ {print $2}' "/proc/$DAEMON/status"; }

client() { "$PY" "$CLIENT" "$@"; }

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 3. the runs ----------------------------------------------------------------------------
say "no slice holds a pin: readlink, 1,000 uids x $PER_UID"
RL0=$(client readlink "$MNT/lib/current" 20000 1000 "$PER_UID" 3.0 3.0)
say "no slice holds a pin: pin requests by $PIN_SAMPLES fresh uids"
PIN0=$(client pinunpin "$SOCK" 30000 "$PIN_SAMPLES")
say "no slice holds a pin: storkctl pin x $STORKCTL_SAMPLES"
CMD0=$(client storkctl "$BIN/storkctl" "$SOCK" "$STORKCTL_SAMPLES")
RSS0=$(rss)

say "1,000 slices pin (uids 20000..20999)"
MAKE=$(client pin "$SOCK" 20000 1000)
n=$("${CTL[@]}" list --json | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))')
[[ $n == 2 ]] || die "list shows $n packages"

say "1,000 slices hold pins: readlink, 1,000 uids x $PER_UID"
RL1=$(client readlink "$MNT/lib/current" 20000 1000 "$PER_UID" 1.0 2.0)
say "1,000 slices hold pins: pin requests by $PIN_SAMPLES fresh uids"
PIN1=$(client pinunpin "$SOCK" 31000 "$PIN_SAMPLES")
say "1,000 slices hold pins: storkctl pin x $STORKCTL_SAMPLES"
CMD1=$(client storkctl "$BIN/storkctl" "$SOCK" "$STORKCTL_SAMPLES")
RSS1=$(rss)
[[ $(readlink "$MNT/lib/current") == 3.0 ]] || die "root's lib/current moved"

# --- 4. the table ---------------------------------------------------------------------------
row() { # label json-none json-1000
    "$PY" - "$1" "$2" "$3" <<'EOF'
import json, sys
label, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {label:<34} | {a['n']:>6} | {a['p50_us']:>9.1f} | {a['p99_us']:>9.1f} | {b['p50_us']:>9.1f} | {b['p99_us']:>9.1f} |")
EOF
}
echo
echo "Slices benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r), binaries in $BIN"
echo
echo "Latency in µs; 'none': no slice holds a pin; '1,000': uids 20000..20999 hold pins."
echo "Load average at the start: $LOAD."
echo
echo "| operation                          |      n | none p50  | none p99  | 1,000 p50 | 1,000 p99 |"
echo "|------------------------------------|--------|-----------|-----------|-----------|-----------|"
row "readlink lib/current (1,000 uids)" "$RL0" "$RL1"
row "pin request on the socket" "$PIN0" "$PIN1"
row "storkctl pin (whole command, root)" "$CMD0" "$CMD1"
echo
"$PY" - "$MAKE" "$RSS0" "$RSS1" <<'EOF'
import json, sys
m = json.loads(sys.argv[1])
print(f"Making the 1,000 pins (0 -> 1,000 slices, one request each): p50 {m['p50_us']:.1f} µs, p99 {m['p99_us']:.1f} µs, max {m['max_us']:.1f} µs.")
print(f"storkfs resident memory: {int(sys.argv[2]) / 1024:.1f} MiB before the pins, {int(sys.argv[3]) / 1024:.1f} MiB with them.")
EOF
