//! The node's content-addressed cache.
//!
//! ```text
//! CACHE/lock            held (flock) while a daemon uses the cache
//! CACHE/stork.db        SQLite: objects present, trusted index state, accepted releases, pins
//! CACHE/objects/ab/abc… one file per distinct content, named by the SHA-256 of its plain bytes
//! CACHE/tmp/            downloads in progress; emptied at start
//! ```
//!
//! Every object is stored once however many packages, versions and slices contain it, as
//! plain bytes (mode 0444, in a 0700 directory) so reads are a `pread`.
//!
//! How an object becomes trusted, and stays so across crashes:
//! 1. it is downloaded into `tmp/` and verified against its signed digest while streaming;
//! 2. only then is it renamed into `objects/` (one rename: the 256 fan-out directories
//!    exist from the start) and served from there;
//! 3. a flusher calls `syncfs` every couple of seconds and only then writes the rows of
//!    the objects committed since, in one transaction, so a row always names an object
//!    that is on disk whole.
//!
//! At start, `tmp/` is emptied, files without a row (committed just before a crash) are
//! deleted, rows without a file are dropped, and an object whose size or modification
//! time differs from its row is rehashed before it is served (at every use). So nothing
//! partial or unverified is ever served, without paying an fsync or a database write per
//! object.

mod db;
pub mod evict;
pub mod state;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use lru::LruCache;
use policy::digest::Hasher;
use policy::Digest;
use rusqlite::{params, Connection};
use thiserror::Error;
use tracing::{debug, info, warn};

/// What an object is for. Manifests are never evicted while the node uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// File content or a chunk of it.
    Content = 0,
    /// A package manifest.
    Manifest = 1,
}

impl Kind {
    fn from_i64(v: i64) -> Kind {
        if v == 1 {
            Kind::Manifest
        } else {
            Kind::Content
        }
    }
}

struct ObjMeta {
    size: u64,
    /// Bytes it takes on disk (allocated blocks).
    disk: u64,
    /// The modification time the file had when it was last known good.
    mtime_ns: AtomicI64,
    kind: Kind,
    last_access: AtomicU64,
    /// The access time last written to the database.
    saved_access: AtomicU64,
}

/// An object committed since the last flush, whose row is not written yet.
struct PendingRow {
    size: u64,
    mtime_ns: i64,
    kind: Kind,
}

/// The cache could not be opened.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another daemon holds the cache.
    #[error("cache {0} is in use by another storkfs (one daemon per cache directory)")]
    Busy(String),
    /// A filesystem error.
    #[error("cache {path}: {cause}")]
    Io {
        /// The path at fault.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// A database error.
    #[error("cache database {path}: {cause}")]
    Db {
        /// The database file.
        path: String,
        /// The error.
        cause: rusqlite::Error,
    },
}

/// Counters shown by `status`.
#[derive(Default)]
pub struct StoreStats {
    /// Reads answered from the cache.
    pub hits: AtomicU64,
    /// Reads that needed a fetch.
    pub misses: AtomicU64,
    /// Objects evicted.
    pub evicted: AtomicU64,
}

/// The cache.
pub struct Store {
    dir: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    db: Mutex<Connection>,
    present: RwLock<HashMap<Digest, Arc<ObjMeta>>>,
    fds: Mutex<LruCache<Digest, Arc<File>>>,
    tmp_seq: AtomicU64,
    /// Sum of the objects' `disk`.
    objects_disk: AtomicU64,
    /// What the database files took on disk at the last flush.
    db_disk: AtomicU64,
    /// Objects committed since the last flush.
    pending: Mutex<HashMap<Digest, PendingRow>>,
    /// Counters.
    pub stats: StoreStats,
    quota: AtomicU64,
    /// Bytes promised to downloads in progress.
    reserved: AtomicU64,
    /// Objects open through the mount, with their open counts.
    open: Mutex<HashMap<Digest, u32>>,
    /// Objects of pinned versions (set by the daemon when pins or the view change).
    pinned: RwLock<Arc<std::collections::HashSet<Digest>>>,
    evicting: Mutex<()>,
    _lock: File,
}

