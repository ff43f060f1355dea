#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the integration tests in tests/, which
# mount real FUSE filesystems, serve repositories with stork-repo, nginx and squid on
# 127.0.0.1, and use real Debian packages. As root, on Debian 12 with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
# The integration tests start many daemons and mounts; two at a time keeps a 2-core
# machine responsive and the timings honest.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-2}
cargo test --workspace --locked --no-fail-fast "$@"
