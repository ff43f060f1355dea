//! `storkctl log-level FILTER` (root): change the daemon's log filter while it runs.

use anyhow::Result;
use policy::wire::{Answer, Command};

use super::{unexpected, Global};

/// Arguments of `log-level`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A filter such as `info`, `debug` or `storkfs=trace`.
    pub level: String,
}

impl Args {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let a = g.call(
            Command::LogLevel {
                level: self.level.clone(),
            },
            &mut |_| {},
        )?;
        match a {
            Answer::Done => {
                eprintln!("log level set to {}", self.level);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }
}
