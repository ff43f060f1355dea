//! ed25519 keys: parsing, key files, key ids, signing and checking signatures.
//!
//! A public key is written `ed25519:` followed by the standard base64 of its 32 bytes.
//! A secret key file holds one line, `ed25519-secret:` and the base64 of the 32-byte seed;
//! it must not be readable by group or others. Every message is signed under a context
//! string ([`Context`]) so that a signature made for one purpose can never be replayed as
//! another (a manifest signature is not an index signature).

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::error::KeyError;

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// An ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// A short, stable name for a key used in every message: the first 8 bytes of the SHA-256
/// of the raw public key, in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {self}")
    }
}

impl PublicKey {
    /// Parses `ed25519:BASE64`.
    pub fn parse(s: &str) -> Result<PublicKey, KeyError> {
        let s = s.trim();
        let bad = |why: &str| KeyError::BadPublic {
            text: crate::sanitize::short(s, 80),
            why: why.to_string(),
        };
        let b64 = s
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| bad("it must start with \"ed25519:\""))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| bad("the part after \"ed25519:\" is not standard base64"))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad("an ed25519 public key is 32 bytes"))?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| bad("it is not a valid ed25519 point"))?;
        Ok(PublicKey(bytes))
    }

    /// The key id used in messages.
    pub fn id(&self) -> KeyId {
        let d = Digest::of(&self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&d.as_bytes()[..8]);
        KeyId(id)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks `sig` over `message` in `context`. Uses strict verification (no malleable
    /// or small-order signatures).
    pub fn verify(&self, context: Context, message: &[u8], sig: &SignatureBytes) -> bool {
        let Ok(vk) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        vk.verify_strict(&context.message(message), &sig).is_ok()
    }

    /// Reads a `FILE.pub` (or any file holding one public key line).
    pub fn read_file(path: &Path) -> Result<PublicKey, KeyError> {
        let text = fs::read_to_string(path).map_err(|e| KeyError::Io {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        PublicKey::parse(&text).map_err(|e| KeyError::InFile {
            path: path.display().to_string(),
            cause: Box::new(e),
        })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", B64.encode(self.0))
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}", self.id())
    }
}
impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.trim() != s {
            return Err(serde::de::Error::custom(
                "a key must not have surrounding spaces",
            ));
        }
        PublicKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The raw 64 bytes of a signature, written as standard base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureBytes(pub [u8; 64]);

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig {}…", hex::encode(&self.0[..6]))
    }
}
impl Serialize for SignatureBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(self.0))
    }
}
impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let raw = B64
            .decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("a signature must be standard base64"))?;
        let bytes: [u8; 64] = raw
            .try_into()
            .map_err(|_| serde::de::Error::custom("an ed25519 signature is 64 bytes"))?;
        Ok(SignatureBytes(bytes))
    }
}

/// What a signature is for. The context string is prepended to the message, so a
/// signature can only ever be checked in the context it was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// A publisher vouches for a manifest (the message is its digest).
    Manifest,
    /// The repository key signs an index.
    Index,
    /// An old repository key hands over to a new one.
    Rotation,
    /// A publisher withdraws a package version.
    Withdrawal,
}

impl Context {
    fn tag(self) -> &'static [u8] {
        match self {
            Context::Manifest => b"stork/manifest/v1\n",
            Context::Index => b"stork/index/v1\n",
            Context::Rotation => b"stork/rotation/v1\n",
            Context::Withdrawal => b"stork/withdrawal/v1\n",
        }
    }
    fn message(self, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.tag().len() + body.len());
        m.extend_from_slice(self.tag());
        m.extend_from_slice(body);
        m
    }
}

/// An ed25519 secret key.
pub struct SecretKey {
    inner: SigningKey,
}

