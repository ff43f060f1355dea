//! `stork-repo rotate DIR --key OLD --new-key NEW`: hand the index over to a new key.
//!
//! The old key signs a statement naming the new one; the index keeps the chain of such
//! statements, so a node that trusts the old key follows the rotation, and a rotation not
//! signed by the key a node trusts is refused.

use std::path::PathBuf;

use anyhow::{bail, Result};
use policy::index::{IndexDoc, Rotation};
use policy::SecretKey;

use super::{now, parse_duration, Repo};

/// Arguments of `rotate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory.
    pub dir: PathBuf,
    /// The current repository key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The new repository key.
    #[arg(long, value_name = "FILE")]
    pub new_key: PathBuf,
    /// How long the new index stays valid.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub expires: String,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let old = SecretKey::read_file(&self.key)?;
        let new = SecretKey::read_file(&self.new_key)?;
        let ttl = parse_duration(&self.expires)?;
        let repo = Repo::open(&self.dir)?;
        let _lock = repo.lock()?;
        let (doc, _) = repo.read_index()?;
        let current = doc.signed.key;
        if old.public() != current {
            bail!(
                "the index of {} is signed by key {}, not by {} ({}): --key must be the current repository key",
                self.dir.display(),
                current.id(),
                old.public().id(),
                self.key.display()
            );
        }
        if new.public() == current {
            bail!("--new-key is the current key already");
        }
        let mut body = doc.signed;
        body.rotations.push(Rotation::sign(&old, &new.public()));
        body.version += 1;
        let t = now();
        body.timestamp = t.max(body.timestamp);
        body.expires = t + ttl;
        repo.write_index(&IndexDoc::sign(body.clone(), &new))?;
        eprintln!(
            "index version {} is signed by key {}; nodes trusting key {} follow the rotation. Update [repository] key in trust files to {}",
            body.version,
            new.public().id(),
            old.public().id(),
            new.public()
        );
        Ok(())
    }
}
