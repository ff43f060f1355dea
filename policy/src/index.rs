//! The repository index: the one mutable file of a repository.
//!
//! It lists every package version with the digest and size of its manifest and the
//! publishers' signatures over that digest, plus publisher-signed withdrawals and the
//! chain of repository-key rotations. It carries a version number that only grows and an
//! expiry time, and is signed by the repository key.
//!
//! The repository key vouches only for freshness and completeness: which versions exist
//! and that this is the newest list. It never vouches for content; that is the publishers'
//! signatures, judged by the node's trust file ([`crate::trust`]).
//!
//! Checks, in the order [`verify_index`] makes them (threats after TUF's names):
//! 1. endless data: the document must fit [`MAX_INDEX_BYTES`];
//! 2. malformed metadata: strict canonical decoding ([`crate::canon`]);
//! 3. wrong key: the key that signs must be the trusted one, or be reached from it by
//!    rotations each signed by the key before;
//! 4. tampering: a valid signature by that key over the canonical body;
//! 5. rollback and mix-and-match: under an unchanged key, the version must not go below
//!    the highest version seen, and the same version must be the same bytes.
//!
//! Freeze (expiry) is [`IndexBody::check_expiry`], separate because a node keeps serving
//! an index it already trusted after it expires, while it refuses a new one that is
//! expired. Fast-forward: the highest version seen is bound to the repository key, and a
//! rotation resets it ([`Verified::rotated`]), so an index pushed far ahead with a stolen
//! old key cannot block the legitimate one forever.

use serde::{Deserialize, Serialize};

use crate::canon;
use crate::digest::Digest;
use crate::error::{DocError, Refusal};
use crate::keys::{Context, PublicKey, SecretKey, SignatureBytes};
use crate::manifest::Blob;
use crate::names::{PackageName, Version};

/// The `type` of an index document.
pub const INDEX_TYPE: &str = "stork-index";
/// The largest index accepted (endless data).
pub const MAX_INDEX_BYTES: usize = 32 << 20;
/// The longest chain of key rotations followed.
pub const MAX_ROTATIONS: usize = 64;
/// Name of the index file at the root of a repository.
pub const INDEX_FILE: &str = "index.json";

/// A signature with the key that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signing key.
    pub key: PublicKey,
    /// The signature.
    pub sig: SignatureBytes,
}

/// One package version as the index lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The package.
    pub name: PackageName,
    /// The version.
    pub version: Version,
    /// The manifest object.
    pub manifest: Blob,
    /// Publishers' signatures over the manifest digest.
    pub signatures: Vec<Signature>,
}

/// The message a publisher signs to vouch for a manifest.
pub fn manifest_message(digest: &Digest) -> Vec<u8> {
    digest.to_hex().into_bytes()
}

impl Release {
    /// Signs the manifest digest with `key` and adds the signature (replacing an earlier
    /// one by the same key).
    pub fn add_signature(&mut self, key: &SecretKey) {
        let sig = key.sign(Context::Manifest, &manifest_message(&self.manifest.sha256));
        let public = key.public();
        self.signatures.retain(|s| s.key != public);
        self.signatures.push(Signature { key: public, sig });
        self.signatures.sort_by_key(|s| s.key);
    }

    /// The distinct keys whose signature over the manifest digest verifies. A key that
    /// appears twice counts once (compare tough's CVE-2020-15093).
    pub fn valid_signers(&self) -> Vec<PublicKey> {
        let msg = manifest_message(&self.manifest.sha256);
        let mut keys: Vec<PublicKey> = self
            .signatures
            .iter()
            .filter(|s| s.key.verify(Context::Manifest, &msg, &s.sig))
            .map(|s| s.key)
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A publisher's statement that a package version is withdrawn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    /// The package.
    pub name: PackageName,
    /// The version.
    pub version: Version,
    /// The manifest digest of the version withdrawn.
    pub manifest: Digest,
    /// Publishers' signatures over the withdrawal.
    pub signatures: Vec<Signature>,
}

impl Withdrawal {
    fn message(&self) -> Vec<u8> {
        format!("{}\n{}\n{}", self.name, self.version, self.manifest).into_bytes()
    }

    /// Adds `key`'s signature.
    pub fn add_signature(&mut self, key: &SecretKey) {
        let sig = key.sign(Context::Withdrawal, &self.message());
        let public = key.public();
        self.signatures.retain(|s| s.key != public);
        self.signatures.push(Signature { key: public, sig });
        self.signatures.sort_by_key(|s| s.key);
    }

