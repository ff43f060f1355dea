#!/usr/bin/env bash
# Eviction benchmark: files/s fetched through a cache held at its quota (every fetch
# evicts) versus a cache with room (no quota pressure), same files, same run, release
# build. Run on demand as root (it mounts FUSE), not in CI:
#
#     bash tests/bench/eviction.sh
#
# A repository holds two packages of pseudo-random (incompressible) files: `filler`
# (FILLER_MB, to bring each cache up to its quota before timing) and `bench` (FILES files
# of 1 KiB to MAX_KB KiB). It is served by `stork-repo serve` on 127.0.0.1. Each side
# mounts storkfs on a fresh cache, reads all of `filler` (not timed), then reads all of
# `bench` with PAR parallel readers (cat, through xargs -P) and is timed. "at quota" mounts
# with quota=QUOTA_MB (well below filler + bench), "with room" with quota=100G. The sides
# alternate, RUNS times each; the table shows every run and the mean.
#
# Environment: FILES (3000), MAX_KB (128), FILLER_MB (64), QUOTA_MB (48), PAR (8),
# RUNS (2), KEEP=1 keeps the work directory, BENCH_DIR chooses where it is made (/tmp).
# Needs: cargo, python3, xargs, du, umount, and /dev/fuse.

set -euo pipefail

FILES=${FILES:-3000}
MAX_KB=${MAX_KB:-128}
FILLER_MB=${FILLER_MB:-64}
QUOTA_MB=${QUOTA_MB:-48}
PAR=${PAR:-8}
RUNS=${RUNS:-2}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

say() { echo "eviction.sh: $*" >&2; }

if [[ $(id -u) != 0 ]]; then
    say "run as root (it mounts FUSE filesystems)"
    exit 1
fi
for tool in cargo python3 xargs du umount; do
    command -v "$tool" >/dev/null || { say "$tool is needed"; exit 1; }
done

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/stork-evict-XXXXXX")
SERVER_PID=
MNT=$WORK/mnt
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount -l "$MNT" || true
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
    if [[ "${KEEP:-}" == 1 ]]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- 1. release build -------------------------------------------------------------------
say "building (release)"
(cd "$ROOT" && cargo build --release -q -p storkfs -p stork-cli)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
STORKFS=$TARGET/release/storkfs
REPO_BIN=$TARGET/release/stork-repo

# --- 2. the files and the repository ----------------------------------------------------
say "writing $FILES files of up to $MAX_KB KiB and $FILLER_MB MB of filler"
python3 - "$WORK" "$FILES" "$MAX_KB" "$FILLER_MB" <<'EOF'
import os, random, sys
work, files, max_kb, filler_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(42)
def write(path, n):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(rng.randbytes(n))
for i in range(files):
    write(f"{work}/bench/d{i % 50:02}/f{i:05}", rng.randint(1, max_kb) * 1024)
for i in range(filler_mb * 4):
    write(f"{work}/filler/f{i:05}", 256 * 1024)
EOF
BENCH_BYTES=$(du -sb "$WORK/bench" | cut -f1)
"$REPO_BIN" keygen --out "$WORK/key" >/dev/null 2>&1
"$REPO_BIN" init "$WORK/repo" --key "$WORK/key" >/dev/null 2>&1
for p in bench filler; do
    "$REPO_BIN" add "$WORK/repo" --key "$WORK/key" --name "$p" --version 1 "$WORK/$p" >/dev/null 2>&1
done
"$REPO_BIN" publish "$WORK/repo" --key "$WORK/key" >/dev/null 2>&1
KEY=$(cat "$WORK/key.pub")
cat >"$WORK/trust.toml" <<EOF
[repository]
key = "$KEY"

[[publisher]]
name = "bench"
key = "$KEY"
packages = ["*"]
EOF
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$REPO_BIN" serve "$WORK/repo" --listen "127.0.0.1:$PORT" --quiet 2>"$WORK/serve.log" &
SERVER_PID=$!
URL=http://127.0.0.1:$PORT/
for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('${URL}index.json')" 2>/dev/null && break
    sleep 0.1
done
mkdir -p "$MNT"

now() { echo "$EPOCHREALTIME"; }

# One side: $1 = label, $2 = quota; prints "seconds evicted bytes_used objects_fetched".
run_side() {
    local cache=$WORK/cache-$1-$RANDOM
    "$STORKFS" "$URL" "$MNT" -o "cache=$cache,trust=$WORK/trust.toml,socket=$WORK/ctl.sock,quota=$2,log=$WORK/storkfs.log,allow_other"
    find "$MNT/filler/1" -type f -print0 | xargs -0 -P "$PAR" -n 16 cat >/dev/null
    local t0 t1
    t0=$(now)
    find "$MNT/bench/1" -type f -print0 | xargs -0 -P "$PAR" -n 16 cat >/dev/null
    t1=$(now)
    local status
    status=$(cat "$MNT/.stork/status")
    umount "$MNT"
    rm -rf "$cache"
    python3 - "$t0" "$t1" "$status" <<'EOF'
import json, sys
s = json.loads(sys.argv[3])
print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f} {s['cache']['evicted']} {s['cache']['bytes_used']} {s['fetches']['objects']}")
EOF
}

declare -A RESULTS
for r in $(seq "$RUNS"); do
    say "run $r: with room"
    RESULTS[room,$r]=$(run_side room 100G)
    say "run $r: at quota (${QUOTA_MB}M)"
    RESULTS[quota,$r]=$(run_side quota "${QUOTA_MB}M")
done

# --- 3. the table -----------------------------------------------------------------------
echo
echo "Eviction benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), release build, cache on $(df -T "$WORK" | awk 'NR==2 {print $2}')"
awk -v f="$FILES" -v b="$BENCH_BYTES" -v fm="$FILLER_MB" -v q="$QUOTA_MB" -v p="$PAR" -v mk="$MAX_KB" 'BEGIN {
    printf "%d files, %.1f MB (1 to %d KiB each), read once with %d parallel readers after %d MB of filler; origin: stork-repo serve on 127.0.0.1\n", f, b / 1e6, mk, p, fm
    printf "at quota: quota=%dM, so every fetch evicts; with room: quota=100G\n", q
}'
echo
echo "| side      | run  |       s |  files/s |    MB/s | objects evicted | cache bytes at end |"
echo "|-----------|------|---------|----------|---------|-----------------|--------------------|"
for side in room quota; do
    label=$([[ $side == room ]] && echo "with room" || echo "at quota")
    sum=0
    for r in $(seq "$RUNS"); do
        read -r s ev used _ <<<"${RESULTS[$side,$r]}"
        awk -v n="$label" -v r="$r" -v s="$s" -v f="$FILES" -v b="$BENCH_BYTES" -v e="$ev" -v u="$used" 'BEGIN {
            printf "| %-9s | %4s | %7.2f | %8.0f | %7.1f | %15d | %18d |\n", n, r, s, f / s, b / 1e6 / s, e, u
        }'
        sum=$(awk -v a="$sum" -v s="$s" 'BEGIN {print a + s}')
    done
    awk -v n="$label" -v s="$sum" -v k="$RUNS" -v f="$FILES" -v b="$BENCH_BYTES" 'BEGIN {
        m = s / k; printf "| %-9s | mean | %7.2f | %8.0f | %7.1f |                 |                    |\n", n, m, f / m, b / 1e6 / m
    }'
done
