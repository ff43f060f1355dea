//! Tar streams: sniffing, decompression, metering, and turning entries into nodes.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;

use super::build::{normalize, symlink_target, Builder, Name};
use super::{Content, IngestError, Node};

/// Most bytes of extension headers (GNU long names, pax records) before one entry.
pub(crate) const META_CAP: u64 = 4 << 20;
/// Memory the xz decoder may use (xz -9 needs 65 MiB).
const XZ_MEMLIMIT: u64 = 256 << 20;
/// Copy buffer.
const BUF: usize = 128 << 10;

/// A compression we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// Recognises a compressed stream by its magic bytes.
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// "gzip", "xz", "zstd".
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// A streaming decompressor over `r`. Concatenated streams/members/frames are read
    /// through to the end.
    pub fn decoder<'r>(self, r: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Xz => {
                let stream =
                    xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, xz2::stream::CONCATENATED)
                        .map_err(io::Error::other)?;
                Box::new(xz2::read::XzDecoder::new_stream(r, stream))
            }
            // The default window limit (128 MiB) bounds the decoder's memory.
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// Reads up to `n` bytes (fewer only at end of stream).
pub(crate) fn read_head(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut v)?;
    Ok(v)
}

/// Whether a 512-byte block is a tar header (valid checksum) or the all-zero end block of
/// an empty archive.
pub(crate) fn looks_like_tar(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    let block = &block[..512];
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if digits.is_empty() {
        return false;
    }
    let Ok(want) = u32::from_str_radix(std::str::from_utf8(&digits).unwrap_or("x"), 8) else {
        return false;
    };
    let sum = |signed: bool| -> i64 {
        block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else if signed {
                    b as i8 as i64
                } else {
                    b as i64
                }
            })
            .sum()
    };
    sum(false) == want as i64 || sum(true) == want as i64
}

/// Opens a (possibly compressed) tar stream: decompresses it and checks that what comes
/// out starts like a tar. `not_tar(description)` builds the refusal otherwise.
pub(crate) fn open_tar<'r>(
    file: &Path,
    mut r: impl Read + 'r,
    not_tar: impl FnOnce(String) -> IngestError,
) -> Result<Box<dyn Read + 'r>, IngestError> {
    let corrupt = |error| IngestError::Corrupt {
        file: file.into(),
        at: "at the start".into(),
        error,
    };
    let head = read_head(&mut r, 512).map_err(|e| IngestError::Io {
        file: file.into(),
        doing: "read".into(),
        error: e,
    })?;
    let compressed = Compression::sniff(&head).is_some();
    let (mut stream, what): (Box<dyn Read + 'r>, _) = match Compression::sniff(&head) {
        Some(c) => (
            c.decoder(io::Cursor::new(head).chain(r)).map_err(corrupt)?,
            format!("{}-compressed data that is not a tar archive", c.name()),
        ),
        None => (
            Box::new(io::Cursor::new(head).chain(r)),
            "a file of another kind".to_string(),
        ),
    };
    let block = read_head(&mut stream, 512).map_err(corrupt)?;
    if !looks_like_tar(&block) {
        // Damage early in a compressed stream can look like "not a tar": let the
        // decompressor's checksum speak first (within reason).
        if compressed {
            io::copy(&mut (&mut stream).take(64 << 20), &mut io::sink()).map_err(corrupt)?;
        }
        return Err(not_tar(what));
    }
    Ok(Box::new(io::Cursor::new(block).chain(stream)))
}

#[derive(Clone, Copy)]
enum Trip {
    Total,
    Meta,
}

/// Counts the bytes a tar reader pulls out of the (decompressed) stream.
pub(crate) struct Meter {
    total: Cell<u64>,
    cap: u64,
    window: Cell<Option<u64>>,
    tripped: Cell<Option<Trip>>,
}

pub(crate) struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let m = &self.meter;
        if m.tripped.get().is_some() {
            return Err(io::Error::other("size limit exceeded"));
        }
        let n = self.inner.read(buf)?;
        let total = m.total.get() + n as u64;
        m.total.set(total);
        if total > m.cap {
            m.tripped.set(Some(Trip::Total));
            return Err(io::Error::other("decompressed size limit exceeded"));
        }
        if let Some(w) = m.window.get() {
            let w = w + n as u64;
            m.window.set(Some(w));
            if w > META_CAP {
                m.tripped.set(Some(Trip::Meta));
                return Err(io::Error::other("extension header limit exceeded"));
            }
        }
        Ok(n)
    }
}

/// What an entry callback gets besides the entry.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    meter: Rc<Meter>,
}

