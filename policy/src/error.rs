//! Errors.
use thiserror::Error;

/// A name, version or path that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// A bad package name.
    #[error("bad package name {name:?}: {why}")]
    Package {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A bad version.
    #[error("bad version {version:?}: {why}")]
    Version {
        /// The version as given.
        version: String,
        /// What is wrong with it.
        why: String,
    },
    /// A bad path inside a package.
    #[error("bad path {path:?}: {why}")]
    Path {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}
