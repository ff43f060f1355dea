//! The library behind `storkctl` and `stork-repo`.
//!
//! - [`repo`]: the repository layout and one module per `stork-repo` subcommand;
//! - [`ctl`]: one module per `storkctl` subcommand, over the control socket;
//! - [`ingest`]: reading directories, tarballs and .debs, refusing hostile ones;
//! - [`http`]: the small HTTP/1.1 server behind `stork-repo serve` (and the tests' origin);
//! - [`progress`], [`exit`]: what the user sees.
//!
//! It reaches the daemon only through the control socket and never links fuser.
//!
//! # Testing
//! `cargo test -p stork-cli` runs the unit tests; `tests/` drives the built binaries.
#![forbid(unsafe_code)]

pub mod ctl;
pub mod exit;
pub mod http;
pub mod ingest;
pub mod progress;
pub mod repo;