impl Ctx<'_> {
    /// The error for a failed read `at` somewhere.
    pub fn read_err(&self, at: String, error: io::Error) -> IngestError {
        let file = self.file.to_path_buf();
        match self.meter.tripped.get() {
            Some(Trip::Total) => IngestError::DecompressedTooBig {
                file,
                at,
                limit: self.meter.cap,
            },
            Some(Trip::Meta) => IngestError::HeaderTooBig {
                file,
                at,
                limit: META_CAP,
            },
            None => IngestError::Corrupt { file, at, error },
        }
    }
}

/// The tar entry type handed to callbacks.
pub(crate) type TarEntry<'a, 'r> = tar::Entry<'a, Metered<Box<dyn Read + 'r>>>;

/// Walks the entries of a tar stream, calling `f(ctx, entry, name_for_messages)` on each,
/// skipping whatever data `f` leaves unread. Refuses a stream that decompresses to more
/// than `cap` bytes, and extension headers over [`META_CAP`]. Reads the stream to its end
/// afterwards so that compressed checksums are verified.
pub(crate) fn for_each_entry<'r>(
    file: &Path,
    stream: Box<dyn Read + 'r>,
    cap: u64,
    mut f: impl FnMut(&Ctx, &mut TarEntry<'_, 'r>, &str) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let meter = Rc::new(Meter {
        total: Cell::new(0),
        cap,
        window: Cell::new(None),
        tripped: Cell::new(None),
    });
    let ctx = Ctx {
        file,
        meter: meter.clone(),
    };
    let mut archive = tar::Archive::new(Metered {
        inner: stream,
        meter: meter.clone(),
    });
    let mut last: Option<String> = None;
    let after = |last: &Option<String>| match last {
        Some(n) => format!("after entry {n:?}"),
        None => "at the first entry".to_string(),
    };
    {
        let mut entries = archive
            .entries()
            .map_err(|e| ctx.read_err("at the start".into(), e))?;
        loop {
            // Between entries the reader only pulls headers and extension records.
            meter.window.set(Some(0));
            let next = entries.next();
            meter.window.set(None);
            let mut entry = match next {
                None => break,
                Some(Err(e)) => return Err(ctx.read_err(after(&last), e)),
                Some(Ok(e)) => e,
            };
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            f(&ctx, &mut entry, &name)?;
            io::copy(&mut entry, &mut io::sink())
                .map_err(|e| ctx.read_err(format!("in entry {name:?}"), e))?;
            last = Some(name);
        }
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| ctx.read_err("after the end of the tar archive".into(), e))?;
    Ok(())
}

/// Numbered files under the Tree's temporary directory.
pub(crate) struct Spill {
    pub dir: tempfile::TempDir,
    next: u64,
}

impl Spill {
    pub fn new(parent: &Path) -> Result<Spill, IngestError> {
        let dir = tempfile::Builder::new()
            .prefix("stork-ingest-")
            .tempdir_in(parent)
            .map_err(|error| IngestError::Spill {
                dir: parent.into(),
                error,
            })?;
        Ok(Spill { dir, next: 0 })
    }

    fn create(&mut self) -> Result<(PathBuf, File), IngestError> {
        let path = self.dir.path().join(self.next.to_string());
        self.next += 1;
        let f = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| self.err(error))?;
        Ok((path, f))
    }

    fn err(&self, error: io::Error) -> IngestError {
        IngestError::Spill {
            dir: self.dir.path().into(),
            error,
        }
    }
}

/// What a tar entry becomes.
enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
}

fn kind_of(ty: EntryType, name: &str) -> Result<Kind, (bool, String)> {
    // Err((special, what)): special = device/FIFO (refused as such), else unsupported.
    Ok(match ty {
        // Old (V7) archives mark directories with a trailing slash on a regular entry.
        EntryType::Regular if name.ends_with('/') => Kind::Dir,
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => Kind::Symlink,
        EntryType::Link => Kind::HardLink,
        EntryType::Char => return Err((true, "character device".into())),
        EntryType::Block => return Err((true, "block device".into())),
        EntryType::Fifo => return Err((true, "FIFO".into())),
        EntryType::GNULongName | EntryType::GNULongLink | EntryType::XHeader => {
            return Err((
                false,
                "a long-name or pax header in an old-style archive that attaches to no entry"
                    .into(),
            ))
        }
        other => {
            let b = other.as_byte();
            let what = match b {
                b'V' => "a GNU volume label".to_string(),
                b'M' => "a GNU multi-volume continuation".to_string(),
                b'N' => "an old GNU long-names entry".to_string(),
                b'D' => "a GNU dump directory".to_string(),
                _ => format!("an entry of unknown tar type {:?}", b as char),
            };
            return Err((false, what));
        }
    })
}

