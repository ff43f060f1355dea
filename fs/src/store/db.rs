//! The cache's SQLite database: which objects are present, the trusted repository state,
//! the releases this node accepted, and every slice's pins.
//!
//! The database runs in WAL mode with `synchronous=NORMAL`: a crash can lose the last
//! transactions but never corrupts the file. Nothing in it is trusted without a check
//! that survives losing those transactions (see [`super`] for how objects are trusted).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// The schema version this code writes.
const SCHEMA: i64 = 1;
/// The size the write-ahead log is truncated to after a checkpoint.
const WAL_LIMIT: i64 = 1 << 20;

/// Opens (creating when needed) the database.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The write-ahead log counts against the quota: checkpoint it every ~1 MiB (SQLite's
    // default is ~4 MiB) and truncate it back to 1 MiB after a checkpoint (by default it
    // keeps its largest size forever).
    conn.pragma_update(None, "wal_autocheckpoint", 256)?;
    conn.pragma_update(None, "journal_size_limit", WAL_LIMIT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the cache database has schema {version}, newer than this storkfs ({SCHEMA}); use a newer storkfs or another cache directory"
        )));
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS objects (
            digest BLOB PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            synced INTEGER NOT NULL,
            last_access INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS objects_by_access ON objects(last_access);
         CREATE TABLE IF NOT EXISTS meta (
            key TEXT PRIMARY KEY,
            value BLOB NOT NULL
         );
         CREATE TABLE IF NOT EXISTS accepted (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            release BLOB NOT NULL,
            first_seen INTEGER NOT NULL,
            PRIMARY KEY (name, version)
         );
         CREATE TABLE IF NOT EXISTS pins (
            owner INTEGER NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            automatic INTEGER NOT NULL,
            PRIMARY KEY (owner, name)
         );",
    )?;
    conn.pragma_update(None, "user_version", SCHEMA)?;
    Ok(conn)
}

/// Reads a meta value.
pub fn get_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// Writes a meta value.
pub fn set_meta(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Deletes a meta value.
pub fn delete_meta(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}
