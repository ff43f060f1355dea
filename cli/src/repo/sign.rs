//! `stork-repo sign DIR --key FILE NAME@VERSION`: co-sign an existing package version.

use std::path::PathBuf;

use anyhow::Result;

use super::{existing_release, ExistingRelease};

/// Arguments of `sign`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory.
    pub dir: PathBuf,
    /// The co-signing publisher's key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The package version to co-sign.
    #[arg(value_name = "NAME@VERSION")]
    pub spec: String,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let ExistingRelease {
            key,
            repo,
            mut release,
            ..
        } = existing_release(&self.dir, &self.key, &self.spec, "co-sign")?;
        release.add_signature(&key);
        repo.write_release(&release)?;
        eprintln!(
            "key {} co-signed {} {} ({} signatures); publish to make it visible",
            key.public().id(),
            release.name,
            release.version,
            release.signatures.len()
        );
        Ok(())
    }
}
