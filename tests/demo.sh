#!/usr/bin/env bash
# The Stork demo: build, make a repository of real packages (Debian .debs and a Python
# library from PyPI), serve it on 127.0.0.1, mount it, use it as two slices (two uids),
# and show what was fetched and what the cache holds. As root, on Debian 12 with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

demo=${STORK_DEMO_DIR:-/tmp/stork-demo}
mnt=$demo/stork
sock=$demo/ctl.sock
if mountpoint -q "$mnt" 2>/dev/null; then umount -l "$mnt"; fi
rm -rf "$demo"
mkdir -p "$demo"/{debs,wheels,py,mnt}
mkdir -p "$mnt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    mountpoint -q "$mnt" 2>/dev/null && umount "$mnt" || true
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
}
trap cleanup EXIT

say "Fetching real packages: Debian .debs and Python wheels"
(cd "$demo/debs" && apt-get download -q hello jq libjq1 libonig5 tree >/dev/null)
ls "$demo/debs"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$demo/wheels" \
    requests urllib3 idna certifi charset-normalizer >/dev/null
ls "$demo/wheels"
for w in "$demo"/wheels/*.whl; do
    name=$(basename "$w" | cut -d- -f1 | tr '_' '-' | tr 'A-Z' 'a-z')
    python3 -m zipfile -e "$w" "$demo/py/$name"
done

say "A publisher makes keys, a repository, and signs packages into it"
cd "$demo"
run stork-repo keygen --out repo.key
run stork-repo keygen --out debian.key
run stork-repo keygen --out pypi.key
run stork-repo init repo --key repo.key
for d in debs/*.deb; do
    stork-repo add repo --key debian.key "$d"
done
ver() { ls "$demo/wheels" | grep -i "^$1-" | cut -d- -f2; }
stork-repo add repo --key pypi.key --name python3-urllib3 --version "$(ver urllib3)" py/urllib3
stork-repo add repo --key pypi.key --name python3-idna --version "$(ver idna)" py/idna
stork-repo add repo --key pypi.key --name python3-certifi --version "$(ver certifi)" py/certifi
stork-repo add repo --key pypi.key --name python3-charset-normalizer --version "$(ver charset_normalizer)" py/charset-normalizer
stork-repo add repo --key pypi.key --name python3-requests --version "$(ver requests)" \
    --depends 'python3-urllib3 (>= 1.21.1)' --depends python3-idna --depends python3-certifi \
    --depends python3-charset-normalizer py/requests
run stork-repo publish repo --key repo.key
run stork-repo verify repo

say "Serving it over HTTP on 127.0.0.1:$port (any static web server would do)"
stork-repo serve repo --listen "127.0.0.1:$port" --quiet &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/index.json" >/dev/null && break; sleep 0.1; done

say "The admin trusts the repository key for freshness, each publisher for its packages"
cat > trust.toml <<TOML
[repository]
key = "$(cat repo.key.pub)"

[[publisher]]
name = "debian"
key = "$(cat debian.key.pub)"
packages = ["hello", "jq", "libjq1", "libonig5", "tree"]

[[publisher]]
name = "pypi"
key = "$(cat pypi.key.pub)"
packages = ["python3-*"]
TOML
cat trust.toml

say "Mounting (returns once the mount is ready)"
run storkfs "http://127.0.0.1:$port/" "$mnt" \
    -o "ro,allow_other,cache=$demo/cache,trust=$demo/trust.toml,socket=$sock,log=$demo/storkfs.log"
run ls "$mnt"
run ls -l "$mnt/jq"
export STORK_SOCKET=$sock
run storkctl list

arch_lib=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
slice() { local uid=$1; shift; setpriv --reuid="$uid" --regid="$uid" --clear-groups env STORK_SOCKET="$sock" "$@"; }

say "Slice A (uid 1001) pins jq; its libraries are pinned with it"
run slice 1001 storkctl pin jq
run slice 1001 storkctl pins
run slice 1001 env LD_LIBRARY_PATH="$mnt/libjq1/current$arch_lib:$mnt/libonig5/current$arch_lib" \
    "$mnt/jq/current/usr/bin/jq" -n '{stork: "works", slices: 2}'

say "Slice B (uid 1002) runs hello and imports requests from the mount"
run slice 1002 "$mnt/hello/current/usr/bin/hello" -g "hello from slice B"
pp="$mnt/python3-requests/current:$mnt/python3-urllib3/current:$mnt/python3-idna/current:$mnt/python3-certifi/current:$mnt/python3-charset-normalizer/current"
run slice 1002 env PYTHONPATH="$pp" python3 -c 'import requests; print("requests", requests.__version__, "from", requests.__file__)'

say "Slice A runs the same hello: already verified and cached, nothing is fetched"
before=$(storkctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fetches"]["objects"])')
run slice 1001 "$mnt/hello/current/usr/bin/hello"
after=$(storkctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fetches"]["objects"])')
echo "objects fetched by slice A's run: $((after - before))"

say "What was fetched, and what the cache holds"
run storkctl status
repo_n=$(find repo/objects -type f | wc -l)
repo_bytes=$(find repo/objects -type f -printf '%s\n' | awk '{s += $1} END {print s}')
cache_n=$(find cache/objects -type f | wc -l)
cache_bytes=$(find cache/objects -type f -printf '%s\n' | awk '{s += $1} END {print s}')
echo "the repository holds $repo_n objects ($repo_bytes bytes, compressed where it helps);"
echo "this node fetched and holds only what the slices read: $cache_n objects ($cache_bytes bytes, uncompressed),"
echo "each content once however many slices read it"

say "Unmounting"
run umount "$mnt"
kill "$server"; server=
echo "demo finished; everything is in $demo"
