//! `stork-repo`: keys, packages, signed indexes and a static server for publishers.

use clap::{Parser, Subcommand};
use stork_cli::repo;

/// Publish signed packages into a Stork repository (a directory of static files).
#[derive(Parser, Debug)]
#[command(name = "stork-repo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a new ed25519 key pair (FILE and FILE.pub) and print the public key.
    Keygen(repo::keygen::Args),
    /// Make an empty repository whose index is signed by the given key.
    Init(repo::init::Args),
    /// Ingest a directory, tarball or .deb as package NAME version VERSION.
    Add(repo::add::Args),
    /// Co-sign an existing package version with another publisher key.
    Sign(repo::sign::Args),
    /// Withdraw a package version (signed by a publisher key).
    Withdraw(repo::withdraw::Args),
    /// Write a new signed index listing every package version.
    Publish(repo::publish::Args),
    /// Hand the index over to a new repository key.
    Rotate(repo::rotate::Args),
    /// Check every signature and every object's hash.
    Verify(repo::verify::Args),
    /// Serve the repository over HTTP.
    Serve(repo::serve::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Keygen(a) => a.run(),
        Command::Init(a) => a.run(),
        Command::Add(a) => a.run(),
        Command::Sign(a) => a.run(),
        Command::Withdraw(a) => a.run(),
        Command::Publish(a) => a.run(),
        Command::Rotate(a) => a.run(),
        Command::Verify(a) => a.run(),
        Command::Serve(a) => a.run(),
    };
    stork_cli::exit::finish("stork-repo", result);
}
