//! [`Repo`]: a repository built with the real `stork-repo` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use policy::index::{IndexDoc, Release, INDEX_FILE};
use policy::manifest::{Blob, FileData, Manifest, Node};
use policy::{PackageName, Version};
use serde_json::Value;

use crate::http::Request;
use crate::{free_port, wait_for, Cmd, Daemon, SOON};

/// A key pair made by `stork-repo keygen`.
#[derive(Clone, Debug)]
pub struct Key {
    /// The secret key file (mode 0600).
    pub path: PathBuf,
    /// The public key, `ed25519:BASE64`.
    pub public: String,
}

/// A publisher: a name (for trust files) and its key pair.
#[derive(Clone, Debug)]
pub struct Publisher {
    /// The name used in trust files.
    pub name: String,
    /// The secret key file.
    pub key: PathBuf,
    /// The public key, `ed25519:BASE64`.
    pub public: String,
}

/// A repository directory driven through `stork-repo`; key files live in a private
/// temporary directory next to nothing (never inside the repository).
pub struct Repo {
    dir: PathBuf,
    key: Key,
    keys: tempfile::TempDir,
}

/// Runs `stork-repo keygen --out PATH --json`; returns the key.
pub fn keygen(path: &Path) -> Key {
    let out = Cmd::bin("stork-repo")
        .args(["keygen", "--json", "--out"])
        .arg(path)
        .ok();
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("keygen --json: {e}: {out}"));
    Key {
        path: path.to_path_buf(),
        public: v["public_key"].as_str().expect("public_key").to_string(),
    }
}

impl Repo {
    /// Makes a repository key and runs `stork-repo init DIR` (DIR must not exist or be
    /// empty).
    pub fn new(dir: impl AsRef<Path>) -> Repo {
        let keys = tempfile::Builder::new()
            .prefix("stork-keys-")
            .tempdir()
            .expect("cannot create a temporary directory");
        fs::create_dir(keys.path().join("spill")).unwrap();
        let key = keygen(&keys.path().join("repository.key"));
        let dir = dir.as_ref().to_path_buf();
        Cmd::bin("stork-repo")
            .arg("init")
            .arg(&dir)
            .arg("--key")
            .arg(&key.path)
            .ok();
        Repo { dir, key, keys }
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current repository key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Where `stork-repo` spills archive contents (its `TMPDIR`); empty between commands.
    pub fn spill_dir(&self) -> PathBuf {
        self.keys.path().join("spill")
    }

    /// A new key pair named `name` in the private key directory.
    pub fn keygen(&self, name: &str) -> Key {
        keygen(&self.keys.path().join(format!("{name}.key")))
    }

    /// A new publisher with its own key pair.
    pub fn publisher(&self, name: &str) -> Publisher {
        let k = self.keygen(&format!("publisher-{name}"));
        Publisher {
            name: name.into(),
            key: k.path,
            public: k.public,
        }
    }

    /// `stork-repo SUB DIR` (more arguments to follow), spilling into [`Repo::spill_dir`].
    pub fn cmd(&self, sub: &str) -> Cmd {
        Cmd::bin("stork-repo")
            .env("TMPDIR", self.spill_dir())
            .arg(sub)
            .arg(&self.dir)
    }

    /// The `add` command, not run yet. `name`/`version` may be "" to let a .deb name
    /// itself.
    pub fn add_cmd(
        &self,
        p: &Publisher,
        name: &str,
        version: &str,
        source: &Path,
        depends: &[&str],
    ) -> Cmd {
        let mut c = self.cmd("add").arg("--json").arg("--key").arg(&p.key);
        if !name.is_empty() {
            c = c.args(["--name", name]);
        }
        if !version.is_empty() {
            c = c.args(["--version", version]);
        }
        for d in depends {
            c = c.args(["--depends", d]);
        }
        c.arg(source)
    }

    /// Adds `source` as `name` `version`; returns `add --json`'s report.
    #[track_caller]
    pub fn add(
        &self,
        p: &Publisher,
        name: &str,
        version: &str,
        source: &Path,
        depends: &[&str],
    ) -> Value {
        let out = self.add_cmd(p, name, version, source, depends).ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("add --json: {e}: {out}"))
    }

    /// Publishes with the default expiry; returns the new index version.
    #[track_caller]
    pub fn publish(&self) -> u64 {
        self.publish_cmd(None).ok_json()["version"]
            .as_u64()
            .expect("version")
    }

