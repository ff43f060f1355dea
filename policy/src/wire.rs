//! The control-socket protocol between `storkfs` and `storkctl`.
//!
//! One JSON document per line, in both directions. A client sends one [`Request`] line;
//! the daemon answers with zero or more [`Reply::Progress`] lines and then exactly one
//! final line ([`Reply::Ok`] or [`Reply::Error`]). A request line is at most
//! [`MAX_REQUEST_BYTES`]; the daemon drops a client that sends more, sends nothing for
//! too long, or sends something that does not parse, and answers it an error first when
//! it can.
//!
//! The daemon acts for the uid it reads from the socket's peer credentials. Nothing in a
//! request says who the caller is.

use serde::{Deserialize, Serialize};

use crate::names::{PackageName, Version};

/// The protocol version spoken here.
pub const PROTOCOL: u32 = 1;
/// The longest request line.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Must be [`PROTOCOL`].
    pub protocol: u32,
    /// What to do.
    pub command: Command,
}

/// The commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Packages and versions this caller may use.
    List {
        /// A glob over package names.
        pattern: Option<String>,
    },
    /// Pin a package (and its dependencies).
    Pin {
        /// The package.
        name: PackageName,
        /// The version; the newest accepted when absent.
        version: Option<Version>,
        /// Act on the node-wide default (root only).
        node: bool,
    },
    /// Drop a pin.
    Unpin {
        /// The package.
        name: PackageName,
        /// Act on the node-wide default (root only).
        node: bool,
    },
    /// The caller's pins (or the node's).
    Pins {
        /// The node's pins instead.
        node: bool,
    },
    /// Daemon status.
    Status,
    /// Fetch a whole version now.
    Prefetch {
        /// The package.
        name: PackageName,
        /// The version; the one `current` resolves to when absent.
        version: Option<Version>,
    },
    /// Look for a new index now.
    Refresh,
    /// Rehash the cache and drop what does not match (root only).
    Verify,
    /// Change the log filter (root only), e.g. "debug" or "storkfs=trace".
    LogLevel {
        /// A tracing filter directive.
        level: String,
    },
}

/// One line of a reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reply {
    /// Work in progress.
    Progress(Progress),
    /// The final answer: success.
    Ok(Answer),
    /// The final answer: failure, one line for a person.
    Error {
        /// What went wrong and what to do.
        message: String,
    },
}

/// Progress of long work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// What is being done.
    pub what: String,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// Bytes fetched so far.
    pub bytes: u64,
}

/// Successful answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Answer {
    /// For `list`.
    List(Vec<PackageInfo>),
    /// For `pin`, `unpin` and `pins`: the resulting pins of the caller (or the node).
    Pins(PinSet),
    /// For `status`.
    Status(Box<Status>),
    /// For `prefetch`.
    Prefetched(PrefetchReport),
    /// For `refresh`.
    Refreshed(RefreshReport),
    /// For `verify`.
    Verified(VerifyReport),
    /// For commands with nothing to say.
    Done,
}

/// A package as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    /// The package.
    pub name: String,
    /// Its accepted versions, oldest first.
    pub versions: Vec<String>,
    /// The version `current` resolves to for the caller.
    pub current: Option<String>,
    /// The caller's pin, if any.
    pub pinned: Option<String>,
    /// The node's pin, if any.
    pub node_pin: Option<String>,
}

/// One pin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The package.
    pub name: String,
    /// The version.
    pub version: String,
    /// Pinned to satisfy another pin's dependencies, not by request.
    pub automatic: bool,
}

/// A set of pins, and what the last command changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinSet {
    /// "node" or "uid N".
    pub owner: String,
    /// Every pin, sorted by name.
    pub pins: Vec<Pin>,
    /// Pins the command added or changed.
    pub added: Vec<Pin>,
    /// Packages whose pins the command removed.
    pub removed: Vec<String>,
    /// Dependencies that name no package of the repository, assumed to be provided by
    /// the system (for example `libc6` of a .deb).
    pub external: Vec<String>,
}

/// The result of `prefetch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchReport {
    /// `name version` of each package version fetched.
    pub versions: Vec<String>,
    /// Files in those versions.
    pub files: u64,
    /// Bytes in those files.
    pub bytes: u64,
    /// Bytes that had to be downloaded (the rest was cached).
    pub fetched_bytes: u64,
}

