//! The library behind `storkctl` and `stork-repo`.
#![forbid(unsafe_code)]

pub mod http;
pub mod ingest;
