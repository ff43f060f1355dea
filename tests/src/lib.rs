//! The integration-test harness: real binaries, real processes, real HTTP on 127.0.0.1.
//!
//! One harness, small helpers (in the spirit of ripgrep's `tests/util.rs`):
//!
//! - [`bin`] finds a workspace binary; [`Cmd`] runs it and checks the outcome; [`Daemon`]
//!   is a child process killed (with its whole process group) on drop;
//! - [`TestDir`] is a temporary directory with writers, [`snapshot`] captures a directory
//!   byte for byte (for "a refused add leaves the repository unchanged");
//! - [`Repo`] drives the real `stork-repo` binary; [`Origin`] is a fault-injecting HTTP
//!   server over a repository; [`Nginx`] and [`Squid`] run the real servers;
//! - [`Mount`] runs a real `storkfs` on a temporary mount point, unmounted on drop;
//! - [`fixtures`] builds hostile archives, real `.deb`s and real trees;
//! - [`wait_until`] / [`wait_for`] replace every sleep: they poll a condition until a
//!   deadline and panic with the whole state when it expires.
//!
//! # Binaries
//! Cargo builds a test's own package, not the binaries of the packages it depends on, and
//! `env!("CARGO_BIN_EXE_...")` exists only inside the package that defines the binary. So
//! run `cargo build --workspace` before `cargo test -p stork-tests`; [`bin`] finds
//! `target/<profile>/NAME` next to the running test executable (`target/<profile>/deps/x`),
//! or under `$CARGO_TARGET_DIR`, and refuses a missing binary or one older than the
//! sources it is built from, so a stale build never passes for the current code.
//! (`cargo test -p stork-tests` alone rebuilds `stork-cli`'s library, not its binaries.)
//!
//! # Tools
//! Tests use `curl`, `tar`, `xz`, `zstd`, `dpkg-deb`, `apt-get`, `python3`, `nginx` and
//! `squid` from the system. A missing tool fails the test with the command that could not
//! run; nothing is ever skipped.

mod cache;
pub mod fixtures;
pub mod http;
mod mount;
mod nginx;
mod origin;
mod process;
mod repo;
mod squid;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub use cache::{cache_holds_bytes, cache_objects, cache_tmp_files};
pub use http::{curl, HttpResponse, Request};
pub use mount::{
    as_uid, is_mounted, margin, mount_options, read_as, readlink_as, Mount, MountBuilder,
};
pub use nginx::{Nginx, NGINX_SITE};
pub use origin::{Gate, Origin, Pattern, RuleId};
pub use process::{Cmd, Daemon, Outcome};
pub use repo::{Key, Publisher, Repo};
pub use squid::{Squid, SquidEntry, SquidLog};

/// The usual deadline for something that should happen "at once" on a loaded machine.
pub const SOON: Duration = Duration::from_secs(20);

/// The workspace root (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The path of workspace binary `name` (`stork-repo`, `storkfs`, `storkctl`).
///
/// Panics with "run `cargo build --workspace` first" when it is missing, or older than a
/// source file of the crates it is built from (its own and its `path` dependencies).
pub fn bin(name: &str) -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/test-HASH -> target/<profile>/
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(name));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = workspace_root().join(t);
        candidates.push(t.join("debug").join(name));
        candidates.push(t.join("release").join(name));
    }
    candidates.push(workspace_root().join("target/debug").join(name));
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        panic!(
            "binary {name} not found (looked at {candidates:?}): run `cargo build --workspace` first"
        );
    };
    let built = mtime(found);
    if let Some((src, t)) = newest_source_of(name) {
        if t > built {
            panic!(
                "{} is older than {}: run `cargo build --workspace` first",
                found.display(),
                src.display()
            );
        }
    }
    found.clone()
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The crate directories binary `name` is built from: the workspace member that defines
/// it, and the members it depends on by `path = "..."`, transitively.
fn crates_of(name: &str) -> Vec<PathBuf> {
    let root = workspace_root();
    let members: Vec<PathBuf> = fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    let manifest = |dir: &Path| fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let Some(owner) = members.iter().find(|m| {
        m.join(format!("src/bin/{name}.rs")).is_file()
            || manifest(m).contains(&format!("name = \"{name}\""))
    }) else {
        return members;
    };
    let mut out = vec![owner.clone()];
    let mut i = 0;
    while i < out.len() {
        let text = manifest(&out[i]);
        for piece in text.split("path = \"").skip(1) {
            let Some(rel) = piece.split('"').next() else {
                continue;
            };
            let Ok(dep) = fs::canonicalize(out[i].join(rel)) else {
                continue;
            };
            if dep.join("Cargo.toml").is_file() && !out.contains(&dep) {
                out.push(dep);
            }
        }
        i += 1;
    }
    out
}