    /// The distinct keys whose signature verifies.
    pub fn valid_signers(&self) -> Vec<PublicKey> {
        let msg = self.message();
        let mut keys: Vec<PublicKey> = self
            .signatures
            .iter()
            .filter(|s| s.key.verify(Context::Withdrawal, &msg, &s.sig))
            .map(|s| s.key)
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A repository key handing over to a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The old key, which signs this statement.
    pub from: PublicKey,
    /// The new key.
    pub to: PublicKey,
    /// `from`'s signature.
    pub sig: SignatureBytes,
}

impl Rotation {
    fn message(from: &PublicKey, to: &PublicKey) -> Vec<u8> {
        format!("{from}\n{to}").into_bytes()
    }

    /// `old` hands over to `new`.
    pub fn sign(old: &SecretKey, new: &PublicKey) -> Rotation {
        let from = old.public();
        Rotation {
            from,
            to: *new,
            sig: old.sign(Context::Rotation, &Rotation::message(&from, new)),
        }
    }

    fn verifies(&self) -> bool {
        self.from.verify(
            Context::Rotation,
            &Rotation::message(&self.from, &self.to),
            &self.sig,
        )
    }
}

/// The signed part of an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexBody {
    /// Only grows from one publish to the next.
    pub version: u64,
    /// When it was published (unix seconds).
    pub timestamp: u64,
    /// When it stops being acceptable as new (unix seconds).
    pub expires: u64,
    /// The repository key that signs it.
    pub key: PublicKey,
    /// Rotations, oldest first, from earlier repository keys to `key`.
    pub rotations: Vec<Rotation>,
    /// Every package version, sorted by name then version text.
    pub packages: Vec<Release>,
    /// Withdrawn versions, sorted by name then version text.
    pub withdrawn: Vec<Withdrawal>,
}

impl IndexBody {
    /// Freeze: refuses an index whose expiry has passed.
    pub fn check_expiry(&self, now: u64) -> Result<(), Refusal> {
        if now >= self.expires {
            return Err(Refusal::Expired {
                version: self.version,
                expired: self.expires,
                now,
            });
        }
        Ok(())
    }

    /// The release of `name` `version`, if listed.
    pub fn release(&self, name: &PackageName, version: &Version) -> Option<&Release> {
        self.packages
            .binary_search_by(|r| {
                (r.name.as_str(), r.version.as_str()).cmp(&(name.as_str(), version.as_str()))
            })
            .ok()
            .map(|i| &self.packages[i])
    }

    fn check(&self) -> Result<(), String> {
        if self.rotations.len() > MAX_ROTATIONS {
            return Err(format!(
                "{} key rotations, more than the {MAX_ROTATIONS} allowed",
                self.rotations.len()
            ));
        }
        let sorted = |a: (&str, &str), b: (&str, &str), what: &str| {
            if a >= b {
                Err(format!(
                    "{what} {} {} {}",
                    crate::sanitize::short(b.0, 80),
                    crate::sanitize::short(b.1, 80),
                    if a == b {
                        "appears twice"
                    } else {
                        "is out of order"
                    }
                ))
            } else {
                Ok(())
            }
        };
        for w in self.packages.windows(2) {
            sorted(
                (w[0].name.as_str(), w[0].version.as_str()),
                (w[1].name.as_str(), w[1].version.as_str()),
                "package",
            )?;
        }
        for w in self.withdrawn.windows(2) {
            sorted(
                (w[0].name.as_str(), w[0].version.as_str()),
                (w[1].name.as_str(), w[1].version.as_str()),
                "withdrawal of",
            )?;
        }
        Ok(())
    }
}

/// An index document: the body and the repository key's signatures over it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDoc {
    #[serde(rename = "type")]
    doc_type: String,
    format: u32,
    /// The signed body.
    pub signed: IndexBody,
    /// Signatures over the canonical body.
    pub signatures: Vec<Signature>,
}

impl IndexDoc {
    /// Signs `body` with `key`, which must be `body.key`.
    pub fn sign(mut body: IndexBody, key: &SecretKey) -> IndexDoc {
        body.key = key.public();
        body.packages.sort_by(|a, b| {
            (a.name.as_str(), a.version.as_str()).cmp(&(b.name.as_str(), b.version.as_str()))
        });
        body.withdrawn.sort_by(|a, b| {
            (a.name.as_str(), a.version.as_str()).cmp(&(b.name.as_str(), b.version.as_str()))
        });
        let sig = key.sign(Context::Index, &canon::encode(&body));
        IndexDoc {
            doc_type: INDEX_TYPE.into(),
            format: canon::FORMAT,
            signed: body,
            signatures: vec![Signature {
                key: key.public(),
                sig,
            }],
        }
    }

