//! Fetching verified objects into the cache: one flight per digest, sources in order.
//!
//! [`Fetcher::ensure`] makes an object present in the [`Store`]. If it is not there, one
//! job per digest downloads it (every concurrent reader of the same file or chunk waits
//! on the same job), trying each source in [`Sources::order`] until one delivers bytes
//! that verify:
//!
//! 1. the download is bounded by the signed stored size (endless data) and streamed to a
//!    temporary file while its SHA-256 is computed;
//! 2. the stored bytes must have exactly the signed size and digest (tampering);
//! 3. a compressed object is then decompressed, bounded by the signed plain size, and the
//!    plain bytes must match the object's name;
//! 4. only then is the file renamed into the cache.
//!
//! A source that sends bad bytes is logged once per object (package, version, path, URL,
//! expected and actual digest), backed off, and the next source is tried. Nothing that
//! failed a check is ever stored or served.
//!
//! A job runs on its own task with its own deadline, so a reader that gives up (its
//! `timeout=` passed) does not cancel a download that others may still use.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use policy::digest::Hasher;
use policy::manifest::Blob;
use policy::{Digest, PackageName, Refusal, TreePath, Version};
use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::source::{Got, Route, Source, SourceError, Sources};
use crate::store::{Kind, Store, TempObject};

/// What an object is, for log lines.
#[derive(Clone, Debug)]
pub struct What {
    /// The package.
    pub package: PackageName,
    /// The version.
    pub version: Version,
    /// The file, or `None` for the manifest.
    pub path: Option<TreePath>,
    /// The chunk of the file.
    pub chunk: Option<u32>,
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.package, self.version)?;
        match &self.path {
            Some(p) => write!(f, " {}", policy::sanitize::escape(p.as_str()))?,
            None => write!(f, " (manifest)")?,
        }
        if let Some(c) = self.chunk {
            write!(f, " chunk {c}")?;
        }
        Ok(())
    }
}

/// Why an object could not be made present.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FetchError {
    /// Every source failed; the last reason.
    #[error("no source could deliver it: {0}")]
    Unavailable(String),
    /// The job ran out of time.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// The cache could not take it.
    #[error("cannot store it in the cache: {0}")]
    Local(String),
}

/// Fetch counters for status.
#[derive(Default)]
pub struct FetchStats {
    /// Objects downloaded and verified.
    pub objects: AtomicU64,
    /// Bytes downloaded (as stored).
    pub bytes: AtomicU64,
    /// Attempts that failed.
    pub failures: AtomicU64,
    /// Attempts whose bytes did not verify.
    pub refused: AtomicU64,
}

type Job = Shared<BoxFuture<'static, Result<(), FetchError>>>;

/// Makes objects present in the cache.
pub struct Fetcher {
    sources: Arc<Sources>,
    store: Arc<Store>,
    inflight: Mutex<HashMap<Digest, Job>>,
    limit: Semaphore,
    deadline: Duration,
    /// Counters.
    pub stats: FetchStats,
}

/// Downloads at once, across all objects.
const MAX_CONCURRENT: usize = 32;

impl Fetcher {
    /// A fetcher whose jobs each get at most `deadline`.
    pub fn new(sources: Arc<Sources>, store: Arc<Store>, deadline: Duration) -> Arc<Fetcher> {
        Arc::new(Fetcher {
            sources,
            store,
            inflight: Mutex::new(HashMap::new()),
            limit: Semaphore::new(MAX_CONCURRENT),
            deadline,
            stats: FetchStats::default(),
        })
    }

    /// The sources.
    pub fn sources(&self) -> &Arc<Sources> {
        &self.sources
    }

    /// Whether a download of `digest` is in flight.
    pub fn is_fetching(&self, digest: &Digest) -> bool {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(digest)
    }

