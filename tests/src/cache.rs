//! Looking into a `storkfs` cache from outside, for "nothing unverified is stored" and
//! "stored once": every object file must hash to its own name.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use policy::Digest;

/// Every object file under `CACHE/objects/`, rehashed: panics (listing every bad file)
/// unless each one's SHA-256 is its name and it sits in the directory named by the
/// name's first two hex digits. Returns them by digest.
#[track_caller]
pub fn cache_objects(cache: &Path) -> BTreeMap<Digest, PathBuf> {
    let top = cache.join("objects");
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    let Ok(dirs) = fs::read_dir(&top) else {
        return out;
    };
    for d in dirs {
        let d = d.unwrap().path();
        if !d.is_dir() {
            bad.push(format!("{}: not a directory", d.display()));
            continue;
        }
        for f in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {d:?}: {e}")) {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&f).unwrap_or_else(|e| panic!("read {f:?}: {e}"));
            let actual = Digest::of(&bytes);
            let dir_ok = d
                .file_name()
                .is_some_and(|n| name.starts_with(&*n.to_string_lossy()));
            match Digest::from_hex(&name) {
                Ok(named) if named == actual && dir_ok => {
                    out.insert(named, f);
                }
                _ => bad.push(format!(
                    "{}: {} bytes hashing to {actual}",
                    f.display(),
                    bytes.len()
                )),
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the cache holds objects that are not what their names say:\n  {}",
        bad.join("\n  ")
    );
    out
}

/// Whether any object file under `CACHE/objects/` holds exactly `bytes`.
pub fn cache_holds_bytes(cache: &Path, bytes: &[u8]) -> bool {
    let top = cache.join("objects");
    let Ok(dirs) = fs::read_dir(&top) else {
        return false;
    };
    dirs.flatten().any(|d| {
        fs::read_dir(d.path())
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                f.metadata().is_ok_and(|m| m.len() == bytes.len() as u64)
                    && fs::read(f.path()).is_ok_and(|b| b == bytes)
            })
    })
}

/// The files under `CACHE/tmp/` (downloads in progress).
pub fn cache_tmp_files(cache: &Path) -> Vec<PathBuf> {
    fs::read_dir(cache.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
