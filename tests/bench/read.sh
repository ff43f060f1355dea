#!/usr/bin/env bash
# Read benchmark for the mount, each figure beside its baseline from the same run:
#
#   1. warm sequential read of a 512 MB file through the mount   vs the same bytes read
#      from the cache's own files (page cache warm; and again after drop_caches);
#   2. warm full read of a 20,000-file tree through the mount    vs the same tree on
#      local disk (page cache warm);
#   3. cold full read over loopback (empty cache)                vs curl fetching the same
#      objects from the same server, one connection, in order.
#
# Run on demand, as root (not in CI):  bash tests/bench/read.sh
# Environment: FILES (20000), BIG_MB (512), KEEP=1 keeps the work directory.
set -euo pipefail
FILES=${FILES:-20000}
BIG_MB=${BIG_MB:-512}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { echo "read.sh: $*" >&2; }

WORK=$(mktemp -d /tmp/stork-read-XXXXXX)
MNT=$WORK/mnt
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT" || true
    [[ -n "${SERVER:-}" ]] && kill "$SERVER" 2>/dev/null || true
    [[ "${KEEP:-}" == 1 ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

say "building release binaries"
(cd "$ROOT" && cargo build --release --workspace --quiet)
BIN=$ROOT/target/release

say "making a tree of $FILES real files (from /usr/share and /usr/lib) and a $BIG_MB MB file"
mkdir -p "$WORK/tree" "$WORK/big" "$MNT"
n=0
while IFS= read -r -d '' f; do
    rel=${f#/}
    mkdir -p "$WORK/tree/$(dirname "$rel")"
    cp -p "$f" "$WORK/tree/$rel"
    n=$((n + 1))
    ((n >= FILES)) && break
done < <(LC_ALL=C find /usr/share /usr/lib -type f -size -2M ! -name '*[! -~]*' -print0 2>/dev/null)
head -c $((BIG_MB * 1048576)) /dev/urandom >"$WORK/big/big.bin"
TREE_BYTES=$(find "$WORK/tree" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
say "tree: $n files, $TREE_BYTES bytes"

cd "$WORK"
"$BIN/stork-repo" keygen --out repo.key >/dev/null 2>&1
"$BIN/stork-repo" keygen --out pub.key >/dev/null 2>&1
"$BIN/stork-repo" init repo --key repo.key 2>/dev/null
"$BIN/stork-repo" add repo --key pub.key --name tree --version 1 tree 2>/dev/null
"$BIN/stork-repo" add repo --key pub.key --name big --version 1 big 2>/dev/null
"$BIN/stork-repo" publish repo --key repo.key 2>/dev/null
cat >trust.toml <<T
[repository]
key = "$(cat repo.key.pub)"
[[publisher]]
name = "p"
key = "$(cat pub.key.pub)"
packages = ["*"]
T
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/stork-repo" serve repo --listen "127.0.0.1:$PORT" --quiet &
SERVER=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/index.json" >/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT/

# The object files of a package, in manifest order (what a full read fetches).
objects_of() {
    python3 - "$WORK/repo" "$1" <<'PY'
import json, sys, os
repo, name = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(repo, "index.json")))
for r in idx["signed"]["packages"]:
    if r["name"] != name:
        continue
    b = r["manifest"]
    p = os.path.join(repo, "objects", b["sha256"][:2], b["sha256"] + (".zst" if "zstd" in b else ""))
    raw = open(p, "rb").read()
    if "zstd" in b:
        import subprocess
        raw = subprocess.run(["zstd", "-dc"], input=raw, capture_output=True, check=True).stdout
    m = json.loads(raw)
    seen = set()
    for e in m["entries"]:
        if e["kind"] != "file" or e["size"] == 0:
            continue
        blobs = e.get("chunks") or [{"sha256": e["sha256"], **({"zstd": e["zstd"]} if "zstd" in e else {})}]
        for c in blobs:
            path = "objects/%s/%s%s" % (c["sha256"][:2], c["sha256"], ".zst" if "zstd" in c else "")
            if path not in seen:
                seen.add(path)
                print(path)
PY
}

secs() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
now() { date +%s.%N; }
timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); secs "$t0" "$t1"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
curl_all() {
    local list=$1
    { while read -r p; do printf 'url = "%s%s"\noutput = "/dev/null"\n' "$URL" "$p"; done <"$list"; } >"$list.curl"
    curl -s -K "$list.curl"
}
read_tree() { tar -C "$1" -cf - . | cat >/dev/null; }

objects_of tree >tree.objects
objects_of big >big.objects

mount_it() {
    "$BIN/storkfs" "$URL" "$MNT" -o "cache=$WORK/cache,trust=$WORK/trust.toml,socket=$WORK/ctl.sock,log=$WORK/storkfs.log,quota=100G"
}

say "3. cold reads over loopback (empty cache) vs curl"
drop
CURL_TREE=$(timed curl_all tree.objects)
CURL_BIG=$(timed curl_all big.objects)
rm -rf "$WORK/cache"
mount_it
ls "$MNT/tree/1" "$MNT/big/1" >/dev/null
drop
COLD_TREE=$(timed read_tree "$MNT/tree/1")
COLD_BIG=$(timed cat "$MNT/big/1/big.bin")
FETCHED=$(STORK_SOCKET=$WORK/ctl.sock "$BIN/storkctl" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["fetches"]["objects"], s["fetches"]["bytes"])')
say "fetched objects, bytes: $FETCHED"

say "2. warm full read of the tree vs local disk"
read_tree "$MNT/tree/1"; read_tree "$WORK/tree"
WARM_TREE=$(timed read_tree "$MNT/tree/1")
LOCAL_TREE=$(timed read_tree "$WORK/tree")

say "1. sequential read of the big file vs the cache's own files"
cache_files() { while read -r p; do h=$(basename "$p" .zst); echo "$WORK/cache/objects/${h:0:2}/$h"; done <big.objects; }
cache_files >big.cachefiles
cat_cache() { xargs cat <big.cachefiles >/dev/null; }
cat "$MNT/big/1/big.bin" >/dev/null; cat_cache
WARM_BIG=$(timed cat "$MNT/big/1/big.bin")
CACHE_BIG=$(timed cat_cache)
drop
DISK_BIG=$(timed cat "$MNT/big/1/big.bin")
drop
DISK_CACHE=$(timed cat_cache)
umount "$MNT"

BIGB=$((BIG_MB * 1048576))
rate() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) / 1e6 / max(float(sys.argv[2]), 1e-9)))" "$1" "$2"; }
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9)))" "$1" "$2"; }
printf '\n| measurement | through the mount | baseline | baseline is | mount time / baseline |\n|---|---|---|---|---|\n'
printf "| $BIG_MB MB file, warm page cache | %ss (%s MB/s) | %ss (%s MB/s) | cat of the cache files | %s |\n" "$WARM_BIG" "$(rate $BIGB $WARM_BIG)" "$CACHE_BIG" "$(rate $BIGB $CACHE_BIG)" "$(ratio $WARM_BIG $CACHE_BIG)"
printf "| $BIG_MB MB file, after drop_caches | %ss (%s MB/s) | %ss (%s MB/s) | cat of the cache files | %s |\n" "$DISK_BIG" "$(rate $BIGB $DISK_BIG)" "$DISK_CACHE" "$(rate $BIGB $DISK_CACHE)" "$(ratio $DISK_BIG $DISK_CACHE)"
printf "| %s-file tree, warm | %ss | %ss | tar of the same tree on local disk | %s |\n" "$n" "$WARM_TREE" "$LOCAL_TREE" "$(ratio $WARM_TREE $LOCAL_TREE)"
printf "| %s-file tree, cold over loopback | %ss | %ss | curl of the same objects, one connection | %s |\n" "$n" "$COLD_TREE" "$CURL_TREE" "$(ratio $COLD_TREE $CURL_TREE)"
printf "| $BIG_MB MB file, cold over loopback | %ss | %ss | curl of the same objects, one connection | %s |\n" "$COLD_BIG" "$CURL_BIG" "$(ratio $COLD_BIG $CURL_BIG)"
