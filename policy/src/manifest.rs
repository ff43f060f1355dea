//! Package manifests: the publisher-signed description of one package version's tree.
//!
//! A manifest names its package, version and publisher key, the package's dependencies in
//! Debian relation syntax, and every entry of the tree: directories, symlinks (target kept
//! verbatim) and regular files with their size and SHA-256. A small file is one object; a
//! file larger than its chunk size is a list of chunks, each with its own digest, so a
//! node that reads part of a file fetches and verifies only the chunks it needs.
//!
//! Objects are named by the SHA-256 of their plain bytes, so the compressor can change
//! without changing any name. An object may be stored zstd-compressed; then the manifest
//! also records the digest and size of the stored (compressed) bytes, so a node checks
//! them before decompressing and bounds the download by the signed size.
//!
//! The manifest itself is an object; the index lists its digest and the publishers'
//! signatures over that digest ([`crate::keys::Context::Manifest`]). Co-signing therefore
//! never changes a manifest or its digest.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::canon;
use crate::debver::{parse_relations, Relations};
use crate::digest::Digest;
use crate::error::DocError;
use crate::keys::PublicKey;
use crate::names::{PackageName, TreePath, Version};

/// The `type` of a manifest document.
pub const MANIFEST_TYPE: &str = "stork-manifest";
/// The largest manifest accepted (endless data).
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;
/// The most entries in one package version.
pub const MAX_ENTRIES: usize = 1_000_000;
/// The chunk size `stork-repo` uses for large files.
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;
/// Smallest and largest chunk sizes a manifest may use.
pub const CHUNK_SIZE_RANGE: (u64, u64) = (64 << 10, 64 << 20);
/// Longest symlink target.
pub const MAX_TARGET_LEN: usize = 4096;

/// The stored form of an object when it is compressed with zstd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    /// SHA-256 of the compressed bytes.
    pub sha256: Digest,
    /// Length of the compressed bytes.
    pub size: u64,
}

/// One object: its plain digest and size, and its stored form when compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    /// SHA-256 of the plain bytes; also the object's name.
    pub sha256: Digest,
    /// Length of the plain bytes.
    pub size: u64,
    /// Present when the repository stores the object zstd-compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<Stored>,
}

impl Blob {
    /// The object's path relative to a repository root.
    pub fn repo_path(&self) -> String {
        match self.zstd {
            Some(_) => format!("{}.zst", self.sha256.object_path()),
            None => self.sha256.object_path(),
        }
    }

    /// How many bytes a download of this object may carry at most.
    pub fn stored_size(&self) -> u64 {
        self.zstd.map_or(self.size, |z| z.size)
    }

    fn check(&self, what: &str) -> Result<(), String> {
        if let Some(z) = self.zstd {
            if self.size == 0 {
                return Err(format!("{what}: an empty object is never compressed"));
            }
            if z.size == 0 || z.size > self.size {
                return Err(format!(
                    "{what}: compressed size {} is not between 1 and the plain size {}",
                    z.size, self.size
                ));
            }
        }
        Ok(())
    }
}

/// Where a file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileData {
    /// One object, named by the file's digest.
    Whole(Blob),
    /// Fixed-size chunks (the last may be shorter), each its own object.
    Chunked {
        /// Bytes per chunk (a power of two).
        chunk_size: u64,
        /// The chunks in order.
        chunks: Vec<Blob>,
    },
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir {
        /// Permission bits (at most 0o7777).
        mode: u32,
    },
    /// A regular file.
    File {
        /// Permission bits (at most 0o7777).
        mode: u32,
        /// Length.
        size: u64,
        /// SHA-256 of the whole content.
        sha256: Digest,
        /// Where the bytes are.
        data: FileData,
    },
    /// A symbolic link, served exactly as published.
    Symlink {
        /// The target, verbatim (absolute targets included).
        target: String,
    },
}

/// One entry of a package tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its path inside the version's tree.
    pub path: TreePath,
    /// What it is.
    pub node: Node,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: TreePath,
    kind: RawKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zstd: Option<Stored>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<Blob>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Dir,
    File,
    Symlink,
}