/// The newest `.rs` or `Cargo.toml` of the crates binary `name` is built from.
fn newest_source_of(name: &str) -> Option<(PathBuf, SystemTime)> {
    fn walk(dir: &Path, best: &mut Option<(PathBuf, SystemTime)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if e.file_name() != "target" {
                    walk(&p, best);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                || p.file_name().is_some_and(|n| n == "Cargo.toml")
            {
                let t = mtime(&p);
                if best.as_ref().is_none_or(|(_, b)| t > *b) {
                    *best = Some((p, t));
                }
            }
        }
    }
    let mut best = None;
    for c in crates_of(name) {
        walk(&c, &mut best);
    }
    best
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0")
        .port()
}

/// Polls `probe` until it returns `Ok`, for at most `timeout`; returns its value. On
/// expiry, panics with `what` and the last `Err` (which should describe the whole state).
pub fn wait_for<T>(
    timeout: Duration,
    what: impl fmt::Display,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match probe() {
            Ok(v) => return v,
            Err(state) => {
                if start.elapsed() >= timeout {
                    panic!("timed out after {timeout:?} waiting for {what}\nstate: {state}");
                }
            }
        }
        // Polling back-off, not synchronisation: the condition decides.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Polls `cond` until it holds, for at most `timeout`; panics naming `what` on expiry.
/// Use [`wait_for`] to print a richer state.
pub fn wait_until(timeout: Duration, what: impl fmt::Display, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, &what, || {
        if cond() {
            Ok(())
        } else {
            Err("the condition is still false".into())
        }
    })
}

/// Waits until `url` answers any HTTP response; returns it.
pub fn wait_for_http(url: &str, timeout: Duration) -> HttpResponse {
    wait_for(timeout, format!("{url} to answer"), || {
        Request::get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .map_err(|e| e.to_string())
    })
}

// ---------------------------------------------------------------------------------------
// Directories

