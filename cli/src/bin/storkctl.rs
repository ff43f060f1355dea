//! `storkctl`: pin versions, list packages, status, prefetch — for each slice and the admin.

use clap::{Parser, Subcommand};
use stork_cli::ctl::{self, Global};

/// Talk to the node's Stork daemon: list packages, pin versions for this slice, prefetch,
/// status.
#[derive(Parser, Debug)]
#[command(name = "storkctl", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Packages and versions this slice may use, marking pins.
    List(ctl::list::Args),
    /// Pin NAME (the newest accepted version if none given) and its dependencies.
    Pin(ctl::pin::PinArgs),
    /// Drop a pin (and automatic pins nothing needs any more).
    Unpin(ctl::pin::UnpinArgs),
    /// This slice's pins.
    Pins(ctl::pin::PinsArgs),
    /// Repository, index version and age, sources and their health, cache use.
    Status(ctl::status::Args),
    /// Fetch a whole version now (for offline use).
    Prefetch(ctl::prefetch::Args),
    /// Look for a new repository index now.
    Refresh(ctl::refresh::Args),
    /// Rehash the cache and drop what does not match (root).
    Verify(ctl::verify::Args),
    /// Change the daemon's log filter (root).
    LogLevel(ctl::log_level::Args),
}

fn main() {
    let cli = Cli::parse();
    let g = &cli.global;
    let result = match &cli.command {
        Cmd::List(a) => a.run(g),
        Cmd::Pin(a) => a.run(g),
        Cmd::Unpin(a) => a.run(g),
        Cmd::Pins(a) => a.run(g),
        Cmd::Status(a) => a.run(g),
        Cmd::Prefetch(a) => a.run(g),
        Cmd::Refresh(a) => a.run(g),
        Cmd::Verify(a) => a.run(g),
        Cmd::LogLevel(a) => a.run(g),
    };
    stork_cli::exit::finish("storkctl", result);
}
