//! The catalog: which package versions this node accepts, from the verified index and
//! the trust file, and their trees from verified manifests.
//!
//! The view of accepted versions is an immutable [`View`] swapped atomically when a new
//! index is accepted, so FUSE callbacks read it without waiting. Version trees are built
//! once per version from its manifest (fetched and verified on first need, then read from
//! the cache, so a restart needs no network).
//!
//! Applying a new index (after [`policy::index::verify_index`] and the expiry check):
//! - each release is judged by the trust file (untrusted signer, name outside the
//!   signer's patterns, below threshold, revoked key: refused, listed with the reason);
//! - mix-and-match: a version already accepted keeps its manifest digest; a different one
//!   is refused;
//! - dropped versions: a version the node accepted stays when a newer index omits it,
//!   unless the index carries a withdrawal signed as the release would have to be;
//! - the new state (key, version floor, index bytes, accepted releases) is saved in one
//!   transaction before the view changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use policy::index::{verify_index, IndexTrust, Release, Verified, INDEX_FILE, MAX_INDEX_BYTES};
use policy::manifest::Manifest;
use policy::trust::TrustPolicy;
use policy::wire::RefusedVersion;
use policy::{canon, Digest, PackageName, PublicKey, Refusal, Version};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::fetch::{FetchError, Fetcher, What};
use crate::source::{Got, Route, SourceError};
use crate::store::state::IndexState;
use crate::store::{Kind, Store};
use crate::tree::{VersionTree, MAX_PACKAGES};

/// Facts about the index in use.
#[derive(Clone, Debug)]
pub struct IndexInfo {
    /// Its version.
    pub version: u64,
    /// When it was published.
    pub timestamp: u64,
    /// When it expires.
    pub expires: u64,
}

/// One accepted version.
#[derive(Debug)]
pub struct Ver {
    /// Its id (for inode numbers).
    pub vid: u32,
    /// The package.
    pub name: PackageName,
    /// The version.
    pub version: Version,
    /// The release as listed and judged.
    pub release: Release,
}

/// One package with at least one accepted version.
#[derive(Debug)]
pub struct Pkg {
    /// Its id (for inode numbers).
    pub pid: u32,
    /// Its name.
    pub name: PackageName,
    /// Accepted versions, oldest first (Debian order).
    pub versions: Vec<Arc<Ver>>,
}

/// Everything the mount shows, at one moment.
#[derive(Default, Debug)]
pub struct View {
    /// The index in use, if any was ever accepted.
    pub index: Option<IndexInfo>,
    /// Packages by name.
    pub packages: BTreeMap<PackageName, Arc<Pkg>>,
    /// Packages by id.
    pub by_pid: HashMap<u32, Arc<Pkg>>,
    /// Versions by id.
    pub by_vid: HashMap<u32, Arc<Ver>>,
    /// Refused versions, with reasons.
    pub refused: Vec<RefusedVersion>,
}

impl View {
    /// The newest accepted version of a package.
    pub fn newest(&self, pid: u32) -> Option<&Arc<Ver>> {
        self.by_pid.get(&pid).and_then(|p| p.versions.last())
    }
}

#[derive(Default)]
struct Ids {
    pkgs: HashMap<PackageName, u32>,
    vers: HashMap<(PackageName, Version, Digest), u32>,
}

/// Why a tree could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The version is not (or no longer) accepted.
    #[error("no such version")]
    Gone,
    /// Its manifest could not be fetched.
    #[error("{0}")]
    Fetch(#[from] FetchError),
    /// Its manifest was refused.
    #[error("{0}")]
    Refused(Refusal),
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// A new index was accepted.
    Changed(u64),
    /// The repository has nothing new.
    Unchanged(u64),
}

#[derive(Default)]
struct Check {
    last_check: Option<u64>,
    last_error: Option<String>,
    etags: HashMap<String, String>,
}

