//! [`Mount`]: a real `storkfs` on a temporary mount point, unmounted on drop.
//!
//! The daemon runs in the foreground (`-f`, logging to stderr, which the harness keeps)
//! as a [`Daemon`] child, so a test can read its log, kill it with SIGKILL, and restart
//! it on the same cache. [`Mount::start`] returns once the kernel lists the mount and
//! `/.stork/status` answers; a daemon that exits first fails the test with its log.
//! The background mode (no `-f`) is exercised separately through [`MountBuilder::background`].

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{bin, wait_for, Cmd, Daemon, Outcome, TestDir, SOON};

/// Options for a mount.
pub struct MountBuilder {
    url: String,
    trust: String,
    options: Vec<String>,
    cache: Option<PathBuf>,
    envs: Vec<(String, String)>,
}

/// A running `storkfs` mount.
pub struct Mount {
    dir: TestDir,
    mnt: PathBuf,
    cache: PathBuf,
    socket: PathBuf,
    url: String,
    options: Vec<String>,
    envs: Vec<(String, String)>,
    daemon: Option<Daemon>,
    log: String,
}

/// Whether `path` is a mount point of type fuse.storkfs right now.
pub fn is_mounted(path: &Path) -> bool {
    let want = path.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let mut f = l.split_whitespace();
            let _ = f.next();
            f.next() == Some(want.as_str()) && f.next() == Some("fuse.storkfs")
        })
}

/// The options line of `path`'s mount in /proc/self/mounts.
pub fn mount_options(path: &Path) -> Option<String> {
    let want = path.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&want.as_str())).then(|| f.get(3).unwrap_or(&"").to_string())
        })
}

impl MountBuilder {
    /// Adds `-o` options (comma-separated or one at a time).
    pub fn option(mut self, o: &str) -> MountBuilder {
        self.options.push(o.to_string());
        self
    }

    /// Sets an environment variable for the daemon (e.g. `SSL_CERT_FILE`, `http_proxy`).
    pub fn env(mut self, k: &str, v: &str) -> MountBuilder {
        self.envs.push((k.to_string(), v.to_string()));
        self
    }

    /// Uses (and keeps) this cache directory, e.g. to restart onto it.
    pub fn cache(mut self, dir: &Path) -> MountBuilder {
        self.cache = Some(dir.to_path_buf());
        self
    }

    fn prepare(self) -> Mount {
        let dir = TestDir::new();
        let mnt = dir.mkdir("mnt");
        let cache = self.cache.unwrap_or_else(|| dir.join("cache"));
        let socket = dir.join("ctl.sock");
        fs::write(dir.join("trust.toml"), &self.trust).unwrap();
        Mount {
            mnt,
            cache,
            socket,
            url: self.url,
            options: self.options,
            envs: self.envs,
            daemon: None,
            log: String::new(),
            dir,
        }
    }

    /// Mounts in the foreground mode and waits until it serves.
    pub fn start(self) -> Mount {
        let mut m = self.prepare();
        m.launch();
        m
    }

    /// Runs `storkfs` expecting it to fail before mounting; returns what it printed.
    pub fn start_fails(self) -> Outcome {
        let m = self.prepare();
        let o = m.command(false).run();
        assert!(!o.status.success(), "storkfs should have failed\n{o}");
        assert!(!is_mounted(&m.mnt), "a failed storkfs left a mount\n{o}");
        o
    }

    /// Mounts without `-f`: `storkfs` must return once the mount is ready.
    pub fn background(self) -> (Mount, Outcome) {
        let m = self.prepare();
        let o = m.command(false).run();
        assert!(o.status.success(), "storkfs (background) failed\n{o}");
        // Ready means ready: no waiting here.
        assert!(
            is_mounted(&m.mnt),
            "storkfs returned before the mount was ready\n{o}"
        );
        (m, o)
    }
}

