//! Checked names: the only way a string from a manifest, an index, an archive or a tenant
//! becomes a package name, a version or a path inside a package.
//!
//! Each type is built by `new`, which refuses anything unsafe to put on a disk or in a
//! mount, and nothing else can construct one. Deserialising goes through `new` too.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::debver;
use crate::error::NameError;

/// Longest package name or version we accept.
pub const MAX_NAME_LEN: usize = 128;
/// Longest path inside a package, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single path component, in bytes (the usual NAME_MAX).
pub const MAX_COMPONENT_LEN: usize = 255;
/// Deepest path inside a package.
pub const MAX_PATH_DEPTH: usize = 128;

/// A package name: starts with a letter or digit, then letters, digits, `+`, `-`, `.`, `_`;
/// at most 128 bytes. It is a directory name under the mount, so it can never be `.stork`,
/// `..` or contain `/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName(String);

impl PackageName {
    /// Checks `s` and returns it as a package name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let bad = |why: &str| NameError::Package {
            name: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(bad("it is longer than 128 bytes"));
        }
        let first = s.as_bytes()[0];
        if !first.is_ascii_alphanumeric() {
            return Err(bad("it must start with a letter or a digit"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_')))
        {
            return Err(bad(&format!(
                "it contains {c:?}; only letters, digits and + - . _ are allowed"
            )));
        }
        Ok(PackageName(s.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A package version, ordered as Debian orders versions (`dpkg --compare-versions`).
///
/// Syntax: `[epoch:]upstream[-revision]`, where the upstream part starts with a digit (so a
/// version can never be named `current`), and only letters, digits and `. + ~ -` (and `:`
/// after an epoch) appear. At most 128 bytes.
#[derive(Clone)]
pub struct Version {
    text: String,
    parsed: debver::DebVersion,
}

impl Version {
    /// Checks `s` and returns it as a version.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let bad = |why: String| NameError::Version {
            version: s.to_string(),
            why,
        };
        if s.len() > MAX_NAME_LEN {
            return Err(bad("it is longer than 128 bytes".into()));
        }
        let parsed = debver::DebVersion::parse(s).map_err(bad)?;
        if !parsed.upstream().starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad("the upstream version must start with a digit".into()));
        }
        Ok(Version {
            text: s.to_string(),
            parsed,
        })
    }

    /// The version exactly as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed Debian version, for comparisons against relation constraints.
    pub fn deb(&self) -> &debver::DebVersion {
        &self.parsed
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        // Two spellings that Debian considers equal ("1.0" and "0:1.0") are still two
        // different directory names, so identity is the text.
        self.text == other.text
    }
}
impl Eq for Version {}
impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version {
    /// Debian order, with the text as a tie-breaker so that the order is total and agrees
    /// with `Eq`.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parsed
            .cmp(&other.parsed)
            .then_with(|| self.text.cmp(&other.text))
    }
}

/// A path inside a package tree: relative, `/`-separated, with no empty, `.`, `..` or
/// NUL-containing component, no leading or trailing `/`, at most 4096 bytes, components of
/// at most 255 bytes, and at most 128 levels deep.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreePath(String);

impl TreePath {
    /// Checks `s` and returns it as a tree path.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let bad = |why: &str| NameError::Path {
            path: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > MAX_PATH_LEN {
            return Err(bad("it is longer than 4096 bytes"));
        }
        if s.starts_with('/') {
            return Err(bad("it is absolute"));
        }
        if s.contains('\0') {
            return Err(bad("it contains a NUL byte"));
        }
        let mut depth = 0;
        for comp in s.split('/') {
            depth += 1;
            match comp {
                "" => return Err(bad("it has an empty component (// or a trailing /)")),
                "." => return Err(bad("it has a '.' component")),
                ".." => return Err(bad("it has a '..' component")),
                c if c.len() > MAX_COMPONENT_LEN => {
                    return Err(bad("a component is longer than 255 bytes"))
                }
                _ => {}
            }
        }
        if depth > MAX_PATH_DEPTH {
            return Err(bad("it is more than 128 levels deep"));
        }
        Ok(TreePath(s.to_string()))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent path, or `None` for a top-level entry.
    pub fn parent(&self) -> Option<TreePath> {
        self.0.rfind('/').map(|i| TreePath(self.0[..i].to_string()))
    }

    /// `self/name`, checked.
    pub fn join(&self, name: &str) -> Result<TreePath, NameError> {
        TreePath::new(&format!("{}/{}", self.0, name))
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

macro_rules! string_like {
    ($t:ty, $as:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.$as())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.$as())
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.$as())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::new(&s).map_err(serde::de::Error::custom)
            }
        }
        impl std::str::FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                <$t>::new(s)
            }
        }
    };
}
string_like!(PackageName, as_str);
string_like!(Version, as_str);
string_like!(TreePath, as_str);

/// Splits `NAME@VERSION` (or `NAME`) as typed on a command line.
pub fn parse_name_at_version(s: &str) -> Result<(PackageName, Option<Version>), NameError> {
    match s.split_once('@') {
        Some((n, v)) => Ok((PackageName::new(n)?, Some(Version::new(v)?))),
        None => Ok((PackageName::new(s)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        for ok in ["a", "libc6", "python3.11", "g++", "numpy", "Foo_Bar-1.2+x"] {
            PackageName::new(ok).unwrap();
        }
        for bad in [
            "",
            ".stork",
            "-x",
            "a/b",
            "..",
            "a b",
            "é",
            "a\0b",
            &"x".repeat(129),
        ] {
            assert!(PackageName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn versions() {
        for ok in ["1", "1.0-1", "2:1.0~rc1-3+deb12u1", "0.9+git20200101"] {
            Version::new(ok).unwrap();
        }
        for bad in [
            "", "current", "a1.0", "1.0 ", "1/2", "1:", ":1", "1.0-", "1..0\0",
        ] {
            assert!(Version::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn version_order_is_debian_order() {
        let v = |s| Version::new(s).unwrap();
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0-1"));
        assert!(v("1:0.1") > v("9.9"));
        assert!(v("1.10") > v("1.9"));
    }

    #[test]
    fn tree_paths() {
        for ok in ["a", "usr/bin/python3", "a/.hidden", "a/..b", "x/...", "é/ü"] {
            TreePath::new(ok).unwrap();
        }
        let cases = [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("a/../b", "'..'"),
            ("..", "'..'"),
            ("./a", "'.'"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("a\0b", "NUL"),
        ];
        for (bad, why) in cases {
            let e = TreePath::new(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(TreePath::new("a/".repeat(129).trim_end_matches('/')).is_err());
        assert!(TreePath::new(&"x".repeat(256)).is_err());
    }

    #[test]
    fn tree_path_parts() {
        let p = TreePath::new("usr/lib/x.so").unwrap();
        assert_eq!(p.file_name(), "x.so");
        assert_eq!(p.parent().unwrap().as_str(), "usr/lib");
        assert_eq!(TreePath::new("usr").unwrap().parent(), None);
        assert!(p.join("..").is_err());
    }

    #[test]
    fn deserialise_checks() {
        let r: Result<TreePath, _> = serde_json::from_str("\"../x\"");
        assert!(r.is_err());
        let r: Result<PackageName, _> = serde_json::from_str("\"ok\"");
        assert!(r.is_ok());
    }
}
