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
        let _ = s;
        Err("unimplemented".into())
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