/// Reads a package's data tar into `b`, spilling file contents into `spill`.
pub(crate) fn read_tree<'r>(
    stream: Box<dyn Read + 'r>,
    b: &mut Builder,
    spill: &mut Spill,
) -> Result<(), IngestError> {
    let cap = b
        .limits
        .max_total_bytes
        .saturating_mul(2)
        .saturating_add(64 << 20);
    let file = b.file.clone();
    let mut buf = vec![0u8; BUF];
    for_each_entry(&file, stream, cap, |ctx, entry, lossy| {
        b.count_entry()?;
        let ty = entry.header().entry_type();
        if ty == EntryType::XGlobalHeader {
            // Archive-wide pax records (comments, mtimes, git commit ids): nothing for us.
            return Ok(());
        }
        let name = match std::str::from_utf8(&entry.path_bytes()) {
            Ok(s) => s.to_string(),
            Err(_) => {
                return Err(IngestError::NonUtf8Name {
                    file: file.clone(),
                    entry: lossy.into(),
                })
            }
        };
        let unsupported = |what: String| IngestError::Unsupported {
            file: file.clone(),
            entry: name.clone(),
            what,
        };
        let kind = match kind_of(ty, &name) {
            Ok(k) => k,
            Err((true, kind)) => {
                return Err(IngestError::SpecialFile {
                    file: file.clone(),
                    entry: name.clone(),
                    kind,
                })
            }
            Err((false, what)) => return Err(unsupported(what)),
        };
        if let Some(exts) = entry
            .pax_extensions()
            .map_err(|e| ctx.read_err(format!("in entry {name:?}"), e))?
        {
            for ext in exts {
                let ext = ext.map_err(|e| ctx.read_err(format!("in entry {name:?}"), e))?;
                if ext.key_bytes().starts_with(b"GNU.sparse.") {
                    return Err(unsupported("a PAX-format sparse file".into()));
                }
            }
        }
        let path = match normalize(&name).map_err(|p| p.into_error(&file, &name))? {
            Name::Root => return b.root(&name, matches!(kind, Kind::Dir)),
            Name::Path(p) => p,
        };
        let mode = || {
            entry
                .header()
                .mode()
                .map(|m| m & 0o7777)
                .map_err(|e| ctx.read_err(format!("in entry {name:?}"), e))
        };
        let node = match kind {
            Kind::Dir => Node::Dir { mode: mode()? },
            Kind::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                Node::Symlink {
                    target: symlink_target(&file, &name, &target)?,
                }
            }
            Kind::HardLink => {
                let bad = |why: String, target: &str| IngestError::BadHardLink {
                    file: file.clone(),
                    entry: name.clone(),
                    target: target.into(),
                    why,
                };
                let raw = entry.link_name_bytes().unwrap_or_default();
                let Ok(target) = std::str::from_utf8(&raw) else {
                    let t = String::from_utf8_lossy(&raw);
                    return Err(bad("the target is not UTF-8".into(), &t));
                };
                if target.is_empty() {
                    return Err(bad("it has no target".into(), target));
                }
                let tp = match normalize(target) {
                    Ok(Name::Path(p)) => p,
                    Ok(Name::Root) => {
                        return Err(bad("the target is the package root".into(), target))
                    }
                    Err(p) => return Err(bad(p.describe(), target)),
                };
                match b.get(&tp) {
                    Some(n @ Node::File { .. }) => n.clone(),
                    Some(Node::Dir { .. }) => {
                        return Err(bad("the target is a directory".into(), target))
                    }
                    Some(Node::Symlink { .. }) => {
                        return Err(bad("the target is a symlink".into(), target))
                    }
                    None => {
                        return Err(bad(
                            "the target is not an earlier entry of the archive".into(),
                            target,
                        ))
                    }
                }
            }
            Kind::File => {
                let mode = mode()?;
                let size = entry.size();
                b.check_new(&name, &path)?;
                b.reserve_bytes(&name, size)?;
                let (spill_path, mut out) = spill.create()?;
                let mut got = 0u64;
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(ctx.read_err(format!("in entry {name:?}"), e)),
                    };
                    out.write_all(&buf[..n]).map_err(|e| spill.err(e))?;
                    got += n as u64;
                    b.add_bytes(n as u64);
                }
                if got != size {
                    return Err(IngestError::Truncated {
                        file: file.clone(),
                        entry: name.clone(),
                        expected: size,
                        got,
                    });
                }
                Node::File {
                    mode,
                    size,
                    content: Content::Path(spill_path),
                }
            }
        };
        b.insert(&name, path, node)
    })
}
