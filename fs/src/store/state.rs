//! What the node persists about its repository and its slices, in the cache database.
//!
//! - the trusted repository key (the trust file's, or where signed rotations led) and the
//!   trust file's key it started from, so an admin's change of key is noticed;
//! - the version floor: the highest index version seen under that key, and its digest;
//! - the last accepted index bytes (offline restarts) and each source's ETag;
//! - every release the node accepted, kept even when a later index drops it, so a
//!   version never vanishes without a publisher-signed withdrawal;
//! - every slice's pins (owner = uid, or -1 for the node).

use rusqlite::params;

use super::{db, Store};

/// The trusted index state, saved in one transaction.
pub struct IndexState {
    /// The trust file's repository key this state started from.
    pub trust_root: String,
    /// The repository key trusted now.
    pub key: String,
    /// The highest index version seen under `key`, and its digest.
    pub floor: Option<(u64, policy::Digest)>,
    /// The index bytes.
    pub index: Option<Vec<u8>>,
}

/// A pin row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRow {
    /// The owner: a uid, or -1 for the node.
    pub owner: i64,
    /// The package.
    pub name: String,
    /// The version.
    pub version: String,
    /// Pinned as a dependency.
    pub automatic: bool,
}

/// The owner id of node-wide pins.
pub const NODE: i64 = -1;

fn other(e: rusqlite::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl Store {
    /// Reads the saved index state.
    pub fn index_state(&self) -> std::io::Result<Option<IndexState>> {
        let db = self.db();
        let get = |k: &str| db::get_meta(&db, k).map_err(other);
        let (Some(root), Some(key)) = (get("trust_root")?, get("repo_key")?) else {
            return Ok(None);
        };
        let floor = get("floor")?.and_then(|f| {
            let s = String::from_utf8(f).ok()?;
            let (v, d) = s.split_once(' ')?;
            Some((v.parse().ok()?, policy::Digest::from_hex(d).ok()?))
        });
        Ok(Some(IndexState {
            trust_root: String::from_utf8_lossy(&root).into_owned(),
            key: String::from_utf8_lossy(&key).into_owned(),
            floor,
            index: get("index")?,
        }))
    }

    /// Saves the index state and the accepted releases together.
    pub fn save_index_state(
        &self,
        st: &IndexState,
        accepted: &[(String, String, Vec<u8>)],
        now: u64,
    ) -> std::io::Result<()> {
        let mut db = self.db();
        let tx = db.transaction().map_err(other)?;
        db::set_meta(&tx, "trust_root", st.trust_root.as_bytes()).map_err(other)?;
        db::set_meta(&tx, "repo_key", st.key.as_bytes()).map_err(other)?;
        match &st.floor {
            Some((v, d)) => db::set_meta(&tx, "floor", format!("{v} {d}").as_bytes()),
            None => db::delete_meta(&tx, "floor"),
        }
        .map_err(other)?;
        match &st.index {
            Some(b) => db::set_meta(&tx, "index", b),
            None => db::delete_meta(&tx, "index"),
        }
        .map_err(other)?;
        {
            let mut keep = std::collections::HashSet::new();
            for (name, version, release) in accepted {
                keep.insert((name.clone(), version.clone()));
                tx.execute(
                    "INSERT INTO accepted (name, version, release, first_seen) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(name, version) DO UPDATE SET release = excluded.release",
                    params![name, version, release, now as i64],
                )
                .map_err(other)?;
            }
            let existing: Vec<(String, String)> = {
                let mut st = tx
                    .prepare("SELECT name, version FROM accepted")
                    .map_err(other)?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(other)?;
                rows.collect::<Result<_, _>>().map_err(other)?
            };
            for (n, v) in existing {
                if !keep.contains(&(n.clone(), v.clone())) {
                    tx.execute(
                        "DELETE FROM accepted WHERE name = ?1 AND version = ?2",
                        params![n, v],
                    )
                    .map_err(other)?;
                }
            }
        }
        tx.commit().map_err(other)
    }

    /// Every accepted release: (name, version, canonical release bytes).
    pub fn accepted(&self) -> std::io::Result<Vec<(String, String, Vec<u8>)>> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT name, version, release FROM accepted ORDER BY name, version")
            .map_err(other)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    /// Forgets one accepted release (its manifest turned out bad).
    pub fn drop_accepted(&self, name: &str, version: &str) -> std::io::Result<()> {
        self.db()
            .execute(
                "DELETE FROM accepted WHERE name = ?1 AND version = ?2",
                params![name, version],
            )
            .map(drop)
            .map_err(other)
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        db::get_meta(&self.db(), key).map_err(other)
    }

    /// Sets a meta value.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> std::io::Result<()> {
        db::set_meta(&self.db(), key, value).map_err(other)
    }

    /// Every pin.
    pub fn pins(&self) -> std::io::Result<Vec<PinRow>> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT owner, name, version, automatic FROM pins ORDER BY owner, name")
            .map_err(other)?;
        let rows = st
            .query_map([], |r| {
                Ok(PinRow {
                    owner: r.get(0)?,
                    name: r.get(1)?,
                    version: r.get(2)?,
                    automatic: r.get::<_, i64>(3)? != 0,
                })
            })
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    /// Replaces one owner's pins in one transaction.
    pub fn set_pins(&self, owner: i64, pins: &[PinRow]) -> std::io::Result<()> {
        let mut db = self.db();
        let tx = db.transaction().map_err(other)?;
        tx.execute("DELETE FROM pins WHERE owner = ?1", [owner])
            .map_err(other)?;
        for p in pins {
            tx.execute(
                "INSERT INTO pins (owner, name, version, automatic) VALUES (?1, ?2, ?3, ?4)",
                params![owner, p.name, p.version, p.automatic as i64],
            )
            .map_err(other)?;
        }
        tx.commit().map_err(other)
    }
}
