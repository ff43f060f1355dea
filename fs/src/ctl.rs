//! The control socket that `storkctl` talks to.
//!
//! Every slice may connect (the socket is mode 0666); the daemon acts for the uid the
//! kernel reports for the peer (SO_PEERCRED), never for anything the request says. Only
//! root may act on the node's pins (`--node`), rehash the cache or change the log level.
//!
//! One request per connection, at most [`wire::MAX_REQUEST_BYTES`], complete within
//! [`REQUEST_TIMEOUT`]; anything else gets one error line and the connection is closed.
//! At most [`MAX_CLIENTS`] requests are worked on at once, so a flood of clients cannot
//! starve the daemon; a request takes one of those slots only once it has arrived whole,
//! and one uid may hold at most [`MAX_PER_UID`] connections, so slow or half-sent
//! requests from one slice never lock the others out. A client that misbehaves only
//! loses its own connection.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use policy::manifest::{FileData, Node};
use policy::wire::{self, Answer, Command, PackageInfo, Progress, Reply, Request};
use policy::PackageName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};

use crate::catalog::{Catalog, Refreshed};
use crate::fetch::What;
use crate::log::LogControl;
use crate::pins::{Owner, Pins};
use crate::store::Kind;

/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests worked on at once.
pub const MAX_CLIENTS: usize = 64;
/// Connections one uid may have open at once (sending, waiting or being served).
pub const MAX_PER_UID: usize = 8;

/// What the control server needs.
pub struct Ctl {
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// Pins.
    pub pins: Arc<Pins>,
    /// Builds the status.
    pub status: Box<dyn Fn() -> wire::Status + Send + Sync>,
    /// The log filter.
    pub log: Option<LogControl>,
}

/// Binds the socket: creates its directory, replaces a stale socket file, refuses one a
/// live daemon answers on, and lets every user connect.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket; choose another socket= path",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::other(format!(
                "{} is in use by another storkfs; give this mount its own socket=PATH",
                path.display()
            )));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

/// Connections open per uid.
type Open = Arc<Mutex<HashMap<u32, usize>>>;

/// One open connection of a uid, counted while it lives.
struct Ticket {
    open: Open,
    uid: u32,
}

impl Ticket {
    fn take(open: &Open, uid: u32) -> Option<Ticket> {
        let mut m = open.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(uid).or_default();
        if *n >= MAX_PER_UID {
            return None;
        }
        *n += 1;
        Some(Ticket {
            open: open.clone(),
            uid,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.uid);
            }
        }
    }
}

/// Serves clients until the runtime stops.
pub async fn serve(listener: UnixListener, ctl: Arc<Ctl>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let open: Open = Arc::default();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(cause = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (ctl, slots, open) = (ctl.clone(), slots.clone(), open.clone());
        tokio::spawn(async move {
            handle(stream, &ctl, &slots, &open).await;
        });
    }
}

async fn send(w: &mut (impl AsyncWriteExt + Unpin), r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    w.write_all(&line).await
}

