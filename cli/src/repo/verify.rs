//! `stork-repo verify DIR`: check every signature and every object's hash.
//!
//! Each problem is printed on its own line naming the file, the package version and path
//! that use it, and what is wrong; the command fails when there is any.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Result};
use policy::index::{verify_index, IndexTrust};
use policy::manifest::{Blob, FileData, Manifest, Node};
use rayon::prelude::*;

use super::Repo;
use crate::progress::Bar;

/// Arguments of `verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory.
    pub dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let repo = Repo::open(&self.dir)?;
        let report = check(&repo)?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "index_version": report.index_version,
                    "packages": report.packages,
                    "objects": report.objects,
                    "problems": report.problems,
                })
            );
        } else {
            for p in &report.problems {
                println!("{p}");
            }
        }
        if !report.problems.is_empty() {
            let n = report.problems.len();
            bail!(
                "{n} {} in {}; see the lines above",
                if n == 1 { "problem" } else { "problems" },
                self.dir.display()
            );
        }
        if !self.json {
            eprintln!(
                "ok: index version {}, {} package versions, {} objects verified",
                report.index_version.unwrap_or(0),
                report.packages,
                report.objects
            );
        }
        Ok(())
    }
}

/// What `verify` found.
pub struct Report {
    /// The index version, when the index could be read.
    pub index_version: Option<u64>,
    /// Package versions listed.
    pub packages: usize,
    /// Objects checked.
    pub objects: usize,
    /// One line per problem.
    pub problems: Vec<String>,
}

/// Checks the whole repository.
pub fn check(repo: &Repo) -> Result<Report> {
    let mut problems = Vec::new();
    let (doc, bytes) = match repo.read_index() {
        Ok(x) => x,
        Err(e) => {
            return Ok(Report {
                index_version: None,
                packages: 0,
                objects: 0,
                problems: vec![format!("{e:#}")],
            })
        }
    };
    let body = &doc.signed;
    // The index must verify under its own key, through its own chain of rotations.
    let first_key = body.rotations.first().map_or(body.key, |r| r.from);
    if let Err(e) = verify_index(
        &bytes,
        &IndexTrust {
            key: first_key,
            floor: None,
        },
    ) {
        problems.push(format!("index.json: {e}"));
    }
    // Manifests: present, intact, for the right package, signed by their publisher.
    let mut objects: BTreeMap<String, (Blob, String)> = BTreeMap::new();
    for r in &body.packages {
        let who = format!("{} {}", r.name, r.version);
        let signers = r.valid_signers();
        if signers.len() < r.signatures.len() {
            problems.push(format!(
                "{who}: {} signatures do not verify",
                r.signatures.len() - signers.len()
            ));
        }
        let bytes = match read_object(repo, &r.manifest) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!(
                    "{} (manifest of {who}): {e}",
                    r.manifest.repo_path()
                ));
                continue;
            }
        };
        let m = match Manifest::parse(&format!("manifest of {who}"), &bytes) {
            Ok(m) => m,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if m.name != r.name || m.version != r.version {
            problems.push(format!(
                "{who}: the manifest is for {} {}",
                m.name, m.version
            ));
        }
        if !signers.contains(&m.publisher) {
            problems.push(format!(
                "{who}: not signed by its publisher key {}",
                m.publisher.id()
            ));
        }
        for e in &m.entries {
            if let Node::File { data, .. } = &e.node {
                let blobs: Vec<(Blob, String)> = match data {
                    FileData::Whole(b) if b.size > 0 => vec![(*b, format!("{who} {}", e.path))],
                    FileData::Whole(_) => vec![],
                    FileData::Chunked { chunks, .. } => chunks
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (*c, format!("{who} {} chunk {i}", e.path)))
                        .collect(),
                };
                for (b, user) in blobs {
                    objects.entry(b.repo_path()).or_insert((b, user));
                }
            }
        }
    }
    let bar = Bar::new("verifying objects", objects.len() as u64);
    let found = Mutex::new(Vec::new());
    objects.par_iter().for_each(|(path, (blob, user))| {
        if let Err(e) = check_object(repo, blob) {
            if let Ok(mut f) = found.lock() {
                f.push(format!("{path} (used by {user}): {e}"));
            }
        }
        bar.inc(1);
    });
    bar.finish();
    let mut found = found.into_inner().unwrap_or_default();
    found.sort();
    problems.extend(found);
    Ok(Report {
        index_version: Some(body.version),
        packages: body.packages.len(),
        objects: objects.len(),
        problems,
    })
}

/// Reads a whole object and checks it; returns the plain bytes.
pub fn read_object(repo: &Repo, blob: &Blob) -> Result<Vec<u8>> {
    let path = repo.object_file(blob);
    let stored = std::fs::read(&path).map_err(|e| anyhow::anyhow!("cannot read it: {e}"))?;
    let plain = match blob.zstd {
        None => stored,
        Some(z) => {
            let d = policy::Digest::of(&stored);
            if stored.len() as u64 != z.size || d != z.sha256 {
                bail!("stored bytes: hash mismatch: calculated {d} ({} bytes), expected {} ({} bytes)", stored.len(), z.sha256, z.size);
            }
            zstd::bulk::decompress(&stored, blob.size as usize)
                .map_err(|e| anyhow::anyhow!("does not decompress: {e}"))?
        }
    };
    let d = policy::Digest::of(&plain);
    if plain.len() as u64 != blob.size || d != blob.sha256 {
        bail!(
            "hash mismatch: calculated {d} ({} bytes), expected {} ({} bytes)",
            plain.len(),
            blob.sha256,
            blob.size
        );
    }
    Ok(plain)
}

fn check_object(repo: &Repo, blob: &Blob) -> Result<()> {
    // Objects are at most one chunk (or one manifest), so reading them whole is fine.
    read_object(repo, blob).map(drop)
}
