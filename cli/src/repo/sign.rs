//! `stork-repo sign DIR --key FILE NAME@VERSION`: co-sign an existing package version.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use policy::names::parse_name_at_version;
use policy::SecretKey;

use super::Repo;

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
        let key = SecretKey::read_file(&self.key)?;
        let (name, version) = parse_name_at_version(&self.spec)?;
        let version =
            version.ok_or_else(|| anyhow!("give the version to co-sign: {name}@VERSION"))?;
        let repo = Repo::open(&self.dir)?;
        let _lock = repo.lock()?;
        let mut release = repo.read_release(&name, &version)?.ok_or_else(|| {
            anyhow!(
                "{name} {version} is not in {}: add it first",
                self.dir.display()
            )
        })?;
        release.add_signature(&key);
        repo.write_release(&release)?;
        eprintln!(
            "key {} co-signed {name} {version} ({} signatures); publish to make it visible",
            key.public().id(),
            release.signatures.len()
        );
        Ok(())
    }
}