async fn handle(mut stream: UnixStream, ctl: &Ctl, slots: &Arc<Semaphore>, open: &Open) {
    let uid = match stream.peer_cred() {
        Ok(c) => c.uid(),
        Err(e) => {
            warn!(cause = %e, "control client without credentials; dropped");
            return;
        }
    };
    let Some(_ticket) = Ticket::take(open, uid) else {
        let message =
            format!("uid {uid} already has {MAX_PER_UID} requests open; wait for them to finish");
        debug!(uid, "too many control connections");
        let _ = send(&mut stream, &Reply::Error { message }).await;
        return;
    };
    let req = match read_request(&mut stream).await {
        Ok(r) => r,
        Err(message) => {
            debug!(uid, %message, "bad control request");
            let _ = send(&mut stream, &Reply::Error { message }).await;
            return;
        }
    };
    let Ok(_permit) = slots.clone().try_acquire_owned() else {
        let message = "the daemon is busy with other clients; try again".to_string();
        let _ = send(&mut stream, &Reply::Error { message }).await;
        return;
    };
    let (tx, mut rx) = mpsc::channel::<Progress>(16);
    let (mut rd, mut wr) = stream.into_split();
    let work = dispatch(ctl, uid, req.command, tx);
    tokio::pin!(work);
    let reply = loop {
        tokio::select! {
            r = &mut work => break r,
            Some(p) = rx.recv() => {
                if send(&mut wr, &Reply::Progress(p)).await.is_err() {
                    // The client left; finish the work anyway (a prefetch is still useful).
                }
            }
        }
    };
    let reply = match reply {
        Ok(a) => Reply::Ok(a),
        Err(message) => Reply::Error { message },
    };
    let _ = send(&mut wr, &reply).await;
    let _ = wr.shutdown().await;
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_millis(100), rd.read(&mut sink)).await;
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = Vec::new();
    let mut r = BufReader::new(stream.take(wire::MAX_REQUEST_BYTES as u64 + 1));
    match tokio::time::timeout(REQUEST_TIMEOUT, r.read_until(b'\n', &mut line)).await {
        Err(_) => {
            return Err(format!(
                "the request was not complete within {}s",
                REQUEST_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => {}
    }
    if line.len() > wire::MAX_REQUEST_BYTES {
        return Err(format!(
            "the request is longer than {} bytes",
            wire::MAX_REQUEST_BYTES
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err("the request ended before its end of line".into());
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        protocol: u32,
    }
    if let Ok(p) = serde_json::from_slice::<Probe>(&line) {
        if p.protocol != wire::PROTOCOL {
            return Err(format!(
                "storkctl speaks control protocol {}, this storkfs speaks {}: use matching versions",
                p.protocol,
                wire::PROTOCOL
            ));
        }
    }
    serde_json::from_slice(&line).map_err(|e| {
        format!(
            "malformed request: {}",
            policy::sanitize::short(&e.to_string(), 200)
        )
    })
}

fn need_root(uid: u32, what: &str) -> Result<(), String> {
    if uid == 0 {
        Ok(())
    } else {
        Err(format!("only root may {what} (you are uid {uid})"))
    }
}

async fn dispatch(
    ctl: &Ctl,
    uid: u32,
    cmd: Command,
    progress: mpsc::Sender<Progress>,
) -> Result<Answer, String> {
    let cat = &ctl.catalog;
    let owner = |node: bool| -> Result<Owner, String> {
        if node {
            need_root(uid, "change or read the node's pins with --node")?;
            Ok(Owner::Node)
        } else {
            Ok(Owner::Uid(uid))
        }
    };
    match cmd {
        Command::List { pattern } => {
            let pat = match pattern.as_deref() {
                None | Some("") => None,
                Some(p) => Some(policy::trust::Pattern::new(p)?),
            };
            let view = cat.view();
            let list = view
                .packages
                .values()
                .filter(|p| pat.as_ref().is_none_or(|pat| pat.matches(p.name.as_str())))
                .map(|p| {
                    let (pinned, node_pin) = ctl.pins.pins_of(uid, p.name.as_str());
                    PackageInfo {
                        name: p.name.to_string(),
                        versions: p.versions.iter().map(|v| v.version.to_string()).collect(),
                        current: ctl
                            .pins
                            .current(&view, p.pid, uid)
                            .map(|v| v.version.to_string()),
                        pinned,
                        node_pin,
                    }
                })
                .collect();
            Ok(Answer::List(list))
        }
        Command::Pin {
            name,
            version,
            node,
        } => {
            let owner = owner(node)?;
            let set = ctl.pins.pin(cat, owner, &name, version.as_ref()).await?;
            info!(owner = ?owner, package = %name, "pinned");
            protect_pinned(ctl).await;
            Ok(Answer::Pins(set))
        }
        Command::Unpin { name, node } => {
            let owner = owner(node)?;
            let set = ctl.pins.unpin(cat, owner, &name).await?;
            info!(owner = ?owner, package = %name, "unpinned");
            protect_pinned(ctl).await;
            Ok(Answer::Pins(set))
        }
        Command::Pins { node } => Ok(Answer::Pins(ctl.pins.set_of(owner(node)?))),
        Command::Status => Ok(Answer::Status(Box::new((ctl.status)()))),
        Command::Refresh => Ok(Answer::Refreshed(match cat.refresh().await {
            Ok(Refreshed::Changed(v)) => {
                tokio::spawn(cat.clone().load_all());
                wire::RefreshReport {
                    index_version: Some(v),
                    changed: true,
                    problem: None,
                }
            }
            Ok(Refreshed::Unchanged(v)) => wire::RefreshReport {
                index_version: Some(v),
                changed: false,
                problem: None,
            },
            Err(e) => wire::RefreshReport {
                index_version: cat.view().index.as_ref().map(|i| i.version),
                changed: false,
                problem: Some(e),
            },
        })),
        Command::Prefetch { name, version } => prefetch(ctl, uid, &name, version, progress)
            .await
            .map(Answer::Prefetched),
        Command::Verify => {
            need_root(uid, "verify the cache")?;
            let store = cat.store().clone();
            let report = tokio::task::spawn_blocking(move || store.verify_all())
                .await
                .map_err(|e| e.to_string())?;
            Ok(Answer::Verified(report))
        }
        Command::LogLevel { level } => {
            need_root(uid, "change the log level")?;
            match &ctl.log {
                Some(l) => l.set(&level)?,
                None => return Err("logging cannot be changed in this daemon".into()),
            }
            info!(level = %level, "log level changed");
            Ok(Answer::Done)
        }
    }
}

/// Recomputes which objects pins keep from eviction, at once rather than at the next
/// maintenance tick (pinning has loaded the trees of the versions it pinned).
async fn protect_pinned(ctl: &Ctl) {
    let (cat, pins) = (ctl.catalog.clone(), ctl.pins.clone());
    let _ = tokio::task::spawn_blocking(move || cat.store().set_pinned(pins.protected(&cat))).await;
}

async fn prefetch(
    ctl: &Ctl,
    uid: u32,
    name: &PackageName,
    version: Option<policy::Version>,
    progress: mpsc::Sender<Progress>,
) -> Result<wire::PrefetchReport, String> {
    let cat = &ctl.catalog;
    let view = cat.view();
    let pkg = view
        .packages
        .get(name)
        .ok_or_else(|| format!("{name} is not in the repository (storkctl list shows what is)"))?;
    let version = match version {
        Some(v) => v,
        None => ctl
            .pins
            .current(&view, pkg.pid, uid)
            .map(|v| v.version.clone())
            .ok_or_else(|| format!("{name} has no version this node accepts"))?,
    };
    let vers = ctl
        .pins
        .closure(cat, Owner::Uid(uid), name, &version)
        .await?;
    let mut jobs = Vec::new();
    let mut report = wire::PrefetchReport::default();
    for v in &vers {
        let tree = cat
            .load_tree(v.vid)
            .await
            .map_err(|e| format!("{} {}: {e}", v.name, v.version))?;
        report.versions.push(format!("{} {}", v.name, v.version));
        for e in &tree.manifest.entries {
            if let Node::File { size, data, .. } = &e.node {
                report.files += 1;
                report.bytes += size;
                let blobs: Vec<(policy::manifest::Blob, Option<u32>)> = match data {
                    FileData::Whole(b) => vec![(*b, None)],
                    FileData::Chunked { chunks, .. } => chunks
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (*c, Some(i as u32)))
                        .collect(),
                };
                for (b, chunk) in blobs {
                    if b.size > 0 && !cat.store().contains(&b.sha256) {
                        jobs.push((
                            b,
                            What {
                                package: v.name.clone(),
                                version: v.version.clone(),
                                path: Some(e.path.clone()),
                                chunk,
                            },
                        ));
                    }
                }
            }
        }
    }
    let total = jobs.len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let what = format!("prefetching {name} {version}");
    let fetcher = cat.fetcher().clone();
    let reporter = {
        let (done, bytes, progress, what) =
            (done.clone(), bytes.clone(), progress.clone(), what.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let p = Progress {
                    what: what.clone(),
                    done: done.load(Ordering::Relaxed),
                    total,
                    bytes: bytes.load(Ordering::Relaxed),
                };
                if progress.send(p).await.is_err() {
                    return;
                }
            }
        })
    };
    let results: Vec<Result<(), String>> = futures::stream::iter(jobs.into_iter().map(|(b, w)| {
        let f = fetcher.clone();
        let (done, bytes) = (done.clone(), bytes.clone());
        async move {
            let label = w.to_string();
            let r = f
                .ensure(b, Kind::Content, w)
                .await
                .map_err(|e| format!("{label}: {e}"));
            done.fetch_add(1, Ordering::Relaxed);
            if r.is_ok() {
                bytes.fetch_add(b.stored_size(), Ordering::Relaxed);
            }
            r
        }
    }))
    .buffer_unordered(8)
    .collect()
    .await;
    reporter.abort();
    report.fetched_bytes = bytes.load(Ordering::Relaxed);
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        return Err(format!(
            "{} of {total} objects could not be fetched; first: {first}",
            failed.len()
        ));
    }
    Ok(report)
}