    /// Makes `blob` present in the cache, downloading and verifying it if needed.
    pub async fn ensure(
        self: &Arc<Self>,
        blob: Blob,
        kind: Kind,
        what: What,
    ) -> Result<(), FetchError> {
        if self.store.contains(&blob.sha256) {
            return Ok(());
        }
        let job = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if self.store.contains(&blob.sha256) {
                return Ok(());
            }
            inflight
                .entry(blob.sha256)
                .or_insert_with(|| {
                    let me = self.clone();
                    let handle = tokio::spawn(async move {
                        let r = me.run_job(blob, kind, &what).await;
                        me.inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&blob.sha256);
                        r
                    });
                    async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(FetchError::Local(format!("fetch task failed: {e}")))
                        })
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        job.await
    }

    async fn run_job(&self, blob: Blob, kind: Kind, what: &What) -> Result<(), FetchError> {
        let _permit = self.limit.acquire().await;
        let fut = async {
            let mut last = FetchError::Unavailable("no sources".into());
            for src in self.sources.order() {
                let mut attempt = self.try_source(&src, &blob, kind, what, Route::Auto).await;
                if matches!(attempt, Err(Attempt::NoSpace)) {
                    // The disk filled before the quota did (other data shares it, or the
                    // quota is larger than the disk): evict as for the quota, then retry.
                    let need = blob.stored_size() + blob.size;
                    let store = self.store.clone();
                    let freed =
                        tokio::task::spawn_blocking(move || store.evict_bytes(need.max(8 << 20)))
                            .await
                            .unwrap_or(0);
                    warn!(object = %what, freed, "the cache's filesystem is full; evicted least-recently-used content to make room");
                    if freed > 0 {
                        attempt = self.try_source(&src, &blob, kind, what, Route::Auto).await;
                    }
                }
                if matches!(attempt, Err(Attempt::Refused(_))) && self.sources.proxied() {
                    // A proxy may have cached bad bytes: ask the source itself once.
                    if let Err(Attempt::Refused(r)) = &attempt {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        warn!(attack = r.attack(), object = %what, "bad bytes through the proxy; asking {} directly", src.label);
                    }
                    attempt = self
                        .try_source(&src, &blob, kind, what, Route::Direct)
                        .await;
                }
                match attempt {
                    Ok(n) => {
                        src.succeeded(n);
                        self.stats.objects.fetch_add(1, Ordering::Relaxed);
                        self.stats.bytes.fetch_add(n, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(Attempt::Source(e)) => {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        src.failed(&e, &self.sources.timeouts);
                        if matches!(e, SourceError::TooSlow { .. } | SourceError::Stalled(_)) {
                            warn!(
                                attack = "slow-retrieval",
                                package = %what.package,
                                version = %what.version,
                                path = what.path.as_ref().map(|p| p.as_str()).unwrap_or("(manifest)"),
                                source = %src.label,
                                "abandoned a source: {e}; trying the next source"
                            );
                        } else {
                            debug!(object = %what, source = %src.label, cause = %e, "source failed; trying the next");
                        }
                        last = FetchError::Unavailable(format!("{}: {e}", src.label));
                    }
                    Err(Attempt::Refused(r)) => {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        let e = SourceError::Transfer(r.to_string());
                        src.failed(&e, &self.sources.timeouts);
                        warn!(
                            attack = r.attack(),
                            package = %what.package,
                            version = %what.version,
                            path = what.path.as_ref().map(|p| p.as_str()).unwrap_or("(manifest)"),
                            url = %src.url.join(&blob.repo_path()).map(|u| crate::source::redact(&u)).unwrap_or_default(),
                            "refused bytes from a source: {r}; trying the next source"
                        );
                        last = FetchError::Unavailable(format!("{}: {r}", src.label));
                    }
                    Err(Attempt::Local(e)) => return Err(FetchError::Local(e)),
                    Err(Attempt::NoSpace) => return Err(FetchError::Local(NO_SPACE.into())),
                }
            }
            Err(last)
        };
        match tokio::time::timeout(self.deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::TimedOut(self.deadline)),
        }
    }

    async fn try_source(
        &self,
        src: &Source,
        blob: &Blob,
        kind: Kind,
        what: &What,
        route: Route,
    ) -> Result<u64, Attempt> {
        let local = |e: io::Error| {
            if crate::store::is_no_space(&e) {
                Attempt::NoSpace
            } else {
                Attempt::Local(e.to_string())
            }
        };
        // Room for the download, and for the plain bytes when it is compressed.
        let room = blob.stored_size() + if blob.zstd.is_some() { blob.size } else { 0 };
        let _room = self
            .store
            .reserve(room)
            .map_err(|e| Attempt::Local(e.to_string()))?;
        // Small objects (most files and chunks) land in memory: verified and decompressed
        // there, then written once. Larger ones stream to a temporary file.
        let max = blob.stored_size();
        let mut landing = if max <= IN_MEMORY {
            Landing::Memory(Vec::with_capacity(max as usize))
        } else {
            Landing::File(self.store.temp().map_err(local)?)
        };
        let mut hasher = Hasher::new();
        {
            let mut sink = |b: &[u8]| -> io::Result<()> {
                hasher.update(b);
                match &mut landing {
                    Landing::Memory(v) => {
                        v.extend_from_slice(b);
                        Ok(())
                    }
                    Landing::File(t) => t.file().write_all(b),
                }
            };
            match self
                .sources
                .get(src, &blob.repo_path(), max, None, route, &mut sink)
                .await
            {
                Ok(Got::Body { .. }) => {}
                Ok(Got::NotModified) => {
                    return Err(Attempt::Source(SourceError::Status(304)));
                }
                Err(SourceError::Local(e)) => return Err(Attempt::Local(e)),
                Err(SourceError::NoSpace) => return Err(Attempt::NoSpace),
                Err(SourceError::TooLarge(_)) => {
                    return Err(Attempt::Refused(Refusal::SizeMismatch {
                        what: what.to_string(),
                        expected: max,
                        actual: hasher.len(),
                    }))
                }
                Err(e) => return Err(Attempt::Source(e)),
            }
        }
        let got = hasher.len();
        let (want_digest, want_size) = match blob.zstd {
            Some(z) => (z.sha256, z.size),
            None => (blob.sha256, blob.size),
        };
        if got != want_size {
            return Err(Attempt::Refused(Refusal::SizeMismatch {
                what: what.to_string(),
                expected: want_size,
                actual: got,
            }));
        }
        let actual = hasher.finish();
        if actual != want_digest {
            return Err(Attempt::Refused(Refusal::HashMismatch {
                what: what.to_string(),
                expected: want_digest,
                actual,
            }));
        }
        let plain = match (landing, blob.zstd) {
            (Landing::File(tmp), None) => tmp,
            (Landing::File(tmp), Some(_)) => {
                let store = self.store.clone();
                let blob = *blob;
                let w = what.to_string();
                tokio::task::spawn_blocking(move || decompress(&store, tmp, &blob, &w))
                    .await
                    .map_err(|e| Attempt::Local(e.to_string()))??
            }
            (Landing::Memory(bytes), z) => {
                let bytes = match z {
                    None => bytes,
                    Some(_) if blob.size <= IN_MEMORY => decompress_bytes(&bytes, blob, what)?,
                    Some(_) => {
                        let (b, w) = (*blob, what.to_string());
                        tokio::task::spawn_blocking(move || decompress_bytes(&bytes, &b, &w))
                            .await
                            .map_err(|e| Attempt::Local(e.to_string()))??
                    }
                };
                let mut tmp = self.store.temp().map_err(local)?;
                tmp.file().write_all(&bytes).map_err(local)?;
                tmp
            }
        };
        // A rename and an in-memory insert: quick enough for the runtime thread.
        self.store
            .commit(plain, &blob.sha256, blob.size, kind)
            .map_err(local)?;
        Ok(got)
    }
}

