#!/usr/bin/env bash
# Ingest benchmark: `stork-repo add` of a real tree versus `tar | zstd -T0 -3` of the same
# tree, on this machine. Run on demand (not in CI):
#
#     bash tests/bench/ingest.sh
#
# The tree is a copy (cp -a) of whole top-level entries of /usr/lib, /usr/share and
# /usr/bin, taken in sorted order until it holds at least MIN_FILES regular files and
# MIN_MB megabytes (10^6 bytes); entries over MAX_ENTRY_MB, and entries holding special
# files or non-UTF-8 names (which ingest refuses by design), are passed over.
#
# Each side runs twice and the second (warm page cache) run is reported; the first is
# shown for reference (it is not cold either: the tree was just copied, so most of it is
# in the page cache). Every add goes into a fresh repository on the same filesystem and
# ends with its syncfs; tar | zstd writes nothing (its output goes to /dev/null).
#
# Environment: MIN_FILES (20000), MIN_MB (500), MAX_ENTRY_MB (300), KEEP=1 keeps the work
# directory, BENCH_DIR chooses where it is made (default: /tmp).
# Needs: cargo, cp, find, du, tar, zstd.

set -euo pipefail

MIN_FILES=${MIN_FILES:-20000}
MIN_MB=${MIN_MB:-500}
MAX_ENTRY_MB=${MAX_ENTRY_MB:-300}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

for tool in cargo cp find du tar zstd; do
    command -v "$tool" >/dev/null || { echo "ingest.sh: $tool is needed" >&2; exit 1; }
done

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/stork-bench-XXXXXX")
cleanup() {
    if [[ "${KEEP:-}" == 1 ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
TREE=$WORK/tree
mkdir -p "$TREE"

say() { echo "ingest.sh: $*" >&2; }

# --- 1. the tree ------------------------------------------------------------------------
say "building a tree of >= $MIN_FILES files and >= $MIN_MB MB in $TREE"
files=0
bytes=0
min_bytes=$((MIN_MB * 1000000))
max_entry=$((MAX_ENTRY_MB * 1000000))
while IFS= read -r -d '' src; do
    if ((files >= MIN_FILES && bytes >= min_bytes)); then
        break
    fi
    [[ -r "$src" ]] || continue
    b=$(du -sb "$src" 2>/dev/null | cut -f1) || continue
    ((b <= max_entry)) || continue
    # Sockets, FIFOs, devices, and names that are not UTF-8: ingest refuses those.
    if [[ -n "$(find "$src" ! -type f ! -type d ! -type l -print -quit 2>/dev/null)" ]]; then
        continue
    fi
    if [[ -n "$(LC_ALL=C find "$src" -name "$(printf '*[\x80-\xff]*')" -print -quit 2>/dev/null)" ]]; then
        continue
    fi
    n=$(find "$src" -type f | wc -l)
    # (not `cp -a --parents`: coreutils 9.1 fails on it with "'usr/bin': No such file")
    mkdir -p "$TREE$(dirname "$src")"
    cp -a "$src" "$TREE$(dirname "$src")/"
    files=$((files + n))
    bytes=$((bytes + b))
done < <(find /usr/lib /usr/share /usr/bin -mindepth 1 -maxdepth 1 -print0 | sort -z)
FILES=$(find "$TREE" -type f | wc -l)
BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
if ((FILES < MIN_FILES || BYTES < min_bytes)); then
    say "only $FILES files, $BYTES bytes under /usr: lower MIN_FILES/MIN_MB or raise MAX_ENTRY_MB"
    exit 1
fi
TREE_DISK=$(du -sk "$TREE" | cut -f1)
say "tree: $FILES regular files, $BYTES bytes of file content, $(find "$TREE" | wc -l) entries"

# --- 2. stork-repo, release build -------------------------------------------------------
say "building stork-repo (release)"
(cd "$ROOT" && cargo build --release -q -p stork-cli --bin stork-repo)
REPO_BIN=$ROOT/target/release/stork-repo
[[ -n "${CARGO_TARGET_DIR:-}" ]] && REPO_BIN=$CARGO_TARGET_DIR/release/stork-repo
"$REPO_BIN" keygen --out "$WORK/key" >/dev/null 2>&1

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }

run_add() { # $1 = run number; prints seconds
    local repo=$WORK/repo$1
    "$REPO_BIN" init "$repo" --key "$WORK/key" 2>/dev/null
    local t0 t1
    t0=$(now)
    "$REPO_BIN" add "$repo" --key "$WORK/key" --name bench --version "$1" "$TREE" \
        >/dev/null 2>"$WORK/add$1.log" || { cat "$WORK/add$1.log" >&2; exit 1; }
    t1=$(now)
    elapsed "$t0" "$t1"
}

run_tar() {
    local t0 t1
    t0=$(now)
    tar -C "$TREE" -cf - . | zstd -q -T0 -3 >/dev/null
    t1=$(now)
    elapsed "$t0" "$t1"
}

# --- 3. the runs ------------------------------------------------------------------------
say "stork-repo add, run 1"
ADD1=$(run_add 1)
say "stork-repo add, run 2 (warm)"
ADD2=$(run_add 2)
say "tar | zstd -T0 -3, run 1"
TAR1=$(run_tar)
say "tar | zstd -T0 -3, run 2 (warm)"
TAR2=$(run_tar)

REPO=$WORK/repo2
"$REPO_BIN" verify "$REPO" >/dev/null 2>"$WORK/verify.log" || { cat "$WORK/verify.log" >&2; exit 1; }
REPO_DISK=$(du -sk "$REPO" | cut -f1)
REPO_BYTES=$(du -sb "$REPO" | cut -f1)
OBJECTS=$(find "$REPO/objects" -type f | wc -l)
ZST=$(tar -C "$TREE" -cf - . | zstd -q -T0 -3 | wc -c)

# --- 4. the table -----------------------------------------------------------------------
MB=$(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1e6}')
row() { # name seconds first-run-seconds
    awk -v n="$1" -v s="$2" -v c="$3" -v f="$FILES" -v mb="$MB" 'BEGIN {
        printf "| %-22s | %7d | %8.1f | %7.2f | %9.0f | %7.1f | %8.2f |\n", n, f, mb, s, f / s, mb / s, c
    }'
}
echo
echo "Ingest benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(df -T "$WORK" | awk 'NR==2 {print $2}') at $WORK"
echo "Tree: a cp -a copy of whole entries of /usr/lib, /usr/share, /usr/bin. Reported: the second (warm page cache) run of each side; 'run 1 s' is the first (also mostly cached)."
echo
echo "| side                   |   files |       MB |       s |   files/s |    MB/s |  run 1 s |"
echo "|------------------------|---------|----------|---------|-----------|---------|----------|"
row "stork-repo add" "$ADD2" "$ADD1"
row "tar -c + zstd -T0 -3" "$TAR2" "$TAR1"
echo
awk -v td="$TREE_DISK" -v b="$BYTES" -v rd="$REPO_DISK" -v rb="$REPO_BYTES" -v o="$OBJECTS" -v z="$ZST" 'BEGIN {
    printf "Tree: %.1f MB of file content, %.1f MB on disk.\n", b / 1e6, td * 1024 / 1e6
    printf "Repository: %.1f MB apparent, %.1f MB on disk (%.0f%% of the tree on disk), %d objects.\n", rb / 1e6, rd * 1024 / 1e6, 100 * rd / td, o
    printf "tar | zstd -3 output: %.1f MB.\n", z / 1e6
}'
