//! `storkctl prefetch NAME[@VERSION]`: fetch a whole version (and its dependencies) now.

use anyhow::Result;
use policy::names::parse_name_at_version;
use policy::wire::{Answer, Command};

use super::{print_json, safe, unexpected, Global};
use crate::progress::Bar;

/// Arguments of `prefetch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package, optionally with a version (else the one `current` names for you).
    #[arg(value_name = "NAME[@VERSION]")]
    pub spec: String,
}

impl Args {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let (name, version) = parse_name_at_version(&self.spec)?;
        let bar = Bar::new("prefetching", 0);
        let a = g.call(Command::Prefetch { name, version }, &mut |p| {
            bar.set(p.done, p.total)
        });
        bar.finish();
        let a = a?;
        let Answer::Prefetched(r) = a else {
            return Err(unexpected(&a));
        };
        if g.json {
            return print_json(&r);
        }
        eprintln!(
            "{}: {} files, {} bytes, all cached now ({} bytes downloaded)",
            safe(&r.versions.join(", ")),
            r.files,
            r.bytes,
            r.fetched_bytes
        );
        Ok(())
    }
}
