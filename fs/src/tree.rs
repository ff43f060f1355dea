//! Inode numbers, and the directory tree of one package version built from its manifest.
//!
//! Inode numbers encode what they name, so no table is needed to decode them and they
//! stay the same for the same package version across index refreshes (so the kernel's
//! page cache stays valid):
//!
//! ```text
//! 1                      /                  (root)
//! 2                      /.stork
//! 3                      /.stork/status
//! 0x1000 + 2p            /<package p>
//! 0x1000 + 2p + 1        /<package p>/current
//! (v+1) << 32            /<package>/<version v>
//! (v+1) << 32 | i        entry i (1-based) of version v's manifest
//! ```
//!
//! `p` and `v` are small integers the catalog assigns to each package name and each
//! accepted (package, version, manifest) for the daemon's lifetime.

use std::collections::HashMap;

use policy::manifest::{Entry, Manifest, Node};

const PKG_BASE: u64 = 0x1000;
/// Most packages the encoding allows.
pub const MAX_PACKAGES: u32 = 1 << 30;
const ENTRY_BITS: u32 = 32;

/// What an inode number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ino {
    /// The mount's root.
    Root,
    /// `/.stork`.
    StorkDir,
    /// `/.stork/status`.
    Status,
    /// A package directory.
    Package(u32),
    /// A package's `current` link.
    Current(u32),
    /// A version directory (the root of its tree).
    Version(u32),
    /// An entry of a version's tree (index into the manifest's entries, from 1).
    Entry(u32, u32),
}

impl Ino {
    /// The number the kernel sees.
    pub fn encode(self) -> u64 {
        match self {
            Ino::Root => 1,
            Ino::StorkDir => 2,
            Ino::Status => 3,
            Ino::Package(p) => PKG_BASE + 2 * p as u64,
            Ino::Current(p) => PKG_BASE + 2 * p as u64 + 1,
            Ino::Version(v) => (v as u64 + 1) << ENTRY_BITS,
            Ino::Entry(v, i) => ((v as u64 + 1) << ENTRY_BITS) | i as u64,
        }
    }

    /// Decodes a number the kernel sent; `None` for numbers we never gave out.
    pub fn decode(n: u64) -> Option<Ino> {
        match n {
            1 => Some(Ino::Root),
            2 => Some(Ino::StorkDir),
            3 => Some(Ino::Status),
            n if n < PKG_BASE => None,
            n if n < 1 << ENTRY_BITS => {
                let k = n - PKG_BASE;
                let p = u32::try_from(k / 2).ok().filter(|&p| p < MAX_PACKAGES)?;
                Some(if k.is_multiple_of(2) {
                    Ino::Package(p)
                } else {
                    Ino::Current(p)
                })
            }
            n => {
                let v = u32::try_from((n >> ENTRY_BITS) - 1).ok()?;
                let i = (n & 0xffff_ffff) as u32;
                Some(if i == 0 {
                    Ino::Version(v)
                } else {
                    Ino::Entry(v, i)
                })
            }
        }
    }
}

/// The tree of one accepted package version.
pub struct VersionTree {
    /// The version's id.
    pub vid: u32,
    /// The verified manifest.
    pub manifest: Manifest,
    /// For each directory (0 = the version root, i = entry i): its children, sorted by
    /// name. Empty for non-directories.
    children: Vec<Vec<u32>>,
    /// For each node, its parent (the root is its own parent).
    parent: Vec<u32>,
}

