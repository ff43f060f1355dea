//! `stork-repo publish DIR --key FILE [--expires DURATION]`: a new signed index.
//!
//! The index lists every package version added (less those withdrawn), with a version
//! number one above the last and a fresh expiry. It is written atomically, under the
//! repository lock, so concurrent publishers are serialised and readers never see a
//! half-written index.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use policy::index::{verify_index, IndexBody, IndexDoc, IndexTrust};
use policy::SecretKey;

use super::{now, parse_duration, Repo};

/// Arguments of `publish`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory.
    pub dir: PathBuf,
    /// The repository key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// How long the new index stays valid (nodes refuse it as new after that).
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub expires: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let key = SecretKey::read_file(&self.key)?;
        let ttl = parse_duration(&self.expires)?;
        let repo = Repo::open(&self.dir)?;
        let _lock = repo.lock()?;
        let (old, old_bytes) = repo.read_index()?;
        // The index on disk must be one this key (or its predecessors) really signed.
        verify_index(
            &old_bytes,
            &IndexTrust {
                key: old.signed.key,
                floor: None,
            },
        )
        .with_context(|| {
            format!(
                "the current index of {} does not verify",
                self.dir.display()
            )
        })?;
        if key.public() != old.signed.key {
            bail!(
                "the index of {} is signed by key {}, but {} holds key {}: publish with the repository key (or rotate to a new one with stork-repo rotate)",
                self.dir.display(),
                old.signed.key.id(),
                self.key.display(),
                key.public().id()
            );
        }
        let withdrawn = repo.withdrawals()?;
        let gone: HashSet<(String, String)> = withdrawn
            .iter()
            .map(|w| (w.name.to_string(), w.version.to_string()))
            .collect();
        let mut packages = Vec::new();
        for r in repo.releases()? {
            if gone.contains(&(r.name.to_string(), r.version.to_string())) {
                continue;
            }
            if !repo.object_file(&r.manifest).is_file() {
                bail!(
                    "{} {}: its manifest object {} is missing; run stork-repo verify {}",
                    r.name,
                    r.version,
                    r.manifest.repo_path(),
                    self.dir.display()
                );
            }
            packages.push(r);
        }
        let before: HashSet<(String, String)> = old
            .signed
            .packages
            .iter()
            .map(|r| (r.name.to_string(), r.version.to_string()))
            .collect();
        let new = packages
            .iter()
            .filter(|r| !before.contains(&(r.name.to_string(), r.version.to_string())))
            .count();
        let t = now();
        let body = IndexBody {
            version: old.signed.version + 1,
            timestamp: t.max(old.signed.timestamp),
            expires: t + ttl,
            key: key.public(),
            rotations: old.signed.rotations.clone(),
            packages,
            withdrawn,
        };
        let doc = IndexDoc::sign(body, &key);
        repo.write_index(&doc)?;
        let b = &doc.signed;
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "version": b.version,
                    "packages": b.packages.len(),
                    "new": new,
                    "withdrawn": b.withdrawn.len(),
                    "expires": b.expires,
                })
            );
        } else {
            eprintln!(
                "published index version {}: {} package versions ({} new), {} withdrawn, expires in {}",
                b.version,
                b.packages.len(),
                new,
                b.withdrawn.len(),
                human_duration(ttl)
            );
        }
        Ok(())
    }
}

fn human_duration(s: u64) -> String {
    if s.is_multiple_of(86400) {
        format!("{} days", s / 86400)
    } else if s.is_multiple_of(3600) {
        format!("{} hours", s / 3600)
    } else {
        format!("{s} seconds")
    }
}
