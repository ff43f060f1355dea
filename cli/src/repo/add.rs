//! `stork-repo add DIR --key FILE --name N --version V [--depends REL]... SOURCE`.
//!
//! Ingests a directory, a tar archive (plain, gzip, xz or zstd) or a .deb as one package
//! version: every file is cut into objects (whole, or fixed-size chunks above the chunk
//! size), each stored once under its SHA-256, the manifest is built and stored, and the
//! publisher signs its digest. Hostile sources are refused before anything is written
//! (see [`crate::ingest`]), so a refused add leaves the repository unchanged.
//!
//! Files are processed in parallel on every core; a terminal shows progress.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _, Result};
use policy::debver::parse_relations;
use policy::digest::Hasher;
use policy::index::Release;
use policy::manifest::{Blob, Entry, FileData, Manifest, Node, DEFAULT_CHUNK_SIZE};
use policy::{Digest, PackageName, SecretKey, Version};
use rayon::prelude::*;

use super::{now, Repo};
use crate::ingest::{self, Content, Limits, Progress};
use crate::progress::Bar;

/// Arguments of `add`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory.
    pub dir: PathBuf,
    /// The publisher's secret key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The package name (for a .deb, defaults to its Package field).
    #[arg(long)]
    pub name: Option<String>,
    /// The version (for a .deb, defaults to its Version field).
    #[arg(long)]
    pub version: Option<String>,
    /// A dependency in Debian relation syntax, e.g. 'libc6 (>= 2.36)'; repeat for more.
    /// For a .deb, its Depends and Pre-Depends are used unless this is given.
    #[arg(long = "depends", value_name = "RELATION")]
    pub depends: Vec<String>,
    /// Bytes per chunk for large files (a power of two).
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE, hide = true)]
    pub chunk_size: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// The source: a directory, .tar, .tar.gz, .tar.xz, .tar.zst or .deb.
    pub source: PathBuf,
}

/// What an add stored.
#[derive(Debug, Default)]
pub struct Added {
    /// Regular files in the version.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Entries of every kind.
    pub entries: u64,
    /// The manifest digest.
    pub manifest: Option<Digest>,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let key = SecretKey::read_file(&self.key)?;
        let repo = Repo::open(&self.dir)?;
        let (name, version, depends, added) = add(&repo, self, &key)?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "name": name.as_str(),
                    "version": version.as_str(),
                    "depends": depends,
                    "files": added.files,
                    "bytes": added.bytes,
                    "entries": added.entries,
                    "manifest": added.manifest.map(|d| d.to_hex()),
                })
            );
        } else {
            eprintln!(
                "added {name} {version}: {} files, {} bytes, {} entries; run `stork-repo publish {} --key REPOSITORY_KEY` to make it visible",
                added.files,
                added.bytes,
                added.entries,
                self.dir.display()
            );
        }
        Ok(())
    }
}

