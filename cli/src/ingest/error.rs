//! Why a package source was refused.

use std::io;
use std::path::PathBuf;

/// A refused or unreadable package source. Every message names the source file and, where
/// there is one, the archive entry (as written in the archive) or the path under a source
/// directory.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The source (or something in a source directory) could not be read.
    #[error("{}: cannot {doing}: {error}", .file.display())]
    Io {
        /// The source or the file inside it.
        file: PathBuf,
        /// What we were doing.
        doing: String,
        /// The system error.
        #[source]
        error: io::Error,
    },

    /// The source is not a kind we read.
    #[error(
        "{} is {found}: not a directory, tar, tar.gz, tar.xz, tar.zst or .deb",
        .file.display()
    )]
    NotASource {
        /// The source.
        file: PathBuf,
        /// What it looks like instead.
        found: String,
    },

    /// The archive (or its compression) is damaged or cut short.
    #[error(
        "{}: the archive is corrupt or truncated {at}: {error}; get a fresh copy of it",
        .file.display()
    )]
    Corrupt {
        /// The source.
        file: PathBuf,
        /// Where: "in entry \"x\"", "after entry \"x\"", "at the start".
        at: String,
        /// What the reader said.
        #[source]
        error: io::Error,
    },

    /// A file's data ended before the size its header gave.
    #[error(
        "{}: entry {entry:?} is truncated: its header says {expected} bytes but the archive \
         holds only {got}; get a fresh copy of the archive",
        .file.display()
    )]
    Truncated {
        /// The source.
        file: PathBuf,
        /// The entry, as written in the archive.
        entry: String,
        /// Size from the header.
        expected: u64,
        /// Bytes actually present.
        got: u64,
    },

    /// An absolute path such as `/etc/passwd`.
    #[error(
        "{}: entry {entry:?} has an absolute path; a package may only hold relative paths \
         (build the archive from inside its root, e.g. `tar -C root -cf x.tar .`)",
        .file.display()
    )]
    AbsolutePath {
        /// The source.
        file: PathBuf,
        /// The entry, as written in the archive.
        entry: String,
    },

    /// A path with a `..` component.
    #[error(
        "{}: entry {entry:?} has a '..' component and would land outside the package; \
         the whole source is refused",
        .file.display()
    )]
    DotDot {
        /// The source.
        file: PathBuf,
        /// The entry, as written in the archive.
        entry: String,
    },

    /// Any other path that is not a valid [`policy::TreePath`].
    #[error("{}: entry {entry:?} has a path Stork cannot store: {why}", .file.display())]
    BadPath {
        /// The source.
        file: PathBuf,
        /// The entry, as written in the archive.
        entry: String,
        /// What is wrong with it.
        why: String,
    },

    /// A name that is not UTF-8.
    #[error(
        "{}: entry {entry:?} (bad bytes shown as \u{FFFD}) has a name that is not UTF-8, \
         which Stork cannot represent; rename it in the package",
        .file.display()
    )]
    NonUtf8Name {
        /// The source.
        file: PathBuf,
        /// The entry, decoded lossily.
        entry: String,
    },

    /// An entry under a path that is a symlink in the same source.
    #[error(
        "{}: entry {entry:?} lies under {symlink:?}, which is a symlink in the same archive; \
         it would be written through the symlink, so the source is refused",
        .file.display()
    )]
    ThroughSymlink {
        /// The source.
        file: PathBuf,
        /// The entry.
        entry: String,
        /// The symlink above it.
        symlink: String,
    },

    /// An entry under a path that is a regular file in the same source.
    #[error(
        "{}: entry {entry:?} lies under {parent:?}, which is a file, not a directory",
        .file.display()
    )]
    ParentNotDir {
        /// The source.
        file: PathBuf,
        /// The entry.
        entry: String,
        /// The file above it.
        parent: String,
    },

    /// A hard link we cannot resolve to an earlier regular file.
    #[error(
        "{}: hard link {entry:?} -> {target:?}: {why}; hard links may only point at a \
         regular file that comes earlier in the archive",
        .file.display()
    )]
    BadHardLink {
        /// The source.
        file: PathBuf,
        /// The link entry.
        entry: String,
        /// Its target, as written.
        target: String,
        /// What is wrong.
        why: String,
    },

    /// A device node, FIFO or socket.
    #[error(
        "{}: entry {entry:?} is a {kind}; packages may not hold device nodes, FIFOs or \
         sockets: remove it from the source",
        .file.display()
    )]
    SpecialFile {
        /// The source.
        file: PathBuf,
        /// The entry.
        entry: String,
        /// "character device", "block device", "FIFO", "socket".
        kind: String,
    },

    /// An archive entry type Stork does not take (volume labels, PAX sparse files, ...).
    #[error(
        "{}: entry {entry:?} is {what}, which Stork does not support; rebuild the archive \
         without it (plain GNU tar or dpkg-deb output is fine)",
        .file.display()
    )]
    Unsupported {
        /// The source.
        file: PathBuf,
        /// The entry.
        entry: String,
        /// What it is.
        what: String,
    },

    /// The same path twice.
    #[error(
        "{}: the archive holds {entry:?} more than once; refusing it rather than guessing \
         which copy counts",
        .file.display()
    )]
    Duplicate {
        /// The source.
        file: PathBuf,
        /// The entry as written the second time.
        entry: String,
    },

    /// A symlink whose target is empty, has a NUL, is too long or is not UTF-8.
    #[error("{}: symlink {entry:?} has an unusable target: {why}", .file.display())]
    BadSymlinkTarget {
        /// The source.
        file: PathBuf,
        /// The symlink entry.
        entry: String,
        /// What is wrong.
        why: String,
    },

    /// `.` or `./` that is not a directory.
    #[error(
        "{}: entry {entry:?} names the package root but is not a directory",
        .file.display()
    )]
    RootNotDir {
        /// The source.
        file: PathBuf,
        /// The entry.
        entry: String,
    },

    /// More entries than [`super::Limits::max_entries`].
    #[error(
        "{}: more than {limit} entries; raise the entry limit if the package really is \
         that large",
        .file.display()
    )]
    TooManyEntries {
        /// The source.
        file: PathBuf,
        /// The limit.
        limit: usize,
    },

    /// Files adding up to more than [`super::Limits::max_total_bytes`].
    #[error(
        "{}: the files add up to more than {limit} bytes (reached at entry {entry:?}); raise \
         the byte limit if the package really is that large",
        .file.display()
    )]
    TooManyBytes {
        /// The source.
        file: PathBuf,
        /// The entry that went over.
        entry: String,
        /// The limit.
        limit: u64,
    },

    /// A file larger than [`super::Limits::max_file_bytes`].
    #[error(
        "{}: entry {entry:?} is {size} bytes, more than the limit of {limit}; raise the \
         per-file limit if it really is that large",
        .file.display()
    )]
    FileTooBig {
        /// The source.
        file: PathBuf,
        /// The entry.
        entry: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// The decompressed archive stream is larger than we allow.
    #[error(
        "{}: the archive decompresses to more than {limit} bytes ({at}); this looks like a \
         decompression bomb; raise the byte limit if it is genuine",
        .file.display()
    )]
    DecompressedTooBig {
        /// The source.
        file: PathBuf,
        /// Where.
        at: String,
        /// Bytes allowed.
        limit: u64,
    },

    /// Long-name / pax extension headers larger than we allow.
    #[error(
        "{}: the extension headers (long names, pax records) {at} exceed {limit} bytes; \
         refusing them",
        .file.display()
    )]
    HeaderTooBig {
        /// The source.
        file: PathBuf,
        /// Where.
        at: String,
        /// Bytes allowed.
        limit: u64,
    },

    /// The `.deb` container is not usable.
    #[error("{}: not a usable .deb: {why}", .file.display())]
    Deb {
        /// The source.
        file: PathBuf,
        /// What is wrong, and what to do.
        why: String,
    },

    /// The `.deb`'s `control` file cannot be parsed.
    #[error("{}: control file, line {line}: {why}; fix DEBIAN/control and rebuild", .file.display())]
    Control {
        /// The source.
        file: PathBuf,
        /// 1-based line (0 for the whole file).
        line: usize,
        /// What is wrong.
        why: String,
    },

    /// Writing spilled archive contents failed.
    #[error(
        "cannot write spilled archive contents under {}: {error}; free space there or point \
         TMPDIR at a larger disk",
        .dir.display()
    )]
    Spill {
        /// The spill directory.
        dir: PathBuf,
        /// The system error.
        #[source]
        error: io::Error,
    },
}