    /// Publishes an index valid for `ttl` (whole seconds); returns its version.
    #[track_caller]
    pub fn publish_expires(&self, ttl: Duration) -> u64 {
        self.publish_cmd(Some(ttl)).ok_json()["version"]
            .as_u64()
            .expect("version")
    }

    /// The `publish --json` command, not run yet.
    pub fn publish_cmd(&self, ttl: Option<Duration>) -> Cmd {
        let mut c = self
            .cmd("publish")
            .arg("--json")
            .arg("--key")
            .arg(&self.key.path);
        if let Some(t) = ttl {
            c = c.arg("--expires").arg(format!("{}s", t.as_secs()));
        }
        c
    }

    /// Co-signs `name@version` with `p`'s key.
    #[track_caller]
    pub fn sign(&self, p: &Publisher, name: &str, version: &str) {
        self.cmd("sign")
            .arg("--key")
            .arg(&p.key)
            .arg(format!("{name}@{version}"))
            .ok();
    }

    /// Withdraws `name@version` with `p`'s key.
    #[track_caller]
    pub fn withdraw(&self, p: &Publisher, name: &str, version: &str) {
        self.cmd("withdraw")
            .arg("--key")
            .arg(&p.key)
            .arg(format!("{name}@{version}"))
            .ok();
    }

    /// Rotates the index to a new repository key (which becomes [`Repo::key`]); returns
    /// the old one.
    #[track_caller]
    pub fn rotate(&mut self) -> Key {
        let n = fs::read_dir(self.keys.path()).unwrap().count();
        let new = self.keygen(&format!("repository-{n}"));
        self.cmd("rotate")
            .arg("--key")
            .arg(&self.key.path)
            .arg("--new-key")
            .arg(&new.path)
            .ok();
        std::mem::replace(&mut self.key, new)
    }

    /// Runs `verify`, asserts it passes; returns its summary line (stderr).
    #[track_caller]
    pub fn verify(&self) -> String {
        let o = self.cmd("verify").run();
        assert!(o.status.success(), "verify failed\n{o}");
        o.stderr
    }

    /// Runs `verify`, asserts it fails cleanly; returns stdout (one line per problem)
    /// followed by stderr.
    #[track_caller]
    pub fn verify_fails(&self) -> String {
        let o = self.cmd("verify").run();
        o.assert_clean_failure();
        o.both()
    }

    /// A trust file for this repository's current key and the given publishers.
    pub fn trust_toml(&self, publishers: &[(&Publisher, &[&str])]) -> String {
        let mut t = format!("[repository]\nkey = \"{}\"\n", self.key.public);
        for (p, patterns) in publishers {
            let pats: Vec<String> = patterns.iter().map(|s| format!("\"{s}\"")).collect();
            t.push_str(&format!(
                "\n[[publisher]]\nname = \"{}\"\nkey = \"{}\"\npackages = [{}]\n",
                p.name,
                p.public,
                pats.join(", ")
            ));
        }
        t
    }

    /// Writes [`Repo::trust_toml`] to `path`; returns the path.
    pub fn write_trust(
        &self,
        path: impl AsRef<Path>,
        publishers: &[(&Publisher, &[&str])],
    ) -> PathBuf {
        let path = path.as_ref().to_path_buf();
        fs::write(&path, self.trust_toml(publishers)).unwrap();
        path
    }

    // --- reading what is on disk, through policy's types

    /// The index (strictly parsed, signatures not judged).
    pub fn index(&self) -> IndexDoc {
        let p = self.dir.join(INDEX_FILE);
        let b = fs::read(&p).unwrap_or_else(|e| panic!("read {p:?}: {e}"));
        IndexDoc::parse(&b).unwrap_or_else(|e| panic!("{p:?}: {e}"))
    }

    /// The index version.
    pub fn index_version(&self) -> u64 {
        self.index().signed.version
    }