/// The catalog.
pub struct Catalog {
    trust: TrustPolicy,
    store: Arc<Store>,
    fetcher: Arc<Fetcher>,
    view: RwLock<Arc<View>>,
    ids: Mutex<Ids>,
    cells: Mutex<HashMap<u32, Arc<OnceCell<Arc<VersionTree>>>>>,
    trees: RwLock<HashMap<u32, Arc<VersionTree>>>,
    refresh_lock: tokio::sync::Mutex<()>,
    check: Mutex<Check>,
    logged: Mutex<HashSet<String>>,
    /// Versions whose manifest was refused (wrong software, malformed, publisher did not
    /// sign): the digest never changes, so neither does the verdict. Every view leaves
    /// them out, so a later index cannot bring one back.
    bad_manifests: Mutex<HashMap<(PackageName, Version, Digest), RefusedVersion>>,
    /// Versions whose manifest passed its checks (in the background or on use).
    checked: Mutex<HashSet<u32>>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Catalog {
    /// Opens the catalog from what the cache holds (no network).
    pub fn open(
        trust: TrustPolicy,
        store: Arc<Store>,
        fetcher: Arc<Fetcher>,
    ) -> std::io::Result<Arc<Catalog>> {
        let cat = Arc::new(Catalog {
            trust,
            store,
            fetcher,
            view: RwLock::new(Arc::new(View::default())),
            ids: Mutex::new(Ids::default()),
            cells: Mutex::new(HashMap::new()),
            trees: RwLock::new(HashMap::new()),
            refresh_lock: tokio::sync::Mutex::new(()),
            check: Mutex::new(Check::default()),
            logged: Mutex::new(HashSet::new()),
            bad_manifests: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashSet::new()),
        });
        let root = cat.trust.repository_key.to_string();
        let mut st = match cat.store.index_state()? {
            Some(st) if st.trust_root == root => st,
            Some(st) => {
                info!(
                    old = %st.trust_root, new = %root,
                    "the trust file's repository key changed; trusting the new key from now on and forgetting the old version floor"
                );
                IndexState {
                    trust_root: root.clone(),
                    key: root.clone(),
                    floor: None,
                    index: None,
                }
            }
            None => IndexState {
                trust_root: root.clone(),
                key: root.clone(),
                floor: None,
                index: None,
            },
        };
        let key = PublicKey::parse(&st.key).unwrap_or(cat.trust.repository_key);
        let mut info = None;
        if let Some(bytes) = &st.index {
            // Our own copy, but checked again: the cache is not a source of trust.
            match verify_index(bytes, &IndexTrust { key, floor: None }) {
                Ok(v) => {
                    let b = &v.doc.signed;
                    info = Some(IndexInfo {
                        version: b.version,
                        timestamp: b.timestamp,
                        expires: b.expires,
                    });
                }
                Err(e) => {
                    warn!(cause = %e, "the cached index does not verify; ignoring it");
                    st.index = None;
                }
            }
        }
        let accepted = cat.store.accepted()?;
        let mut releases = Vec::new();
        for (n, v, bytes) in accepted {
            match serde_json::from_slice::<Release>(&bytes) {
                Ok(r) if r.name.as_str() == n && r.version.as_str() == v => releases.push(r),
                _ => warn!(package = %n, version = %v, "a saved release is damaged; dropping it"),
            }
        }
        let mut refused = Vec::new();
        let releases = releases
            .into_iter()
            .filter(|r| match cat.trust.judge_release(r) {
                Ok(_) => true,
                Err(e) => {
                    cat.note_refusal(&mut refused, &r.name, &r.version, &e);
                    false
                }
            })
            .collect();
        let view = cat.build_view(info, releases, refused);
        *cat.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
        Ok(cat)
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.fetcher
    }

    /// The trust policy.
    pub fn trust(&self) -> &TrustPolicy {
        &self.trust
    }

    /// When the index was last checked, and the last problem.
    pub fn last_check(&self) -> (Option<u64>, Option<String>) {
        let c = lock(&self.check);
        (c.last_check, c.last_error.clone())
    }

    /// The repository key trusted now.
    pub fn repository_key(&self) -> PublicKey {
        self.store
            .index_state()
            .ok()
            .flatten()
            .and_then(|s| PublicKey::parse(&s.key).ok())
            .unwrap_or(self.trust.repository_key)
    }

    fn note_refusal(
        &self,
        out: &mut Vec<RefusedVersion>,
        name: &PackageName,
        version: &Version,
        e: &Refusal,
    ) {
        let reason = e.to_string();
        if lock(&self.logged).insert(reason.clone()) {
            warn!(attack = e.attack(), package = %name, version = %version, "refused: {reason}");
        }
        out.push(RefusedVersion {
            name: name.to_string(),
            version: version.to_string(),
            attack: e.attack().to_string(),
            reason,
        });
    }

