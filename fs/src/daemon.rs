//! Starting, running and stopping the daemon.
//!
//! Without `-f`, `storkfs` re-runs itself with `-f` in a new session and waits on a pipe
//! until the child says the mount is ready (exit 0) or why it failed (exit 1, one line).
//! Re-running rather than `fork()` keeps the child's threads (tokio, fuser) out of a
//! forked copy of our own.
//!
//! In the foreground: load the trust file, open the cache, build the catalog from what
//! is cached, get a fresh index (in the background when a cached one exists, so a node
//! with its network down still mounts), mount, tell the parent, and serve until
//! `umount`, `fusermount3 -u`, SIGTERM or SIGINT.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use fuser::{MountOption, SessionACL};
use policy::trust::TrustPolicy;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, Refreshed, View};
use crate::ctl::{self, Ctl};
use crate::fetch::Fetcher;
use crate::mount::{Core, StorkFs};
use crate::options::{LogTarget, MountOptions, Quota};
use crate::pins::Pins;
use crate::source::{redact, Sources, Timeouts};
use crate::status::{self, StatusContext};
use crate::store::Store;
use crate::sys;

const READY_FD: &str = "STORK_READY_FD";

/// Runs `storkfs` without `-f`: starts the daemon in the background and waits until its
/// mount is ready.
pub fn run_background(opts: &MountOptions, args: &[String]) -> Result<()> {
    let (read_end, write_end) = nix::unistd::pipe().context("cannot create a pipe")?;
    nix::fcntl::fcntl(
        &read_end,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("fcntl")?;
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    let stderr = if opts.log_target() == LogTarget::Stderr {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut cmd = Command::new(exe);
    cmd.args(args).arg("-f");
    // With -f the child would default to stderr, which goes nowhere here: give it the
    // background default (syslog) explicitly.
    if opts.log.is_none() {
        cmd.args(["-o", "log=syslog"]);
    }
    let mut child = cmd
        .env(
            READY_FD,
            std::os::fd::AsRawFd::as_raw_fd(&write_end).to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("cannot start the daemon")?;
    drop(write_end);
    let mut msg = String::new();
    let _ = std::fs::File::from(read_end).read_to_string(&mut msg);
    let msg = msg.trim();
    if let Some(note) = msg.strip_prefix("ready") {
        let note = note.trim();
        if !note.is_empty() {
            eprintln!("storkfs: {note}");
        }
        return Ok(());
    }
    if let Some(e) = msg.strip_prefix("error: ") {
        bail!("{e}");
    }
    let status = child.wait().ok();
    bail!(
        "the daemon exited before the mount was ready ({}); run with -f to see why",
        status.map_or("unknown status".into(), |s| s.to_string())
    )
}

/// Tells the parent (if any) how the start went.
struct Ready(Option<std::fs::File>);

impl Ready {
    fn from_env() -> Ready {
        let fd = std::env::var(READY_FD)
            .ok()
            .and_then(|v| v.parse::<i32>().ok());
        // Nothing else reads it, and no other thread runs yet.
        std::env::remove_var(READY_FD);
        Ready(fd.and_then(sys::inherited_fd).map(std::fs::File::from))
    }
    fn send(&mut self, line: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Runs the daemon in the foreground until it is unmounted.
pub fn run_foreground(opts: MountOptions) -> Result<()> {
    let mut ready = Ready::from_env();
    if ready.0.is_some() {
        sys::detach();
    }
    match serve(&opts, &mut ready) {
        Ok(()) => Ok(()),
        Err(e) => {
            ready.send(&format!("error: {e:#}\n"));
            Err(e)
        }
    }
}

fn serve(opts: &MountOptions, ready: &mut Ready) -> Result<()> {
    let (logctl, fell_back) =
        crate::log::init(&opts.log_target(), &opts.log_level, &opts.cache_dir)
            .context("cannot set up logging")?;
    let _ = logctl;
    sys::raise_nofile();
    if !opts.peers.is_empty() || opts.serve.is_some() {
        warn!("peers= and serve= are accepted, but sharing caches between nodes is not in this version of storkfs; ignoring them");
    }
    if sys::is_dead_mount(&opts.mountpoint) {
        bail!(
            "{} is a Stork mount whose daemon is gone (Transport endpoint is not connected): run `umount -l {}` and mount again",
            opts.mountpoint.display(),
            opts.mountpoint.display()
        );
    }
    match std::fs::metadata(&opts.mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "mount point {} is not a directory",
            opts.mountpoint.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "mount point {} does not exist: create it with mkdir -p {}",
            opts.mountpoint.display(),
            opts.mountpoint.display()
        ),
        Err(e) => bail!("mount point {}: {e}", opts.mountpoint.display()),
    }
    let trust = TrustPolicy::read_file(&opts.trust_file).map_err(|e| anyhow!("trust file {e}"))?;
    let store = Arc::new(Store::open(&opts.cache_dir)?);
    let quota = match opts.quota {
        Quota::Bytes(b) => b,
        Quota::Percent(p) => sys::fs_space(&opts.cache_dir)
            .map(|(total, _)| total / 100 * p as u64)
            .unwrap_or(u64::MAX),
    };
    store.set_quota(quota);
    store.enforce_quota();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("storkfs-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let sources = Arc::new(Sources::new(opts, Timeouts::default()).map_err(|e| anyhow!(e))?);
    let deadline = opts.timeout.max(Duration::from_secs(60));
    let fetcher = Fetcher::new(sources, store.clone(), deadline);
    let catalog = Catalog::open(trust, store.clone(), fetcher).context("cannot read the cache")?;

    // A node whose network is down still comes up from its cached index.
    if catalog.view().index.is_none() {
        info!(repository = %redact(&opts.repo), "no cached index; fetching it");
        match rt.block_on(async { tokio::time::timeout(opts.timeout, catalog.refresh()).await }) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!(
                "no cached index, and none could be had from {}: {e}",
                redact(&opts.repo)
            ),
            Err(_) => bail!(
                "no cached index, and {} did not give one within timeout={}s",
                redact(&opts.repo),
                opts.timeout.as_secs()
            ),
        }
    } else {
        let c = catalog.clone();
        rt.spawn(async move {
            if let Err(e) = c.refresh().await {
                warn!("cannot refresh the index, serving the cached one: {e}");
            }
        });
    }
    rt.spawn(catalog.clone().load_all());

    let pins = Arc::new(Pins::load(store.clone()).context("cannot read the pins")?);
    let ctx = Arc::new(StatusContext {
        repository: redact(&opts.repo),
        mountpoint: opts.mountpoint.display().to_string(),
        quota,
    });
    let status_cat = catalog.clone();
    let status_ctx = ctx.clone();
    let current_pins = pins.clone();
    let core = Arc::new(Core {
        catalog: catalog.clone(),
        rt: rt.handle().clone(),
        timeout: opts.timeout,
        status: Box::new(move || {
            let mut v = serde_json::to_vec_pretty(&status::build(&status_cat, &status_ctx))
                .unwrap_or_default();
            v.push(b'\n');
            v
        }),
        current: Box::new(move |view: &View, pid, uid| current_pins.current(view, pid, uid)),
        gave_up: Default::default(),
    });
    let listener = {
        let _rt = rt.enter();
        ctl::bind(&opts.socket)
            .with_context(|| format!("cannot open the control socket {}", opts.socket.display()))?
    };
    let ctl_state = Arc::new(Ctl {
        catalog: catalog.clone(),
        pins: pins.clone(),
        status: {
            let (c, x) = (catalog.clone(), ctx.clone());
            Box::new(move || status::build(&c, &x))
        },
        log: Some(logctl),
    });
    rt.spawn(ctl::serve(listener, ctl_state));
    let fs = StorkFs::new(core);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(redact(&opts.repo).replace(',', "%2C")),
        // The kernel takes subtype= itself, so /proc/mounts says fuse.storkfs.
        MountOption::CUSTOM("subtype=storkfs".into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::DefaultPermissions,
    ];
    if opts.noexec {
        config.mount_options.push(MountOption::NoExec);
    }
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(opts.threads);
    config.clone_fd = true;
    let mut session = fuser::Session::new(fs, &opts.mountpoint, &config)
        .with_context(|| format!("cannot mount on {}", opts.mountpoint.display()))?;
    let mut unmounter = session.unmount_callable();
    info!(repository = %redact(&opts.repo), mountpoint = %opts.mountpoint.display(), "mounted");

    // Periodic work: index refresh, cache flush.
    {
        let c = catalog.clone();
        let every = opts.refresh;
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match c.refresh().await {
                    Ok(Refreshed::Changed(_)) => {
                        tokio::spawn(c.clone().load_all());
                    }
                    Ok(Refreshed::Unchanged(_)) => {}
                    Err(e) => warn!("cannot refresh the index: {e}"),
                }
            }
        });
        let (s, p, c) = (store.clone(), pins.clone(), catalog.clone());
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                // Pinned versions' trees, so their objects are known and kept.
                for vid in p.pinned_vids(&c.view()) {
                    if c.tree(vid).is_none() {
                        let _ = c.load_tree(vid).await;
                    }
                }
                let (s, p, c) = (s.clone(), p.clone(), c.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    s.set_pinned(p.protected(&c));
                    s.flush();
                    s.enforce_quota();
                })
                .await;
            }
        });
    }
    // SIGTERM / SIGINT: unmount, which ends the session below.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: unmounting"),
            _ = int.recv() => info!("SIGINT: unmounting"),
        }
        let _ = stop_tx.send(());
    });
    let mountpoint = opts.mountpoint.clone();
    std::thread::Builder::new()
        .name("storkfs-stop".into())
        .spawn(move || {
            if stop_rx.recv().is_ok() {
                match unmounter.unmount() {
                    Ok(()) => {}
                    // Open files keep a plain unmount from happening; told to stop, we
                    // detach the mount so that it leaves the namespace now, and the
                    // session ends when the last open file is closed.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        match sys::detach_mount(&mountpoint) {
                            Ok(()) => info!(
                                "files are open: mount detached; exiting once the last is closed"
                            ),
                            Err(e) => error!(cause = %e, "cannot detach the busy mount"),
                        }
                    }
                    Err(e) => error!(cause = %e, "cannot unmount"),
                }
            }
        })
        .context("cannot start a thread")?;

    let note =
        fell_back.map(|p| format!(" (no syslog on this machine: logging to {})", p.display()));
    ready.send(&format!("ready{}\n", note.unwrap_or_default()));
    let result = session.run();
    info!("unmounted");
    let _ = std::fs::remove_file(&opts.socket);
    store.flush();
    rt.shutdown_timeout(Duration::from_secs(2));
    result.context("the FUSE session failed")?;
    Ok(())
}