    /// The canonical bytes, as published.
    pub fn encode(&self) -> Vec<u8> {
        canon::encode(self)
    }

    /// Parses index bytes strictly, without judging signatures (see [`verify_index`]).
    pub fn parse(bytes: &[u8]) -> Result<IndexDoc, DocError> {
        let doc: IndexDoc = canon::decode("the index", INDEX_TYPE, bytes, MAX_INDEX_BYTES)?;
        doc.signed.check().map_err(|cause| DocError::Invalid {
            what: "the index".into(),
            cause,
        })?;
        Ok(doc)
    }

    fn signed_by(&self, key: &PublicKey) -> bool {
        let msg = canon::encode(&self.signed);
        self.signatures
            .iter()
            .any(|s| s.key == *key && key.verify(Context::Index, &msg, &s.sig))
    }
}

/// What a node already trusts about its repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexTrust {
    /// The repository key trusted now (the trust file's, or where its rotations led).
    pub key: PublicKey,
    /// The highest index version seen under `key`, with the digest of its bytes.
    pub floor: Option<(u64, Digest)>,
}

/// An index that passed [`verify_index`].
#[derive(Clone, Debug)]
pub struct Verified {
    /// The index.
    pub doc: IndexDoc,
    /// The digest of its bytes.
    pub digest: Digest,
    /// True when the index is signed by a key reached through rotations from the trusted
    /// one: the caller must trust the new key from now on and reset its version floor.
    pub rotated: bool,
}