impl SecretKey {
    /// A new random key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey {
            inner: SigningKey::from_bytes(&seed),
        })
    }

    /// A key from a fixed seed (tests and fixtures).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey {
            inner: SigningKey::from_bytes(&seed),
        }
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.inner.verifying_key().to_bytes())
    }

    /// Signs `message` in `context`.
    pub fn sign(&self, context: Context, message: &[u8]) -> SignatureBytes {
        SignatureBytes(self.inner.sign(&context.message(message)).to_bytes())
    }

    /// Reads a secret key file, refusing one that group or others can read.
    pub fn read_file(path: &Path) -> Result<SecretKey, KeyError> {
        let p = path.display().to_string();
        let meta = fs::metadata(path).map_err(|e| KeyError::Io {
            path: p.clone(),
            cause: e.to_string(),
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::SecretReadable { path: p, mode });
        }
        let text = fs::read_to_string(path).map_err(|e| KeyError::Io {
            path: p.clone(),
            cause: e.to_string(),
        })?;
        let bad = |why: &str| KeyError::BadSecret {
            path: p.clone(),
            why: why.to_string(),
        };
        let b64 = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| bad("it does not start with \"ed25519-secret:\""))?;
        let raw = B64.decode(b64).map_err(|_| bad("it is not base64"))?;
        let seed: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad("the seed is not 32 bytes"))?;
        Ok(SecretKey::from_seed(seed))
    }

    /// Writes the secret to `path` (mode 0600, refusing to overwrite) and the public key
    /// to `path.pub`.
    pub fn write_files(&self, path: &Path) -> Result<(), KeyError> {
        let io = |p: &Path, e: std::io::Error| KeyError::Io {
            path: p.display().to_string(),
            cause: e.to_string(),
        };
        let pub_path = pub_path(path);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io(path, e))?;
        // The umask cannot widen 0600, but make the mode exact anyway.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io(path, e))?;
        writeln!(f, "{SECRET_PREFIX}{}", B64.encode(self.inner.to_bytes()))
            .and_then(|_| f.sync_all())
            .map_err(|e| io(path, e))?;
        fs::write(&pub_path, format!("{}\n", self.public())).map_err(|e| io(&pub_path, e))?;
        Ok(())
    }
}

/// `FILE.pub` for a secret key file `FILE`.
pub fn pub_path(secret: &Path) -> std::path::PathBuf {
    let mut s = secret.as_os_str().to_owned();
    s.push(".pub");
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_round_trip_and_errors() {
        let k = SecretKey::from_seed([7; 32]).public();
        let text = k.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(PublicKey::parse(&text).unwrap(), k);
        assert_eq!(k.id().to_string().len(), 16);
        for (bad, why) in [
            ("rsa:AAAA", "must start"),
            ("ed25519:!!!", "base64"),
            ("ed25519:AAAA", "32 bytes"),
        ] {
            let e = PublicKey::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn signatures_are_bound_to_context_and_message() {
        let sk = SecretKey::from_seed([1; 32]);
        let pk = sk.public();
        let sig = sk.sign(Context::Manifest, b"hello");
        assert!(pk.verify(Context::Manifest, b"hello", &sig));
        assert!(!pk.verify(Context::Index, b"hello", &sig));
        assert!(!pk.verify(Context::Manifest, b"hellp", &sig));
        let other = SecretKey::from_seed([2; 32]).public();
        assert!(!other.verify(Context::Manifest, b"hello", &sig));
        for i in 0..64 {
            let mut bad = sig;
            bad.0[i] ^= 1;
            assert!(!pk.verify(Context::Manifest, b"hello", &bad), "byte {i}");
        }
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let sk = SecretKey::generate().unwrap();
        sk.write_files(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SecretKey::read_file(&path).unwrap().public(), sk.public());
        assert_eq!(PublicKey::read_file(&pub_path(&path)).unwrap(), sk.public());
        // Never overwrite a key.
        assert!(sk.write_files(&path).is_err());
        // Refuse a secret that others can read.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretKey::read_file(&path).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
