//! Debian version ordering and relation syntax (placeholder: being written).
use std::cmp::Ordering;

/// A parsed Debian version.
#[derive(Clone, Debug)]
pub struct DebVersion {
    epoch: u32,
    upstream: String,
    revision: String,
}

impl DebVersion {
    /// Parses a version.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, r)) => (e.parse().map_err(|_| "bad epoch".to_string())?, r),
            None => (0, s),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if upstream.is_empty() || s.ends_with('-') || s.contains(|c: char| c.is_whitespace() || c == '/' || c == '\0') {
            return Err("bad version".into());
        }
        Ok(DebVersion { epoch, upstream: upstream.into(), revision: revision.into() })
    }
    /// The upstream part.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }
}
impl PartialEq for DebVersion {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for DebVersion {}
impl PartialOrd for DebVersion {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for DebVersion {
    fn cmp(&self, o: &Self) -> Ordering {
        self.epoch
            .cmp(&o.epoch)
            .then(self.upstream.cmp(&o.upstream))
            .then(self.revision.cmp(&o.revision))
    }
}

/// Placeholder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relations {
    /// Clauses.
    pub clauses: Vec<String>,
}
/// Placeholder.
pub fn parse_relations(s: &str) -> Result<Relations, String> {
    if s.matches('(').count() != s.matches(')').count() {
        return Err("unbalanced".into());
    }
    Ok(Relations::default())
}
