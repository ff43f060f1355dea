//! `stork-repo withdraw DIR --key FILE NAME@VERSION`: a publisher withdraws a version.
//!
//! Nodes never let a version vanish just because an index stops listing it; only a
//! withdrawal signed by a publisher trusted for that package removes it.

use std::path::PathBuf;

use anyhow::Result;
use policy::index::Withdrawal;

use super::{existing_release, ExistingRelease};

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
        let ExistingRelease {
            key, repo, release, ..
        } = existing_release(&self.dir, &self.key, &self.spec, "withdraw")?;
        let mut w = Withdrawal {
            name: release.name.clone(),
            version: release.version.clone(),
            manifest: release.manifest.sha256,
            signatures: vec![],
        };
        w.add_signature(&key);
        repo.write_withdrawal(&w)?;
        eprintln!(
            "{} {} withdrawn by key {}; publish to make it take effect",
            w.name,
            w.version,
            key.public().id()
        );
        Ok(())
    }
}
