//! Per-slice pins, `current` resolution and dependency resolution.
//!
//! `current` for a caller is its own pin, else the node's pin, else the newest accepted
//! version. A pinned version that is no longer accepted (withdrawn, or refused under a
//! new trust file) is skipped, so `current` always names something that exists.
//!
//! Pinning resolves the manifest's dependencies (Debian relation syntax) greedily: each
//! clause is satisfied by a version already pinned when one fits, else by the newest
//! accepted version of the first alternative that satisfies its constraint and every
//! other pinned version's plain (single-alternative) dependency on that package, which is
//! then pinned too (automatic; an automatic pin may move to such a version, a pin made by
//! hand never moves), and so on to a fixed point. A dependency on a package the
//! repository does not have at all (say `libc6` of a .deb) is assumed to come from the
//! system and is reported, not an error. A clause no accepted version can satisfy, or
//! that conflicts with a pin, fails with the chain of constraints and changes nothing.
//! Unpinning removes automatic pins that no remaining pin needs.
//!
//! Pins are kept in the cache database (owner = uid, or -1 for the node) and in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use policy::debver::{Alternative, Relations};
use policy::wire::{Pin, PinSet};
use policy::{PackageName, Version};

use crate::catalog::{Catalog, Ver, View};
use crate::store::state::{PinRow, NODE};
use crate::store::Store;

/// Who a pin belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A slice, by uid.
    Uid(u32),
    /// The node-wide default.
    Node,
}

impl Owner {
    fn id(self) -> i64 {
        match self {
            Owner::Uid(u) => u as i64,
            Owner::Node => NODE,
        }
    }
    fn label(self) -> String {
        match self {
            Owner::Uid(u) => format!("uid {u}"),
            Owner::Node => "node".into(),
        }
    }
}

/// name -> (version, automatic)
type PinMap = BTreeMap<String, (String, bool)>;

/// Every owner's pins.
pub struct Pins {
    store: Arc<Store>,
    map: RwLock<HashMap<i64, PinMap>>,
    writes: tokio::sync::Mutex<()>,
}

