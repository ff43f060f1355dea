//! Every way `policy` can say no.
//!
//! One enum per kind of input, and one variant per refusal a person must act on. Each
//! message names the package, version, key and hashes involved, and where there is a next
//! step it ends with it. Strings that came from the network are escaped before they are
//! printed (see [`crate::sanitize`]).

use thiserror::Error;

use crate::digest::Digest;
use crate::keys::KeyId;

/// A name, version or path that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// A bad package name.
    #[error("bad package name \"{}\": {why}", crate::sanitize::short(name, 80))]
    Package {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A bad version.
    #[error("bad version \"{}\": {why}", crate::sanitize::short(version, 80))]
    Version {
        /// The version as given.
        version: String,
        /// What is wrong with it.
        why: String,
    },
    /// A bad path inside a package.
    #[error("bad path \"{}\": {why}", crate::sanitize::short(path, 120))]
    Path {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A key or key file that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not a public key.
    #[error("bad public key \"{text}\": {why}")]
    BadPublic {
        /// The text, escaped and shortened.
        text: String,
        /// What is wrong.
        why: String,
    },
    /// A public key file whose content is wrong.
    #[error("{path}: {cause}")]
    InFile {
        /// The file.
        path: String,
        /// The problem.
        cause: Box<KeyError>,
    },
    /// Not a secret key file.
    #[error("{path} is not a Stork secret key file: {why}")]
    BadSecret {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A secret key that others can read.
    #[error("secret key {path} can be read by other users (mode {mode:o}): run chmod 600 {path}, and consider the key exposed")]
    SecretReadable {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing a key file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The system's reason.
        cause: String,
    },
    /// The system gave no random bytes.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

/// A document (manifest, index, rotation) that is not well formed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DocError {
    /// Larger than the fixed cap for its kind (endless data).
    #[error("{what} is {size} bytes, more than the {max} bytes allowed")]
    TooLarge {
        /// Which document.
        what: String,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// Not JSON, or without the `type` and `format` fields.
    #[error("{what} is not a Stork document: {cause}")]
    NotADocument {
        /// Which document.
        what: String,
        /// Why.
        cause: String,
    },
    /// A document of another kind.
    #[error("{what} is a \"{found}\" document, expected \"{expected}\"")]
    WrongType {
        /// Which document.
        what: String,
        /// The type it says.
        found: String,
        /// The type wanted.
        expected: &'static str,
    },
    /// A format this version of Stork does not know.
    #[error("{what} uses format {found}, but this Stork reads format {supported}: upgrade Stork to read it")]
    UnsupportedFormat {
        /// Which document.
        what: String,
        /// The format it says.
        found: u64,
        /// The format we read.
        supported: u32,
    },
    /// Well-formed JSON whose content breaks a rule.
    #[error("{what} is invalid: {cause}")]
    Invalid {
        /// Which document.
        what: String,
        /// The rule broken (escaped).
        cause: String,
    },
    /// Valid content, but not in its one canonical encoding; the signed bytes would not be
    /// the bytes that were parsed.
    #[error("{what} is not in canonical form (it was re-encoded or altered after signing)")]
    NotCanonical {
        /// Which document.
        what: String,
    },
}

/// A refusal of something a repository or a source offered. Each names the attack it
/// blocks (see [`Refusal::attack`]), and the daemon logs it once with that label.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Bytes whose hash differs from the signed one.
    #[error("{what}: hash mismatch: calculated {actual}, expected {expected}")]
    HashMismatch {
        /// What was fetched (package, version, path or object).
        what: String,
        /// The digest from signed metadata.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// More or fewer bytes than the signed size.
    #[error("{what}: size mismatch: received {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// What was fetched.
        what: String,
        /// The signed size.
        expected: u64,
        /// What arrived (or the point where it was cut off).
        actual: u64,
    },
    /// The index is signed by a key the node does not trust, and no rotation signed by a
    /// trusted key leads to it.
    #[error("index version {version} is signed by key {found}, but this node trusts key {expected} and no rotation signed by it leads to {found}: check [repository] key in the trust file")]
    WrongIndexKey {
        /// The index version.
        version: u64,
        /// The trusted key.
        expected: KeyId,
        /// The key the index names.
        found: KeyId,
    },
    /// A signature that does not verify.
    #[error("index version {version}: no valid signature by key {key}")]
    BadIndexSignature {
        /// The index version.
        version: u64,
        /// The key that should have signed.
        key: KeyId,
    },
    /// A rotation statement that does not verify.
    #[error("key rotation from {from} to {to} is not validly signed by {from}")]
    BadRotation {
        /// The old key.
        from: KeyId,
        /// The new key.
        to: KeyId,
    },
    /// An index older than one already seen under the same key.
    #[error("index version {offered} is older than version {seen} already seen under key {key}")]
    Rollback {
        /// The version offered.
        offered: u64,
        /// The highest version seen.
        seen: u64,
        /// The repository key.
        key: KeyId,
    },
    /// The same index version with different content.
    #[error(
        "index version {version} differs from the version {version} already seen under key {key}"
    )]
    IndexChanged {
        /// The version.
        version: u64,
        /// The repository key.
        key: KeyId,
    },
    /// An expired index.
    #[error("index version {version} expired at {expired} (unix time), it is now {now}: the repository must publish a fresh index")]
    Expired {
        /// The version.
        version: u64,
        /// Its expiry.
        expired: u64,
        /// The current time.
        now: u64,
    },
    /// A manifest whose name or version differs from the index entry that led to it.
    #[error("{name} {version}: the manifest is for {found_name} {found_version}")]
    WrongSoftware {
        /// The package the index listed.
        name: String,
        /// The version the index listed.
        version: String,
        /// The package the manifest names.
        found_name: String,
        /// The version the manifest names.
        found_version: String,
    },
    /// A manifest whose named publisher did not sign it.
    #[error("{name} {version}: the manifest names publisher key {publisher} but carries no valid signature from it")]
    PublisherDidNotSign {
        /// Package.
        name: String,
        /// Version.
        version: String,
        /// The key named in the manifest.
        publisher: KeyId,
    },
    /// A package version whose digest changed from the one the node already accepted.
    #[error("{name} {version}: the index now lists manifest {offered}, but this node accepted manifest {accepted}; keeping the accepted one")]
    ManifestChanged {
        /// Package.
        name: String,
        /// Version.
        version: String,
        /// The digest accepted before.
        accepted: Digest,
        /// The digest now offered.
        offered: Digest,
    },
    /// Signed by no key that the trust file knows.
    #[error("{name} {version}: signed only by unknown keys ({keys}); add a [[publisher]] with that key to the trust file if you trust it")]
    UnknownSigner {
        /// Package.
        name: String,
        /// Version.
        version: String,
        /// The keys (comma separated ids), or "no valid signature".
        keys: String,
    },
    /// Signed by a publisher that may not sign this name.
    #[error("{name} {version}: key {key} ({publisher}) may not sign \"{name}\" ({publisher} may sign {patterns}): add \"{name}\" to {publisher}'s packages in the trust file if it should")]
    NotAllowedForName {
        /// Package.
        name: String,
        /// Version.
        version: String,
        /// The signing key.
        key: KeyId,
        /// The publisher's name in the trust file.
        publisher: String,
        /// The publisher's patterns.
        patterns: String,
    },
    /// Too few signatures from a threshold publisher.
    #[error("{name} {version}: {publisher} needs {need} signatures from its keys, found {have}{}; another of {publisher}'s keys must co-sign (stork-repo sign)", revoked_note(revoked))]
    BelowThreshold {
        /// Package.
        name: String,
        /// Version.
        version: String,
        /// The publisher.
        publisher: String,
        /// Valid signatures found.
        have: usize,
        /// The threshold.
        need: usize,
        /// Ids of the publisher's revoked keys that signed too (they do not count).
        revoked: Vec<KeyId>,
    },
    /// Signed by a revoked key (and by no other acceptable set).
    #[error("{name} {version}: signed by revoked key {key}")]
    Revoked {
        /// Package.
        name: String,
        /// Version.
        version: String,
        /// The revoked key.
        key: KeyId,
    },
    /// A document that is not well formed.
    #[error(transparent)]
    Doc(#[from] DocError),
}

fn revoked_note(revoked: &[KeyId]) -> String {
    if revoked.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = revoked.iter().map(|k| k.to_string()).collect();
        format!(" (not counting revoked key {})", ids.join(", "))
    }
}

