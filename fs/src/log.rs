//! Where log lines go (`log=`), and changing the level at run time.
//!
//! Only `main` installs the subscriber. It also collects fuser's `log` records. The
//! filter can be changed while running (`storkctl log-level`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::options::LogTarget;

/// Changes the log filter of a running daemon.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
}

impl LogControl {
    /// Sets a new filter, e.g. `debug` or `storkfs=trace`.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let f = EnvFilter::try_new(with_quiet_fuser(filter))
            .map_err(|e| format!("not a log filter: {e}"))?;
        self.handle.reload(f).map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
enum Sink {
    Stderr,
    File(Arc<Mutex<File>>),
    Syslog(Arc<UnixDatagram>),
}

struct Line {
    sink: Sink,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match &self.sink {
            Sink::Stderr => {
                let _ = io::stderr().write_all(&self.buf);
            }
            Sink::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(&self.buf);
                }
            }
            Sink::Syslog(sock) => {
                // <daemon.info> in RFC 3164 form; the level is in the text itself.
                let text = String::from_utf8_lossy(&self.buf);
                let msg = format!("<30>storkfs[{}]: {}", std::process::id(), text.trim_end());
                let _ = sock.send(msg.as_bytes());
            }
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line {
            sink: self.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

/// Installs the subscriber. Returns the control handle and, when syslog was asked for but
/// the machine has none, the file used instead.
pub fn init(
    target: &LogTarget,
    level: &str,
    fallback_dir: &Path,
) -> io::Result<(LogControl, Option<std::path::PathBuf>)> {
    let mut fell_back = None;
    let sink = match target {
        LogTarget::Stderr => Sink::Stderr,
        LogTarget::File(p) => Sink::File(Arc::new(Mutex::new(open_log(p)?))),
        LogTarget::Syslog => match UnixDatagram::unbound().and_then(|s| {
            s.connect("/dev/log")?;
            Ok(s)
        }) {
            Ok(s) => Sink::Syslog(Arc::new(s)),
            Err(_) => {
                let p = fallback_dir.join("storkfs.log");
                std::fs::create_dir_all(fallback_dir)?;
                let f = open_log(&p)?;
                fell_back = Some(p);
                Sink::File(Arc::new(Mutex::new(f)))
            }
        },
    };
    let filter =
        EnvFilter::try_new(with_quiet_fuser(level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = matches!(sink, Sink::Stderr) && io::IsTerminal::is_terminal(&io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(sink.clone())
        .with_ansi(ansi)
        .with_target(false)
        .without_time();
    // Syslog stamps its own time; files and terminals get ours.
    let registry = tracing_subscriber::registry().with(filter);
    let res = if matches!(sink, Sink::Syslog(_)) {
        registry.with(fmt).try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(sink)
                    .with_ansi(ansi)
                    .with_target(false),
            )
            .try_init()
    };
    res.map_err(|e| io::Error::other(e.to_string()))?;
    Ok((LogControl { handle }, fell_back))
}

/// fuser warns "Failed to umount filesystem" after every external `umount`, which is the
/// normal way to stop us; keep its session module to errors unless asked for.
fn with_quiet_fuser(level: &str) -> String {
    if level.contains("fuser") {
        level.to_string()
    } else {
        format!("{level},fuser::session=error")
    }
}

fn open_log(p: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
}