impl Pins {
    /// Loads the pins from the cache database.
    pub fn load(store: Arc<Store>) -> std::io::Result<Pins> {
        let mut map: HashMap<i64, PinMap> = HashMap::new();
        for r in store.pins()? {
            map.entry(r.owner)
                .or_default()
                .insert(r.name, (r.version, r.automatic));
        }
        Ok(Pins {
            store,
            map: RwLock::new(map),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    fn pinned(&self, owner: i64, name: &str) -> Option<String> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&owner)
            .and_then(|m| m.get(name))
            .map(|(v, _)| v.clone())
    }

    /// The version `current` names for `uid`.
    pub fn current(&self, view: &View, pid: u32, uid: u32) -> Option<Arc<Ver>> {
        let pkg = view.by_pid.get(&pid)?;
        for owner in [uid as i64, NODE] {
            if let Some(v) = self.pinned(owner, pkg.name.as_str()) {
                if let Some(ver) = pkg.versions.iter().find(|x| x.version.as_str() == v) {
                    return Some(ver.clone());
                }
            }
        }
        pkg.versions.last().cloned()
    }

    /// The pins of `owner`.
    pub fn set_of(&self, owner: Owner) -> PinSet {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        PinSet {
            owner: owner.label(),
            pins: to_pins(m.get(&owner.id()).unwrap_or(&PinMap::new())),
            ..PinSet::default()
        }
    }

    /// The caller's pin and the node's pin of a package.
    pub fn pins_of(&self, uid: u32, name: &str) -> (Option<String>, Option<String>) {
        (self.pinned(uid as i64, name), self.pinned(NODE, name))
    }

    /// Pins `name` (at `version`, else the newest accepted) and its dependencies.
    pub async fn pin(
        &self,
        cat: &Catalog,
        owner: Owner,
        name: &PackageName,
        version: Option<&Version>,
    ) -> Result<PinSet, String> {
        let _w = self.writes.lock().await;
        let view = cat.view();
        let pkg = view
            .packages
            .get(name)
            .ok_or_else(|| not_available(&view, name))?;
        let ver = match version {
            Some(v) => pkg
                .versions
                .iter()
                .find(|x| &x.version == v)
                .ok_or_else(|| {
                    format!(
                        "{name} {v} is not available to this node (accepted versions: {})",
                        versions(&pkg.versions)
                    )
                })?,
            None => pkg
                .versions
                .last()
                .ok_or_else(|| not_available(&view, name))?,
        };
        let before = self.owner_map(owner);
        let mut pins = before.clone();
        pins.insert(name.to_string(), (ver.version.to_string(), false));
        let external = resolve(cat, &view, &mut pins, &format!("{name} {}", ver.version)).await?;
        let pins = collect_garbage(cat, &view, pins).await?;
        self.save(owner, &pins)?;
        Ok(diff(owner, &before, &pins, external))
    }

    /// Drops the pin of `name` and the automatic pins nothing needs any more.
    pub async fn unpin(
        &self,
        cat: &Catalog,
        owner: Owner,
        name: &PackageName,
    ) -> Result<PinSet, String> {
        let _w = self.writes.lock().await;
        let view = cat.view();
        let before = self.owner_map(owner);
        let Some((_, automatic)) = before.get(name.as_str()) else {
            return Err(format!(
                "{name} is not pinned for {}; see storkctl pins",
                owner.label()
            ));
        };
        let mut pins = before.clone();
        if *automatic {
            // Only removable when nothing needs it.
            pins.remove(name.as_str());
            let kept = collect_garbage(cat, &view, before.clone()).await?;
            if kept.contains_key(name.as_str()) {
                let users = needed_by(cat, &view, &before, name.as_str()).await;
                return Err(format!(
                    "{name} was pinned as a dependency of {}; unpin that instead",
                    users.join(", ")
                ));
            }
        } else {
            pins.remove(name.as_str());
        }
        let pins = collect_garbage(cat, &view, pins).await?;
        self.save(owner, &pins)?;
        Ok(diff(owner, &before, &pins, vec![]))
    }

    /// The versions `prefetch` should fetch for `name version`: it and its dependencies
    /// resolved as a pin would, without pinning anything.
    pub async fn closure(
        &self,
        cat: &Catalog,
        owner: Owner,
        name: &PackageName,
        version: &Version,
    ) -> Result<Vec<Arc<Ver>>, String> {
        let view = cat.view();
        let mut pins = self.owner_map(owner);
        pins.insert(name.to_string(), (version.to_string(), false));
        resolve(cat, &view, &mut pins, &format!("{name} {version}")).await?;
        let pins = collect_garbage(cat, &view, pins).await?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let Some(ver) = find(&view, &n, &pins) else {
                continue;
            };
            for (dep, _) in edges(cat, &view, &ver, &pins).await? {
                todo.push(dep);
            }
            out.push(ver);
        }
        Ok(out)
    }

    /// The versions any owner pins, each once.
    pub fn pinned_vids(&self, view: &View) -> Vec<u32> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut vids: Vec<u32> = m
            .values()
            .flat_map(|pins| {
                pins.keys()
                    .filter_map(|n| find(view, n, pins))
                    .map(|v| v.vid)
            })
            .collect();
        vids.sort_unstable();
        vids.dedup();
        vids
    }

    /// Every object of every pinned version whose tree is loaded (the daemon loads the
    /// pinned ones before asking).
    pub fn protected(&self, cat: &Catalog) -> std::collections::HashSet<policy::Digest> {
        let mut out = std::collections::HashSet::new();
        for vid in self.pinned_vids(&cat.view()) {
            let Some(tree) = cat.tree(vid) else { continue };
            for e in &tree.manifest.entries {
                if let policy::manifest::Node::File { data, .. } = &e.node {
                    match data {
                        policy::manifest::FileData::Whole(b) => {
                            out.insert(b.sha256);
                        }
                        policy::manifest::FileData::Chunked { chunks, .. } => {
                            out.extend(chunks.iter().map(|c| c.sha256));
                        }
                    }
                }
            }
        }
        out
    }

    fn owner_map(&self, owner: Owner) -> PinMap {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&owner.id())
            .cloned()
            .unwrap_or_default()
    }

    fn save(&self, owner: Owner, pins: &PinMap) -> Result<(), String> {
        let rows: Vec<PinRow> = pins
            .iter()
            .map(|(n, (v, a))| PinRow {
                owner: owner.id(),
                name: n.clone(),
                version: v.clone(),
                automatic: *a,
            })
            .collect();
        self.store
            .set_pins(owner.id(), &rows)
            .map_err(|e| format!("cannot save the pins: {e}"))?;
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        if pins.is_empty() {
            m.remove(&owner.id());
        } else {
            m.insert(owner.id(), pins.clone());
        }
        Ok(())
    }
}