    fn build_view(
        &self,
        index: Option<IndexInfo>,
        releases: Vec<Release>,
        mut refused: Vec<RefusedVersion>,
    ) -> View {
        let bad = lock(&self.bad_manifests).clone();
        for r in bad.values() {
            if !refused.contains(r) {
                refused.push(r.clone());
            }
        }
        let mut ids = lock(&self.ids);
        let mut packages: BTreeMap<PackageName, Vec<Arc<Ver>>> = BTreeMap::new();
        for r in releases {
            if bad.contains_key(&(r.name.clone(), r.version.clone(), r.manifest.sha256)) {
                continue;
            }
            let next = ids.vers.len() as u32;
            let vid = *ids
                .vers
                .entry((r.name.clone(), r.version.clone(), r.manifest.sha256))
                .or_insert(next);
            packages
                .entry(r.name.clone())
                .or_default()
                .push(Arc::new(Ver {
                    vid,
                    name: r.name.clone(),
                    version: r.version.clone(),
                    release: r,
                }));
        }
        let mut view = View {
            index,
            refused,
            ..View::default()
        };
        for (name, mut versions) in packages {
            let next = ids.pkgs.len() as u32;
            if next >= MAX_PACKAGES {
                warn!(package = %name, "too many packages; ignoring the rest");
                break;
            }
            let pid = *ids.pkgs.entry(name.clone()).or_insert(next);
            versions.sort_by(|a, b| a.version.cmp(&b.version));
            for v in &versions {
                view.by_vid.insert(v.vid, v.clone());
            }
            let pkg = Arc::new(Pkg {
                pid,
                name: name.clone(),
                versions,
            });
            view.by_pid.insert(pid, pkg.clone());
            view.packages.insert(name, pkg);
        }
        view
    }

    /// Looks for a new index: each source in order until one gives an index that verifies.
    pub async fn refresh(&self) -> Result<Refreshed, String> {
        let _g = self.refresh_lock.lock().await;
        lock(&self.check).last_check = Some(now());
        let mut problems = Vec::new();
        for src in self.fetcher.sources().order() {
            let etag = lock(&self.check).etags.get(src.url.as_str()).cloned();
            let mut bytes = Vec::new();
            let mut sink = |b: &[u8]| {
                bytes.extend_from_slice(b);
                Ok(())
            };
            let have_index = self.view().index.is_some();
            let got = self
                .fetcher
                .sources()
                .get(
                    &src,
                    INDEX_FILE,
                    MAX_INDEX_BYTES as u64,
                    etag.as_deref().filter(|_| have_index),
                    Route::Auto,
                    &mut sink,
                )
                .await;
            let etag = match got {
                Ok(Got::NotModified) => {
                    src.succeeded(0);
                    lock(&self.check).last_error = None;
                    let v = self.view().index.as_ref().map_or(0, |i| i.version);
                    return Ok(Refreshed::Unchanged(v));
                }
                Ok(Got::Body { etag }) => etag,
                Err(e) => {
                    src.failed(&e, &self.fetcher.sources().timeouts);
                    if let SourceError::TooLarge(_) = e {
                        warn!(attack = "endless-data", source = %src.label, "refused the index: {e}");
                    }
                    problems.push(format!("{}{INDEX_FILE}: {e}", src.label));
                    continue;
                }
            };
            src.succeeded(bytes.len() as u64);
            match self.consider(&bytes) {
                Ok(r) => {
                    let mut c = lock(&self.check);
                    c.last_error = None;
                    if let Some(e) = etag {
                        c.etags.insert(src.url.to_string(), e);
                    }
                    return Ok(r);
                }
                Err(refusal) => {
                    warn!(attack = refusal.attack(), source = %src.label, "refused the index: {refusal}");
                    problems.push(format!("{}{INDEX_FILE}: {refusal}", src.label));
                }
            }
        }
        let msg = if problems.is_empty() {
            "no source configured".to_string()
        } else {
            problems.join("; ")
        };
        lock(&self.check).last_error = Some(msg.clone());
        Err(msg)
    }

    /// Verifies index bytes against the saved state and applies them.
    fn consider(&self, bytes: &[u8]) -> Result<Refreshed, Refusal> {
        let st = self
            .store
            .index_state()
            .ok()
            .flatten()
            .filter(|s| s.trust_root == self.trust.repository_key.to_string());
        let key = st
            .as_ref()
            .and_then(|s| PublicKey::parse(&s.key).ok())
            .unwrap_or(self.trust.repository_key);
        let floor = st.as_ref().and_then(|s| s.floor);
        let verified = verify_index(bytes, &IndexTrust { key, floor })?;
        // Freeze: a new index must not be expired.
        verified.doc.signed.check_expiry(now())?;
        if floor.is_some_and(|(_, d)| d == verified.digest) && self.view().index.is_some() {
            return Ok(Refreshed::Unchanged(verified.doc.signed.version));
        }
        if verified.rotated {
            info!(
                from = %key.id(), to = %verified.doc.signed.key.id(),
                "the repository key was rotated by a statement signed with the trusted key; following it and resetting the version floor"
            );
        }
        let v = verified.doc.signed.version;
        self.apply(verified, bytes).map_err(|e| {
            Refusal::Doc(policy::DocError::Invalid {
                what: "the index".into(),
                cause: format!("cannot save it: {e}"),
            })
        })?;
        Ok(Refreshed::Changed(v))
    }

