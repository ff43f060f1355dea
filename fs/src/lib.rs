//! `storkfs`: the per-node Stork daemon.
//!
//! It mounts a read-only, content-addressed package tree. A file is fetched on first
//! access, verified against the publisher-signed manifest before a byte is served, and
//! stored once per node however many packages, versions and slices share it.
//!
//! - [`options`]: the command line, parsed once into [`options::MountOptions`];
//! - [`daemon`]: start, background/foreground, signals, shutdown;
//! - [`mount`]: the FUSE callbacks (thin: ask `catalog`/`store`, reply);
//! - [`catalog`]: accepted package versions from the verified index and trust file;
//! - [`tree`]: inode numbers and a version's directory tree;
//! - [`fetch`], [`source`]: one verified download per object, from origin/mirrors/peers;
//! - [`store`]: the content-addressed cache with its SQLite index;
//! - [`pins`], [`ctl`]: per-slice pins and `current`, and the control socket;
//! - [`status`], [`log`], [`sys`]: what operators see, and the OS.
//!
//! # Testing
//! `cargo test -p storkfs` runs the unit tests; `tests/` mounts the real thing.
#![deny(unsafe_code)]

pub mod catalog;
pub mod ctl;
pub mod daemon;
pub mod fetch;
pub mod log;
pub mod mount;
pub mod options;
pub mod pins;
pub mod source;
pub mod status;
pub mod store;
#[allow(unsafe_code)]
pub mod sys;
pub mod tree;
