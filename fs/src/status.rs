//! What `storkctl status` and `/.stork/status` show: one function builds it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use policy::wire;

use crate::catalog::Catalog;

/// What the status needs besides the catalog.
pub struct StatusContext {
    /// The repository URL.
    pub repository: String,
    /// The mount point.
    pub mountpoint: String,
    /// The cache quota in bytes.
    pub quota: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds the status.
pub fn build(cat: &Arc<Catalog>, ctx: &StatusContext) -> wire::Status {
    let view = cat.view();
    let store = cat.store();
    let fetcher = cat.fetcher();
    let (last_check, last_error) = cat.last_check();
    let t = now();
    let index = match &view.index {
        Some(i) => wire::IndexStatus {
            version: Some(i.version),
            published: Some(i.timestamp),
            age_seconds: Some(t.saturating_sub(i.timestamp)),
            expires: Some(i.expires),
            stale: t >= i.expires || last_error.is_some(),
            key: cat.repository_key().id().to_string(),
            last_check,
            last_error,
        },
        None => wire::IndexStatus {
            stale: true,
            key: cat.repository_key().id().to_string(),
            last_check,
            last_error,
            ..Default::default()
        },
    };
    let (objects, _) = store.usage();
    let hits = store.stats.hits.load(Ordering::Relaxed);
    let misses = store.stats.misses.load(Ordering::Relaxed);
    wire::Status {
        repository: ctx.repository.clone(),
        mountpoint: ctx.mountpoint.clone(),
        pid: std::process::id(),
        index,
        sources: fetcher.sources().statuses(),
        cache: wire::CacheStatus {
            dir: store.dir().display().to_string(),
            bytes_used: store.disk_usage(),
            quota: ctx.quota,
            objects,
            hits,
            misses,
            hit_ratio: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            evicted: store.stats.evicted.load(Ordering::Relaxed),
            pinned_objects: store.pinned_count(),
        },
        fetches: wire::FetchCounts {
            objects: fetcher.stats.objects.load(Ordering::Relaxed),
            bytes: fetcher.stats.bytes.load(Ordering::Relaxed),
            failures: fetcher.stats.failures.load(Ordering::Relaxed),
            refused: fetcher.stats.refused.load(Ordering::Relaxed),
        },
        packages: wire::PackageCounts {
            accepted: view.by_vid.len() as u64,
            refused: view.refused.clone(),
        },
    }
}
