//! The node's trust file, and the decisions made from it.
//!
//! ```toml
//! revoked = ["ed25519:..."]        # optional; must come before the first [table]
//!
//! [repository]
//! key = "ed25519:BASE64PUBLICKEY"  # signs the index: freshness and completeness only
//!
//! [[publisher]]
//! name = "alice"
//! key = "ed25519:BASE64PUBLICKEY"
//! packages = ["python3*", "numpy"]
//!
//! [[publisher]]
//! name = "core-team"
//! keys = ["ed25519:...", "ed25519:...", "ed25519:..."]
//! threshold = 2                    # a package needs signatures from 2 of these keys
//! packages = ["libc*", "gcc*"]
//! ```
//!
//! A package version is accepted when some publisher whose `packages` patterns match its
//! name has at least `threshold` (default 1) distinct, non-revoked keys among the valid
//! signatures over its manifest. A revoked key's signatures never count, whenever they
//! were made, and a manifest that names a revoked key as its publisher is refused.
//!
//! Patterns are shell-style globs over the whole package name: `*` matches any run of
//! characters (package names contain no `/`), `?` one character, `[abc]`, `[a-z]` and
//! `[!a-z]` one character from (or not from) a set. Nothing else is special. A pattern
//! is never empty.
//!
//! The file is parsed whole, then checked whole; any error stops with the line at fault
//! and nothing of the file is applied.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Refusal, TrustFileError};
use crate::index::{Release, Withdrawal};
use crate::keys::PublicKey;
use crate::manifest::Manifest;
use crate::names::PackageName;

/// A package-name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Checks a pattern.
    pub fn new(s: &str) -> Result<Pattern, String> {
        if s.is_empty() {
            return Err(
                "a package pattern is empty; remove it or write the names it should allow".into(),
            );
        }
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'[' => {
                    let close = b[i + 1..].iter().position(|&c| c == b']');
                    match close {
                        Some(n) if n > 0 && !(n == 1 && matches!(b[i + 1], b'!' | b'^')) => {
                            i += n + 2
                        }
                        _ => {
                            return Err(format!(
                                "pattern \"{s}\": '[' without a matching ']' or with an empty set"
                            ))
                        }
                    }
                }
                c if c.is_ascii_alphanumeric()
                    || matches!(c, b'+' | b'-' | b'.' | b'_' | b'*' | b'?') =>
                {
                    i += 1
                }
                c => {
                    return Err(format!(
                        "pattern \"{}\": {:?} cannot appear in a package name or a pattern",
                        crate::sanitize::short(s, 60),
                        c as char
                    ))
                }
            }
        }
        Ok(Pattern(s.to_string()))
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn glob(p: &[u8], n: &[u8]) -> bool {
    // Iterative matching with one backtrack point for the last '*': linear in practice,
    // never exponential.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, len)) = class(&p[pi..], n[ni]) {
                        if matched {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class at the start of `p` ("[...]"); returns whether it
/// matched and the class's length.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let close = p[1..].iter().position(|&x| x == b']')? + 1;
    let mut set = &p[1..close];
    let negate = matches!(set.first(), Some(b'!' | b'^'));
    if negate {
        set = &set[1..];
    }
    let mut hit = false;
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            hit |= set[i] <= c && c <= set[i + 2];
            i += 3;
        } else {
            hit |= set[i] == c;
            i += 1;
        }
    }
    Some((hit != negate, close + 1))
}

/// A publisher the node trusts for some package names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publisher {
    /// Its name in the trust file (used in messages).
    pub name: String,
    /// Its keys.
    pub keys: Vec<PublicKey>,
    /// How many of its keys must sign.
    pub threshold: usize,
    /// The package names it may sign.
    pub packages: Vec<Pattern>,
}

