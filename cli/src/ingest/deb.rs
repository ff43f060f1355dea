//! `.deb` files: the `ar` container, the control archive's `control` file, the data archive.
//!
//! The container is read by hand rather than with the `ar` crate: the format dpkg writes is
//! trivial (short names only), and the crate allocates whatever a hostile header asks for
//! (GNU name tables, BSD long names).

use std::io::{self, Read};
use std::path::Path;

use super::build::Builder;
use super::tarsrc::{for_each_entry, open_tar, read_tree, Spill};
use super::{DebControl, IngestError};

/// The magic of an `ar` archive.
pub(crate) const AR_MAGIC: &[u8] = b"!<arch>\n";
/// The decompressed control archive may not exceed this.
const CONTROL_TAR_CAP: u64 = 256 << 20;
/// Nor the `control` file itself this.
const CONTROL_MAX: u64 = 4 << 20;

fn deb_err(file: &Path, why: impl Into<String>) -> IngestError {
    IngestError::Deb {
        file: file.into(),
        why: why.into(),
    }
}

/// One member header.
struct Member {
    name: String,
    size: u64,
}

/// Reads the next member header; `None` at the end of the archive.
fn next_member(file: &Path, r: &mut impl Read, after: &str) -> Result<Option<Member>, IngestError> {
    let mut hdr = Vec::with_capacity(60);
    (&mut *r)
        .take(60)
        .read_to_end(&mut hdr)
        .map_err(|error| IngestError::Corrupt {
            file: file.into(),
            at: format!("in the ar header {after}"),
            error,
        })?;
    if hdr.is_empty() {
        return Ok(None);
    }
    let broken = |why: &str| deb_err(file, format!("the ar member header {after} {why}"));
    if hdr.len() < 60 {
        return Err(broken("is cut short; the file is truncated"));
    }
    if &hdr[58..60] != b"`\n" {
        return Err(broken("is damaged (bad terminator)"));
    }
    let raw_name = &hdr[..16];
    let name = std::str::from_utf8(raw_name)
        .map_err(|_| broken("has a name that is not UTF-8"))?
        .trim_end_matches(' ');
    // GNU ar ends short names with '/'.
    let name = name.strip_suffix('/').unwrap_or(name).to_string();
    let size = std::str::from_utf8(&hdr[48..58])
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| broken("has an unreadable size"))?;
    Ok(Some(Member { name, size }))
}

/// The accepted compression suffixes of `control.tar` / `data.tar`.
fn check_suffix(file: &Path, name: &str, base: &str) -> Result<(), IngestError> {
    let suffix = &name[base.len()..];
    if ["", ".gz", ".xz", ".zst"].contains(&suffix) {
        Ok(())
    } else {
        Err(deb_err(
            file,
            format!(
                "member {name:?} is compressed in a way Stork does not read; rebuild the \
                 package with `dpkg-deb -Zxz` (or gzip, zstd, none)"
            ),
        ))
    }
}

/// Reads a `.deb` whose bytes are `r` (magic included): fills `b` from the data archive and
/// returns the control fields.
pub(crate) fn read_deb(
    mut r: impl Read,
    b: &mut Builder,
    spill: &mut Spill,
) -> Result<DebControl, IngestError> {
    let file = b.file.clone();
    let file = file.as_path();
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|error| IngestError::Io {
        file: file.into(),
        doing: "read".into(),
        error,
    })?;
    debug_assert_eq!(magic, AR_MAGIC);
    let mut control = None;
    let mut data = false;
    let mut index = 0usize;
    let mut after = "at the start".to_string();
    while let Some(m) = next_member(file, &mut r, &after)? {
        let mut member = (&mut r).take(m.size);
        let name = m.name.as_str();
        if index == 0 && name != "debian-binary" {
            return Err(IngestError::NotASource {
                file: file.into(),
                found: format!("an ar archive whose first member is {name:?}, not debian-binary"),
            });
        }
        let not_tar = |what: String| {
            deb_err(
                file,
                format!("member {name:?} is {what}; rebuild the package with dpkg-deb"),
            )
        };
        match name {
            "debian-binary" if index == 0 => {
                let mut v = Vec::new();
                (&mut member)
                    .take(64)
                    .read_to_end(&mut v)
                    .map_err(|error| IngestError::Corrupt {
                        file: file.into(),
                        at: "in member \"debian-binary\"".into(),
                        error,
                    })?;
                if !v.starts_with(b"2.") {
                    return Err(deb_err(
                        file,
                        format!(
                            "debian-binary says format {:?}; only format 2.x is supported",
                            String::from_utf8_lossy(&v).trim()
                        ),
                    ));
                }
            }
            n if n.starts_with("control.tar") => {
                check_suffix(file, n, "control.tar")?;
                if control.is_some() {
                    return Err(deb_err(file, "it has two control.tar members"));
                }
                let stream = open_tar(file, &mut member, not_tar)?;
                control = Some(read_control(file, stream)?);
            }
            n if n.starts_with("data.tar") => {
                check_suffix(file, n, "data.tar")?;
                if data {
                    return Err(deb_err(file, "it has two data.tar members"));
                }
                let stream = open_tar(file, &mut member, not_tar)?;
                read_tree(stream, b, spill)?;
                data = true;
            }
            // dpkg's rule: members starting with '_' are optional additions, ignored.
            n if n.starts_with('_') => {}
            n => {
                return Err(deb_err(
                    file,
                    format!(
                        "unexpected member {n:?}; a .deb holds debian-binary, control.tar[.gz|.xz|.zst] \
                         and data.tar[.gz|.xz|.zst]"
                    ),
                ))
            }
        }
        let at = format!("in member {name:?}");
        io::copy(&mut member, &mut io::sink()).map_err(|error| IngestError::Corrupt {
            file: file.into(),
            at: at.clone(),
            error,
        })?;
        if member.limit() != 0 {
            return Err(IngestError::Corrupt {
                file: file.into(),
                at,
                error: io::Error::new(io::ErrorKind::UnexpectedEof, "the member is cut short"),
            });
        }
        if m.size % 2 == 1 {
            // Members are padded to an even length; the last pad may be missing.
            let mut pad = Vec::new();
            (&mut r)
                .take(1)
                .read_to_end(&mut pad)
                .map_err(|error| IngestError::Corrupt {
                    file: file.into(),
                    at: format!("after member {name:?}"),
                    error,
                })?;
        }
        after = format!("after member {name:?}");
        index += 1;
    }
    if !data {
        return Err(deb_err(
            file,
            "it has no data.tar member, so there is nothing to ingest; rebuild it with dpkg-deb --build",
        ));
    }
    control.ok_or_else(|| {
        deb_err(
            file,
            "it has no control.tar member, so it has no name or version; rebuild it with dpkg-deb --build",
        )
    })
}

