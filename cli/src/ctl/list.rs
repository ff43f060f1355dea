//! `storkctl list [PATTERN]`: packages and versions this slice may use, marking pins.

use anyhow::Result;
use policy::wire::{Answer, Command};

use super::{print_json, safe, table, unexpected, Global};

/// Arguments of `list`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only packages whose name matches this glob (`*`, `?`, `[a-z]`).
    pub pattern: Option<String>,
}

impl Args {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let a = g.call(
            Command::List {
                pattern: self.pattern.clone(),
            },
            &mut |_| {},
        )?;
        let Answer::List(list) = a else {
            return Err(unexpected(&a));
        };
        if g.json {
            return print_json(&list);
        }
        if list.is_empty() {
            eprintln!(
                "no packages{}",
                self.pattern
                    .as_ref()
                    .map_or(String::new(), |p| format!(" match {p:?}"))
            );
            return Ok(());
        }
        let mut rows = vec![vec![
            "PACKAGE".into(),
            "CURRENT".into(),
            "PIN".into(),
            "VERSIONS".into(),
        ]];
        for p in list {
            let pin = match (&p.pinned, &p.node_pin) {
                (Some(v), _) => v.clone(),
                (None, Some(v)) => format!("{v} (node)"),
                (None, None) => "-".into(),
            };
            rows.push(vec![
                safe(&p.name),
                safe(p.current.as_deref().unwrap_or("-")),
                safe(&pin),
                safe(&p.versions.join(" ")),
            ]);
        }
        print!("{}", table(&rows));
        Ok(())
    }
}
