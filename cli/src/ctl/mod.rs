//! `storkctl`: one module per subcommand, all talking to the daemon through [`Client`].
//!
//! The daemon is found at `--socket PATH`, else `$STORK_SOCKET`, else
//! `/run/stork/ctl.sock`. It acts for the caller's uid, which it reads from the socket;
//! nothing here claims an identity.

pub mod list;
pub mod log_level;
pub mod pin;
pub mod prefetch;
pub mod refresh;
pub mod status;
pub mod verify;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use policy::wire::{self, Answer, Command, Progress, Reply, Request};

use crate::exit::{Code, NO_DAEMON};

/// The default socket.
pub const DEFAULT_SOCKET: &str = "/run/stork/ctl.sock";

/// Options every subcommand takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// The daemon's control socket [default: $STORK_SOCKET, else /run/stork/ctl.sock].
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Global {
    /// The socket to use.
    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .or_else(|| std::env::var_os("STORK_SOCKET").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    /// Sends `command` and returns the final answer, passing progress lines on.
    pub fn call(&self, command: Command, on_progress: &mut dyn FnMut(&Progress)) -> Result<Answer> {
        let path = self.socket();
        let stream = UnixStream::connect(&path).map_err(|e| no_daemon(&path, e))?;
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut line = serde_json::to_vec(&Request {
            protocol: wire::PROTOCOL,
            command,
        })?;
        line.push(b'\n');
        // A daemon that refuses us closes without reading, but says why first: so a
        // failed send still reads that answer. (Its error is kept as text: a broken
        // pipe here is not storkctl's stdout closing, which `exit::finish` ignores.)
        let sent = (&stream)
            .write_all(&line)
            .map_err(|e| anyhow!("cannot send the request to the daemon: {e}"));
        let mut reader = BufReader::new(&stream);
        loop {
            let mut buf = String::new();
            let n = match reader.read_line(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    sent?;
                    return Err(e).context("no answer from the daemon");
                }
            };
            if n == 0 {
                sent?;
                return Err(anyhow!(
                    "the daemon closed the connection without answering"
                ));
            }
            let reply: Reply = serde_json::from_str(&buf).map_err(|e| {
                anyhow!("the daemon sent an answer this storkctl does not understand: {e}")
            })?;
            match reply {
                Reply::Progress(p) => on_progress(&p),
                Reply::Ok(a) => return Ok(a),
                Reply::Error { message } => return Err(anyhow!(message)),
            }
        }
    }
}

fn no_daemon(path: &std::path::Path, e: std::io::Error) -> anyhow::Error {
    let why = match e.kind() {
        ErrorKind::NotFound => "no Stork daemon listens there".to_string(),
        ErrorKind::ConnectionRefused => "the daemon that made it is not running".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    let mut msg = format!(
        "cannot reach the Stork daemon at {} ({why})",
        path.display()
    );
    for m in dead_mounts() {
        msg.push_str(&format!(
            "; the Stork mount at {m} has lost its daemon (Transport endpoint is not connected): run `umount -l {m}` and mount it again"
        ));
    }
    if !msg.contains("lost its daemon") {
        msg.push_str("; is Stork mounted? Give --socket PATH or set STORK_SOCKET");
    }
    anyhow::Error::new(Code(NO_DAEMON)).context(msg)
}

/// Stork mounts whose daemon is gone.
pub fn dead_mounts() -> Vec<String> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return vec![];
    };
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_src, dir, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "fuse.storkfs").then(|| dir.replace("\\040", " "))
        })
        .filter(|d| matches!(std::fs::metadata(d), Err(e) if e.raw_os_error() == Some(107)))
        .collect()
}

/// Prints rows as aligned columns (the first row is the header).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut width = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Escapes a string from the daemon for the terminal.
pub fn safe(s: &str) -> String {
    policy::sanitize::escape(s)
}

/// Prints a JSON value on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// The answer was not the kind the command expects.
pub fn unexpected(a: &Answer) -> anyhow::Error {
    anyhow!("the daemon gave an unexpected answer: {a:?}")
}