    fn apply(&self, verified: Verified, bytes: &[u8]) -> std::io::Result<()> {
        let body = &verified.doc.signed;
        let old: BTreeMap<(String, String), Release> = self
            .view()
            .by_vid
            .values()
            .map(|v| {
                (
                    (v.name.to_string(), v.version.to_string()),
                    v.release.clone(),
                )
            })
            .collect();
        let mut refused = Vec::new();
        let mut accepted: BTreeMap<(String, String), Release> = BTreeMap::new();
        let mut listed = HashSet::new();
        for r in &body.packages {
            let key = (r.name.to_string(), r.version.to_string());
            listed.insert(key.clone());
            if let Err(e) = self.trust.judge_release(r) {
                self.note_refusal(&mut refused, &r.name, &r.version, &e);
                continue;
            }
            match old.get(&key) {
                Some(prev) if prev.manifest.sha256 != r.manifest.sha256 => {
                    let e = Refusal::ManifestChanged {
                        name: key.0.clone(),
                        version: key.1.clone(),
                        accepted: prev.manifest.sha256,
                        offered: r.manifest.sha256,
                    };
                    self.note_refusal(&mut refused, &r.name, &r.version, &e);
                    accepted.insert(key, prev.clone());
                }
                _ => {
                    accepted.insert(key, r.clone());
                }
            }
        }
        let mut withdrawn = HashSet::new();
        for w in &body.withdrawn {
            let key = (w.name.to_string(), w.version.to_string());
            let Some(prev) = old.get(&key).or(accepted.get(&key)) else {
                continue;
            };
            if prev.manifest.sha256 != w.manifest {
                continue;
            }
            match self.trust.judge_withdrawal(w) {
                Ok(a) => {
                    if old.contains_key(&key) {
                        info!(package = %w.name, version = %w.version, by = ?a.publishers, "version withdrawn by its publisher; removing it");
                    }
                    withdrawn.insert(key.clone());
                    accepted.remove(&key);
                }
                Err(e) => {
                    warn!(attack = e.attack(), package = %w.name, version = %w.version, "ignoring a withdrawal: {e}");
                }
            }
        }
        for (key, r) in &old {
            if listed.contains(key) || withdrawn.contains(key) || accepted.contains_key(key) {
                continue;
            }
            if self.trust.judge_release(r).is_ok() {
                if lock(&self.logged).insert(format!("dropped {} {}", key.0, key.1)) {
                    warn!(
                        attack = "dropped-version",
                        package = %key.0, version = %key.1,
                        "index version {} no longer lists this version; keeping it (only a publisher-signed withdrawal removes a version)",
                        body.version
                    );
                }
                accepted.insert(key.clone(), r.clone());
            }
        }
        let rows: Vec<(String, String, Vec<u8>)> = accepted
            .iter()
            .map(|((n, v), r)| (n.clone(), v.clone(), canon::encode(r)))
            .collect();
        let st = IndexState {
            trust_root: self.trust.repository_key.to_string(),
            key: body.key.to_string(),
            floor: Some((body.version, verified.digest)),
            index: Some(bytes.to_vec()),
        };
        self.store.save_index_state(&st, &rows, now())?;
        let info = IndexInfo {
            version: body.version,
            timestamp: body.timestamp,
            expires: body.expires,
        };
        info!(
            version = body.version,
            accepted = rows.len(),
            refused = refused.len(),
            "index accepted"
        );
        let view = self.build_view(Some(info), accepted.into_values().collect(), refused);
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
        Ok(())
    }