impl TryFrom<RawEntry> for Entry {
    type Error = String;

    fn try_from(r: RawEntry) -> Result<Entry, String> {
        let p = crate::sanitize::short(r.path.as_str(), 120);
        let no = |present: bool, field: &str, kind: &str| {
            if present {
                Err(format!("entry \"{p}\": a {kind} has no \"{field}\""))
            } else {
                Ok(())
            }
        };
        let mode = |m: Option<u32>| match m {
            Some(m) if m <= 0o7777 => Ok(m),
            Some(m) => Err(format!("entry \"{p}\": mode {m:o} has bits above 0o7777")),
            None => Err(format!("entry \"{p}\": \"mode\" is missing")),
        };
        let node = match r.kind {
            RawKind::Dir => {
                no(r.size.is_some(), "size", "directory")?;
                no(r.sha256.is_some(), "sha256", "directory")?;
                no(r.zstd.is_some(), "zstd", "directory")?;
                no(r.chunk_size.is_some(), "chunk_size", "directory")?;
                no(r.chunks.is_some(), "chunks", "directory")?;
                no(r.target.is_some(), "target", "directory")?;
                Node::Dir {
                    mode: mode(r.mode)?,
                }
            }
            RawKind::Symlink => {
                no(r.mode.is_some(), "mode", "symlink")?;
                no(r.size.is_some(), "size", "symlink")?;
                no(r.sha256.is_some(), "sha256", "symlink")?;
                no(r.zstd.is_some(), "zstd", "symlink")?;
                no(r.chunk_size.is_some(), "chunk_size", "symlink")?;
                no(r.chunks.is_some(), "chunks", "symlink")?;
                let target = r
                    .target
                    .ok_or_else(|| format!("entry \"{p}\": a symlink needs a \"target\""))?;
                check_target(&target).map_err(|why| format!("entry \"{p}\": {why}"))?;
                Node::Symlink { target }
            }
            RawKind::File => {
                no(r.target.is_some(), "target", "file")?;
                let size = r
                    .size
                    .ok_or_else(|| format!("entry \"{p}\": \"size\" is missing"))?;
                let sha256 = r
                    .sha256
                    .ok_or_else(|| format!("entry \"{p}\": \"sha256\" is missing"))?;
                let data = match (r.chunk_size, r.chunks) {
                    (None, None) => {
                        let blob = Blob {
                            sha256,
                            size,
                            zstd: r.zstd,
                        };
                        blob.check(&format!("entry \"{p}\""))?;
                        FileData::Whole(blob)
                    }
                    (Some(cs), Some(chunks)) => {
                        no(
                            r.zstd.is_some(),
                            "zstd (chunks carry their own)",
                            "chunked file",
                        )?;
                        check_chunks(size, cs, &chunks)
                            .map_err(|why| format!("entry \"{p}\": {why}"))?;
                        FileData::Chunked {
                            chunk_size: cs,
                            chunks,
                        }
                    }
                    _ => {
                        return Err(format!(
                            "entry \"{p}\": \"chunk_size\" and \"chunks\" go together"
                        ))
                    }
                };
                Node::File {
                    mode: mode(r.mode)?,
                    size,
                    sha256,
                    data,
                }
            }
        };
        Ok(Entry { path: r.path, node })
    }
}