/// A download being written in `tmp/`. Deleted on drop unless committed.
pub struct TempObject {
    path: PathBuf,
    file: Option<File>,
}

impl TempObject {
    /// The open file.
    pub fn file(&mut self) -> &mut File {
        // Present until commit or drop.
        self.file.as_mut().expect("temp object file present")
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempObject {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

impl Store {
    /// Opens the cache at `dir`, creating it when needed, and recovers from any crash.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |cause| StoreError::Io { path, cause }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Busy(dir.display().to_string()));
        }
        let objects = dir.join("objects");
        let tmp = dir.join("tmp");
        fs::create_dir_all(&objects).map_err(io(&objects))?;
        // All 256 fan-out directories up front: a commit is then one rename.
        for b in 0..=255u8 {
            let sub = objects.join(format!("{b:02x}"));
            fs::create_dir_all(&sub).map_err(io(&sub))?;
        }
        // Anything in tmp/ is an interrupted download: never trusted.
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let db_path = dir.join("stork.db");
        make_headroom(dir, &db_path, &objects);
        let conn = db::open(&db_path).map_err(|cause| StoreError::Db {
            path: db_path.display().to_string(),
            cause,
        })?;
        let store = Store {
            dir: dir.to_path_buf(),
            objects,
            tmp,
            db: Mutex::new(conn),
            present: RwLock::new(HashMap::new()),
            fds: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(512).expect("nonzero"),
            )),
            tmp_seq: AtomicU64::new(0),
            objects_disk: AtomicU64::new(0),
            db_disk: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            stats: StoreStats::default(),
            quota: AtomicU64::new(u64::MAX),
            reserved: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            pinned: RwLock::new(Arc::new(std::collections::HashSet::new())),
            evicting: Mutex::new(()),
            _lock: lock,
        };
        store.recover().map_err(|cause| StoreError::Db {
            path: db_path.display().to_string(),
            cause,
        })?;
        store.measure_db();
        Ok(store)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-used in a way
        // SQLite does not recover from, so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Path of an object.
    pub fn object_path(&self, d: &Digest) -> PathBuf {
        let h = d.to_hex();
        self.objects.join(&h[..2]).join(h)
    }