fn add(repo: &Repo, args: &Args, key: &SecretKey) -> Result<(PackageName, Version, String, Added)> {
    let (lo, hi) = policy::manifest::CHUNK_SIZE_RANGE;
    if !args.chunk_size.is_power_of_two() || args.chunk_size < lo || args.chunk_size > hi {
        bail!("--chunk-size must be a power of two between {lo} and {hi}");
    }
    // Check what can be checked before reading the source.
    let early = |n: &Option<String>, v: &Option<String>| -> Result<()> {
        if let (Some(n), Some(v)) = (n, v) {
            let (n, v) = (PackageName::new(n)?, Version::new(v)?);
            if repo.read_release(&n, &v)?.is_some() {
                bail!(already(&n, &v, repo));
            }
        }
        Ok(())
    };
    early(&args.name, &args.version)?;
    let scan = Bar::new("reading source", 0);
    let tree = ingest::read_source(&args.source, &Limits::default(), &|p| match p {
        Progress::Entries(n) => scan.set(n, n),
        Progress::Bytes(_) => {}
    })
    .context("nothing was added")?;
    scan.finish();
    let deb = tree.deb.as_ref();
    let name = match (&args.name, deb) {
        (Some(n), _) => PackageName::new(n)?,
        (None, Some(d)) => PackageName::new(&d.package)
            .with_context(|| format!("the Package field of {}", args.source.display()))?,
        (None, None) => bail!("--name is required (only a .deb carries its own name)"),
    };
    let version = match (&args.version, deb) {
        (Some(v), _) => Version::new(v)?,
        (None, Some(d)) => Version::new(&d.version)
            .with_context(|| format!("the Version field of {}", args.source.display()))?,
        (None, None) => bail!("--version is required (only a .deb carries its own version)"),
    };
    let depends = if !args.depends.is_empty() {
        args.depends.join(", ")
    } else {
        deb.and_then(|d| d.depends.clone()).unwrap_or_default()
    };
    parse_relations(&depends).map_err(|e| {
        anyhow!("cannot use the dependencies {depends:?}: {e} (give them with --depends)")
    })?;

    let _lock = repo.lock()?;
    if repo.read_release(&name, &version)?.is_some() {
        bail!(already(&name, &version, repo));
    }
    let total: u64 = tree
        .entries
        .iter()
        .map(|(_, n)| match n {
            ingest::Node::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
    let bar = Bar::bytes("storing", total);
    let store = ObjectStore {
        repo,
        known: Mutex::new(HashMap::new()),
    };
    let chunk_size = args.chunk_size;
    let entries: Vec<Entry> = tree
        .entries
        .par_iter()
        .map(|(path, node)| -> Result<Entry> {
            let node = match node {
                ingest::Node::Dir { mode } => Node::Dir { mode: *mode },
                ingest::Node::Symlink { target } => Node::Symlink {
                    target: target.clone(),
                },
                ingest::Node::File {
                    mode,
                    size,
                    content,
                } => {
                    let (sha256, data) = store
                        .file(content, *size, chunk_size, &bar)
                        .with_context(|| format!("{path}"))?;
                    Node::File {
                        mode: *mode,
                        size: *size,
                        sha256,
                        data,
                    }
                }
            };
            Ok(Entry {
                path: path.clone(),
                node,
            })
        })
        .collect::<Result<_>>()?;
    bar.finish();
    let mut added = Added {
        entries: entries.len() as u64,
        ..Added::default()
    };
    for e in &entries {
        if let Node::File { size, .. } = e.node {
            added.files += 1;
            added.bytes += size;
        }
    }
    let manifest = Manifest::new(
        name.clone(),
        version.clone(),
        key.public(),
        now(),
        depends.clone(),
        entries,
    )?;
    let mblob = repo.put_object(&manifest.encode())?;
    added.manifest = Some(mblob.sha256);
    let mut release = Release {
        name: name.clone(),
        version: version.clone(),
        manifest: mblob,
        signatures: vec![],
    };
    release.add_signature(key);
    // Every object must be on disk before the record that refers to them.
    repo.sync()?;
    repo.write_release(&release)?;
    Ok((name, version, depends, added))
}

fn already(name: &PackageName, version: &Version, repo: &Repo) -> String {
    format!(
        "{name} {version} already exists in {}: published versions never change; add it with a new version",
        repo.root().display()
    )
}

/// Stores objects, remembering what this run already stored.
struct ObjectStore<'a> {
    repo: &'a Repo,
    known: Mutex<HashMap<Digest, Blob>>,
}

impl ObjectStore<'_> {
    fn put(&self, bytes: &[u8]) -> Result<Blob> {
        let d = Digest::of(bytes);
        if let Some(b) = self.known.lock().ok().and_then(|k| k.get(&d).copied()) {
            return Ok(b);
        }
        let b = self.repo.put_object(bytes)?;
        if let Ok(mut k) = self.known.lock() {
            k.insert(d, b);
        }
        Ok(b)
    }

    fn file(
        &self,
        content: &Content,
        size: u64,
        chunk_size: u64,
        bar: &Bar,
    ) -> Result<(Digest, FileData)> {
        let Content::Path(path) = content;
        let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut whole = Hasher::new();
        let mut chunks = Vec::new();
        let mut buf = vec![0u8; chunk_size.min(size.max(1)) as usize];
        loop {
            let n = read_full(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            if whole.len() > size {
                bail!("{} grew while it was being read", path.display());
            }
            chunks.push(self.put(&buf[..n])?);
            bar.inc(n as u64);
        }
        if whole.len() != size {
            bail!("{} changed size while it was being read", path.display());
        }
        let sha256 = whole.finish();
        let data = match chunks.len() {
            0 => FileData::Whole(Blob {
                sha256,
                size: 0,
                zstd: None,
            }),
            1 => FileData::Whole(chunks[0]),
            _ => FileData::Chunked { chunk_size, chunks },
        };
        Ok((sha256, data))
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