impl VersionTree {
    /// Builds the tree. The manifest was checked: entries are sorted, unique, and every
    /// parent is a directory listed before its children.
    pub fn build(vid: u32, manifest: Manifest) -> VersionTree {
        let n = manifest.entries.len();
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); n + 1];
        let mut parent = vec![0u32; n + 1];
        {
            let mut idx: HashMap<&str, u32> = HashMap::with_capacity(n);
            for (i, e) in manifest.entries.iter().enumerate() {
                let me = i as u32 + 1;
                let p = match e.path.parent() {
                    None => 0,
                    Some(pp) => idx.get(pp.as_str()).copied().unwrap_or(0),
                };
                parent[me as usize] = p;
                children[p as usize].push(me);
                if matches!(e.node, Node::Dir { .. }) {
                    idx.insert(e.path.as_str(), me);
                }
            }
        }
        for c in &mut children {
            c.sort_by(|a, b| {
                let na = manifest.entries[*a as usize - 1].path.file_name();
                let nb = manifest.entries[*b as usize - 1].path.file_name();
                na.cmp(nb)
            });
        }
        VersionTree {
            vid,
            manifest,
            children,
            parent,
        }
    }

    /// Entry `i` (1-based).
    pub fn entry(&self, i: u32) -> Option<&Entry> {
        (i as usize)
            .checked_sub(1)
            .and_then(|k| self.manifest.entries.get(k))
    }

    /// The children of directory `i` (0 = the version root).
    pub fn children(&self, i: u32) -> &[u32] {
        self.children.get(i as usize).map_or(&[], |c| c.as_slice())
    }

    /// The parent of node `i`.
    pub fn parent(&self, i: u32) -> u32 {
        self.parent.get(i as usize).copied().unwrap_or(0)
    }

    /// Looks `name` up in directory `dir`.
    pub fn lookup(&self, dir: u32, name: &str) -> Option<u32> {
        let c = self.children(dir);
        c.binary_search_by(|k| {
            self.manifest.entries[*k as usize - 1]
                .path
                .file_name()
                .cmp(name)
        })
        .ok()
        .map(|pos| c[pos])
    }

    /// How many subdirectories directory `i` has (for its link count).
    pub fn subdirs(&self, i: u32) -> u32 {
        self.children(i)
            .iter()
            .filter(|k| {
                matches!(
                    self.manifest.entries[**k as usize - 1].node,
                    Node::Dir { .. }
                )
            })
            .count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::manifest::{Blob, FileData};
    use policy::{Digest, PackageName, SecretKey, TreePath, Version};

    #[test]
    fn inode_numbers_round_trip() {
        for ino in [
            Ino::Root,
            Ino::StorkDir,
            Ino::Status,
            Ino::Package(0),
            Ino::Current(0),
            Ino::Package(MAX_PACKAGES - 1),
            Ino::Current(MAX_PACKAGES - 1),
            Ino::Version(0),
            Ino::Version(u32::MAX - 1),
            Ino::Entry(0, 1),
            Ino::Entry(7, 999_999),
        ] {
            assert_eq!(Ino::decode(ino.encode()), Some(ino), "{ino:?}");
        }
        assert_eq!(Ino::decode(0), None);
        assert_eq!(Ino::decode(4), None);
    }

    #[test]
    fn tree_lookup_and_children() {
        let e = |p: &str, node| Entry {
            path: TreePath::new(p).unwrap(),
            node,
        };
        let d = || Node::Dir { mode: 0o755 };
        let f = || Node::File {
            mode: 0o644,
            size: 0,
            sha256: Digest::of(b""),
            data: FileData::Whole(Blob {
                sha256: Digest::of(b""),
                size: 0,
                zstd: None,
            }),
        };
        let m = Manifest::new(
            PackageName::new("p").unwrap(),
            Version::new("1").unwrap(),
            SecretKey::from_seed([1; 32]).public(),
            0,
            String::new(),
            vec![
                e("b", d()),
                e("a", d()),
                e("a/z", f()),
                e("a/y", d()),
                e("a-b", f()),
                e("a/y/x", f()),
            ],
        )
        .unwrap();
        let t = VersionTree::build(3, m);
        let names = |i| {
            t.children(i)
                .iter()
                .map(|k| t.entry(*k).unwrap().path.file_name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0), ["a", "a-b", "b"]);
        let a = t.lookup(0, "a").unwrap();
        assert_eq!(names(a), ["y", "z"]);
        let y = t.lookup(a, "y").unwrap();
        assert_eq!(t.parent(y), a);
        assert_eq!(
            t.lookup(y, "x").map(|i| t.entry(i).unwrap().path.as_str()),
            Some("a/y/x")
        );
        assert_eq!(t.lookup(0, "nope"), None);
        assert_eq!(t.subdirs(0), 2);
        assert_eq!(t.subdirs(a), 1);
    }
}