impl Entry {
    fn to_raw(&self) -> RawEntry {
        let mut r = RawEntry {
            path: self.path.clone(),
            kind: RawKind::Dir,
            mode: None,
            size: None,
            sha256: None,
            zstd: None,
            chunk_size: None,
            chunks: None,
            target: None,
        };
        match &self.node {
            Node::Dir { mode } => r.mode = Some(*mode),
            Node::Symlink { target } => {
                r.kind = RawKind::Symlink;
                r.target = Some(target.clone());
            }
            Node::File {
                mode,
                size,
                sha256,
                data,
            } => {
                r.kind = RawKind::File;
                r.mode = Some(*mode);
                r.size = Some(*size);
                r.sha256 = Some(*sha256);
                match data {
                    FileData::Whole(b) => r.zstd = b.zstd,
                    FileData::Chunked { chunk_size, chunks } => {
                        r.chunk_size = Some(*chunk_size);
                        r.chunks = Some(chunks.clone());
                    }
                }
            }
        }
        r
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(s)
    }
}
impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Entry::try_from(RawEntry::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn check_target(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("the symlink target is empty".into());
    }
    if t.len() > MAX_TARGET_LEN {
        return Err("the symlink target is longer than 4096 bytes".into());
    }
    if t.contains('\0') {
        return Err("the symlink target contains a NUL byte".into());
    }
    Ok(())
}

fn check_chunks(size: u64, chunk_size: u64, chunks: &[Blob]) -> Result<(), String> {
    let (lo, hi) = CHUNK_SIZE_RANGE;
    if !chunk_size.is_power_of_two() || chunk_size < lo || chunk_size > hi {
        return Err(format!(
            "chunk_size {chunk_size} is not a power of two between {lo} and {hi}"
        ));
    }
    if size <= chunk_size {
        return Err(format!(
            "a file of {size} bytes is not chunked with chunk_size {chunk_size}"
        ));
    }
    let want = size.div_ceil(chunk_size);
    if chunks.len() as u64 != want {
        return Err(format!(
            "{} chunks for {size} bytes, expected {want}",
            chunks.len()
        ));
    }
    for (i, c) in chunks.iter().enumerate() {
        let expect = if i as u64 + 1 == want {
            size - chunk_size * (want - 1)
        } else {
            chunk_size
        };
        if c.size != expect {
            return Err(format!("chunk {i} is {} bytes, expected {expect}", c.size));
        }
        c.check(&format!("chunk {i}"))?;
    }
    Ok(())
}