impl Publisher {
    fn may_sign(&self, name: &str) -> bool {
        self.packages.iter().any(|p| p.matches(name))
    }
    fn patterns(&self) -> String {
        self.packages
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A parsed, checked trust file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustPolicy {
    /// The key that signs the index.
    pub repository_key: PublicKey,
    /// The publishers.
    pub publishers: Vec<Publisher>,
    /// Keys whose signatures never count.
    pub revoked: BTreeSet<PublicKey>,
}

/// Who vouched for an accepted package version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The trust-file names of the publishers whose threshold was met.
    pub publishers: Vec<String>,
    /// The valid, non-revoked signing keys.
    pub signers: Vec<PublicKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    repository: Spanned<RawRepository>,
    #[serde(default)]
    publisher: Vec<Spanned<RawPublisher>>,
    #[serde(default)]
    revoked: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    key: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublisher {
    name: Spanned<String>,
    key: Option<Spanned<String>>,
    keys: Option<Spanned<Vec<Spanned<String>>>>,
    threshold: Option<Spanned<i64>>,
    packages: Spanned<Vec<Spanned<String>>>,
}

impl TrustPolicy {
    /// Parses and checks a trust file's text. `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<TrustPolicy, TrustFileError> {
        let line_of =
            |span: Range<usize>| text[..span.start.min(text.len())].matches('\n').count() + 1;
        let err = |span: Range<usize>, message: String| TrustFileError {
            path: path.to_string(),
            line: line_of(span),
            message,
        };
        let raw: RawTrust = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim().to_string();
            if message.contains("unknown field `revoked`") {
                message.push_str(
                    "; put `revoked = [...]` at the top of the file, before the first [table]",
                );
            }
            err(e.span().unwrap_or(0..0), message)
        })?;
        let key = |s: &Spanned<String>| {
            PublicKey::parse(s.get_ref()).map_err(|e| err(s.span(), e.to_string()))
        };
        let repository_key = key(&raw.repository.get_ref().key)?;
        let mut revoked = BTreeSet::new();
        for r in &raw.revoked {
            revoked.insert(key(r)?);
        }
        let mut publishers: Vec<Publisher> = Vec::new();
        for p in &raw.publisher {
            let span = p.span();
            let p = p.get_ref();
            let name = p.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(err(p.name.span(), "a publisher's name is empty".into()));
            }
            if publishers.iter().any(|q| q.name == name) {
                return Err(err(
                    p.name.span(),
                    format!("publisher \"{name}\" appears twice; merge the two entries"),
                ));
            }
            let mut keys = Vec::new();
            match (&p.key, &p.keys) {
                (Some(k), None) => keys.push(key(k)?),
                (None, Some(ks)) => {
                    for k in ks.get_ref() {
                        let k = key(k)?;
                        if keys.contains(&k) {
                            return Err(err(
                                ks.span(),
                                format!("publisher \"{name}\" lists key {} twice", k.id()),
                            ));
                        }
                        keys.push(k);
                    }
                    if keys.is_empty() {
                        return Err(err(
                            ks.span(),
                            format!("publisher \"{name}\" has an empty keys list"),
                        ));
                    }
                }
                (Some(k), Some(_)) => {
                    return Err(err(
                        k.span(),
                        format!("publisher \"{name}\" has both key and keys; use one"),
                    ))
                }
                (None, None) => {
                    return Err(err(
                        span,
                        format!("publisher \"{name}\" has no key (add key = \"ed25519:...\")"),
                    ))
                }
            }
            let threshold = match &p.threshold {
                None => 1,
                Some(t) => {
                    let v = *t.get_ref();
                    if v < 1 || v as usize > keys.len() {
                        return Err(err(t.span(), format!(
                            "publisher \"{name}\": threshold {v} must be between 1 and its number of keys ({})",
                            keys.len()
                        )));
                    }
                    v as usize
                }
            };
            if p.packages.get_ref().is_empty() {
                return Err(err(
                    p.packages.span(),
                    format!(
                    "publisher \"{name}\" may sign no package: list patterns in packages = [...]"
                ),
                ));
            }
            let mut packages = Vec::new();
            for pat in p.packages.get_ref() {
                packages.push(Pattern::new(pat.get_ref()).map_err(|m| err(pat.span(), m))?);
            }
            publishers.push(Publisher {
                name,
                keys,
                threshold,
                packages,
            });
        }
        Ok(TrustPolicy {
            repository_key,
            publishers,
            revoked,
        })
    }

    /// Reads and parses a trust file.
    pub fn read_file(path: &std::path::Path) -> Result<TrustPolicy, TrustFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrustFileError {
            path: path.display().to_string(),
            line: 0,
            message: format!("cannot read it: {e}"),
        })?;
        TrustPolicy::parse(&path.display().to_string(), &text)
    }

    /// The publisher that holds `key`, if any.
    pub fn publisher_of(&self, key: &PublicKey) -> Option<&Publisher> {
        self.publishers.iter().find(|p| p.keys.contains(key))
    }

    /// Judges a package version from its valid signers.
    pub fn judge(
        &self,
        name: &PackageName,
        version: &str,
        signers: &[PublicKey],
    ) -> Result<Accepted, Refusal> {
        let mut effective: Vec<PublicKey> = signers
            .iter()
            .filter(|k| !self.revoked.contains(k))
            .copied()
            .collect();
        // Each key counts once, however often it signed.
        effective.sort();
        effective.dedup();
        let mut accepted = Vec::new();
        let mut below: Option<(&Publisher, usize)> = None;
        for p in self.publishers.iter().filter(|p| p.may_sign(name.as_str())) {
            let have = effective.iter().filter(|k| p.keys.contains(k)).count();
            if have >= p.threshold {
                accepted.push(p.name.clone());
            } else if have > 0 && below.is_none() {
                below = Some((p, have));
            }
        }
        if !accepted.is_empty() {
            return Ok(Accepted {
                publishers: accepted,
                signers: effective,
            });
        }
        let (n, v) = (name.to_string(), version.to_string());
        if let Some((p, have)) = below {
            return Err(Refusal::BelowThreshold {
                name: n,
                version: v,
                publisher: p.name.clone(),
                have,
                need: p.threshold,
                revoked: signers
                    .iter()
                    .filter(|k| self.revoked.contains(k) && p.keys.contains(k))
                    .map(|k| k.id())
                    .collect(),
            });
        }
        for k in &effective {
            if let Some(p) = self.publisher_of(k) {
                return Err(Refusal::NotAllowedForName {
                    name: n,
                    version: v,
                    key: k.id(),
                    publisher: p.name.clone(),
                    patterns: p.patterns(),
                });
            }
        }
        if let Some(k) = signers.iter().find(|k| self.revoked.contains(k)) {
            return Err(Refusal::Revoked {
                name: n,
                version: v,
                key: k.id(),
            });
        }
        let keys = if signers.is_empty() {
            "no valid signature".to_string()
        } else {
            signers
                .iter()
                .map(|k| k.id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Refusal::UnknownSigner {
            name: n,
            version: v,
            keys,
        })
    }

    /// Judges a release listed in an index.
    pub fn judge_release(&self, r: &Release) -> Result<Accepted, Refusal> {
        self.judge(&r.name, r.version.as_str(), &r.valid_signers())
    }

    /// Judges a withdrawal: it takes effect only when signed as a release would have to be.
    pub fn judge_withdrawal(&self, w: &Withdrawal) -> Result<Accepted, Refusal> {
        self.judge(&w.name, w.version.as_str(), &w.valid_signers())
    }

    /// Wrong software and publisher binding: the manifest reached through `release` must
    /// be for that name and version, and its named publisher must have signed it with a
    /// key that is not revoked.
    pub fn check_manifest(&self, release: &Release, m: &Manifest) -> Result<(), Refusal> {
        if m.name != release.name || m.version != release.version {
            return Err(Refusal::WrongSoftware {
                name: release.name.to_string(),
                version: release.version.to_string(),
                found_name: m.name.to_string(),
                found_version: m.version.to_string(),
            });
        }
        if self.revoked.contains(&m.publisher) {
            return Err(Refusal::Revoked {
                name: release.name.to_string(),
                version: release.version.to_string(),
                key: m.publisher.id(),
            });
        }
        if !release.valid_signers().contains(&m.publisher) {
            return Err(Refusal::PublisherDidNotSign {
                name: release.name.to_string(),
                version: release.version.to_string(),
                publisher: m.publisher.id(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    fn k(n: u8) -> PublicKey {
        SecretKey::from_seed([n; 32]).public()
    }
    fn name(s: &str) -> PackageName {
        PackageName::new(s).unwrap()
    }

    fn policy() -> TrustPolicy {
        let text = format!(
            r#"revoked = ["{r}"]

[repository]
key = "{repo}"

[[publisher]]
name = "alice"
key = "{a}"
packages = ["python3*", "numpy"]

[[publisher]]
name = "core"
keys = ["{c1}", "{c2}", "{c3}"]
threshold = 2
packages = ["libc[0-9]", "gcc-1?"]
"#,
            r = k(99),
            repo = k(1),
            a = k(2),
            c1 = k(3),
            c2 = k(4),
            c3 = k(5)
        );
        TrustPolicy::parse("trust.toml", &text).unwrap()
    }

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| Pattern::new(p).unwrap().matches(n);
        assert!(m("python3*", "python3"));
        assert!(m("python3*", "python3.11"));
        assert!(!m("python3*", "python2"));
        assert!(m("*", "anything"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("lib?", "libc"));
        assert!(!m("lib?", "lib"));
        assert!(m("libc[0-9]", "libc6"));
        assert!(!m("libc[!0-9]", "libc6"));
        assert!(m("libc[!0-9]", "libcx"));
        assert!(!m("numpy", "numpy2"));
        assert!(m(&"*a".repeat(20), &"a".repeat(60)));
        assert!(!m(&"*a".repeat(20), &format!("{}b", "a".repeat(60))));
        for bad in ["", "a/b", "[", "[]", "[!]", "a b"] {
            assert!(Pattern::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn judges_per_publisher_and_name() {
        let p = policy();
        let ok = p.judge(&name("python3.11"), "1", &[k(2)]).unwrap();
        assert_eq!(ok.publishers, vec!["alice"]);
        let e = p.judge(&name("gcc"), "1", &[k(2)]).unwrap_err();
        assert!(matches!(e, Refusal::NotAllowedForName { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("alice")
                && msg.contains("python3*, numpy")
                && msg.contains(&k(2).id().to_string()),
            "{msg}"
        );
        let e = p.judge(&name("numpy"), "1", &[k(50)]).unwrap_err();
        assert!(matches!(e, Refusal::UnknownSigner { .. }), "{e}");
        let e = p.judge(&name("numpy"), "1", &[]).unwrap_err();
        assert!(e.to_string().contains("no valid signature"));
    }

    #[test]
    fn thresholds_count_distinct_keys() {
        let p = policy();
        let e = p.judge(&name("libc6"), "2.36", &[k(3)]).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::BelowThreshold {
                    have: 1,
                    need: 2,
                    ..
                }
            ),
            "{e}"
        );
        p.judge(&name("libc6"), "2.36", &[k(3), k(5)]).unwrap();
        // The same key twice is one key.
        let e = p.judge(&name("libc6"), "2.36", &[k(3), k(3)]).unwrap_err();
        assert!(matches!(e, Refusal::BelowThreshold { have: 1, .. }), "{e}");
    }

    #[test]
    fn revoked_keys_never_count() {
        let mut p = policy();
        p.revoked.insert(k(2));
        let e = p.judge(&name("numpy"), "1", &[k(2)]).unwrap_err();
        assert!(matches!(e, Refusal::Revoked { .. }), "{e}");
        // A revoked core key does not help reach the threshold.
        p.revoked.insert(k(4));
        assert!(p.judge(&name("libc6"), "1", &[k(3), k(4)]).is_err());
        p.judge(&name("libc6"), "1", &[k(3), k(5)]).unwrap();
    }

    #[test]
    fn a_revoked_key_of_a_threshold_publisher_does_not_count() {
        // core: keys 3, 4, 5, threshold 2; key 4 is revoked.
        let mut p = policy();
        p.revoked.insert(k(4));
        // 3 + 4 is one usable signature: below the threshold, not accepted.
        let e = p.judge(&name("libc6"), "1", &[k(3), k(4)]).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::BelowThreshold {
                    have: 1,
                    need: 2,
                    ..
                }
            ),
            "{e}"
        );
        // The message says why the count is short.
        assert!(
            e.to_string()
                .contains(&format!("not counting revoked key {}", k(4).id())),
            "{e}"
        );
        // The revoked key alone: refused naming it.
        let e = p.judge(&name("libc6"), "1", &[k(4)]).unwrap_err();
        assert!(matches!(e, Refusal::Revoked { .. }), "{e}");
        assert!(e.to_string().contains(&k(4).id().to_string()), "{e}");
        // All three keys: the two that are not revoked suffice, and only they vouch.
        let ok = p.judge(&name("libc6"), "1", &[k(3), k(4), k(5)]).unwrap();
        assert_eq!(ok.publishers, vec!["core"]);
        assert_eq!(ok.signers.len(), 2);
        assert!(!ok.signers.contains(&k(4)));
    }

    #[test]
    fn a_revoked_key_in_the_file_is_never_trusted() {
        // The trust file itself revokes alice's only key: alice signs nothing.
        let text = format!(
            "revoked = [\"{a}\"]\n[repository]\nkey = \"{r}\"\n\n[[publisher]]\nname = \"alice\"\nkey = \"{a}\"\npackages = [\"*\"]\n",
            a = k(2),
            r = k(1)
        );
        let p = TrustPolicy::parse("t.toml", &text).unwrap();
        assert!(p.revoked.contains(&k(2)));
        let e = p.judge(&name("numpy"), "1", &[k(2)]).unwrap_err();
        assert_eq!(e.attack(), "revoked-key", "{e}");
        // Duplicated signatures by other keys do not help either.
        let e = p
            .judge(&name("numpy"), "1", &[k(2), k(7), k(7)])
            .unwrap_err();
        assert!(matches!(e, Refusal::Revoked { .. }), "{e}");
    }

    #[test]
    fn a_trusted_key_outside_its_patterns_and_below_threshold_elsewhere() {
        let p = policy();
        // alice's key on a core package: not allowed for that name, and it names alice.
        let e = p.judge(&name("libc6"), "1", &[k(2)]).unwrap_err();
        assert!(matches!(e, Refusal::NotAllowedForName { .. }), "{e}");
        // One core key on a core package, plus alice's: below core's threshold, which is
        // the actionable reason.
        let e = p.judge(&name("libc6"), "1", &[k(2), k(3)]).unwrap_err();
        assert!(matches!(e, Refusal::BelowThreshold { have: 1, .. }), "{e}");
        // Patterns match whole names only.
        assert!(p.judge(&name("libc66"), "1", &[k(3), k(4)]).is_err());
        assert!(p.judge(&name("gcc-12"), "1", &[k(3), k(4)]).is_ok());
        assert!(p.judge(&name("gcc-123"), "1", &[k(3), k(4)]).is_err());
    }

    #[test]
    fn withdrawals_are_judged_like_releases() {
        use crate::index::Withdrawal;
        use crate::Digest;
        let p = policy();
        let w = |signers: &[u8]| {
            let mut w = Withdrawal {
                name: name("numpy"),
                version: crate::Version::new("1.0").unwrap(),
                manifest: Digest::of(b"m"),
                signatures: vec![],
            };
            for s in signers {
                w.add_signature(&SecretKey::from_seed([*s; 32]));
            }
            w
        };
        p.judge_withdrawal(&w(&[2])).unwrap();
        // An unknown key, a trusted key outside its patterns, a revoked key.
        assert!(p.judge_withdrawal(&w(&[50])).is_err());
        assert!(p.judge_withdrawal(&w(&[3])).is_err());
        assert!(p.judge_withdrawal(&w(&[99])).is_err());
        // A signature over another version does not carry over.
        let mut moved = w(&[2]);
        moved.version = crate::Version::new("2.0").unwrap();
        assert!(p.judge_withdrawal(&moved).is_err());
    }

    #[test]
    fn a_manifest_must_match_its_index_entry_and_name_a_signer() {
        use crate::index::Release;
        use crate::manifest::{tests::sample, Blob};
        use crate::{Digest, Version};
        let m = sample(); // hello 1.0-1, publisher key 3
        let bytes = m.encode();
        let release = |n: &str, v: &str, signers: &[u8]| {
            let mut r = Release {
                name: name(n),
                version: Version::new(v).unwrap(),
                manifest: Blob {
                    sha256: Digest::of(&bytes),
                    size: bytes.len() as u64,
                    zstd: None,
                },
                signatures: vec![],
            };
            for s in signers {
                r.add_signature(&SecretKey::from_seed([*s; 32]));
            }
            r
        };
        let mut p = policy();
        p.check_manifest(&release("hello", "1.0-1", &[3]), &m)
            .unwrap();
        // Wrong software: another name or another version.
        for (n, v) in [("hellox", "1.0-1"), ("hello", "1.0-2")] {
            let e = p.check_manifest(&release(n, v, &[3]), &m).unwrap_err();
            assert!(matches!(e, Refusal::WrongSoftware { .. }), "{e}");
            assert_eq!(e.attack(), "wrong-software");
            assert!(
                e.to_string().contains("the manifest is for hello 1.0-1"),
                "{e}"
            );
        }
        // The publisher the manifest names did not sign it (someone else did).
        let e = p
            .check_manifest(&release("hello", "1.0-1", &[4]), &m)
            .unwrap_err();
        assert!(matches!(e, Refusal::PublisherDidNotSign { .. }), "{e}");
        // The publisher it names is revoked, even with its signature present.
        p.revoked.insert(k(3));
        let e = p
            .check_manifest(&release("hello", "1.0-1", &[3, 4]), &m)
            .unwrap_err();
        assert!(matches!(e, Refusal::Revoked { .. }), "{e}");
    }

    fn refuse(text: &str, line: usize, why: &str) {
        let e = TrustPolicy::parse("t.toml", text).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.to_string().contains(why), "{e}");
        assert!(e.to_string().starts_with(&format!("t.toml:{line}:")), "{e}");
    }

    #[test]
    fn trust_file_errors_name_the_line() {
        let repo = format!("[repository]\nkey = \"{}\"\n", k(1));
        refuse("[repository]\nkey = \"ed25519:AAAA\"\n", 2, "32 bytes");
        refuse(
            &format!(
                "{repo}\n[[publisher]]\nname = \"a\"\nkey = \"{}\"\npackages = [\"\"]\n",
                k(2)
            ),
            7,
            "empty",
        );
        refuse(&format!("{repo}\n[[publisher]]\nname = \"a\"\nkey = \"{}\"\npackages = [\"x\"]\ncolour = 1\n", k(2)), 8, "unknown field");
        refuse(&format!("{repo}\n[[publisher]]\nname = \"a\"\nkey = \"{}\"\npackages = [\"x\"]\nrevoked = []\n", k(2)), 8, "top of the file");
        refuse(&format!("{repo}\n[[publisher]]\nname = \"a\"\nkeys = [\"{}\"]\nthreshold = 2\npackages = [\"x\"]\n", k(2)), 7, "threshold 2");
        refuse(
            &format!("{repo}\n[[publisher]]\nname = \"a\"\npackages = [\"x\"]\n"),
            4,
            "no key",
        );
        refuse(
            &format!(
                "{repo}\n[[publisher]]\nname = \"a\"\nkey = \"{}\"\npackages = [\"a/b\"]\n",
                k(2)
            ),
            7,
            "'/'",
        );
        refuse("[repository\n", 1, "");
        refuse("", 1, "repository");
    }

    #[test]
    fn more_trust_file_errors_name_the_line() {
        let repo = format!("[repository]\nkey = \"{}\"\n", k(1));
        let publisher = |body: &str| format!("{repo}\n[[publisher]]\n{body}");
        // Line 4 is "[[publisher]]", 5 the line after it, and so on.
        refuse(
            &publisher(&format!(
                "name = \"a\"\nkey = \"{}\"\npackages = []\n",
                k(2)
            )),
            7,
            "may sign no package",
        );
        refuse(
            &publisher(&format!(
                "name = \"a\"\nkey = \"{}\"\nkeys = [\"{}\"]\npackages = [\"x\"]\n",
                k(2),
                k(3)
            )),
            6,
            "both key and keys",
        );
        refuse(
            &publisher("name = \"a\"\nkeys = []\npackages = [\"x\"]\n"),
            6,
            "empty keys list",
        );
        refuse(
            &publisher(&format!(
                "name = \"a\"\nkeys = [\"{}\", \"{}\"]\npackages = [\"x\"]\n",
                k(2),
                k(2)
            )),
            6,
            "twice",
        );
        refuse(
            &publisher(&format!(
                "name = \"a\"\nkeys = [\"{}\"]\nthreshold = 0\npackages = [\"x\"]\n",
                k(2)
            )),
            7,
            "threshold 0",
        );
        refuse(
            &publisher(&format!(
                "name = \" \"\nkey = \"{}\"\npackages = [\"x\"]\n",
                k(2)
            )),
            5,
            "name is empty",
        );
        refuse(
            &publisher(&format!(
                "name = \"a\"\nkey = \"ed25519:{}\"\npackages = [\"x\"]\n",
                "A".repeat(43)
            )),
            6,
            "bad public key",
        );
        refuse(
            &publisher(&format!(
                "name = \"a\"\nkey = \"{}\"\npackages = [\"x\", \"[\"]\n",
                k(2)
            )),
            7,
            "'['",
        );
        let two = format!(
            "{repo}\n[[publisher]]\nname = \"a\"\nkey = \"{a}\"\npackages = [\"x\"]\n\n[[publisher]]\nname = \"a\"\nkey = \"{b}\"\npackages = [\"y\"]\n",
            a = k(2),
            b = k(3)
        );
        refuse(&two, 10, "appears twice");
        refuse(
            &format!("revoked = [\"{}\", \"ed25519:nope\"]\n{repo}", k(2)),
            1,
            "bad public key",
        );
        refuse(&format!("{repo}colour = \"blue\"\n"), 3, "unknown field");
        refuse(
            &format!("{repo}\n[mirrors]\nurl = \"x\"\n"),
            4,
            "unknown field",
        );
        refuse(
            &format!(
                "[[publisher]]\nname = \"a\"\nkey = \"{}\"\npackages = [\"x\"]\n",
                k(2)
            ),
            1,
            "repository",
        );
    }
}
