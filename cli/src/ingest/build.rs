//! Collecting entries into a checked [`Tree`]: names, duplicates, parents, limits, progress.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use policy::TreePath;

use super::{IngestError, Limits, Node, Progress, Tree, MAX_SYMLINK_TARGET};

/// Report entries every this many.
const PROGRESS_ENTRIES: u64 = 1000;
/// Report bytes every this many.
pub(crate) const PROGRESS_BYTES: u64 = 16 << 20;

/// A normalised archive name.
pub(crate) enum Name {
    /// `.`, `./`, `././`: the package root.
    Root,
    /// Anything else.
    Path(TreePath),
}

/// Why a name is not a tree path.
pub(crate) enum NameProblem {
    Absolute,
    DotDot,
    Bad(String),
}

impl NameProblem {
    /// The error for entry `entry` of `file`.
    pub fn into_error(self, file: &Path, entry: &str) -> IngestError {
        let (file, entry) = (file.to_path_buf(), entry.to_string());
        match self {
            NameProblem::Absolute => IngestError::AbsolutePath { file, entry },
            NameProblem::DotDot => IngestError::DotDot { file, entry },
            NameProblem::Bad(why) => IngestError::BadPath { file, entry, why },
        }
    }

    /// A short description, for hard-link targets.
    pub fn describe(&self) -> String {
        match self {
            NameProblem::Absolute => "the target is absolute".into(),
            NameProblem::DotDot => "the target has a '..' component".into(),
            NameProblem::Bad(why) => format!("the target is not a valid path: {why}"),
        }
    }
}

/// Turns an archive name into a tree path: strips leading `./` and trailing `/`, then
/// insists on a valid [`TreePath`]. `.` and `./` are the root.
pub(crate) fn normalize(name: &str) -> Result<Name, NameProblem> {
    if name.starts_with('/') {
        return Err(NameProblem::Absolute);
    }
    let mut s = name;
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    let s = s.trim_end_matches('/');
    if s == "." || (s.is_empty() && !name.is_empty()) {
        return Ok(Name::Root);
    }
    if s.split('/').any(|c| c == "..") {
        return Err(NameProblem::DotDot);
    }
    TreePath::new(s).map(Name::Path).map_err(|e| {
        NameProblem::Bad(match e {
            policy::NameError::Path { why, .. } => why,
            other => other.to_string(),
        })
    })
}

/// Checks a symlink target's bytes; returns it verbatim as a string.
pub(crate) fn symlink_target(file: &Path, entry: &str, t: &[u8]) -> Result<String, IngestError> {
    let bad = |why: &str| IngestError::BadSymlinkTarget {
        file: file.into(),
        entry: entry.into(),
        why: why.into(),
    };
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    if t.contains(&0) {
        return Err(bad("it contains a NUL byte"));
    }
    if t.len() > MAX_SYMLINK_TARGET {
        return Err(bad("it is longer than 4096 bytes"));
    }
    match std::str::from_utf8(t) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Err(bad("it is not UTF-8, which Stork cannot represent")),
    }
}

/// Accumulates entries from one source.
pub(crate) struct Builder<'a> {
    pub file: PathBuf,
    pub limits: &'a Limits,
    progress: &'a dyn Fn(Progress),
    map: BTreeMap<TreePath, Node>,
    seen_root: bool,
    entries: u64,
    next_entries_report: u64,
    bytes: u64,
    next_bytes_report: u64,
}

impl<'a> Builder<'a> {
    pub fn new(file: &Path, limits: &'a Limits, progress: &'a dyn Fn(Progress)) -> Self {
        Builder {
            file: file.into(),
            limits,
            progress,
            map: BTreeMap::new(),
            seen_root: false,
            entries: 0,
            next_entries_report: PROGRESS_ENTRIES,
            bytes: 0,
            next_bytes_report: PROGRESS_BYTES,
        }
    }