    /// The tree of a version if it is loaded (no waiting).
    pub fn tree(&self, vid: u32) -> Option<Arc<VersionTree>> {
        self.trees
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&vid)
            .cloned()
    }

    /// The tree of a version, fetching and verifying its manifest if needed.
    pub async fn load_tree(&self, vid: u32) -> Result<Arc<VersionTree>, LoadError> {
        if let Some(t) = self.tree(vid) {
            return Ok(t);
        }
        let cell = lock(&self.cells).entry(vid).or_default().clone();
        let t = cell.get_or_try_init(|| self.build_tree(vid)).await?;
        Ok(t.clone())
    }

    async fn build_tree(&self, vid: u32) -> Result<Arc<VersionTree>, LoadError> {
        let manifest = self.checked_manifest(vid).await?;
        let tree = Arc::new(VersionTree::build(vid, manifest));
        self.trees
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(vid, tree.clone());
        Ok(tree)
    }

    /// Fetches (if needed), parses and checks the manifest of a version; refuses the
    /// version when it does not pass.
    async fn checked_manifest(&self, vid: u32) -> Result<Manifest, LoadError> {
        let ver = self
            .view()
            .by_vid
            .get(&vid)
            .cloned()
            .ok_or(LoadError::Gone)?;
        let blob = ver.release.manifest;
        let what = What {
            package: ver.name.clone(),
            version: ver.version.clone(),
            path: None,
            chunk: None,
        };
        self.fetcher.ensure(blob, Kind::Manifest, what).await?;
        let store = self.store.clone();
        let ver2 = ver.clone();
        let parsed = tokio::task::spawn_blocking(move || -> Result<Manifest, Refusal> {
            let bytes = store.read_all(&blob.sha256).map_err(|e| {
                Refusal::Doc(policy::DocError::Invalid {
                    what: "the manifest".into(),
                    cause: e.to_string(),
                })
            })?;
            let actual = Digest::of(&bytes);
            if actual != blob.sha256 {
                return Err(Refusal::HashMismatch {
                    what: format!("manifest of {} {}", ver2.name, ver2.version),
                    expected: blob.sha256,
                    actual,
                });
            }
            Ok(Manifest::parse(
                &format!("manifest of {} {}", ver2.name, ver2.version),
                &bytes,
            )?)
        })
        .await
        .map_err(|e| LoadError::Fetch(FetchError::Local(e.to_string())))?;
        let manifest = parsed.and_then(|m| self.trust.check_manifest(&ver.release, &m).map(|_| m));
        let manifest = match manifest {
            Ok(m) => m,
            Err(e) => {
                // Refused bytes are not kept, unless another accepted version uses the
                // same manifest (a wrong-software listing of a genuine one). Manifests are
                // never evicted, so a kept one would stay for good.
                let used = self
                    .view()
                    .by_vid
                    .values()
                    .any(|v| v.vid != vid && v.release.manifest.sha256 == blob.sha256);
                if !used {
                    let store = self.store.clone();
                    let _ = tokio::task::spawn_blocking(move || store.remove(&blob.sha256)).await;
                }
                self.refuse_version(&ver, &e);
                return Err(LoadError::Refused(e));
            }
        };
        lock(&self.checked).insert(vid);
        Ok(manifest)
    }

    /// Removes a version whose manifest was refused, and remembers why.
    fn refuse_version(&self, ver: &Ver, e: &Refusal) {
        let _ = self
            .store
            .drop_accepted(ver.name.as_str(), ver.version.as_str());
        // Read, change and replace the view under its write lock: two versions refused at
        // once (say, two listings of one manifest) must not undo each other.
        let mut slot = self.view.write().unwrap_or_else(|e| e.into_inner());
        let cur = slot.clone();
        let mut refused = cur.refused.clone();
        self.note_refusal(&mut refused, &ver.name, &ver.version, e);
        if let Some(r) = refused.last() {
            lock(&self.bad_manifests).insert(
                (
                    ver.name.clone(),
                    ver.version.clone(),
                    ver.release.manifest.sha256,
                ),
                r.clone(),
            );
        }
        let releases = cur
            .by_vid
            .values()
            .filter(|v| v.vid != ver.vid)
            .map(|v| v.release.clone())
            .collect();
        *slot = Arc::new(self.build_view(cur.index.clone(), releases, refused));
    }

    /// Fetches and checks every accepted version's manifest in the background, a few at
    /// a time: a bad manifest is refused before anyone reads the version (so `current`
    /// never names it), and the cache holds every manifest for offline restarts. Trees
    /// are built in memory only for versions someone uses.
    pub async fn load_all(self: Arc<Self>) {
        let vids: Vec<u32> = self
            .view()
            .by_vid
            .keys()
            .copied()
            .filter(|v| self.tree(*v).is_none() && !lock(&self.checked).contains(v))
            .collect();
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = Vec::new();
        for vid in vids {
            let me = self.clone();
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await;
                if let Err(e) = me.checked_manifest(vid).await {
                    tracing::debug!(vid, cause = %e, "manifest not loaded yet");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
