//! The FUSE filesystem: thin callbacks over the catalog, the cache and the fetcher.
//!
//! Each callback checks its arguments, answers at once from memory or the local cache
//! when it can, and otherwise hands the reply to a tokio task that answers when the
//! manifest or object has arrived (or EIO when `timeout=` passes). So no request ever
//! blocks a FUSE thread on the network, and one slow file never stalls other readers or
//! listings.
//!
//! Cache times: everything inside a version is immutable, so it gets a long entry and
//! attribute time and kept page cache. Package and root listings change when a new index
//! arrives (1 s). `current` differs per calling uid and `/.stork/status` over time, so
//! both get zero (the kernel asks again on every path walk, with the caller's uid).
//!
//! Errors: module errors stay internal; [`fail`] turns them into an errno, logs the
//! cause once, and replies.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
};
use policy::manifest::{Blob, Entry, FileData, Node};
use policy::Digest;
use tracing::{debug, warn};

use crate::catalog::{Catalog, LoadError, View};
use crate::fetch::{FetchError, What};
use crate::store::evict::Hold;
use crate::store::{Kind, Store};
use crate::tree::{Ino, VersionTree};

/// Entries and attributes inside a version never change.
const TTL_FOREVER: Duration = Duration::from_secs(365 * 86400);
/// Root and package listings change when a new index is accepted.
const TTL_LISTING: Duration = Duration::from_secs(1);
/// Per-caller or time-varying answers.
const TTL_NONE: Duration = Duration::ZERO;
/// Files never change: keep their pages across opens, and skip the FLUSH round trip on
/// every close (there is nothing to flush in a read-only file).
const FILE_OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE.union(FopenFlags::FOPEN_NOFLUSH);

/// Resolves `current` of package `pid` for `uid` in a view.
pub type CurrentFn = Box<dyn Fn(&View, u32, u32) -> Option<Arc<crate::catalog::Ver>> + Send + Sync>;

/// What the filesystem needs from the rest of the daemon.
pub struct Core {
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// The runtime tasks run on.
    pub rt: tokio::runtime::Handle,
    /// The longest a read waits on the network.
    pub timeout: Duration,
    /// Renders `/.stork/status`.
    pub status: Box<dyn Fn() -> Vec<u8> + Send + Sync>,
    /// Resolves `current` for a uid.
    pub current: CurrentFn,
    /// Downloads a reader has given up on.
    pub gave_up: GaveUp,
}

/// Chunks whose download a reader gave up on (its `timeout=` passed), and when.
///
/// When the READ of a readahead fails, the kernel retries the page at once with a
/// second READ; without this, that retry waited another full timeout on the same stuck
/// download, so one `read(2)` took twice `timeout=`. The first read of a chunk still
/// downloading that a reader gave up on less than `timeout` ago gets EIO at once; later
/// reads wait again.
#[derive(Default)]
pub struct GaveUp(Mutex<HashMap<Digest, Instant>>);

impl GaveUp {
    fn note(&self, digests: &[Digest]) {
        let now = Instant::now();
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for d in digests {
            m.insert(*d, now);
        }
    }

    /// Whether a reader gave up on one of `digests` less than `within` ago; forgets
    /// those.
    fn take_recent(&self, digests: &[Digest], within: Duration) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, t| t.elapsed() < within);
        let mut found = false;
        for d in digests {
            found |= m.remove(d).is_some();
        }
        found
    }
}

enum Handle {
    Status(Vec<u8>),
    Dir(Vec<(u64, FileType, String)>),
    File { _hold: Hold },
}

/// The filesystem.
pub struct StorkFs {
    core: Arc<Core>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
}