impl Refusal {
    /// The attack this refusal blocks, as a short label for logs and status.
    pub fn attack(&self) -> &'static str {
        match self {
            Refusal::HashMismatch { .. } => "tampering",
            Refusal::SizeMismatch { .. } => "endless-data",
            Refusal::WrongIndexKey { .. } => "wrong-key",
            Refusal::BadIndexSignature { .. } | Refusal::BadRotation { .. } => "tampering",
            Refusal::Rollback { .. } => "rollback",
            Refusal::IndexChanged { .. } => "mix-and-match",
            Refusal::Expired { .. } => "freeze",
            Refusal::WrongSoftware { .. } => "wrong-software",
            Refusal::PublisherDidNotSign { .. } => "untrusted-signer",
            Refusal::ManifestChanged { .. } => "mix-and-match",
            Refusal::UnknownSigner { .. }
            | Refusal::NotAllowedForName { .. }
            | Refusal::BelowThreshold { .. } => "untrusted-signer",
            Refusal::Revoked { .. } => "revoked-key",
            Refusal::Doc(DocError::TooLarge { .. }) => "endless-data",
            Refusal::Doc(_) => "malformed-metadata",
        }
    }
}

/// A trust file that cannot be used. The mount stops; nothing is half-applied.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{path}:{line}: {message}")]
pub struct TrustFileError {
    /// The trust file.
    pub path: String,
    /// The line at fault (1-based).
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}