    /// Counts one entry of the source against the limit, reporting progress now and then.
    pub fn count_entry(&mut self) -> Result<(), IngestError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries as u64 {
            return Err(IngestError::TooManyEntries {
                file: self.file.clone(),
                limit: self.limits.max_entries,
            });
        }
        if self.entries >= self.next_entries_report {
            (self.progress)(Progress::Entries(self.entries));
            self.next_entries_report += PROGRESS_ENTRIES;
        }
        Ok(())
    }

    /// Checks a file's declared size against the limits before any of it is read.
    pub fn reserve_bytes(&mut self, entry: &str, size: u64) -> Result<(), IngestError> {
        if size > self.limits.max_file_bytes {
            return Err(IngestError::FileTooBig {
                file: self.file.clone(),
                entry: entry.into(),
                size,
                limit: self.limits.max_file_bytes,
            });
        }
        match self.bytes.checked_add(size) {
            Some(t) if t <= self.limits.max_total_bytes => {}
            _ => {
                return Err(IngestError::TooManyBytes {
                    file: self.file.clone(),
                    entry: entry.into(),
                    limit: self.limits.max_total_bytes,
                })
            }
        }
        Ok(())
    }

    /// Adds `n` bytes of file content (already reserved) and reports progress now and then.
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
        if self.bytes >= self.next_bytes_report {
            (self.progress)(Progress::Bytes(self.bytes));
            self.next_bytes_report = (self.bytes / PROGRESS_BYTES + 1) * PROGRESS_BYTES;
        }
    }

    /// Records the root entry (`./`): it must be a directory and appear once.
    pub fn root(&mut self, entry: &str, is_dir: bool) -> Result<(), IngestError> {
        if !is_dir {
            return Err(IngestError::RootNotDir {
                file: self.file.clone(),
                entry: entry.into(),
            });
        }
        if self.seen_root {
            return Err(IngestError::Duplicate {
                file: self.file.clone(),
                entry: entry.into(),
            });
        }
        self.seen_root = true;
        Ok(())
    }

    /// Checks that `path` is new and that nothing already recorded above it is a symlink or
    /// a file. Call before reading the entry's data.
    pub fn check_new(&self, entry: &str, path: &TreePath) -> Result<(), IngestError> {
        if self.map.contains_key(path) {
            return Err(IngestError::Duplicate {
                file: self.file.clone(),
                entry: entry.into(),
            });
        }
        let mut cur = path.parent();
        while let Some(p) = cur {
            self.check_ancestor(entry, &p)?;
            cur = p.parent();
        }
        Ok(())
    }

    fn check_ancestor(&self, entry: &str, p: &TreePath) -> Result<bool, IngestError> {
        match self.map.get(p) {
            None => Ok(false),
            Some(Node::Dir { .. }) => Ok(true),
            Some(Node::Symlink { .. }) => Err(IngestError::ThroughSymlink {
                file: self.file.clone(),
                entry: entry.into(),
                symlink: p.to_string(),
            }),
            Some(Node::File { .. }) => Err(IngestError::ParentNotDir {
                file: self.file.clone(),
                entry: entry.into(),
                parent: p.to_string(),
            }),
        }
    }

    /// The node recorded at `path`, if any.
    pub fn get(&self, path: &TreePath) -> Option<&Node> {
        self.map.get(path)
    }

    /// Records an entry (after [`Builder::check_new`]).
    pub fn insert(&mut self, entry: &str, path: TreePath, node: Node) -> Result<(), IngestError> {
        self.check_new(entry, &path)?;
        self.map.insert(path, node);
        Ok(())
    }

    /// Final checks over the whole source (an entry may precede the symlink above it), then
    /// synthesises missing parent directories.
    pub fn finish(mut self) -> Result<Vec<(TreePath, Node)>, IngestError> {
        let mut synth = BTreeSet::new();
        for path in self.map.keys() {
            let mut cur = path.parent();
            while let Some(p) = cur {
                if self.check_ancestor(path.as_str(), &p)? {
                    break;
                }
                if !synth.insert(p.clone()) {
                    break;
                }
                cur = p.parent();
            }
        }
        for p in synth {
            self.map.insert(p, Node::Dir { mode: 0o755 });
        }
        if self.map.len() > self.limits.max_entries {
            return Err(IngestError::TooManyEntries {
                file: self.file.clone(),
                limit: self.limits.max_entries,
            });
        }
        (self.progress)(Progress::Entries(self.entries));
        (self.progress)(Progress::Bytes(self.bytes));
        Ok(self.map.into_iter().collect())
    }
}

impl Tree {
    /// The node at `path`, if the tree has one.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.entries
            .binary_search_by(|(p, _)| p.as_str().as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i].1)
    }
}
