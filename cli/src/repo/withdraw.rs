//! `stork-repo withdraw DIR --key FILE NAME@VERSION`: a publisher withdraws a version.
//!
//! Nodes never let a version vanish just because an index stops listing it; only a
//! withdrawal signed by a publisher trusted for that package removes it.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use policy::index::Withdrawal;
use policy::names::parse_name_at_version;
use policy::SecretKey;

use super::Repo;

/// Arguments of `withdraw`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory.
    pub dir: PathBuf,
    /// A publisher key trusted for the package.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The package version to withdraw.
    #[arg(value_name = "NAME@VERSION")]
    pub spec: String,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let key = SecretKey::read_file(&self.key)?;
        let (name, version) = parse_name_at_version(&self.spec)?;
        let version =
            version.ok_or_else(|| anyhow!("give the version to withdraw: {name}@VERSION"))?;
        let repo = Repo::open(&self.dir)?;
        let _lock = repo.lock()?;
        let release = repo
            .read_release(&name, &version)?
            .ok_or_else(|| anyhow!("{name} {version} is not in {}", self.dir.display()))?;
        let mut w = Withdrawal {
            name: name.clone(),
            version: version.clone(),
            manifest: release.manifest.sha256,
            signatures: vec![],
        };
        w.add_signature(&key);
        repo.write_withdrawal(&w)?;
        eprintln!(
            "{name} {version} withdrawn by key {}; publish to make it take effect",
            key.public().id()
        );
        Ok(())
    }
}