/// A temporary directory, removed on drop, with small writers. Paths are relative to it.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl TestDir {
    /// A new, empty directory under the system temporary directory.
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("stork-test-")
                .tempdir()
                .expect("cannot create a temporary directory"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` inside it.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating parents); returns its path.
    pub fn write(&self, rel: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
        }
        fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {p:?}: {e}"));
        p
    }

    /// Creates a directory (and parents); returns its path.
    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {p:?}: {e}"));
        p
    }

    /// Creates a symlink `rel` -> `target` (target verbatim).
    pub fn symlink(&self, rel: impl AsRef<Path>, target: impl AsRef<Path>) -> PathBuf {
        let p = self.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        std::os::unix::fs::symlink(target.as_ref(), &p)
            .unwrap_or_else(|e| panic!("symlink {p:?}: {e}"));
        p
    }

    /// Creates a hard link `rel` to the existing `existing` (both relative).
    pub fn hard_link(&self, rel: impl AsRef<Path>, existing: impl AsRef<Path>) -> PathBuf {
        let p = self.join(rel);
        fs::hard_link(self.join(existing), &p).unwrap_or_else(|e| panic!("link {p:?}: {e}"));
        p
    }

    /// Sets the permission bits of `rel`.
    pub fn chmod(&self, rel: impl AsRef<Path>, mode: u32) {
        let p = self.join(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {p:?}: {e}"));
    }

    /// Reads `rel`.
    pub fn read(&self, rel: impl AsRef<Path>) -> Vec<u8> {
        let p = self.join(rel);
        fs::read(&p).unwrap_or_else(|e| panic!("read {p:?}: {e}"))
    }
}

/// What a [`snapshot`] records of a path.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A symlink's target.
    Symlink(PathBuf),
    /// Anything else (device, FIFO, socket).
    Other,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Dir => f.write_str("dir"),
            Node::File(b) => write!(
                f,
                "file of {} bytes, sha256 {}",
                b.len(),
                policy::Digest::of(b).short()
            ),
            Node::Symlink(t) => write!(f, "symlink -> {t:?}"),
            Node::Other => f.write_str("special file"),
        }
    }
}

/// Every path below a directory (relative, the root itself as ""), with its permission
/// bits and content.
pub type Snapshot = BTreeMap<PathBuf, (u32, Node)>;

/// Captures `dir` byte for byte (files, symlink targets, modes, directories).
pub fn snapshot(dir: &Path) -> Snapshot {
    fn walk(root: &Path, p: &Path, out: &mut Snapshot) {
        let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {p:?}: {e}"));
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let mode = md.mode() & 0o7777;
        let ft = md.file_type();
        let node = if ft.is_dir() {
            Node::Dir
        } else if ft.is_file() {
            Node::File(fs::read(p).unwrap_or_else(|e| panic!("read {p:?}: {e}")))
        } else if ft.is_symlink() {
            Node::Symlink(fs::read_link(p).unwrap())
        } else {
            Node::Other
        };
        out.insert(rel, (mode, node));
        if ft.is_dir() {
            let mut children: Vec<PathBuf> = fs::read_dir(p)
                .unwrap_or_else(|e| panic!("read_dir {p:?}: {e}"))
                .map(|e| e.unwrap().path())
                .collect();
            children.sort();
            for c in children {
                walk(root, &c, out);
            }
        }
    }
    let mut out = Snapshot::new();
    walk(dir, dir, &mut out);
    out
}

/// The differences between two snapshots, one line each (empty when equal).
pub fn snapshot_diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut d = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            None => d.push(format!("removed {p:?} ({:o} {:?})", b.0, b.1)),
            Some(a) if a != b => d.push(format!(
                "changed {p:?}: {:o} {:?} -> {:o} {:?}",
                b.0, b.1, a.0, a.1
            )),
            _ => {}
        }
    }
    for (p, a) in after {
        if !before.contains_key(p) {
            d.push(format!("added {p:?} ({:o} {:?})", a.0, a.1));
        }
    }
    d
}

/// Asserts that `dir` still matches `before`, listing every difference.
#[track_caller]
pub fn assert_unchanged(dir: &Path, before: &Snapshot, what: &str) {
    let diff = snapshot_diff(before, &snapshot(dir));
    assert!(
        diff.is_empty(),
        "{what}: {} changed:\n  {}",
        dir.display(),
        diff.join("\n  ")
    );
}

/// Asserts `haystack` contains every needle, printing it whole otherwise.
#[track_caller]
pub fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(
            haystack.contains(n),
            "expected {n:?} in:\n-----\n{haystack}\n-----"
        );
    }
}

/// Reads `len` bytes of `path` at `offset` (`len = None`: to the end) after asking the
/// kernel to drop what its page cache holds of the file (`posix_fadvise(DONTNEED)`). A
/// Stork mount opens files with `FOPEN_KEEP_CACHE`, so without this a second read may be
/// answered by the kernel and never reach the daemon and its cache.
pub fn read_uncached(path: &Path, offset: u64, len: Option<usize>) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::fd::AsRawFd;
    let mut f = fs::File::open(path)?;
    // SAFETY: posix_fadvise(2) only reads its integer arguments; the descriptor is open
    // for the whole call.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    match len {
        None => {
            f.read_to_end(&mut out)?;
        }
        Some(n) => {
            out.resize(n, 0);
            f.read_exact(&mut out)?;
        }
    }
    Ok(out)
}