    fn recover(&self) -> rusqlite::Result<()> {
        let rows: Vec<(Vec<u8>, i64, i64, i64, i64, i64)> = {
            let db = self.db();
            let mut st = db
                .prepare("SELECT digest, size, mtime_ns, kind, synced, last_access FROM objects")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut present = HashMap::new();
        let mut drop_rows = Vec::new();
        let mut rehashed = 0u64;
        for (raw, size, mtime, kind, synced, last) in rows {
            let Ok(bytes) = <[u8; 32]>::try_from(raw.as_slice()) else {
                drop_rows.push(raw);
                continue;
            };
            let d = Digest::from_bytes(bytes);
            let path = self.object_path(&d);
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => {
                    drop_rows.push(raw);
                    continue;
                }
            };
            if synced == 0 {
                // Written just before a crash: it may be incomplete on disk.
                rehashed += 1;
                if !hash_matches(&path, &d, size as u64) {
                    warn!(object = %d.short(), "cache object incomplete after a crash; dropped, it will be fetched again");
                    let _ = fs::remove_file(&path);
                    drop_rows.push(raw);
                    continue;
                }
            }
            present.insert(
                d,
                Arc::new(ObjMeta {
                    size: size as u64,
                    disk: meta.blocks() * 512,
                    mtime_ns: AtomicI64::new(if synced == 0 { mtime_ns(&meta) } else { mtime }),
                    kind: Kind::from_i64(kind),
                    last_access: AtomicU64::new(last as u64),
                    saved_access: AtomicU64::new(last as u64),
                }),
            );
        }
        // Files without a row: committed but never recorded, or foreign. Not trusted.
        let mut orphans = 0u64;
        if let Ok(dirs) = fs::read_dir(&self.objects) {
            for sub in dirs.flatten() {
                let Ok(files) = fs::read_dir(sub.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name();
                    let known = name
                        .to_str()
                        .and_then(|s| Digest::from_hex(s).ok())
                        .is_some_and(|d| present.contains_key(&d));
                    if !known {
                        orphans += 1;
                        let _ = fs::remove_file(f.path());
                    }
                }
            }
        }
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            for raw in &drop_rows {
                tx.execute("DELETE FROM objects WHERE digest = ?1", [raw])?;
            }
            for (d, m) in &present {
                tx.execute(
                    "UPDATE objects SET synced = 1, mtime_ns = ?2 WHERE digest = ?1",
                    params![d.as_bytes().as_slice(), m.mtime_ns.load(Ordering::Relaxed)],
                )?;
            }
            tx.commit()?;
        }
        if !drop_rows.is_empty() || orphans > 0 || rehashed > 0 {
            info!(
                dropped = drop_rows.len(),
                orphans, rehashed, "cache recovered after an unclean stop"
            );
        }
        // Flush the recovery itself before anything relies on it.
        self.sync_fs();
        let disk = present.values().map(|m| m.disk).sum();
        self.objects_disk.store(disk, Ordering::Relaxed);
        *self.present.write().unwrap_or_else(|e| e.into_inner()) = present;
        Ok(())
    }

    /// Whether an object is present.
    pub fn contains(&self, d: &Digest) -> bool {
        self.present
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(d)
    }

    fn obj(&self, d: &Digest) -> Option<Arc<ObjMeta>> {
        self.present
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(d)
            .cloned()
    }

    /// Opens a present object for reading. Every use checks (one `fstat`) that the file
    /// still has the size and modification time it had when it was known good; if not, it
    /// is rehashed before use, and removed when it no longer matches. Returns `NotFound`
    /// when absent or found damaged.
    fn file(&self, d: &Digest) -> io::Result<Arc<File>> {
        let meta = self
            .obj(d)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let path = self.object_path(d);
        let cached = self
            .fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(d)
            .cloned();
        let f = match cached {
            Some(f) => f,
            None => match File::open(&path) {
                Ok(f) => {
                    let f = Arc::new(f);
                    self.fds
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .put(*d, f.clone());
                    f
                }
                Err(e) => {
                    warn!(object = %d.short(), cause = %e, "cache object missing; it will be fetched again");
                    self.forget(d);
                    return Err(io::Error::from(io::ErrorKind::NotFound));
                }
            },
        };
        let m = f.metadata()?;
        let mtime = mtime_ns(&m);
        if m.len() != meta.size || mtime != meta.mtime_ns.load(Ordering::Acquire) {
            warn!(object = %d.short(), "cache object changed on disk (size or time); rehashing before use");
            if !file_hash_matches(&f, d, meta.size) {
                warn!(object = %d.short(), "cache object damaged on disk; removed, it will be fetched again");
                let _ = fs::remove_file(&path);
                self.forget(d);
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            // Same bytes, new time: remember it, so the next use needs no rehash.
            meta.mtime_ns.store(mtime, Ordering::Release);
            let _ = self.db().execute(
                "UPDATE objects SET mtime_ns = ?2 WHERE digest = ?1",
                params![d.as_bytes().as_slice(), mtime],
            );
        }
        Ok(f)
    }

    /// Reads up to `buf.len()` bytes of an object at `offset`.
    pub fn read_at(&self, d: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let f = self.file(d)?;
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(m) = self.obj(d) {
            m.last_access.store(now_secs(), Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Reads a whole object.
    pub fn read_all(&self, d: &Digest) -> io::Result<Vec<u8>> {
        let size = self
            .obj(d)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?
            .size;
        let mut buf = vec![0u8; size as usize];
        let n = self.read_at(d, 0, &mut buf)?;
        if n as u64 != size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short object"));
        }
        Ok(buf)
    }

    /// A new temporary file for a download.
    pub fn temp(&self) -> io::Result<TempObject> {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("{n}"));
        // Created read-only for everyone (the open descriptor may still write): a
        // committed object is then 0444 without another system call.
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&path)?;
        Ok(TempObject {
            path,
            file: Some(file),
        })
    }

    /// Moves a verified temporary file into the cache as object `d`.
    pub fn commit(&self, mut t: TempObject, d: &Digest, size: u64, kind: Kind) -> io::Result<()> {
        if self.contains(d) {
            return Ok(()); // t is removed on drop
        }
        let file = t.file.take().expect("temp object file present");
        let m = file.metadata()?;
        let dest = self.object_path(d);
        if let Err(e) = fs::rename(&t.path, &dest) {
            let retry = e.kind() == io::ErrorKind::NotFound
                && dest.parent().is_some_and(|p| fs::create_dir_all(p).is_ok())
                && fs::rename(&t.path, &dest).is_ok();
            if !retry {
                let _ = fs::remove_file(&t.path);
                return Err(e);
            }
        }
        let mtime = mtime_ns(&m);
        let now = now_secs();
        // The row is written by the next flush, after syncfs: rows only ever name objects
        // that are on disk. A crash before then leaves a file without a row, which the
        // next start deletes.
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                *d,
                PendingRow {
                    size,
                    mtime_ns: mtime,
                    kind,
                },
            );
        self.objects_disk
            .fetch_add(m.blocks() * 512, Ordering::Relaxed);
        self.present
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                *d,
                Arc::new(ObjMeta {
                    size,
                    disk: m.blocks() * 512,
                    mtime_ns: AtomicI64::new(mtime),
                    kind,
                    last_access: AtomicU64::new(now),
                    saved_access: AtomicU64::new(0),
                }),
            );
        debug!(object = %d.short(), size, "stored");
        Ok(())
    }

    /// Deletes an object that nothing may use any more (a refused manifest).
    pub fn remove(&self, d: &Digest) {
        match fs::remove_file(self.object_path(d)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(object = %d.short(), cause = %e, "cannot remove a refused object");
                return;
            }
        }
        self.forget(d);
    }

    fn forget(&self, d: &Digest) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(d);
        let gone = self
            .present
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(d);
        if let Some(m) = gone {
            self.objects_disk.fetch_sub(m.disk, Ordering::Relaxed);
        }
        self.fds.lock().unwrap_or_else(|e| e.into_inner()).pop(d);
        let _ = self.db().execute(
            "DELETE FROM objects WHERE digest = ?1",
            [d.as_bytes().as_slice()],
        );
    }

    fn sync_fs(&self) {
        if let Ok(f) = File::open(&self.objects) {
            if let Err(e) = nix::unistd::syncfs(&f) {
                warn!(cause = %e, "syncfs on the cache failed");
            }
        }
    }

    /// Makes every object committed so far durable, then marks them so. Called every few
    /// seconds and at shutdown.
    pub fn flush(&self) {
        let pending: Vec<(Digest, PendingRow)> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        if !pending.is_empty() {
            // Durable first, recorded second.
            self.sync_fs();
            let mut db = self.db();
            if let Ok(tx) = db.transaction() {
                for (d, r) in &pending {
                    let _ = tx.execute(
                        "INSERT OR REPLACE INTO objects (digest, size, mtime_ns, kind, synced, last_access)
                         VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                        params![
                            d.as_bytes().as_slice(),
                            r.size as i64,
                            r.mtime_ns,
                            r.kind as i64,
                            now_secs() as i64
                        ],
                    );
                }
                let _ = tx.commit();
            };
        }
        // Access times, only those that moved since the last flush.
        let accesses: Vec<(Digest, u64)> = self
            .present
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(d, m)| {
                let t = m.last_access.load(Ordering::Relaxed);
                (m.saved_access.swap(t, Ordering::Relaxed) != t).then_some((*d, t))
            })
            .collect();
        if !accesses.is_empty() {
            let mut db = self.db();
            if let Ok(tx) = db.transaction() {
                for (d, t) in accesses {
                    let _ = tx.execute(
                        "UPDATE objects SET last_access = ?2 WHERE digest = ?1 AND last_access < ?2",
                        params![d.as_bytes().as_slice(), t as i64],
                    );
                }
                let _ = tx.commit();
            };
        }
        self.measure_db();
    }

    /// Re-reads what the database files take on disk (counted in the quota).
    fn measure_db(&self) {
        let db: u64 = ["stork.db", "stork.db-wal", "stork.db-shm"]
            .iter()
            .filter_map(|f| fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.blocks() * 512)
            .sum();
        self.db_disk.store(db, Ordering::Relaxed);
    }

    /// Objects present and their total size.
    pub fn usage(&self) -> (u64, u64) {
        let p = self.present.read().unwrap_or_else(|e| e.into_inner());
        (p.len() as u64, p.values().map(|m| m.size).sum())
    }

    /// Bytes the cache really takes on disk: objects, database, temporary files.
    pub fn disk_usage(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.blocks() * 512,
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir)
    }

    /// Rehashes every object: drops what does not match its name, rows whose file is
    /// gone, and files without a row (`storkctl verify`).
    pub fn verify_all(&self) -> policy::wire::VerifyReport {
        let list: Vec<(Digest, u64)> = self
            .present
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(d, m)| (*d, m.size))
            .collect();
        let mut report = policy::wire::VerifyReport::default();
        for (d, size) in list {
            let path = self.object_path(&d);
            if !path.exists() {
                report.missing += 1;
                self.forget(&d);
                continue;
            }
            report.checked += 1;
            if !hash_matches(&path, &d, size) {
                warn!(object = %d.short(), "cache object does not match its digest; removed, it will be fetched again");
                let _ = fs::remove_file(&path);
                self.forget(&d);
                report.removed.push(d.to_hex());
            }
        }
        let present = self.present.read().unwrap_or_else(|e| e.into_inner());
        if let Ok(dirs) = fs::read_dir(&self.objects) {
            for sub in dirs.flatten() {
                for f in fs::read_dir(sub.path()).into_iter().flatten().flatten() {
                    let known = f
                        .file_name()
                        .to_str()
                        .and_then(|s| Digest::from_hex(s).ok())
                        .is_some_and(|d| present.contains_key(&d));
                    if !known && fs::remove_file(f.path()).is_ok() {
                        report.orphans += 1;
                    }
                }
            }
        }
        info!(
            checked = report.checked,
            removed = report.removed.len(),
            missing = report.missing,
            orphans = report.orphans,
            "cache verified"
        );
        report
    }

    /// The kind of a present object.
    pub fn kind(&self, d: &Digest) -> Option<Kind> {
        self.obj(d).map(|m| m.kind)
    }
}

