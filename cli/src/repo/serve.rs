//! `stork-repo serve DIR --listen ADDR:PORT`: serve a repository over HTTP/1.1.
//!
//! For demos and small setups; any static web server does the same job (README shows an
//! nginx configuration).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::Repo;
use crate::http::{self, ServerConfig, StaticFiles};

/// Arguments of `serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository directory.
    pub dir: PathBuf,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Do not log each request on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// Runs the command (until killed).
    pub fn run(&self) -> Result<()> {
        let repo = Repo::open(&self.dir)?;
        let listener = TcpListener::bind(&self.listen)
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let files = StaticFiles::new(repo.root().to_path_buf())
            .with_context(|| format!("cannot serve {}", repo.root().display()))?;
        eprintln!(
            "serving {} on http://{}/",
            repo.root().display(),
            listener.local_addr()?
        );
        let config = ServerConfig {
            log: !self.quiet,
            ..ServerConfig::default()
        };
        http::run(listener, Arc::new(files), config).context("the server stopped")
    }
}