/// The result of `refresh`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshReport {
    /// The index version in use after the refresh.
    pub index_version: Option<u64>,
    /// Whether a new index was accepted.
    pub changed: bool,
    /// Why not, when the repository could not be reached or its index was refused.
    pub problem: Option<String>,
}

/// The result of `verify`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Objects rehashed.
    pub checked: u64,
    /// Objects whose content did not match their name, now removed.
    pub removed: Vec<String>,
    /// Database rows without a file, now dropped.
    pub missing: u64,
    /// Files without a database row, now removed.
    pub orphans: u64,
}

/// Everything `storkctl status` and `/.stork/status` show.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The repository URL.
    pub repository: String,
    /// Where the daemon is mounted.
    pub mountpoint: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The index in use.
    pub index: IndexStatus,
    /// Every source of bytes, in the order tried.
    pub sources: Vec<SourceStatus>,
    /// The cache.
    pub cache: CacheStatus,
    /// Fetch counters since start.
    pub fetches: FetchCounts,
    /// Accepted and refused package versions.
    pub packages: PackageCounts,
}

/// The index in use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStatus {
    /// Its version, if any index was ever accepted.
    pub version: Option<u64>,
    /// When it was published (unix seconds).
    pub published: Option<u64>,
    /// Seconds since it was published.
    pub age_seconds: Option<u64>,
    /// When it expires (unix seconds).
    pub expires: Option<u64>,
    /// True when it has expired or the repository could not give a fresh one.
    pub stale: bool,
    /// The repository key id trusted now.
    pub key: String,
    /// When the daemon last looked for a new index (unix seconds).
    pub last_check: Option<u64>,
    /// What went wrong at the last look, if anything.
    pub last_error: Option<String>,
}

/// One source of bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Its base URL.
    pub url: String,
    /// "origin", "mirror" or "peer".
    pub kind: String,
    /// False while it is backed off after a failure.
    pub healthy: bool,
    /// Since when it has been failing (unix seconds).
    pub down_since: Option<u64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub failures: u64,
    /// Bytes received and verified.
    pub bytes: u64,
}

/// The cache.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStatus {
    /// The cache directory.
    pub dir: String,
    /// Bytes on disk (objects, database, temporary files).
    pub bytes_used: u64,
    /// The quota.
    pub quota: u64,
    /// Objects stored.
    pub objects: u64,
    /// Reads served from the cache without a fetch.
    pub hits: u64,
    /// Reads that needed a fetch.
    pub misses: u64,
    /// hits / (hits + misses), 0 when there were none.
    pub hit_ratio: f64,
    /// Objects evicted since start.
    pub evicted: u64,
    /// Objects that pinned versions keep from eviction (cached or not yet), as of the
    /// daemon's last look at the pins (every couple of seconds).
    #[serde(default)]
    pub pinned_objects: u64,
}

/// Fetch counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchCounts {
    /// Objects downloaded and verified.
    pub objects: u64,
    /// Bytes downloaded (as stored, possibly compressed).
    pub bytes: u64,
    /// Downloads that failed.
    pub failures: u64,
    /// Downloads refused because their bytes did not verify.
    pub refused: u64,
}

/// Accepted and refused versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageCounts {
    /// Accepted package versions.
    pub accepted: u64,
    /// Refused package versions, with the reason.
    pub refused: Vec<RefusedVersion>,
}

/// A refused package version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedVersion {
    /// The package.
    pub name: String,
    /// The version.
    pub version: String,
    /// The attack the refusal blocks.
    pub attack: String,
    /// The full reason.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_strictness() {
        let r = Request {
            protocol: PROTOCOL,
            command: Command::Pin {
                name: PackageName::new("numpy").unwrap(),
                version: None,
                node: false,
            },
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        // A request cannot carry an identity: unknown fields are refused.
        let forged = line.replace("\"protocol\"", "\"uid\":0,\"protocol\"");
        assert!(serde_json::from_str::<Request>(&forged).is_err());
        assert!(serde_json::from_str::<Request>(
            r#"{"protocol":1,"command":{"pin":{"name":"../x","version":null,"node":false}}}"#
        )
        .is_err());
    }
}