/// Downloads up to this size are received in memory.
const IN_MEMORY: u64 = 4 << 20;

enum Landing {
    Memory(Vec<u8>),
    File(TempObject),
}

/// Decompresses verified stored bytes, bounded by the signed plain size, and checks them.
fn decompress_bytes(
    stored: &[u8],
    blob: &Blob,
    what: &dyn fmt::Display,
) -> Result<Vec<u8>, Attempt> {
    let refused = |actual: u64| {
        Attempt::Refused(Refusal::SizeMismatch {
            what: what.to_string(),
            expected: blob.size,
            actual,
        })
    };
    // The stored bytes matched their signed digest, so a stream that does not decode (or
    // decodes to more than the signed size) means the publisher signed broken data.
    let plain = zstd::bulk::decompress(stored, blob.size as usize).map_err(|_| refused(0))?;
    if plain.len() as u64 != blob.size {
        return Err(refused(plain.len() as u64));
    }
    let actual = Digest::of(&plain);
    if actual != blob.sha256 {
        return Err(Attempt::Refused(Refusal::HashMismatch {
            what: what.to_string(),
            expected: blob.sha256,
            actual,
        }));
    }
    Ok(plain)
}

const NO_SPACE: &str = "the cache's filesystem is full and nothing more may be evicted (open or pinned content): free space there, or lower quota=";

enum Attempt {
    /// The source failed (connection, status, timeouts): try the next one.
    Source(SourceError),
    /// The source sent bytes that do not verify: log, try the next one.
    Refused(Refusal),
    /// Our side failed: no other source helps.
    Local(String),
    /// The cache's filesystem is full (before the quota): make room and try again.
    NoSpace,
}

/// Decompresses a verified stored object into a new temporary file, bounded by the
/// signed plain size, and checks the plain bytes.
fn decompress(
    store: &Store,
    mut stored: TempObject,
    blob: &Blob,
    what: &str,
) -> Result<TempObject, Attempt> {
    let local = |e: io::Error| Attempt::Local(e.to_string());
    let mut out = store.temp().map_err(local)?;
    let src: &mut File = stored.file();
    src.rewind().map_err(local)?;
    let refused = |actual: u64| {
        Attempt::Refused(Refusal::SizeMismatch {
            what: what.to_string(),
            expected: blob.size,
            actual,
        })
    };
    let dec = zstd::stream::read::Decoder::new(&*src).map_err(local)?;
    let mut dec = dec.take(blob.size + 1);
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match dec.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The stored bytes matched their signed digest, so a broken stream means the
            // publisher signed broken data: refuse it like a mismatch.
            Err(_) => return Err(refused(h.len())),
        };
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.file().write_all(&buf[..n]).map_err(local)?;
    }
    if h.len() != blob.size {
        return Err(refused(h.len()));
    }
    let actual = h.finish();
    if actual != blob.sha256 {
        return Err(Attempt::Refused(Refusal::HashMismatch {
            what: what.to_string(),
            expected: blob.sha256,
            actual,
        }));
    }
    Ok(out)
}
