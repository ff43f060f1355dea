//! A repository on disk, as `stork-repo` writes it.
//!
//! ```text
//! DIR/index.json                    the signed index (the only file that ever changes)
//! DIR/objects/ab/abcd…              content-addressed objects, named by the SHA-256 of
//! DIR/objects/ab/abcd….zst          their plain bytes (.zst when stored compressed)
//! DIR/releases/NAME/VERSION.json    one signed release per package version, from `add`
//! DIR/withdrawals/NAME/VERSION.json publisher-signed withdrawals, from `withdraw`
//! DIR/.lock                         serialises writers (add, sign, publish, rotate)
//! DIR/.tmp/                         staging; files move into place with rename(2)
//! ```
//!
//! Everything but `index.json` is immutable once written, so any web server, CDN or
//! caching proxy can serve and cache it forever. Nodes read `index.json` and `objects/`;
//! `releases/` and `withdrawals/` are the publisher-side record `publish` builds the
//! index from (public information, harmless to serve). Hidden files are never served.

pub mod add;
pub mod init;
pub mod keygen;
pub mod publish;
pub mod rotate;
pub mod serve;
pub mod sign;
pub mod verify;
pub mod withdraw;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context as _, Result};
use policy::index::{IndexDoc, Release, Withdrawal, INDEX_FILE};
use policy::manifest::{Blob, Stored};
use policy::{canon, Digest, PackageName, Version};

/// Objects smaller than this are stored as they are.
const MIN_COMPRESS: u64 = 128;

/// An open repository directory.
pub struct Repo {
    root: PathBuf,
}

/// The exclusive writer lock; released on drop.
pub struct Lock {
    _file: File,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Repo {
    /// Opens an existing repository (one with an index).
    pub fn open(root: &Path) -> Result<Repo> {
        if !root.join(INDEX_FILE).is_file() {
            bail!(
                "{} is not a Stork repository (no {INDEX_FILE}): create one with `stork-repo init {} --key FILE`",
                root.display(),
                root.display()
            );
        }
        Ok(Repo {
            root: root.to_path_buf(),
        })
    }

    /// A repository handle for a directory being created.
    pub(crate) fn create_layout(root: &Path) -> Result<Repo> {
        for d in ["objects", "releases", "withdrawals", ".tmp"] {
            fs::create_dir_all(root.join(d))
                .with_context(|| format!("cannot create {}", root.join(d).display()))?;
        }
        Ok(Repo {
            root: root.to_path_buf(),
        })
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the writer lock, waiting for another writer to finish.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.root.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Lock { _file: file })
    }

    /// Reads and strictly parses the current index (without judging its signature).
    pub fn read_index(&self) -> Result<(IndexDoc, Vec<u8>)> {
        let path = self.root.join(INDEX_FILE);
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let doc = IndexDoc::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        Ok((doc, bytes))
    }

    /// Writes the index atomically: readers and servers see the old file or the new one,
    /// never a mix.
    pub fn write_index(&self, doc: &IndexDoc) -> Result<()> {
        self.write_atomic(&self.root.join(INDEX_FILE), &doc.encode())
    }

    fn release_path(&self, dir: &str, name: &PackageName, version: &Version) -> PathBuf {
        self.root
            .join(dir)
            .join(name.as_str())
            .join(format!("{}.json", version.as_str()))
    }

