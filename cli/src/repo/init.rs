//! `stork-repo init DIR --key FILE`: an empty repository whose index is signed by FILE.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Result};
use policy::index::{IndexBody, IndexDoc};
use policy::SecretKey;

use super::{now, parse_duration, Repo};

/// Arguments of `init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory (created; must be empty if it exists).
    pub dir: PathBuf,
    /// The repository key: it signs every index.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// How long the first index stays valid.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub expires: String,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let key = SecretKey::read_file(&self.key)?;
        let ttl = parse_duration(&self.expires)?;
        if self.dir.exists() {
            if !self.dir.is_dir() {
                bail!("{} exists and is not a directory", self.dir.display());
            }
            if fs::read_dir(&self.dir)?.next().is_some() {
                bail!(
                    "{} is not empty: init makes a new repository in an empty or new directory",
                    self.dir.display()
                );
            }
        }
        let repo = Repo::create_layout(&self.dir)?;
        let _lock = repo.lock()?;
        let t = now();
        let body = IndexBody {
            version: 1,
            timestamp: t,
            expires: t + ttl,
            key: key.public(),
            rotations: vec![],
            packages: vec![],
            withdrawn: vec![],
        };
        repo.write_index(&IndexDoc::sign(body, &key))?;
        eprintln!(
            "initialised an empty repository in {}, index signed by key {}",
            self.dir.display(),
            key.public().id()
        );
        Ok(())
    }
}
