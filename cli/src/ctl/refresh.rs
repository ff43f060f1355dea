//! `storkctl refresh`: look for a new repository index now.

use anyhow::{bail, Result};
use policy::wire::{Answer, Command};

use super::{print_json, safe, unexpected, Global};

/// Arguments of `refresh`.
#[derive(clap::Args, Debug)]
pub struct Args {}

impl Args {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let a = g.call(Command::Refresh, &mut |_| {})?;
        let Answer::Refreshed(r) = a else {
            return Err(unexpected(&a));
        };
        if g.json {
            return print_json(&r);
        }
        if let Some(p) = &r.problem {
            bail!(
                "no new index: {}; still serving index version {}",
                safe(p),
                r.index_version.map_or("none".into(), |v| v.to_string())
            );
        }
        match (r.changed, r.index_version) {
            (true, Some(v)) => eprintln!("index version {v} accepted"),
            (_, Some(v)) => eprintln!("index version {v} is the newest"),
            (_, None) => eprintln!("no index yet"),
        }
        Ok(())
    }
}