/// Verifies index bytes against what the node trusts (steps 1–5 of the module docs).
pub fn verify_index(bytes: &[u8], trust: &IndexTrust) -> Result<Verified, Refusal> {
    let doc = IndexDoc::parse(bytes)?;
    let body = &doc.signed;
    // Wrong key: follow rotations, each signed by the key before it.
    let mut key = trust.key;
    let mut rotated = false;
    if body.key != key {
        for r in &body.rotations {
            if r.from == key {
                if !r.verifies() {
                    return Err(Refusal::BadRotation {
                        from: r.from.id(),
                        to: r.to.id(),
                    });
                }
                key = r.to;
                rotated = true;
            }
        }
        if body.key != key {
            return Err(Refusal::WrongIndexKey {
                version: body.version,
                expected: trust.key.id(),
                found: body.key.id(),
            });
        }
    }
    // Tampering.
    if !doc.signed_by(&body.key) {
        return Err(Refusal::BadIndexSignature {
            version: body.version,
            key: body.key.id(),
        });
    }
    let digest = Digest::of(bytes);
    // Rollback and mix-and-match, under an unchanged key only.
    if !rotated {
        if let Some((seen, seen_digest)) = trust.floor {
            if body.version < seen {
                return Err(Refusal::Rollback {
                    offered: body.version,
                    seen,
                    key: key.id(),
                });
            }
            if body.version == seen && digest != seen_digest {
                return Err(Refusal::IndexChanged {
                    version: seen,
                    key: key.id(),
                });
            }
        }
    }
    Ok(Verified {
        doc,
        digest,
        rotated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed([n; 32])
    }

    fn release(publisher: &SecretKey) -> Release {
        let m = sample().encode();
        let mut r = Release {
            name: PackageName::new("hello").unwrap(),
            version: Version::new("1.0-1").unwrap(),
            manifest: Blob {
                sha256: Digest::of(&m),
                size: m.len() as u64,
                zstd: None,
            },
            signatures: vec![],
        };
        r.add_signature(publisher);
        r
    }

    fn body(version: u64, repo: &SecretKey) -> IndexBody {
        IndexBody {
            version,
            timestamp: 1000,
            expires: 2000,
            key: repo.public(),
            rotations: vec![],
            packages: vec![release(&key(9))],
            withdrawn: vec![],
        }
    }

    fn trust(k: &SecretKey) -> IndexTrust {
        IndexTrust {
            key: k.public(),
            floor: None,
        }
    }

    #[test]
    fn signed_index_verifies() {
        let repo = key(1);
        let b = IndexDoc::sign(body(3, &repo), &repo).encode();
        let v = verify_index(&b, &trust(&repo)).unwrap();
        assert_eq!(v.doc.signed.version, 3);
        assert!(!v.rotated);
        assert_eq!(
            v.doc.signed.packages[0].valid_signers(),
            vec![key(9).public()]
        );
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let repo = key(1);
        let b = IndexDoc::sign(body(3, &repo), &repo).encode();
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 0x01;
            assert!(verify_index(&t, &trust(&repo)).is_err(), "byte {i} flipped");
        }
    }

    #[test]
    fn wrong_key_names_both_keys() {
        let b = IndexDoc::sign(body(3, &key(2)), &key(2)).encode();
        let e = verify_index(&b, &trust(&key(1))).unwrap_err();
        assert!(matches!(e, Refusal::WrongIndexKey { .. }));
        let msg = e.to_string();
        assert!(msg.contains(&key(1).public().id().to_string()));
        assert!(msg.contains(&key(2).public().id().to_string()));
        assert_eq!(e.attack(), "wrong-key");
    }

    #[test]
    fn a_signature_by_another_key_claiming_the_trusted_one_is_refused() {
        let repo = key(1);
        let mut doc = IndexDoc::sign(body(3, &repo), &key(5));
        doc.signed.key = repo.public();
        doc.signatures[0].key = repo.public();
        let e = verify_index(&doc.encode(), &trust(&repo)).unwrap_err();
        assert!(matches!(e, Refusal::BadIndexSignature { .. }), "{e}");
    }

    #[test]
    fn rollback_and_same_version_other_content() {
        let repo = key(1);
        let b5 = IndexDoc::sign(body(5, &repo), &repo).encode();
        let b4 = IndexDoc::sign(body(4, &repo), &repo).encode();
        let t = IndexTrust {
            key: repo.public(),
            floor: Some((5, Digest::of(&b5))),
        };
        assert!(matches!(
            verify_index(&b4, &t).unwrap_err(),
            Refusal::Rollback {
                offered: 4,
                seen: 5,
                ..
            }
        ));
        verify_index(&b5, &t).unwrap();
        let mut other = body(5, &repo);
        other.timestamp += 1;
        let b5b = IndexDoc::sign(other, &repo).encode();
        assert!(matches!(
            verify_index(&b5b, &t).unwrap_err(),
            Refusal::IndexChanged { .. }
        ));
    }

    #[test]
    fn expiry() {
        let b = body(1, &key(1));
        b.check_expiry(1999).unwrap();
        assert!(matches!(b.check_expiry(2000), Err(Refusal::Expired { .. })));
    }

    #[test]
    fn rotation_is_followed_only_when_signed_by_the_trusted_key() {
        let (old, new, evil) = (key(1), key(2), key(3));
        let mut b = body(1, &new);
        b.rotations = vec![Rotation::sign(&old, &new.public())];
        let bytes = IndexDoc::sign(b, &new).encode();
        // Even a huge floor under the old key does not block the rotated index
        // (fast-forward recovery).
        let t = IndexTrust {
            key: old.public(),
            floor: Some((1_000_000, Digest::of(b"x"))),
        };
        let v = verify_index(&bytes, &t).unwrap();
        assert!(v.rotated);

        // A rotation signed by someone else is refused.
        let mut b = body(1, &evil);
        let mut forged = Rotation::sign(&evil, &evil.public());
        forged.from = old.public();
        b.rotations = vec![forged];
        let bytes = IndexDoc::sign(b, &evil).encode();
        assert!(matches!(
            verify_index(&bytes, &trust(&old)).unwrap_err(),
            Refusal::BadRotation { .. }
        ));

        // A chain old -> new -> newer is followed link by link.
        let newer = key(4);
        let mut b = body(1, &newer);
        b.rotations = vec![
            Rotation::sign(&old, &new.public()),
            Rotation::sign(&new, &newer.public()),
        ];
        let bytes = IndexDoc::sign(b, &newer).encode();
        assert!(verify_index(&bytes, &trust(&old)).unwrap().rotated);
    }

    #[test]
    fn duplicate_signatures_count_once() {
        let mut r = release(&key(9));
        let s = r.signatures[0];
        r.signatures.push(s);
        assert_eq!(r.valid_signers().len(), 1);
    }

    #[test]
    fn unsorted_or_duplicate_packages_are_refused() {
        let repo = key(1);
        let mut b = body(1, &repo);
        b.packages.push(b.packages[0].clone());
        let mut doc = IndexDoc::sign(body(1, &repo), &repo);
        doc.signed = b;
        let e = IndexDoc::parse(&doc.encode()).unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
    }
}