/// Why a request failed, before it becomes an errno.
enum Fail {
    NotFound,
    NotDir,
    IsDir,
    ReadOnly,
    Invalid(&'static str),
    Load(LoadError),
    Fetch(String, FetchError),
    TimedOut(String, Duration),
    Local(String, std::io::Error),
}

/// The one place module errors become errnos; logs the cause once per failure.
fn errno(f: Fail) -> Errno {
    match f {
        Fail::NotFound => Errno::ENOENT,
        Fail::NotDir => Errno::ENOTDIR,
        Fail::IsDir => Errno::EISDIR,
        Fail::ReadOnly => Errno::EROFS,
        Fail::Invalid(why) => {
            debug!(why, "invalid request");
            Errno::EINVAL
        }
        Fail::Load(LoadError::Gone) => Errno::ENOENT,
        Fail::Load(e) => {
            warn!(cause = %e, "cannot load a package version; answering EIO");
            Errno::EIO
        }
        Fail::Fetch(what, e) => {
            warn!(object = %what, cause = %e, "cannot fetch; answering EIO");
            Errno::EIO
        }
        Fail::TimedOut(what, t) => {
            warn!(object = %what, "no verified bytes within timeout={}s; answering EIO", t.as_secs());
            Errno::EIO
        }
        Fail::Local(what, e) => {
            warn!(object = %what, cause = %e, "cannot read from the cache; answering EIO");
            Errno::EIO
        }
    }
}

fn time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn attr(ino: Ino, kind: FileType, perm: u32, size: u64, nlink: u32, mtime: u64) -> FileAttr {
    let t = time(mtime);
    FileAttr {
        ino: INodeNo(ino.encode()),
        size,
        blocks: size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind,
        perm: perm as u16,
        nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// Attributes of an entry inside a version. setuid and setgid bits are never served.
fn entry_attr(tree: &VersionTree, idx: u32) -> Option<FileAttr> {
    let t = tree.manifest.created;
    let ino = Ino::Entry(tree.vid, idx);
    Some(match &tree.entry(idx)?.node {
        Node::Dir { mode } => attr(
            ino,
            FileType::Directory,
            mode & 0o1777,
            4096,
            2 + tree.subdirs(idx),
            t,
        ),
        Node::File { mode, size, .. } => {
            attr(ino, FileType::RegularFile, mode & 0o1777, *size, 1, t)
        }
        Node::Symlink { target } => attr(ino, FileType::Symlink, 0o777, target.len() as u64, 1, t),
    })
}

fn version_attr(tree: &VersionTree) -> FileAttr {
    attr(
        Ino::Version(tree.vid),
        FileType::Directory,
        0o755,
        4096,
        2 + tree.subdirs(0),
        tree.manifest.created,
    )
}

/// The objects holding bytes [offset, offset+len) of a file, with the range within each.
fn segments(node: &Node, offset: u64, len: u64) -> Vec<(Blob, u64, u64, Option<u32>)> {
    let Node::File { size, data, .. } = node else {
        return vec![];
    };
    let end = (offset.saturating_add(len)).min(*size);
    if offset >= end {
        return vec![];
    }
    match data {
        FileData::Whole(b) => vec![(*b, offset, end - offset, None)],
        FileData::Chunked { chunk_size, chunks } => {
            let mut out = Vec::new();
            let mut pos = offset;
            while pos < end {
                let i = pos / chunk_size;
                let Some(c) = chunks.get(i as usize) else {
                    break;
                };
                let within = pos - i * chunk_size;
                let n = (c.size - within).min(end - pos);
                out.push((*c, within, n, Some(i as u32)));
                pos += n;
            }
            out
        }
    }
}

impl StorkFs {
    /// A filesystem over `core`.
    pub fn new(core: Arc<Core>) -> StorkFs {
        StorkFs {
            core,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, h);
        fh
    }

    fn catalog(&self) -> &Catalog {
        &self.core.catalog
    }

    fn root_attr(&self, view: &View) -> FileAttr {
        let t = view.index.as_ref().map_or(0, |i| i.timestamp);
        attr(
            Ino::Root,
            FileType::Directory,
            0o755,
            4096,
            3 + view.packages.len() as u32,
            t,
        )
    }

    fn stork_dir_attr(&self) -> FileAttr {
        attr(Ino::StorkDir, FileType::Directory, 0o555, 4096, 2, 0)
    }

    fn status_attr(&self) -> FileAttr {
        attr(Ino::Status, FileType::RegularFile, 0o444, 0, 1, 0)
    }

    fn package_attr(&self, view: &View, pid: u32) -> Option<FileAttr> {
        let p = view.by_pid.get(&pid)?;
        let t = view.index.as_ref().map_or(0, |i| i.timestamp);
        Some(attr(
            Ino::Package(pid),
            FileType::Directory,
            0o755,
            4096,
            2 + p.versions.len() as u32,
            t,
        ))
    }

    fn current_target(&self, view: &View, pid: u32, uid: u32) -> Option<String> {
        (self.core.current)(view, pid, uid).map(|v| v.version.to_string())
    }

    fn current_attr(&self, view: &View, pid: u32, uid: u32) -> Option<FileAttr> {
        let target = self.current_target(view, pid, uid)?;
        let t = view.index.as_ref().map_or(0, |i| i.timestamp);
        Some(attr(
            Ino::Current(pid),
            FileType::Symlink,
            0o777,
            target.len() as u64,
            1,
            t,
        ))
    }

    /// Attributes of `ino` without waiting, or `Err(vid)` when a version must load first.
    fn attr_now(&self, ino: Ino, uid: u32) -> Result<Option<(FileAttr, Duration)>, u32> {
        let view = self.catalog().view();
        Ok(match ino {
            Ino::Root => Some((self.root_attr(&view), TTL_LISTING)),
            Ino::StorkDir => Some((self.stork_dir_attr(), TTL_LISTING)),
            Ino::Status => Some((self.status_attr(), TTL_NONE)),
            Ino::Package(p) => self.package_attr(&view, p).map(|a| (a, TTL_LISTING)),
            Ino::Current(p) => self.current_attr(&view, p, uid).map(|a| (a, TTL_NONE)),
            Ino::Version(v) => match self.catalog().tree(v) {
                Some(t) => Some((version_attr(&t), TTL_FOREVER)),
                None if view.by_vid.contains_key(&v) => return Err(v),
                None => None,
            },
            Ino::Entry(v, i) => self
                .catalog()
                .tree(v)
                .and_then(|t| entry_attr(&t, i))
                .map(|a| (a, TTL_FOREVER)),
        })
    }

    fn child_now(
        &self,
        parent: Ino,
        name: &str,
        uid: u32,
    ) -> Result<Result<(FileAttr, Duration), Fail>, u32> {
        let view = self.catalog().view();
        let found = match parent {
            Ino::Root if name == ".stork" => Ok((self.stork_dir_attr(), TTL_LISTING)),
            Ino::Root => match policy::PackageName::new(name)
                .ok()
                .and_then(|n| view.packages.get(&n))
            {
                Some(p) => self
                    .package_attr(&view, p.pid)
                    .map(|a| (a, TTL_LISTING))
                    .ok_or(Fail::NotFound),
                None => Err(Fail::NotFound),
            },
            Ino::StorkDir if name == "status" => Ok((self.status_attr(), TTL_NONE)),
            Ino::StorkDir => Err(Fail::NotFound),
            Ino::Package(p) if name == "current" => self
                .current_attr(&view, p, uid)
                .map(|a| (a, TTL_NONE))
                .ok_or(Fail::NotFound),
            Ino::Package(p) => {
                let Some(pkg) = view.by_pid.get(&p) else {
                    return Ok(Err(Fail::NotFound));
                };
                match pkg.versions.iter().find(|v| v.version.as_str() == name) {
                    None => Err(Fail::NotFound),
                    Some(v) => match self.catalog().tree(v.vid) {
                        Some(t) => Ok((version_attr(&t), TTL_LISTING)),
                        None => return Err(v.vid),
                    },
                }
            }
            Ino::Version(v) | Ino::Entry(v, _) => {
                let dir = if let Ino::Entry(_, i) = parent { i } else { 0 };
                match self.catalog().tree(v) {
                    None => Err(Fail::NotFound),
                    Some(t) => match t.entry(dir).map(|e| &e.node) {
                        Some(Node::Dir { .. }) | None if dir == 0 || t.entry(dir).is_some() => {
                            match t.lookup(dir, name).and_then(|i| entry_attr(&t, i)) {
                                Some(a) => Ok((a, TTL_FOREVER)),
                                None => Err(Fail::NotFound),
                            }
                        }
                        _ => Err(Fail::NotDir),
                    },
                }
            }
            Ino::Current(_) | Ino::Status => Err(Fail::NotDir),
        };
        Ok(found)
    }

    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.core.rt.spawn(f);
    }

    fn entry_of(&self, ino: Ino) -> Option<(Arc<VersionTree>, u32)> {
        match ino {
            Ino::Entry(v, i) => self.catalog().tree(v).map(|t| (t, i)),
            _ => None,
        }
    }

    fn what(tree: &VersionTree, e: &Entry, chunk: Option<u32>) -> What {
        What {
            package: tree.manifest.name.clone(),
            version: tree.manifest.version.clone(),
            path: Some(e.path.clone()),
            chunk,
        }
    }

    fn dir_listing(&self, ino: Ino, uid: u32) -> Result<Vec<(u64, FileType, String)>, Fail> {
        let view = self.catalog().view();
        let mut out = Vec::new();
        match ino {
            Ino::Root => {
                out.push((1, FileType::Directory, ".".into()));
                out.push((1, FileType::Directory, "..".into()));
                out.push((Ino::StorkDir.encode(), FileType::Directory, ".stork".into()));
                for (name, p) in &view.packages {
                    out.push((
                        Ino::Package(p.pid).encode(),
                        FileType::Directory,
                        name.to_string(),
                    ));
                }
            }
            Ino::StorkDir => {
                out.push((ino.encode(), FileType::Directory, ".".into()));
                out.push((1, FileType::Directory, "..".into()));
                out.push((Ino::Status.encode(), FileType::RegularFile, "status".into()));
            }
            Ino::Package(p) => {
                let pkg = view.by_pid.get(&p).ok_or(Fail::NotFound)?;
                out.push((ino.encode(), FileType::Directory, ".".into()));
                out.push((1, FileType::Directory, "..".into()));
                if self.current_target(&view, p, uid).is_some() {
                    out.push((
                        Ino::Current(p).encode(),
                        FileType::Symlink,
                        "current".into(),
                    ));
                }
                for v in &pkg.versions {
                    out.push((
                        Ino::Version(v.vid).encode(),
                        FileType::Directory,
                        v.version.to_string(),
                    ));
                }
            }
            Ino::Version(v) | Ino::Entry(v, _) => {
                let dir = if let Ino::Entry(_, i) = ino { i } else { 0 };
                let t = self.catalog().tree(v).ok_or(Fail::NotFound)?;
                if dir != 0 && !matches!(t.entry(dir).map(|e| &e.node), Some(Node::Dir { .. })) {
                    return Err(Fail::NotDir);
                }
                let parent = if dir == 0 {
                    view.by_vid
                        .get(&v)
                        .and_then(|ver| view.packages.get(&ver.name))
                        .map_or(1, |p| Ino::Package(p.pid).encode())
                } else {
                    match t.parent(dir) {
                        0 => Ino::Version(v).encode(),
                        p => Ino::Entry(v, p).encode(),
                    }
                };
                out.push((ino.encode(), FileType::Directory, ".".into()));
                out.push((parent, FileType::Directory, "..".into()));
                for &c in t.children(dir) {
                    let Some(e) = t.entry(c) else { continue };
                    let kind = match e.node {
                        Node::Dir { .. } => FileType::Directory,
                        Node::File { .. } => FileType::RegularFile,
                        Node::Symlink { .. } => FileType::Symlink,
                    };
                    out.push((
                        Ino::Entry(v, c).encode(),
                        kind,
                        e.path.file_name().to_string(),
                    ));
                }
            }
            Ino::Status | Ino::Current(_) => return Err(Fail::NotDir),
        }
        Ok(out)
    }
}

/// Reads a file range from the cache, or `None` when some object is missing.
fn read_cached(
    store: &Store,
    node: &Node,
    offset: u64,
    size: u32,
) -> Result<Option<Vec<u8>>, std::io::Error> {
    let segs = segments(node, offset, size as u64);
    if segs
        .iter()
        .any(|(b, ..)| b.size > 0 && !store.contains(&b.sha256))
    {
        return Ok(None);
    }
    let total: u64 = segs.iter().map(|s| s.2).sum();
    let mut out = vec![0u8; total as usize];
    let mut at = 0usize;
    for (b, start, n, _) in segs {
        let buf = &mut out[at..at + n as usize];
        match store.read_at(&b.sha256, start, buf) {
            Ok(k) if k as u64 == n => {}
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "short object",
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        at += n as usize;
    }
    Ok(Some(out))
}

/// Fetches every object of a range (and starts fetching the next chunk), within the
/// read timeout.
async fn fetch_range(
    core: Arc<Core>,
    tree: Arc<VersionTree>,
    idx: u32,
    offset: u64,
    size: u32,
) -> Result<(), Fail> {
    let Some(e) = tree.entry(idx) else {
        return Err(Fail::NotFound);
    };
    let fetcher = core.catalog.fetcher().clone();
    let segs = segments(&e.node, offset, size as u64);
    // Sequential readers: start on the chunk after this range.
    if let (
        Node::File {
            data: FileData::Chunked { chunks, .. },
            ..
        },
        Some(last),
    ) = (&e.node, segs.last())
    {
        if let Some(next) = last
            .3
            .map(|i| i as usize + 1)
            .and_then(|i| chunks.get(i).map(|c| (i, *c)))
        {
            // Read-ahead only with room to spare: it must never evict what readers asked for.
            if core
                .catalog
                .store()
                .has_room(2 * (next.1.stored_size() + next.1.size))
            {
                let f = fetcher.clone();
                let what = StorkFs::what(&tree, e, Some(next.0 as u32));
                core.rt.spawn(async move {
                    let _ = f.ensure(next.1, Kind::Content, what).await;
                });
            }
        }
    }
    let label = StorkFs::what(&tree, e, None).to_string();
    let chunked = matches!(
        e.node,
        Node::File {
            data: FileData::Chunked { .. },
            ..
        }
    );
    let stuck = || -> Vec<Digest> {
        segs.iter()
            .map(|s| s.0.sha256)
            .filter(|d| fetcher.is_fetching(d))
            .collect()
    };
    if chunked && core.gave_up.take_recent(&stuck(), core.timeout) {
        return Err(Fail::TimedOut(label, core.timeout));
    }
    let jobs = segs
        .iter()
        .filter(|(b, ..)| b.size > 0)
        .map(|(b, _, _, chunk)| fetcher.ensure(*b, Kind::Content, StorkFs::what(&tree, e, *chunk)));
    match tokio::time::timeout(core.timeout, futures::future::try_join_all(jobs)).await {
        Err(_) => {
            if chunked {
                core.gave_up.note(&stuck());
            }
            Err(Fail::TimedOut(label, core.timeout))
        }
        Ok(Err(err)) => Err(Fail::Fetch(label, err)),
        Ok(Ok(_)) => Ok(()),
    }
}

impl Filesystem for StorkFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (Some(parent), Some(name)) = (Ino::decode(parent.0), name.to_str()) else {
            return reply.error(Errno::ENOENT);
        };
        match self.child_now(parent, name, req.uid()) {
            Ok(Ok((a, ttl))) => reply.entry(&ttl, &a, Generation(0)),
            Ok(Err(f)) => reply.error(errno(f)),
            Err(vid) => {
                let cat = self.core.catalog.clone();
                let timeout = self.core.timeout;
                self.spawn(async move {
                    match tokio::time::timeout(timeout, cat.load_tree(vid)).await {
                        Ok(Ok(t)) => reply.entry(&TTL_LISTING, &version_attr(&t), Generation(0)),
                        Ok(Err(e)) => reply.error(errno(Fail::Load(e))),
                        Err(_) => reply.error(errno(Fail::TimedOut(
                            format!("manifest of version {vid}"),
                            timeout,
                        ))),
                    }
                });
            }
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(ino) = Ino::decode(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        match self.attr_now(ino, req.uid()) {
            Ok(Some((a, ttl))) => reply.attr(&ttl, &a),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(vid) => {
                let cat = self.core.catalog.clone();
                let timeout = self.core.timeout;
                self.spawn(async move {
                    match tokio::time::timeout(timeout, cat.load_tree(vid)).await {
                        Ok(Ok(t)) => reply.attr(&TTL_FOREVER, &version_attr(&t)),
                        Ok(Err(e)) => reply.error(errno(Fail::Load(e))),
                        Err(_) => reply.error(errno(Fail::TimedOut(
                            format!("manifest of version {vid}"),
                            timeout,
                        ))),
                    }
                });
            }
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        match Ino::decode(ino.0) {
            Some(Ino::Current(p)) => {
                match self.current_target(&self.catalog().view(), p, req.uid()) {
                    Some(t) => reply.data(t.as_bytes()),
                    None => reply.error(Errno::ENOENT),
                }
            }
            Some(i @ Ino::Entry(..)) => match self.entry_of(i) {
                Some((t, idx)) => match t.entry(idx).map(|e| &e.node) {
                    Some(Node::Symlink { target }) => reply.data(target.as_bytes()),
                    Some(_) => reply.error(Errno::EINVAL),
                    None => reply.error(Errno::ENOENT),
                },
                None => reply.error(Errno::ENOENT),
            },
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(errno(Fail::ReadOnly));
        }
        let Some(ino) = Ino::decode(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        match ino {
            Ino::Status => {
                let fh = self.add_handle(Handle::Status((self.core.status)()));
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            }
            Ino::Entry(vid, _) => {
                // A version withdrawn since the kernel cached its entries: files already
                // open keep reading, new opens fail.
                if !self.catalog().view().by_vid.contains_key(&vid) {
                    return reply.error(Errno::ENOENT);
                }
                let Some((tree, idx)) = self.entry_of(ino) else {
                    return reply.error(Errno::ENOENT);
                };
                let Some(e) = tree.entry(idx) else {
                    return reply.error(Errno::ENOENT);
                };
                let whole = match &e.node {
                    Node::File {
                        data: FileData::Whole(b),
                        ..
                    } => Some(*b),
                    Node::File { .. } => None,
                    Node::Dir { .. } => return reply.error(errno(Fail::IsDir)),
                    Node::Symlink { .. } => {
                        return reply.error(errno(Fail::Invalid("open of a symlink")))
                    }
                };
                let store = self.catalog().store().clone();
                // An open small file stays in the cache. Chunks of a large file are held
                // only while a read fetches and copies them, so a file larger than the
                // quota can still be read.
                let hold = store.hold(whole.map(|b| vec![b.sha256]).unwrap_or_default());
                match whole {
                    // A small file is fetched whole at open, so that open fails (EIO)
                    // rather than the first read when it cannot be had.
                    Some(b) if b.size > 0 && !store.contains(&b.sha256) => {
                        store.stats.misses.fetch_add(1, Ordering::Relaxed);
                        let core = self.core.clone();
                        let fh = self.add_handle(Handle::File { _hold: hold });
                        let size = b.size as u32;
                        self.spawn(async move {
                            match fetch_range(core, tree, idx, 0, size).await {
                                Ok(()) => reply.opened(FileHandle(fh), FILE_OPEN_FLAGS),
                                Err(f) => reply.error(errno(f)),
                            }
                        });
                    }
                    _ => {
                        if whole.is_some() {
                            store.stats.hits.fetch_add(1, Ordering::Relaxed);
                        }
                        let fh = self.add_handle(Handle::File { _hold: hold });
                        reply.opened(FileHandle(fh), FILE_OPEN_FLAGS);
                    }
                }
            }
            Ino::Root | Ino::StorkDir | Ino::Package(_) | Ino::Version(_) => {
                reply.error(errno(Fail::IsDir))
            }
            Ino::Current(_) => reply.error(errno(Fail::Invalid("open of a symlink"))),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        if offset.checked_add(size as u64).is_none() {
            return reply.error(errno(Fail::Invalid("offset + size overflows")));
        }
        if let Some(Handle::Status(bytes)) = self.handles().get(&fh.0) {
            let start = (offset as usize).min(bytes.len());
            let end = (start + size as usize).min(bytes.len());
            return reply.data(&bytes[start..end]);
        }
        let Some(ino) = Ino::decode(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let Some((tree, idx)) = self.entry_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(e) = tree.entry(idx) else {
            return reply.error(Errno::ENOENT);
        };
        let label = || StorkFs::what(&tree, e, None).to_string();
        match read_cached(self.catalog().store(), &e.node, offset, size) {
            Ok(Some(data)) => reply.data(&data),
            Err(err) => reply.error(errno(Fail::Local(label(), err))),
            Ok(None) => {
                self.catalog()
                    .store()
                    .stats
                    .misses
                    .fetch_add(1, Ordering::Relaxed);
                let core = self.core.clone();
                let me_tree = tree.clone();
                let hold = self.catalog().store().hold(
                    segments(&e.node, offset, size as u64)
                        .iter()
                        .map(|s| s.0.sha256)
                        .collect(),
                );
                self.spawn(async move {
                    let _hold = hold;
                    if let Err(f) =
                        fetch_range(core.clone(), me_tree.clone(), idx, offset, size).await
                    {
                        return reply.error(errno(f));
                    }
                    let Some(e) = me_tree.entry(idx) else {
                        return reply.error(Errno::ENOENT);
                    };
                    let node = e.node.clone();
                    let label = StorkFs::what(&me_tree, e, None).to_string();
                    let store = core.catalog.store().clone();
                    let read = tokio::task::spawn_blocking(move || {
                        read_cached(&store, &node, offset, size)
                    })
                    .await;
                    match read {
                        Ok(Ok(Some(data))) => reply.data(&data),
                        Ok(Ok(None)) => reply.error(errno(Fail::Fetch(
                            label,
                            FetchError::Local("evicted before it could be read".into()),
                        ))),
                        Ok(Err(err)) => reply.error(errno(Fail::Local(label, err))),
                        Err(err) => {
                            reply.error(errno(Fail::Local(label, std::io::Error::other(err))))
                        }
                    }
                });
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Dropping the handle releases its hold on the objects.
        self.handles().remove(&fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let Some(ino) = Ino::decode(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        match self.dir_listing(ino, req.uid()) {
            Ok(list) => {
                let fh = self.add_handle(Handle::Dir(list));
                let flags = match ino {
                    Ino::Version(_) | Ino::Entry(..) => {
                        FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR
                    }
                    _ => FopenFlags::empty(),
                };
                reply.opened(FileHandle(fh), flags);
            }
            Err(f) => reply.error(errno(f)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handles = self.handles();
        let Some(Handle::Dir(list)) = handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (objects, bytes) = self.catalog().store().usage();
        reply.statfs(bytes.div_ceil(4096), 0, 0, objects, 0, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        if mask.contains(fuser::AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        match Ino::decode(ino.0) {
            Some(_) => reply.ok(),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    // Everything that would change the tree: read-only, always.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }
    fn mknod(&self, _: &Request, _: INodeNo, _: &OsStr, _: u32, _: u32, _: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }
    fn mkdir(&self, _: &Request, _: INodeNo, _: &OsStr, _: u32, _: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }
    fn unlink(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
    fn rmdir(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
    fn symlink(&self, _: &Request, _: INodeNo, _: &OsStr, _: &std::path::Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }
    fn rename(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: INodeNo,
        _: &OsStr,
        _: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
    fn link(&self, _: &Request, _: INodeNo, _: INodeNo, _: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }
    fn write(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        _: u64,
        _: &[u8],
        _: fuser::WriteFlags,
        _: OpenFlags,
        _: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
    fn create(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: u32,
        _: u32,
        _: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }
    fn setxattr(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: &[u8],
        _: i32,
        _: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
    fn removexattr(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
    fn fallocate(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        _: u64,
        _: u64,
        _: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
    fn copy_file_range(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        _: u64,
        _: INodeNo,
        _: FileHandle,
        _: u64,
        _: u64,
        _: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
    fn lseek(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        _: i64,
        _: i32,
        reply: fuser::ReplyLseek,
    ) {
        // Let the kernel handle SEEK_DATA/SEEK_HOLE generically.
        reply.error(Errno::ENOSYS);
    }
    fn ioctl(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        _: fuser::IoctlFlags,
        _: u32,
        _: &[u8],
        _: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }
    fn bmap(&self, _: &Request, _: INodeNo, _: u32, _: u64, reply: fuser::ReplyBmap) {
        reply.error(Errno::ENOSYS);
    }
}