fn to_pins(m: &PinMap) -> Vec<Pin> {
    m.iter()
        .map(|(n, (v, a))| Pin {
            name: n.clone(),
            version: v.clone(),
            automatic: *a,
        })
        .collect()
}

fn diff(owner: Owner, before: &PinMap, after: &PinMap, external: Vec<String>) -> PinSet {
    let added = after
        .iter()
        .filter(|(n, v)| before.get(*n) != Some(v))
        .map(|(n, (v, a))| Pin {
            name: n.clone(),
            version: v.clone(),
            automatic: *a,
        })
        .collect();
    let removed = before
        .keys()
        .filter(|n| !after.contains_key(*n))
        .cloned()
        .collect();
    PinSet {
        owner: owner.label(),
        pins: to_pins(after),
        added,
        removed,
        external,
    }
}

fn versions(v: &[Arc<Ver>]) -> String {
    v.iter()
        .map(|x| x.version.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_available(view: &View, name: &PackageName) -> String {
    match view.refused.iter().find(|r| r.name == name.as_str()) {
        Some(r) => format!("{name} is not available to this node: {}", r.reason),
        None => format!("{name} is not in the repository (storkctl list shows what is)"),
    }
}

fn in_repository(view: &View, name: &str) -> bool {
    PackageName::new(name).is_ok_and(|n| view.packages.contains_key(&n))
        || view.refused.iter().any(|r| r.name == name)
}

fn find(view: &View, name: &str, pins: &PinMap) -> Option<Arc<Ver>> {
    let (v, _) = pins.get(name)?;
    let pkg = view.packages.get(&PackageName::new(name).ok()?)?;
    pkg.versions
        .iter()
        .find(|x| x.version.as_str() == v)
        .cloned()
}

async fn relations(cat: &Catalog, ver: &Ver) -> Result<Relations, String> {
    let tree = cat.load_tree(ver.vid).await.map_err(|e| {
        format!(
            "cannot read the manifest of {} {}: {e}",
            ver.name, ver.version
        )
    })?;
    Ok(tree.manifest.relations())
}

fn satisfies(alt: &Alternative, ver: &Version) -> bool {
    alt.constraint
        .as_ref()
        .is_none_or(|c| c.satisfied_by(ver.deb()))
}

/// Which pinned packages satisfy each dependency clause of `ver`.
async fn edges(
    cat: &Catalog,
    view: &View,
    ver: &Ver,
    pins: &PinMap,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for clause in relations(cat, ver).await?.clauses {
        for alt in &clause.alternatives {
            if let Some(p) = find(view, alt.name.as_str(), pins) {
                if satisfies(alt, &p.version) {
                    out.push((alt.name.to_string(), clause.to_string()));
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Adds automatic pins until every pinned version's dependencies are satisfied. Returns
/// the dependencies left to the system.
async fn resolve(
    cat: &Catalog,
    view: &View,
    pins: &mut PinMap,
    root: &str,
) -> Result<Vec<String>, String> {
    let mut external = BTreeSet::new();
    // Automatic pins added here, and which package needed each (for the error's chain).
    let mut via: BTreeMap<String, String> = BTreeMap::new();
    // Each round either pins something new or ends; the number of packages bounds it.
    for _ in 0..=view.packages.len() + 1 {
        let mut changed = false;
        let pinned: Vec<String> = pins.keys().cloned().collect();
        for name in pinned {
            let Some(ver) = find(view, &name, pins) else {
                return Err(format!(
                    "{name} {} is pinned but no longer available; unpin it first",
                    pins[&name].0
                ));
            };
            for clause in relations(cat, &ver).await?.clauses {
                let who = format!("{} {}", ver.name, ver.version);
                let mut conflicts = Vec::new();
                let mut ok = false;
                for alt in &clause.alternatives {
                    if let Some(p) = find(view, alt.name.as_str(), pins) {
                        if satisfies(alt, &p.version) {
                            ok = true;
                            break;
                        }
                        conflicts.push(format!("{} {} is pinned", alt.name, p.version));
                    }
                }
                if ok {
                    continue;
                }
                // Nothing pinned fits: pin the newest version of an alternative that
                // fits, and fits every other pinned version's plain dependency on it too;
                // an automatic pin may move to such a version, a pin by hand never does.
                let mut tried = Vec::new();
                let mut all_external = true;
                for alt in &clause.alternatives {
                    if !in_repository(view, alt.name.as_str()) {
                        continue;
                    }
                    all_external = false;
                    if pins
                        .get(alt.name.as_str())
                        .is_some_and(|(_, automatic)| !automatic)
                    {
                        continue;
                    }
                    let Some(pkg) = view.packages.get(&alt.name) else {
                        tried.push(format!("{} has no version this node accepts", alt.name));
                        continue;
                    };
                    let others = constraints_on(cat, view, pins, alt.name.as_str()).await?;
                    match pkg.versions.iter().rev().find(|v| {
                        satisfies(alt, &v.version)
                            && others.iter().all(|(o, _)| satisfies(o, &v.version))
                    }) {
                        Some(v) => {
                            pins.insert(alt.name.to_string(), (v.version.to_string(), true));
                            via.entry(alt.name.to_string()).or_insert(name.clone());
                            changed = true;
                            ok = true;
                            break;
                        }
                        None => {
                            let also: Vec<String> = others
                                .iter()
                                .filter(|(o, _)| *o != *alt)
                                .map(|(o, by)| format!(" and {o} of {by}"))
                                .collect();
                            tried.push(format!(
                                "no accepted version of {} satisfies {}{} (accepted: {})",
                                alt.name,
                                alt,
                                also.concat(),
                                versions(&pkg.versions)
                            ))
                        }
                    }
                }
                if ok {
                    continue;
                }
                if all_external && conflicts.is_empty() {
                    external.insert(clause.to_string());
                    continue;
                }
                let mut why = conflicts;
                why.extend(tried);
                let chain = if who == root {
                    who
                } else {
                    // Who pulled `who` in, back to the root; or a pin made before.
                    let mut path = vec![who.clone()];
                    let mut at = name.clone();
                    while let Some(parent) = via.get(&at) {
                        if path.len() > pins.len() {
                            break;
                        }
                        match find(view, parent, pins) {
                            Some(p) => path.push(format!("{} {}", p.name, p.version)),
                            None => break,
                        }
                        at = parent.clone();
                    }
                    if path.last() == Some(&root.to_string()) {
                        path.reverse();
                        format!("{}, which", path.join(" needs "))
                    } else {
                        format!("{who} (pinned before)")
                    }
                };
                return Err(format!(
                    "cannot pin {root}: {chain} depends on \"{clause}\", but {}",
                    why.join("; ")
                ));
            }
        }
        if !changed {
            return Ok(external.into_iter().collect());
        }
    }
    Err(format!("cannot pin {root}: the dependencies do not settle"))
}

/// The plain (single-alternative) dependencies on `name` of every other pinned version,
/// with who has them.
async fn constraints_on(
    cat: &Catalog,
    view: &View,
    pins: &PinMap,
    name: &str,
) -> Result<Vec<(Alternative, String)>, String> {
    let mut out = Vec::new();
    for n in pins.keys().filter(|n| n.as_str() != name) {
        let Some(ver) = find(view, n, pins) else {
            continue;
        };
        for clause in relations(cat, &ver).await?.clauses {
            if let [alt] = clause.alternatives.as_slice() {
                if alt.name.as_str() == name {
                    out.push((alt.clone(), format!("{} {}", ver.name, ver.version)));
                }
            }
        }
    }
    Ok(out)
}

/// Drops automatic pins that no explicit pin needs, directly or through others.
async fn collect_garbage(cat: &Catalog, view: &View, pins: PinMap) -> Result<PinMap, String> {
    let mut keep: BTreeSet<String> = pins
        .iter()
        .filter(|(_, (_, a))| !a)
        .map(|(n, _)| n.clone())
        .collect();
    let mut todo: Vec<String> = keep.iter().cloned().collect();
    while let Some(n) = todo.pop() {
        let Some(ver) = find(view, &n, &pins) else {
            continue;
        };
        for (dep, _) in edges(cat, view, &ver, &pins).await? {
            if keep.insert(dep.clone()) {
                todo.push(dep);
            }
        }
    }
    Ok(pins.into_iter().filter(|(n, _)| keep.contains(n)).collect())
}

async fn needed_by(cat: &Catalog, view: &View, pins: &PinMap, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, (v, _)) in pins {
        let Some(ver) = find(view, n, pins) else {
            continue;
        };
        if let Ok(e) = edges(cat, view, &ver, pins).await {
            if e.iter().any(|(d, _)| d == name) {
                out.push(format!("{n} {v}"));
            }
        }
    }
    out
}
