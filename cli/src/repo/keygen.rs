//! `stork-repo keygen --out FILE`: a new ed25519 key pair.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use policy::keys::{pub_path, SecretKey};

/// Arguments of `keygen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the secret key (mode 0600); the public key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Runs the command.
    pub fn run(&self) -> Result<()> {
        let key = SecretKey::generate()?;
        key.write_files(&self.out)
            .with_context(|| format!("cannot create the key pair at {}", self.out.display()))?;
        let public = key.public();
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "public_key": public.to_string(),
                    "key_id": public.id().to_string(),
                    "secret_file": self.out,
                    "public_file": pub_path(&self.out),
                })
            );
        } else {
            println!("{public}");
            eprintln!(
                "secret key in {} (mode 0600, keep it private), public key in {} (key id {})",
                self.out.display(),
                pub_path(&self.out).display(),
                public.id()
            );
        }
        Ok(())
    }
}
