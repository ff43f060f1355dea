//! Stork's trusted core.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod debver;
pub mod error;
pub mod names;

pub use error::NameError;
pub use names::{PackageName, TreePath, Version};