/// Finds `control` in the control archive and parses it.
fn read_control(file: &Path, stream: Box<dyn Read + '_>) -> Result<DebControl, IngestError> {
    let mut found: Option<String> = None;
    for_each_entry(file, stream, CONTROL_TAR_CAP, |ctx, entry, name| {
        if !entry.header().entry_type().is_file() {
            return Ok(());
        }
        let mut s = name;
        while let Some(rest) = s.strip_prefix("./") {
            s = rest;
        }
        if s != "control" {
            return Ok(());
        }
        if found.is_some() {
            return Err(deb_err(file, "its control archive holds \"control\" twice"));
        }
        if entry.size() > CONTROL_MAX {
            return Err(deb_err(
                file,
                format!(
                    "its control file is {} bytes, more than the {CONTROL_MAX} we accept",
                    entry.size()
                ),
            ));
        }
        let mut v = Vec::new();
        (&mut *entry)
            .take(CONTROL_MAX)
            .read_to_end(&mut v)
            .map_err(|e| ctx.read_err("in control.tar entry \"control\"".into(), e))?;
        let text = String::from_utf8(v).map_err(|_| IngestError::Control {
            file: file.into(),
            line: 0,
            why: "it is not UTF-8".into(),
        })?;
        found = Some(text);
        Ok(())
    })?;
    let text = found.ok_or_else(|| deb_err(file, "its control archive has no \"control\" file"))?;
    parse_control(file, &text)
}

/// Parses one RFC822-style paragraph: `Field: value`, continuation lines starting with a
/// space or tab (kept verbatim, joined with `\n`), `#` comment lines ignored.
pub(crate) fn parse_control(file: &Path, text: &str) -> Result<DebControl, IngestError> {
    let err = |line: usize, why: String| IngestError::Control {
        file: file.into(),
        line,
        why,
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut ended = false;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            ended |= !fields.is_empty();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if ended {
            return Err(err(
                lineno,
                "a second paragraph follows a blank line; a binary package's control file has one"
                    .into(),
            ));
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(err(
                    lineno,
                    "a continuation line comes before any field".into(),
                ));
            };
            value.push('\n');
            value.push_str(line.trim_end());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(err(
                lineno,
                format!("{line:?} is not a `Field: value` line"),
            ));
        };
        if name.is_empty()
            || name.starts_with('-')
            || name.bytes().any(|b| !(b.is_ascii_graphic()) || b == b':')
        {
            return Err(err(lineno, format!("{name:?} is not a valid field name")));
        }
        if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(err(lineno, format!("field {name:?} appears twice")));
        }
        fields.push((name.to_string(), value.trim().to_string()));
    }
    if fields.is_empty() {
        return Err(err(0, "it has no fields".into()));
    }
    let get = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    let single = |n: &str| -> Result<String, IngestError> {
        match get(n) {
            None | Some("") => Err(err(0, format!("it has no {n} field"))),
            Some(v) if v.contains('\n') => {
                Err(err(0, format!("the {n} field spans several lines")))
            }
            Some(v) => Ok(v.to_string()),
        }
    };
    let package = single("Package")?;
    let version = single("Version")?;
    // Relationship fields may be folded; unfold them.
    let unfold = |v: &str| v.split_whitespace().collect::<Vec<_>>().join(" ");
    let deps: Vec<String> = ["Depends", "Pre-Depends"]
        .iter()
        .filter_map(|n| get(n))
        .map(unfold)
        .map(|v| {
            v.trim_matches(|c: char| c == ',' || c.is_whitespace())
                .to_string()
        })
        .filter(|v| !v.is_empty())
        .collect();
    let depends = if deps.is_empty() {
        None
    } else {
        Some(deps.join(", "))
    };
    Ok(DebControl {
        package,
        version,
        depends,
        fields,
    })
}
