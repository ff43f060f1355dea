#!/usr/bin/env bash
# Installs what Stork's demo and tests need on a fresh Debian 12 machine with Rust, as
# root, builds the workspace, and puts storkfs, storkctl and stork-repo on PATH
# (/usr/local/bin) so that mount(8) finds storkfs for fstab lines of type fuse.storkfs.
#
#   tests/setup.sh            # debug build (what the tests use)
#   PROFILE=release tests/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (FUSE mounts, nginx, squid and setpriv need it)" >&2
    exit 1
fi

need=(fuse3 nginx-light squid curl ca-certificates openssl xz-utils zstd dpkg-dev python3 util-linux procps)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts nginx and squid when it installs them; the tests start their own.
for s in nginx squid; do
    if command -v service >/dev/null && service "$s" status >/dev/null 2>&1; then
        service "$s" stop >/dev/null 2>&1 || true
    fi
done

if [ ! -c /dev/fuse ]; then
    modprobe fuse 2>/dev/null || true
fi
if [ ! -c /dev/fuse ]; then
    echo "setup: /dev/fuse is missing: this machine cannot mount FUSE filesystems" >&2
    exit 1
fi

profile=${PROFILE:-debug}
flag=""
[ "$profile" = release ] && flag="--release"
echo "setup: building ($profile)" >&2
cargo build --workspace --locked $flag --quiet
for b in storkfs storkctl stork-repo; do
    ln -sf "$PWD/target/$profile/$b" "/usr/local/bin/$b"
done
echo "setup: ready; storkfs, storkctl and stork-repo are in /usr/local/bin" >&2