/// Rehashes an open file (from its start, without moving its cursor) and compares it
/// with `d` and `size`.
fn file_hash_matches(f: &File, d: &Digest, size: u64) -> bool {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut at = 0u64;
    loop {
        match f.read_at(&mut buf, at) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    h.len() == size && h.finish() == *d
}

/// The free space the database needs to open and recover.
const HEADROOM: u64 = 512 << 10;

/// A cache whose filesystem filled up while the daemon was down (other data grew) would
/// not even open its database. Before opening it, delete the oldest content objects
/// (never manifests, recognised by their first bytes) until there is a little room;
/// recovery then drops the rows whose files are gone, and they are fetched again on use.
fn make_headroom(dir: &Path, db_path: &Path, objects: &Path) {
    let free = || {
        crate::sys::fs_space(dir)
            .map(|(_, free)| free)
            .unwrap_or(u64::MAX)
    };
    if free() >= HEADROOM || !db_path.exists() {
        return;
    }
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for sub in fs::read_dir(objects).into_iter().flatten().flatten() {
        for f in fs::read_dir(sub.path()).into_iter().flatten().flatten() {
            let p = f.path();
            let mut head = [0u8; 24];
            let is_manifest = File::open(&p)
                .and_then(|mut h| h.read_exact(&mut head))
                .is_ok_and(|_| &head == br#"{"type":"stork-manifest""#);
            if !is_manifest {
                if let Ok(t) = f.metadata().and_then(|m| m.modified()) {
                    files.push((t, p));
                }
            }
        }
    }
    files.sort();
    let mut n = 0;
    for (_, p) in files {
        if free() >= HEADROOM {
            break;
        }
        if fs::remove_file(p).is_ok() {
            n += 1;
        }
    }
    warn!(
        evicted = n,
        "the cache's filesystem was full at start; evicted the oldest content to open the cache"
    );
}

/// Whether an I/O error says the filesystem is full.
pub fn is_no_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC)
}

