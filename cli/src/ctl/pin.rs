//! `storkctl pin NAME[@VERSION]`, `storkctl unpin NAME`, `storkctl pins`.

use anyhow::Result;
use policy::names::parse_name_at_version;
use policy::wire::{Answer, Command, PinSet};

use super::{print_json, safe, table, unexpected, Global};

/// Arguments of `pin`.
#[derive(clap::Args, Debug)]
pub struct PinArgs {
    /// The package, optionally with a version (else the newest accepted).
    #[arg(value_name = "NAME[@VERSION]")]
    pub spec: String,
    /// Set the node-wide default instead of this slice's pin (root only).
    #[arg(long)]
    pub node: bool,
}

/// Arguments of `unpin`.
#[derive(clap::Args, Debug)]
pub struct UnpinArgs {
    /// The package.
    pub name: String,
    /// Drop the node-wide pin instead (root only).
    #[arg(long)]
    pub node: bool,
}

/// Arguments of `pins`.
#[derive(clap::Args, Debug)]
pub struct PinsArgs {
    /// Show the node-wide pins instead (root only).
    #[arg(long)]
    pub node: bool,
}

fn show(g: &Global, a: Answer, verb: &str) -> Result<()> {
    let Answer::Pins(set) = a else {
        return Err(unexpected(&a));
    };
    if g.json {
        return print_json(&set);
    }
    for p in &set.added {
        eprintln!(
            "{verb} {} {}{}",
            safe(&p.name),
            safe(&p.version),
            if p.automatic {
                " (automatic, a dependency)"
            } else {
                ""
            }
        );
    }
    for n in &set.removed {
        eprintln!("unpinned {}", safe(n));
    }
    for d in &set.external {
        eprintln!(
            "note: \"{}\" is not in the repository; assumed provided by the system",
            safe(d)
        );
    }
    Ok(())
}

fn list(set: &PinSet) -> String {
    let mut rows = vec![vec!["PACKAGE".into(), "VERSION".into(), "HOW".into()]];
    for p in &set.pins {
        rows.push(vec![
            safe(&p.name),
            safe(&p.version),
            if p.automatic {
                "automatic".into()
            } else {
                "pinned".into()
            },
        ]);
    }
    table(&rows)
}

impl PinArgs {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let (name, version) = parse_name_at_version(&self.spec)?;
        let a = g.call(
            Command::Pin {
                name,
                version,
                node: self.node,
            },
            &mut |_| {},
        )?;
        show(g, a, "pinned")
    }
}

impl UnpinArgs {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let name = policy::PackageName::new(&self.name)?;
        let a = g.call(
            Command::Unpin {
                name,
                node: self.node,
            },
            &mut |_| {},
        )?;
        show(g, a, "pinned")
    }
}

impl PinsArgs {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let a = g.call(Command::Pins { node: self.node }, &mut |_| {})?;
        let Answer::Pins(set) = a else {
            return Err(unexpected(&a));
        };
        if g.json {
            return print_json(&set);
        }
        if set.pins.is_empty() {
            eprintln!("no pins for {}", set.owner);
        } else {
            print!("{}", list(&set));
        }
        Ok(())
    }
}