/// A package manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "type")]
    doc_type: String,
    format: u32,
    /// The package.
    pub name: PackageName,
    /// The version.
    pub version: Version,
    /// The key of the publisher who made it; it must be among the signers.
    pub publisher: PublicKey,
    /// When it was made (unix seconds); served as every entry's modification time.
    pub created: u64,
    /// Dependencies in Debian relation syntax ("" for none).
    pub depends: String,
    /// The entries, sorted by path, each parent directory before its children.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Builds a manifest, checking every rule a parsed one must meet.
    pub fn new(
        name: PackageName,
        version: Version,
        publisher: PublicKey,
        created: u64,
        depends: String,
        mut entries: Vec<Entry>,
    ) -> Result<Manifest, DocError> {
        entries.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        for e in &entries {
            Entry::try_from(e.to_raw()).map_err(|cause| DocError::Invalid {
                what: format!("manifest of {name} {version}"),
                cause,
            })?;
        }
        let m = Manifest {
            doc_type: MANIFEST_TYPE.into(),
            format: canon::FORMAT,
            name,
            version,
            publisher,
            created,
            depends,
            entries,
        };
        m.check().map_err(|cause| DocError::Invalid {
            what: m.what(),
            cause,
        })?;
        Ok(m)
    }

    /// Parses and checks manifest bytes. `what` names it in errors.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Manifest, DocError> {
        let m: Manifest = canon::decode(what, MANIFEST_TYPE, bytes, MAX_MANIFEST_BYTES)?;
        m.check().map_err(|cause| DocError::Invalid {
            what: what.to_string(),
            cause,
        })?;
        Ok(m)
    }

    /// The canonical bytes, whose SHA-256 is the manifest's name.
    pub fn encode(&self) -> Vec<u8> {
        canon::encode(self)
    }

    /// The parsed dependencies (checked when the manifest was built or parsed).
    pub fn relations(&self) -> Relations {
        parse_relations(&self.depends).unwrap_or_default()
    }

    fn what(&self) -> String {
        format!("manifest of {} {}", self.name, self.version)
    }

    fn check(&self) -> Result<(), String> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(format!(
                "{} entries, more than the {MAX_ENTRIES} allowed",
                self.entries.len()
            ));
        }
        parse_relations(&self.depends).map_err(|e| format!("depends: {e}"))?;
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut prev: Option<&str> = None;
        for e in &self.entries {
            let p = e.path.as_str();
            if let Some(q) = prev {
                if q >= p {
                    let why = if q == p {
                        "appears twice"
                    } else {
                        "is out of order"
                    };
                    return Err(format!(
                        "entry \"{}\" {why}",
                        crate::sanitize::short(p, 120)
                    ));
                }
            }
            prev = Some(p);
            if let Some(parent) = e.path.parent() {
                if !dirs.contains(parent.as_str()) {
                    return Err(format!(
                        "entry \"{}\": its parent is not a directory listed before it",
                        crate::sanitize::short(p, 120)
                    ));
                }
            }
            if matches!(e.node, Node::Dir { .. }) {
                dirs.insert(p);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::SecretKey;

    pub fn file(path: &str, content: &[u8]) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            node: Node::File {
                mode: 0o644,
                size: content.len() as u64,
                sha256: Digest::of(content),
                data: FileData::Whole(Blob {
                    sha256: Digest::of(content),
                    size: content.len() as u64,
                    zstd: None,
                }),
            },
        }
    }
    pub fn dir(path: &str) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            node: Node::Dir { mode: 0o755 },
        }
    }
    pub fn link(path: &str, target: &str) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            node: Node::Symlink {
                target: target.into(),
            },
        }
    }

    pub fn sample() -> Manifest {
        Manifest::new(
            PackageName::new("hello").unwrap(),
            Version::new("1.0-1").unwrap(),
            SecretKey::from_seed([3; 32]).public(),
            1_700_000_000,
            "libc6 (>= 2.36)".into(),
            vec![
                dir("usr"),
                dir("usr/bin"),
                file("usr/bin/hello", b"#!/bin/sh\necho hi\n"),
                link("usr/bin/hi", "hello"),
                link("usr/bin/abs", "/usr/bin/hello"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_is_canonical() {
        let m = sample();
        let b = m.encode();
        assert_eq!(Manifest::parse("m", &b).unwrap(), m);
        let text = String::from_utf8(b).unwrap();
        assert!(text.starts_with(r#"{"type":"stork-manifest","format":1,"name":"hello""#));
    }

    #[test]
    fn any_changed_byte_is_detected() {
        // Whatever byte changes, either parsing refuses it or the digest differs: the
        // index binds the digest, so no change goes unnoticed.
        let b = sample().encode();
        let d = Digest::of(&b);
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 0x01;
            if let Ok(_m) = Manifest::parse("m", &t) {
                assert_ne!(Digest::of(&t), d);
            }
        }
    }

    fn refuse(json: &str, why: &str) {
        let e = Manifest::parse("m", json.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{json}\n=> {e}");
    }

    fn with_entries(entries: &str) -> String {
        let k = SecretKey::from_seed([3; 32]).public();
        format!(
            r#"{{"type":"stork-manifest","format":1,"name":"p","version":"1","publisher":"{k}","created":0,"depends":"","entries":[{entries}]}}"#
        )
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let h = Digest::of(b"x");
        refuse(
            &with_entries(r#"{"path":"../x","kind":"dir","mode":493}"#),
            "'..'",
        );
        refuse(
            &with_entries(r#"{"path":"/etc","kind":"dir","mode":493}"#),
            "absolute",
        );
        refuse(
            &with_entries(r#"{"path":"a//b","kind":"dir","mode":493}"#),
            "empty component",
        );
        refuse(
            &with_entries(r#"{"path":"a\u0000","kind":"dir","mode":493}"#),
            "NUL",
        );
        refuse(
            &with_entries(r#"{"path":"a","kind":"dir","mode":4096000}"#),
            "above 0o7777",
        );
        refuse(
            &with_entries(r#"{"path":"a","kind":"fifo","mode":420}"#),
            "unknown variant",
        );
        refuse(
            &with_entries(
                r#"{"path":"a","kind":"dir","mode":493},{"path":"a","kind":"dir","mode":493}"#,
            ),
            "appears twice",
        );
        refuse(
            &with_entries(
                r#"{"path":"b","kind":"dir","mode":493},{"path":"a","kind":"dir","mode":493}"#,
            ),
            "out of order",
        );
        refuse(
            &with_entries(r#"{"path":"a/b","kind":"dir","mode":493}"#),
            "parent",
        );
        refuse(
            &with_entries(&format!(
                r#"{{"path":"f","kind":"file","mode":420,"sha256":"{h}"}}"#
            )),
            "\"size\" is missing",
        );
        refuse(
            &with_entries(r#"{"path":"s","kind":"symlink","target":""}"#),
            "empty",
        );
        refuse(
            &with_entries(&format!(
                r#"{{"path":"s","kind":"symlink","target":"x","sha256":"{h}"}}"#
            )),
            "has no \"sha256\"",
        );
        refuse(
            &with_entries(&format!(
                r#"{{"path":"f","kind":"file","mode":420,"size":1,"sha256":"{h}","zstd":{{"sha256":"{h}","size":5}}}}"#
            )),
            "compressed size",
        );
        refuse(
            &with_entries(&format!(
                r#"{{"path":"f","kind":"file","mode":420,"size":3000000,"sha256":"{h}","chunk_size":1048576,"chunks":[]}}"#
            )),
            "0 chunks",
        );
        refuse(
            &with_entries(&format!(
                r#"{{"path":"f","kind":"file","mode":420,"size":3000000,"sha256":"{h}","chunk_size":1000,"chunks":[]}}"#
            )),
            "power of two",
        );
        refuse(
            &with_entries(r#"{"path":"a","kind":"dir","mode":493,"extra":1}"#),
            "unknown field",
        );
        refuse(
            &with_entries("").replace(r#""depends":"""#, r#""depends":"a (>> ""#),
            "depends",
        );
        refuse(
            &with_entries("").replace(r#""name":"p""#, r#""name":".stork""#),
            "bad package name",
        );
        refuse(
            &with_entries("").replace(r#""version":"1""#, r#""version":"current""#),
            "bad version",
        );
        refuse(
            &with_entries("").replace(r#""format":1"#, r#""format":7"#),
            "format 7",
        );
        refuse(
            &with_entries("").replace("stork-manifest", "stork-index"),
            "\"stork-index\" document",
        );
    }

    #[test]
    fn chunked_files_check_their_chunks() {
        let cs = 1u64 << 20;
        let size = 2 * cs + 5;
        let chunk = |n: u64| Blob {
            sha256: Digest::of(&n.to_le_bytes()),
            size: n,
            zstd: None,
        };
        let entry = |chunks: Vec<Blob>| Entry {
            path: TreePath::new("big").unwrap(),
            node: Node::File {
                mode: 0o644,
                size,
                sha256: Digest::of(b"big"),
                data: FileData::Chunked {
                    chunk_size: cs,
                    chunks,
                },
            },
        };
        let make = |chunks| {
            Manifest::new(
                PackageName::new("p").unwrap(),
                Version::new("1").unwrap(),
                SecretKey::from_seed([3; 32]).public(),
                0,
                String::new(),
                vec![entry(chunks)],
            )
        };
        let m = make(vec![chunk(cs), chunk(cs), chunk(5)]).unwrap();
        assert_eq!(Manifest::parse("m", &m.encode()).unwrap(), m);
        assert!(make(vec![chunk(cs), chunk(cs), chunk(6)]).is_err());
        assert!(make(vec![chunk(cs), chunk(cs)]).is_err());
    }

    #[test]
    fn oversized_manifest_is_refused_before_parsing() {
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        let e = Manifest::parse("m", &big).unwrap_err();
        assert!(matches!(e, DocError::TooLarge { .. }));
    }
}
