//! Stork's trusted core: bytes go in, verdicts come out.
//!
//! - [`names`]: checked package names, versions and tree paths;
//! - [`debver`]: Debian version order and relation syntax;
//! - [`digest`], [`keys`]: SHA-256 object names, ed25519 keys and signatures;
//! - [`canon`]: the canonical encoding every signed or hashed document uses;
//! - [`manifest`], [`index`]: the repository's documents and their verification;
//! - [`trust`]: the node's trust file and the per-publisher, per-package decisions;
//! - [`wire`]: the control-socket protocol shared by `storkfs` and `storkctl`.
//!
//! No network, no disk beyond key and trust files, no async. Every refusal is a variant of
//! [`error::Refusal`] naming the package, version, key and hashes involved.
//!
//! # Testing
//! `cargo test -p stork-policy` runs everything here without network or mounts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod canon;
pub mod debver;
pub mod digest;
pub mod error;
pub mod index;
pub mod keys;
pub mod manifest;
pub mod names;
pub mod sanitize;
pub mod trust;
pub mod wire;

pub use digest::Digest;
pub use error::{DocError, KeyError, NameError, Refusal, TrustFileError};
pub use keys::{KeyId, PublicKey, SecretKey};
pub use names::{PackageName, TreePath, Version};