    /// The release record of `name` `version`, if `add` made one.
    pub fn read_release(&self, name: &PackageName, version: &Version) -> Result<Option<Release>> {
        let path = self.release_path("releases", name, version);
        match fs::read(&path) {
            Ok(b) => Ok(Some(parse_record(&path, &b)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes a release record atomically.
    pub fn write_release(&self, r: &Release) -> Result<()> {
        let path = self.release_path("releases", &r.name, &r.version);
        self.write_atomic(&path, &canon::encode(r))
    }

    /// Writes a withdrawal record atomically.
    pub fn write_withdrawal(&self, w: &Withdrawal) -> Result<()> {
        let path = self.release_path("withdrawals", &w.name, &w.version);
        self.write_atomic(&path, &canon::encode(w))
    }

    /// Every release record, sorted by name then version text.
    pub fn releases(&self) -> Result<Vec<Release>> {
        self.records("releases")
    }

    /// Every withdrawal record, sorted by name then version text.
    pub fn withdrawals(&self) -> Result<Vec<Withdrawal>> {
        self.records("withdrawals")
    }

    fn records<T: serde::de::DeserializeOwned>(&self, dir: &str) -> Result<Vec<T>> {
        let top = self.root.join(dir);
        let mut out = Vec::new();
        let names = match fs::read_dir(&top) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", top.display())),
        };
        let mut paths = Vec::new();
        for n in names {
            let n = n?;
            if !n.file_type()?.is_dir() {
                continue;
            }
            for v in fs::read_dir(n.path())? {
                let p = v?.path();
                if p.extension().is_some_and(|e| e == "json") {
                    paths.push(p);
                }
            }
        }
        paths.sort();
        for p in paths {
            let b = fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            out.push(parse_record(&p, &b)?);
        }
        Ok(out)
    }

    /// Path of an object file.
    pub fn object_file(&self, blob: &Blob) -> PathBuf {
        self.root.join(blob.repo_path())
    }

    /// Stores `bytes` as an object (compressed when that saves space) and returns its
    /// blob. An object that already exists is checked and reused; a damaged one is
    /// replaced.
    pub fn put_object(&self, bytes: &[u8]) -> Result<Blob> {
        let sha256 = Digest::of(bytes);
        let size = bytes.len() as u64;
        let plain = Blob {
            sha256,
            size,
            zstd: None,
        };
        // Reuse an object another file or package already stored.
        let zst_path = self.root.join(format!("{}.zst", sha256.object_path()));
        if let Some(stored) = existing_compressed(&zst_path, &sha256, size) {
            return Ok(Blob {
                zstd: Some(stored),
                ..plain
            });
        }
        let raw_path = self.root.join(sha256.object_path());
        if existing_plain(&raw_path, &sha256, size) {
            return Ok(plain);
        }
        if size >= MIN_COMPRESS {
            let z = zstd::bulk::compress(bytes, 3).context("zstd failed")?;
            if (z.len() as u64) * 10 <= size * 9 {
                self.write_atomic_nosync(&zst_path, &z)?;
                return Ok(Blob {
                    zstd: Some(Stored {
                        sha256: Digest::of(&z),
                        size: z.len() as u64,
                    }),
                    ..plain
                });
            }
        }
        self.write_atomic_nosync(&raw_path, bytes)?;
        Ok(plain)
    }

    /// Flushes everything written so far to disk (one syncfs instead of an fsync per
    /// object), before a record that refers to the objects is written.
    pub fn sync(&self) -> Result<()> {
        let f = File::open(&self.root)?;
        nix::unistd::syncfs(&f).context("syncfs failed")?;
        Ok(())
    }

    fn tmp_path(&self) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(".tmp")
            .join(format!("{}.{}", std::process::id(), n))
    }

    fn write_atomic_nosync(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.write_tmp_then_rename(path, bytes, false)
    }

    /// Writes a file so that it appears complete or not at all, and is on disk when this
    /// returns.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.write_tmp_then_rename(path, bytes, true)
    }

    fn write_tmp_then_rename(&self, path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
        let parent = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        fs::create_dir_all(self.root.join(".tmp"))?;
        let tmp = self.tmp_path();
        let result = (|| -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            if durable {
                f.sync_all()?;
            }
            fs::rename(&tmp, path)?;
            if durable {
                File::open(parent)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.with_context(|| format!("cannot write {}", path.display()))
    }
}

fn parse_record<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("{} is damaged", path.display()))
}

/// A stored compressed object that decompresses to the expected content.
fn existing_compressed(path: &Path, sha256: &Digest, size: u64) -> Option<Stored> {
    let z = fs::read(path).ok()?;
    let plain = zstd::bulk::decompress(&z, size as usize).ok()?;
    (plain.len() as u64 == size && Digest::of(&plain) == *sha256).then(|| Stored {
        sha256: Digest::of(&z),
        size: z.len() as u64,
    })
}

fn existing_plain(path: &Path, sha256: &Digest, size: u64) -> bool {
    policy::digest::Hasher::file_matches(path, sha256, size)
}

/// What `sign` and `withdraw` act on: the publisher key, the repository (locked while
/// the value lives) and the release `NAME@VERSION` names, which must exist.
pub(crate) struct ExistingRelease {
    pub key: policy::SecretKey,
    pub repo: Repo,
    pub release: Release,
    _lock: Lock,
}

/// Reads `key`, parses `spec` (the version is required, to `verb` it) and loads the
/// release under the repository lock.
pub(crate) fn existing_release(
    dir: &Path,
    key: &Path,
    spec: &str,
    verb: &str,
) -> Result<ExistingRelease> {
    let key = policy::SecretKey::read_file(key)?;
    let (name, version) = policy::names::parse_name_at_version(spec)?;
    let version =
        version.ok_or_else(|| anyhow::anyhow!("give the version to {verb}: {name}@VERSION"))?;
    let repo = Repo::open(dir)?;
    let lock = repo.lock()?;
    let release = repo.read_release(&name, &version)?.ok_or_else(|| {
        anyhow::anyhow!("{name} {version} is not in {}: add it first", dir.display())
    })?;
    Ok(ExistingRelease {
        key,
        repo,
        release,
        _lock: lock,
    })
}

/// Unix time now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses a duration such as `30d`, `12h`, `90m`, `3600s`, `2w` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| {
        anyhow::anyhow!("bad duration {s:?}: expected a number and a unit, e.g. 30d, 12h, 90m")
    })?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => bail!("bad duration {s:?}: the unit must be s, m, h, d or w"),
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| anyhow::anyhow!("bad duration {s:?}: it must be above zero and reasonable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("2w").unwrap(), 14 * 86400);
        for bad in ["", "d", "3y", "0s", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