impl Mount {
    /// A mount of the repository at `url`, trusting what `trust_toml` says.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(url: &str, trust_toml: &str) -> MountBuilder {
        MountBuilder {
            url: url.to_string(),
            trust: trust_toml.to_string(),
            options: Vec::new(),
            cache: None,
            envs: Vec::new(),
        }
    }

    fn command(&self, foreground: bool) -> Cmd {
        let mut opts = vec![
            format!("cache={}", self.cache.display()),
            format!("trust={}", self.dir.join("trust.toml").display()),
            format!("socket={}", self.socket.display()),
            "allow_other".to_string(),
        ];
        if foreground {
            opts.push("log=stderr".into());
        } else {
            opts.push(format!("log={}", self.dir.join("storkfs.log").display()));
        }
        opts.extend(self.options.iter().cloned());
        let mut c = Cmd::bin("storkfs")
            .arg(&self.url)
            .arg(&self.mnt)
            .arg("-o")
            .arg(opts.join(","));
        if foreground {
            c = c.arg("-f");
        }
        for (k, v) in &self.envs {
            c = c.env(k, v);
        }
        c
    }

    fn launch(&mut self) {
        let mut d = self.command(true).spawn();
        let status = self.mnt.join(".stork/status");
        wait_for(SOON, "storkfs to mount", || {
            if let Some(s) = d.try_status() {
                panic!("storkfs exited ({s}) before mounting\n{}", d.describe());
            }
            if is_mounted(&self.mnt) && fs::read(&status).is_ok() {
                Ok(())
            } else {
                Err(d.describe())
            }
        });
        self.daemon = Some(d);
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.mnt
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The scratch directory holding mount point, trust file and socket.
    pub fn scratch(&self) -> &TestDir {
        &self.dir
    }

    /// `/.stork/status`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let b = fs::read(self.path(".stork/status")).expect("read /.stork/status");
        serde_json::from_slice(&b).expect("status is JSON")
    }

    /// Objects downloaded and verified so far (from the status).
    pub fn fetched_objects(&self) -> u64 {
        self.status()["fetches"]["objects"].as_u64().unwrap_or(0)
    }

    /// Everything the daemon logged so far (all of its runs).
    pub fn log(&self) -> String {
        let mut s = self.log.clone();
        if let Some(d) = &self.daemon {
            s.push_str(&d.stderr());
        }
        s
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("running").pid()
    }

    /// `storkctl --socket S ...` as root.
    pub fn ctl(&self) -> Cmd {
        Cmd::bin("storkctl").arg("--socket").arg(&self.socket)
    }

    /// `storkctl --socket S ...` as `uid` (and gid), via setpriv.
    pub fn ctl_as(&self, uid: u32) -> Cmd {
        as_uid(uid)
            .arg(bin("storkctl"))
            .arg("--socket")
            .arg(&self.socket)
    }

    /// Kills the daemon with SIGKILL (the mount is left dead), and cleans up the mount.
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.signal(libc::SIGKILL);
            d.wait_exit(SOON);
            self.log.push_str(&d.stderr());
            d.stop();
        }
        let _ = Cmd::new("umount").arg("-l").arg(&self.mnt).run();
        wait_for(SOON, "the dead mount to go", || {
            if is_mounted(&self.mnt) {
                Err("still mounted".into())
            } else {
                Ok(())
            }
        });
    }

    /// Starts the daemon again on the same cache (after [`Mount::kill9`] or [`Mount::unmount`]).
    pub fn restart(&mut self) {
        assert!(
            self.daemon.is_none(),
            "restart: the daemon is still running"
        );
        self.launch();
    }

    /// Changes the options for the next [`Mount::restart`].
    pub fn set_options(&mut self, options: &[&str]) {
        self.options = options.iter().map(|s| s.to_string()).collect();
    }

    /// Sends `signal` to the daemon (and its process group).
    pub fn signal(&self, signal: i32) {
        self.daemon.as_ref().expect("running").signal(signal);
    }

    /// Waits (up to `timeout`) for the daemon to exit by itself, e.g. after an unmount
    /// made by the test; returns how it ended. The mount is not touched.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let d = self.daemon.as_mut().expect("running");
        let s = wait_for(timeout, "storkfs to exit", || {
            d.try_status().ok_or_else(|| d.describe())
        });
        let mut d = self.daemon.take().expect("running");
        self.log.push_str(&d.stderr());
        d.stop();
        s
    }

    /// Unmounts with `umount` and asserts the daemon then exits cleanly.
    pub fn unmount(&mut self) {
        Cmd::new("umount").arg(&self.mnt).ok();
        if let Some(mut d) = self.daemon.take() {
            let s = d.wait_exit(SOON);
            self.log.push_str(&d.stderr());
            assert!(
                s.success(),
                "storkfs exited with {s} after umount\n{}",
                d.describe()
            );
            d.stop();
        }
        assert!(!is_mounted(&self.mnt));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = Cmd::new("umount").arg("-l").arg(&self.mnt).run();
        }
        // A background-mode daemon is not our child; the lazy unmount above ends it.
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }
}

/// `setpriv` running a command as `uid` (with gid = uid and no supplementary groups).
pub fn as_uid(uid: u32) -> Cmd {
    Cmd::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
}

/// Reads a file as `uid` (through `cat`).
pub fn read_as(uid: u32, path: &Path) -> Outcome {
    as_uid(uid).arg("cat").arg(path).run()
}

/// `readlink` as `uid`.
pub fn readlink_as(uid: u32, path: &Path) -> String {
    as_uid(uid)
        .arg("readlink")
        .arg(path)
        .ok()
        .trim()
        .to_string()
}

/// A deadline comfortably above `t`, for "EIO within timeout" assertions.
pub fn margin(t: Duration) -> Duration {
    t + Duration::from_secs(3)
}