/// Rehashes a file and compares it with `d` and `size`.
pub fn hash_matches(path: &Path, d: &Digest, size: u64) -> bool {
    Hasher::file_matches(path, d, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn put(s: &Store, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        let mut t = s.temp().unwrap();
        t.file().write_all(bytes).unwrap();
        s.commit(t, &d, bytes.len() as u64, Kind::Content).unwrap();
        d
    }

    #[test]
    fn store_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let d = {
            let s = Store::open(dir.path()).unwrap();
            let d = put(&s, b"hello world");
            let mut buf = [0u8; 5];
            assert_eq!(s.read_at(&d, 6, &mut buf).unwrap(), 5);
            assert_eq!(&buf, b"world");
            s.flush();
            d
        };
        let s = Store::open(dir.path()).unwrap();
        assert!(s.contains(&d));
        assert_eq!(s.read_all(&d).unwrap(), b"hello world");
    }

    #[test]
    fn one_daemon_per_cache() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Store::open(dir.path()).unwrap();
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Busy(_))));
    }

    #[test]
    fn objects_not_flushed_before_a_crash_are_dropped_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = {
            let s = Store::open(dir.path()).unwrap();
            let good = put(&s, b"good");
            s.flush();
            let bad = put(&s, b"bad content");
            // A crash before the flusher ran: the file may have lost its tail.
            let p = s.object_path(&bad);
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            fs::write(&p, b"bad").unwrap();
            (good, bad)
        };
        fs::write(dir.path().join("tmp").join("77"), b"partial").unwrap();
        let orphan = dir.path().join("objects/00");
        fs::create_dir_all(&orphan).unwrap();
        fs::write(orphan.join(Digest::of(b"x").to_hex()), b"x").unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.contains(&good));
        assert!(!s.contains(&bad));
        assert!(!s.object_path(&bad).exists());
        assert!(!dir.path().join("tmp/77").exists());
        assert!(!orphan.join(Digest::of(b"x").to_hex()).exists());
    }

    #[test]
    fn a_changed_object_is_rehashed_and_never_served_when_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let d = {
            let s = Store::open(dir.path()).unwrap();
            let d = put(&s, b"original bytes");
            s.flush();
            d
        };
        let p = dir
            .path()
            .join("objects")
            .join(&d.to_hex()[..2])
            .join(d.to_hex());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all(b"tampered").unwrap();
        drop(f);
        let s = Store::open(dir.path()).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            s.read_at(&d, 0, &mut buf).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(!s.contains(&d));
        assert!(!p.exists());
    }
}
