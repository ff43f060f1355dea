//! Reading a package source — a directory, a tar (plain, gzip, xz, zstd) or a `.deb` — into
//! a checked, sorted list of tree entries.
//!
//! Hostile input is refused, never "cleaned up": absolute or `..` paths, entries under a
//! symlink of the same archive, hard links to anything but an earlier regular file, device
//! nodes, FIFOs, sockets, duplicates, names that are not UTF-8, unusable symlink targets,
//! sources over [`Limits`], and damaged archives. Nothing is ever written outside the
//! [`Tree`]'s own temporary directory; archives are read as streams (the `tar` crate's
//! `entries()` only, never `unpack`), with file contents copied straight to spill files.
//!
//! The source kind is recognised by content: a directory; `!<arch>\n` (a `.deb`); gzip,
//! xz or zstd magic (a compressed tar); or a valid tar header.

mod build;
mod deb;
mod dir;
mod error;
mod tarsrc;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use policy::TreePath;

pub use error::IngestError;

/// Longest symlink target we keep, in bytes.
pub const MAX_SYMLINK_TARGET: usize = 4096;

/// A package tree read from a source.
#[derive(Debug)]
pub struct Tree {
    /// Sorted by path bytes, unique; every parent directory is present as a `Dir` (missing
    /// ones are synthesised with mode 0o755).
    pub entries: Vec<(TreePath, Node)>,
    /// The control fields, when the source was a `.deb`.
    pub deb: Option<DebControl>,
    /// Spilled archive contents; removed when the tree is dropped.
    spill: Option<tempfile::TempDir>,
}

impl Tree {
    /// Where spilled archive contents live (`None` for directory sources).
    pub fn spill_dir(&self) -> Option<&Path> {
        self.spill.as_ref().map(|d| d.path())
    }
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory; `mode` is the permission bits (`& 0o7777`).
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file (hard links are files sharing their target's content).
    File {
        /// Permission bits.
        mode: u32,
        /// Size in bytes.
        size: u64,
        /// Where the bytes are.
        content: Content,
    },
    /// A symlink; the target is kept verbatim (absolute targets included).
    Symlink {
        /// The target.
        target: String,
    },
}

/// Where a file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// In this file: the original for a directory source, a spill file under the tree's
    /// temporary directory for an archive. Hard links share their target's spill file.
    Path(PathBuf),
}

/// The fields of a `.deb`'s `control` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebControl {
    /// `Package`.
    pub package: String,
    /// `Version`.
    pub version: String,
    /// `Depends` and `Pre-Depends` (unfolded), joined with ", "; `None` if neither.
    pub depends: Option<String>,
    /// Every field in file order; continuation lines are joined with `\n`, verbatim.
    pub fields: Vec<(String, String)>,
}

impl DebControl {
    /// The value of field `name` (case-insensitive), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How much a source may hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Entries in the source (archive entries, or files under a directory).
    pub max_entries: usize,
    /// Sum of all file sizes. Against decompression bombs, the decompressed archive
    /// stream (headers and skipped data included) may also be at most twice this plus
    /// 64 MiB.
    pub max_total_bytes: u64,
    /// Size of any one file.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_total_bytes: 64 << 30,
            max_file_bytes: 64 << 30,
        }
    }
}

/// Progress reports, now and then (every 1000 entries, every 16 MiB) and once at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Entries read so far.
    Entries(u64),
    /// File bytes read so far.
    Bytes(u64),
}

/// Reads `path` into a checked tree, spilling archive contents under the system temporary
/// directory (`TMPDIR`).
pub fn read_source(
    path: &Path,
    limits: &Limits,
    progress: &dyn Fn(Progress),
) -> Result<Tree, IngestError> {
    read_source_in(path, &std::env::temp_dir(), limits, progress)
}

/// [`read_source`], spilling archive contents into a new directory under `spill_parent`.
pub fn read_source_in(
    path: &Path,
    spill_parent: &Path,
    limits: &Limits,
    progress: &dyn Fn(Progress),
) -> Result<Tree, IngestError> {
    let io_err = |doing: &str, error| IngestError::Io {
        file: path.into(),
        doing: doing.into(),
        error,
    };
    // Follows a symlink given as the source itself (the caller's choice); never inside.
    let md = std::fs::metadata(path).map_err(|e| io_err("read it", e))?;
    if md.is_dir() {
        let root = std::fs::canonicalize(path).map_err(|e| io_err("resolve it", e))?;
        let mut b = build::Builder::new(path, limits, progress);
        dir::read_dir_tree(&root, &mut b)?;
        let entries = b.finish()?;
        return Ok(Tree {
            entries,
            deb: None,
            spill: None,
        });
    }
    if !md.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let ft = md.file_type();
        let found = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "a special file"
        };
        return Err(IngestError::NotASource {
            file: path.into(),
            found: found.into(),
        });
    }
    let f = File::open(path).map_err(|e| io_err("open it", e))?;
    let mut r = BufReader::with_capacity(256 << 10, f);
    let head = tarsrc::read_head(&mut r, 512).map_err(|e| io_err("read it", e))?;
    let is_deb = head.starts_with(deb::AR_MAGIC);
    if !is_deb && tarsrc::Compression::sniff(&head).is_none() && !tarsrc::looks_like_tar(&head) {
        return Err(IngestError::NotASource {
            file: path.into(),
            found: describe(&head).into(),
        });
    }
    let r = io::Cursor::new(head).chain(r);
    let mut spill = tarsrc::Spill::new(spill_parent)?;
    let mut b = build::Builder::new(path, limits, progress);
    let deb = if is_deb {
        Some(deb::read_deb(r, &mut b, &mut spill)?)
    } else {
        let stream = tarsrc::open_tar(path, r, |found| IngestError::NotASource {
            file: path.into(),
            found,
        })?;
        tarsrc::read_tree(stream, &mut b, &mut spill)?;
        None
    };
    let entries = b.finish()?;
    Ok(Tree {
        entries,
        deb,
        spill: Some(spill.dir),
    })
}

/// What an unrecognised file looks like, for the refusal.
fn describe(head: &[u8]) -> &'static str {
    if head.is_empty() {
        "an empty file"
    } else if head.starts_with(b"BZh") {
        "bzip2-compressed (recompress it with gzip, xz or zstd)"
    } else if head.starts_with(b"PK\x03\x04") {
        "a zip file"
    } else if head.starts_with(&[0x5d, 0, 0]) {
        "lzma-compressed (recompress it with xz)"
    } else {
        "a file of another kind"
    }
}
