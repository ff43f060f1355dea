//! Keeping the cache within its quota.
//!
//! The quota counts what the cache really takes on disk: every object's allocated
//! blocks, the database and its write-ahead log, and the space promised to downloads in
//! progress. A download first reserves its size ([`Store::reserve`]); when that would
//! pass the quota, least-recently-used objects are evicted in bulk down to 80% of the
//! quota (so eviction does not run on every fetch). Never evicted: objects open through
//! the mount, objects of versions pinned by any slice or the node, and manifests (the
//! tree listings depend on them). When nothing more can go, the reservation fails and
//! the read gets EIO with a log line saying the quota is too small for what is in use.
//! An evicted object is simply fetched again on its next use.

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use policy::Digest;
use tracing::{info, warn};

use super::{Kind, Store};

/// A promise of cache space for a download; released when dropped.
pub struct Reservation<'a> {
    store: &'a Store,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.store.reserved.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Keeps objects from eviction while a file is open; released when dropped.
pub struct Hold {
    store: Arc<Store>,
    digests: Vec<Digest>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut open = self.store.open.lock().unwrap_or_else(|e| e.into_inner());
        for d in &self.digests {
            if let Some(n) = open.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    open.remove(d);
                }
            }
        }
    }
}

/// The cache is full of content that may not be evicted.
#[derive(Debug, thiserror::Error)]
#[error("the cache quota ({quota} bytes) is taken by open, pinned or in-flight content; {need} more bytes do not fit: raise quota= or unpin something")]
pub struct Full {
    /// The quota.
    pub quota: u64,
    /// The bytes asked for.
    pub need: u64,
}

impl Store {
    /// Sets the quota in bytes.
    pub fn set_quota(&self, bytes: u64) {
        self.quota.store(bytes, Ordering::Relaxed);
    }

    /// The quota in bytes.
    pub fn quota(&self) -> u64 {
        self.quota.load(Ordering::Relaxed)
    }

    /// Replaces the set of pinned objects.
    pub fn set_pinned(&self, digests: HashSet<Digest>) {
        *self.pinned.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(digests);
    }

    /// How many objects the pinned set holds.
    pub fn pinned_count(&self) -> u64 {
        self.pinned.read().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// Keeps `digests` from eviction until the returned hold is dropped.
    pub fn hold(self: &Arc<Self>, digests: Vec<Digest>) -> Hold {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for d in &digests {
            *open.entry(*d).or_insert(0) += 1;
        }
        Hold {
            store: self.clone(),
            digests,
        }
    }

    /// Bytes the cache takes on disk now: objects, database, and reserved space.
    pub fn used(&self) -> u64 {
        self.objects_disk.load(Ordering::Relaxed)
            + self.db_disk.load(Ordering::Relaxed)
            + self.reserved.load(Ordering::Relaxed)
    }

    /// Whether `bytes` fit under the quota without evicting anything (read-ahead only runs
    /// then, so it never pushes out what readers asked for).
    pub fn has_room(&self, bytes: u64) -> bool {
        self.used() + bytes.div_ceil(4096) * 4096 + 4096 <= self.quota()
    }

    /// Reserves `bytes` for a download, evicting least-recently-used content if needed.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation<'_>, Full> {
        let quota = self.quota();
        // Round up to whole blocks, as the file will take.
        let need = bytes.div_ceil(4096) * 4096 + 4096;
        let _g = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        if self.used() + need > quota {
            let target = (quota / 5 * 4).saturating_sub(need);
            self.evict_to(target);
            if self.used() + need > quota {
                return Err(Full { quota, need: bytes });
            }
        }
        self.reserved.fetch_add(need, Ordering::Relaxed);
        Ok(Reservation {
            store: self,
            bytes: need,
        })
    }

    /// Frees at least `bytes` (when enough may go) because the filesystem filled up before
    /// the quota did; returns the bytes freed.
    pub fn evict_bytes(&self, bytes: u64) -> u64 {
        let _g = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let before = self.used();
        self.evict_to(before.saturating_sub(bytes));
        before.saturating_sub(self.used())
    }

    /// Evicts down to the quota (at start, or after the quota shrank).
    pub fn enforce_quota(&self) {
        let quota = self.quota();
        let _g = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        if self.used() > quota {
            self.evict_to(quota / 5 * 4);
        }
    }

    /// Evicts least-recently-used objects that may go until `used() <= target`.
    fn evict_to(&self, target: u64) {
        let pinned = self
            .pinned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let open: HashSet<Digest> = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        let mut candidates: Vec<(u64, Digest, u64)> = self
            .present
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(d, m)| m.kind == Kind::Content && !pinned.contains(*d) && !open.contains(*d))
            .map(|(d, m)| (m.last_access.load(Ordering::Relaxed), *d, m.disk))
            .collect();
        candidates.sort_unstable();
        let mut used = self.used();
        let (mut n, mut freed) = (0u64, 0u64);
        for (_, d, disk) in candidates {
            if used <= target {
                break;
            }
            let path = self.object_path(&d);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(object = %d.short(), cause = %e, "cannot evict");
                    continue;
                }
            }
            self.forget(&d);
            used = used.saturating_sub(disk);
            n += 1;
            freed += disk;
        }
        if n > 0 {
            self.stats.evicted.fetch_add(n, Ordering::Relaxed);
            info!(
                objects = n,
                bytes = freed,
                quota = self.quota(),
                "evicted least-recently-used content to stay within the quota"
            );
        }
    }
}