    /// Every object file, sorted.
    pub fn object_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let top = self.dir.join("objects");
        for d in fs::read_dir(&top).unwrap_or_else(|e| panic!("read {top:?}: {e}")) {
            let d = d.unwrap().path();
            for f in fs::read_dir(&d).unwrap() {
                out.push(f.unwrap().path());
            }
        }
        out.sort();
        out
    }

    /// The release record `add` wrote for `name` `version` (published or not).
    pub fn release(&self, name: &str, version: &str) -> Release {
        let p = self
            .dir
            .join("releases")
            .join(name)
            .join(format!("{version}.json"));
        let b = fs::read(&p).unwrap_or_else(|e| panic!("{name} {version}: read {p:?}: {e}"));
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{p:?}: {e}"))
    }

    /// The plain bytes of an object (decompressed when stored compressed), unchecked.
    pub fn read_object(&self, blob: &Blob) -> Vec<u8> {
        let p = self.dir.join(blob.repo_path());
        let stored = fs::read(&p).unwrap_or_else(|e| panic!("read {p:?}: {e}"));
        match blob.zstd {
            None => stored,
            Some(_) => zstd::bulk::decompress(&stored, blob.size as usize)
                .unwrap_or_else(|e| panic!("{p:?} does not decompress: {e}")),
        }
    }

    /// The manifest object file of `name` `version`.
    pub fn manifest_object(&self, name: &str, version: &str) -> PathBuf {
        self.dir
            .join(self.release(name, version).manifest.repo_path())
    }

    /// The manifest of `name` `version`.
    pub fn manifest(&self, name: &str, version: &str) -> Manifest {
        let r = self.release(name, version);
        assert_eq!(r.name, PackageName::new(name).unwrap());
        assert_eq!(r.version, Version::new(version).unwrap());
        Manifest::parse(
            &format!("manifest of {name} {version}"),
            &self.read_object(&r.manifest),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The object files holding file `path` of `name` `version`, in order (one, or one per
    /// chunk; none for an empty file).
    pub fn objects_for(&self, name: &str, version: &str, path: &str) -> Vec<PathBuf> {
        let m = self.manifest(name, version);
        let e = m
            .entries
            .iter()
            .find(|e| e.path.as_str() == path)
            .unwrap_or_else(|| panic!("{name} {version} has no {path:?}"));
        match &e.node {
            Node::File {
                data: FileData::Whole(b),
                ..
            } if b.size == 0 => vec![],
            Node::File {
                data: FileData::Whole(b),
                ..
            } => vec![self.dir.join(b.repo_path())],
            Node::File {
                data: FileData::Chunked { chunks, .. },
                ..
            } => chunks
                .iter()
                .map(|b| self.dir.join(b.repo_path()))
                .collect(),
            n => panic!("{name} {version} {path:?} is not a file: {n:?}"),
        }
    }

    /// The bytes of file `path` of `name` `version`, put together from its objects and
    /// checked against the manifest's size and digest.
    pub fn file_bytes(&self, name: &str, version: &str, path: &str) -> Vec<u8> {
        let m = self.manifest(name, version);
        let e = m
            .entries
            .iter()
            .find(|e| e.path.as_str() == path)
            .unwrap_or_else(|| panic!("{name} {version} has no {path:?}"));
        let Node::File {
            size, sha256, data, ..
        } = &e.node
        else {
            panic!("{name} {version} {path:?} is not a file: {:?}", e.node);
        };
        let bytes = match data {
            FileData::Whole(b) if b.size == 0 => vec![],
            FileData::Whole(b) => self.read_object(b),
            FileData::Chunked { chunks, .. } => {
                chunks.iter().flat_map(|b| self.read_object(b)).collect()
            }
        };
        assert_eq!(bytes.len() as u64, *size, "{name} {version} {path}: size");
        assert_eq!(
            policy::Digest::of(&bytes),
            *sha256,
            "{name} {version} {path}: digest"
        );
        bytes
    }

    /// Runs `stork-repo serve DIR` on a free port of 127.0.0.1 and waits until it answers;
    /// returns the server (stopped on drop) and its URL `http://127.0.0.1:PORT/`.
    pub fn serve(&self) -> (Daemon, String) {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut d = Cmd::bin("stork-repo")
                .arg("serve")
                .arg(&self.dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .spawn();
            let url = format!("http://127.0.0.1:{port}/");
            let up = wait_for(SOON, format!("stork-repo serve on {url}"), || {
                if d.try_status().is_some() {
                    return Ok(false);
                }
                Request::get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .map(|_| true)
                    .map_err(|e| format!("{e}\n{}", d.describe()))
            });
            if up {
                return (d, url);
            }
            last = d.describe();
            if !last.contains("cannot listen") {
                break;
            }
        }
        panic!("stork-repo serve did not start\n{last}");
    }

    /// The object file holding (the first chunk of) file `path` of `name` `version`.
    pub fn object_for(&self, name: &str, version: &str, path: &str) -> PathBuf {
        self.objects_for(name, version, path)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{name} {version} {path:?} is empty: it has no object"))
    }
}

trait OkJson {
    fn ok_json(self) -> Value;
}

impl OkJson for Cmd {
    #[track_caller]
    fn ok_json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}
