//! `storkctl verify` (root): rehash the cache and drop what does not match.

use anyhow::{bail, Result};
use policy::wire::{Answer, Command};

use super::{print_json, unexpected, Global};

/// Arguments of `verify`.
#[derive(clap::Args, Debug)]
pub struct Args {}

impl Args {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let a = g.call(Command::Verify, &mut |_| {})?;
        let Answer::Verified(r) = a else {
            return Err(unexpected(&a));
        };
        if g.json {
            return print_json(&r);
        }
        for d in &r.removed {
            println!("removed damaged object {d}");
        }
        eprintln!(
            "{} objects checked, {} damaged and removed, {} missing, {} stray files removed",
            r.checked,
            r.removed.len(),
            r.missing,
            r.orphans
        );
        if !r.removed.is_empty() {
            bail!("the cache held damaged objects (removed; they will be fetched again): check the disk");
        }
        Ok(())
    }
}
