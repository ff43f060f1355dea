//! Hostile and friendly sources, built in code (and with dpkg-deb, and one real download).

use std::cell::RefCell;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tar::{EntryType, Header};

use super::*;

// ---------------------------------------------------------------------------------------
// Helpers

type TarB = tar::Builder<Vec<u8>>;

fn tar_of(build: impl FnOnce(&mut TarB)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn hdr(ty: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h
}

fn file(b: &mut TarB, path: &str, mode: u32, data: &[u8]) {
    let mut h = hdr(EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut TarB, path: &str, mode: u32) {
    let mut h = hdr(EntryType::Directory, mode, 0);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn symlink(b: &mut TarB, path: &str, target: &str) {
    let mut h = hdr(EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, path, target).unwrap();
}

fn hardlink(b: &mut TarB, path: &str, target: &str) {
    let mut h = hdr(EntryType::Link, 0o644, 0);
    b.append_link(&mut h, path, target).unwrap();
}

/// An entry whose name (and link name) bytes go into the header verbatim, bypassing the
/// tar crate's own checks.
fn raw(b: &mut TarB, ty: EntryType, name: &[u8], link: &[u8], data: &[u8]) {
    let mut h = hdr(ty, 0o644, data.len() as u64);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name);
    old.linkname = [0; 100];
    old.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// A pax extended header ('x' for the next entry, 'g' global) with the given records.
fn pax(b: &mut TarB, ty: EntryType, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = 1 + k.len() + 1 + v.len() + 1; // ' ' key '=' value '\n'
        let mut len = body + 1;
        while body + len.to_string().len() != len {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = hdr(ty, 0o644, data.len() as u64);
    h.set_path("PaxHeaders/x").unwrap();
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zst(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
    fn spill_parent(&self) -> PathBuf {
        let p = self.dir.path().join("spill");
        fs::create_dir_all(&p).unwrap();
        p
    }
    fn read_with(&self, name: &str, bytes: &[u8], limits: &Limits) -> Result<Tree, IngestError> {
        let p = self.write(name, bytes);
        read_source_in(&p, &self.spill_parent(), limits, &|_| {})
    }
    fn read(&self, bytes: &[u8]) -> Result<Tree, IngestError> {
        self.read_with("src", bytes, &Limits::default())
    }
}

/// Reads an archive that must be refused; checks nothing was left on disk and the message
/// names the source file; returns the error.
fn refused(bytes: &[u8]) -> IngestError {
    refused_with(bytes, &Limits::default())
}

fn refused_with(bytes: &[u8], limits: &Limits) -> IngestError {
    let env = Env::new();
    let e = env
        .read_with("hostile.tar", bytes, limits)
        .expect_err("hostile archive accepted");
    let msg = e.to_string();
    assert!(msg.contains("hostile.tar"), "message lacks the file: {msg}");
    // Nothing written anywhere: the source dir holds the archive and the (empty) spill
    // parent only.
    let mut names: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["hostile.tar", "spill"]);
    assert_eq!(fs::read_dir(env.spill_parent()).unwrap().count(), 0);
    e
}

fn assert_msg(e: &IngestError, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "{p:?} not in {msg:?}");
    }
}

/// A comparable view of a tree: path, kind, mode, size, content bytes / target.
fn view(t: &Tree) -> Vec<(String, String)> {
    t.entries
        .iter()
        .map(|(p, n)| {
            let d = match n {
                Node::Dir { mode } => format!("dir {mode:o}"),
                Node::Symlink { target } => format!("link {target}"),
                Node::File {
                    mode,
                    size,
                    content: Content::Path(c),
                } => {
                    let bytes = fs::read(c).unwrap();
                    assert_eq!(bytes.len() as u64, *size);
                    format!("file {mode:o} {size} {}", String::from_utf8_lossy(&bytes))
                }
            };
            (p.to_string(), d)
        })
        .collect()
}

fn check_invariants(t: &Tree) {
    for w in t.entries.windows(2) {
        assert!(w[0].0.as_str().as_bytes() < w[1].0.as_str().as_bytes());
    }
    for (p, _) in &t.entries {
        if let Some(parent) = p.parent() {
            assert!(
                matches!(t.get(parent.as_str()), Some(Node::Dir { .. })),
                "{p}: parent missing"
            );
        }
    }
}

const LONG: &str = "usr/share/doc/a-package-with-a-rather-long-name/examples/and-a-deeply-nested-\
                    directory/with-a-file-name-that-goes-on-and-on.txt";

fn good_tar() -> Vec<u8> {
    tar_of(|b| {
        dir(b, "./", 0o755);
        dir(b, "./usr/", 0o755);
        dir(b, "./usr/bin/", 0o755);
        file(b, "./usr/bin/hello", 0o4755, b"#!/bin/sh\necho hi\n");
        symlink(b, "./usr/bin/hi", "hello");
        hardlink(b, "./usr/bin/hello2", "./usr/bin/hello");
        symlink(b, "./etc/abs", "/etc/passwd");
        file(b, LONG, 0o644, b"long");
        file(b, "opt/x/y", 0o600, b"");
    })
}

// ---------------------------------------------------------------------------------------
// Friendly sources

#[test]
fn good_archive() {
    assert!(LONG.len() > 100);
    let env = Env::new();
    let t = env.read(&good_tar()).unwrap();
    check_invariants(&t);
    assert!(t.deb.is_none());
    let v = view(&t);
    let get = |p: &str| v.iter().find(|(q, _)| q == p).map(|(_, d)| d.as_str());
    assert_eq!(
        get("usr/bin/hello"),
        Some("file 4755 18 #!/bin/sh\necho hi\n")
    );
    assert_eq!(
        get("usr/bin/hello2"),
        Some("file 4755 18 #!/bin/sh\necho hi\n")
    );
    assert_eq!(get("usr/bin/hi"), Some("link hello"));
    assert_eq!(get("etc/abs"), Some("link /etc/passwd"));
    assert_eq!(get("etc"), Some("dir 755")); // synthesised
    assert_eq!(get("opt/x"), Some("dir 755"));
    assert_eq!(get("opt/x/y"), Some("file 600 0 "));
    assert_eq!(get(LONG), Some("file 644 4 long"));
    assert_eq!(get("usr/share/doc"), Some("dir 755"));
    // No root entry, no "./" anywhere.
    assert!(t.entries.iter().all(|(p, _)| !p.as_str().starts_with('.')));
}

#[test]
fn hard_links_share_content() {
    let env = Env::new();
    let t = env
        .read(&tar_of(|b| {
            file(b, "a", 0o644, b"data");
            hardlink(b, "b", "a");
            hardlink(b, "c", "./b");
        }))
        .unwrap();
    let content = |p| match t.get(p) {
        Some(Node::File { content, size, .. }) => (content.clone(), *size),
        other => panic!("{p}: {other:?}"),
    };
    assert_eq!(content("a"), content("b"));
    assert_eq!(content("a"), content("c"));
    // One spill file only.
    assert_eq!(fs::read_dir(t.spill_dir().unwrap()).unwrap().count(), 1);
    let dir = t.spill_dir().unwrap().to_path_buf();
    drop(t);
    assert!(!dir.exists(), "spill dir outlives the tree");
}

#[test]
fn compressed_variants_are_identical() {
    let env = Env::new();
    let plain = good_tar();
    let base = view(&env.read(&plain).unwrap());
    for (name, bytes) in [("gz", gz(&plain)), ("xz", xz(&plain)), ("zst", zst(&plain))] {
        // The extension is irrelevant: detection is by content.
        let t = env.read_with(&format!("pkg.{name}.bin"), &bytes, &Limits::default());
        assert_eq!(view(&t.unwrap()), base, "{name}");
    }
    // Concatenated gzip members are one stream.
    let half = plain.len() / 2;
    let mut two = gz(&plain[..half]);
    two.extend(gz(&plain[half..]));
    assert_eq!(view(&env.read(&two).unwrap()), base);
}

#[test]
fn pax_paths_and_global_headers() {
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(120));
    let env = Env::new();
    let t = env
        .read(&tar_of(|b| {
            pax(
                b,
                EntryType::XGlobalHeader,
                &[("comment", b"git commit abc")],
            );
            pax(b, EntryType::XHeader, &[("path", long.as_bytes())]);
            file(b, "short", 0o644, b"x");
            pax(
                b,
                EntryType::XHeader,
                &[("linkpath", b"/an/absolute/target")],
            );
            symlink(b, "s", "ignored");
        }))
        .unwrap();
    assert!(matches!(t.get(&long), Some(Node::File { size: 1, .. })));
    assert!(t.get("short").is_none());
    assert_eq!(
        t.get("s"),
        Some(&Node::Symlink {
            target: "/an/absolute/target".into()
        })
    );
}

#[test]
fn empty_archive_and_progress() {
    let env = Env::new();
    let t = env.read(&tar_of(|_| {})).unwrap();
    assert!(t.entries.is_empty());

    let seen = RefCell::new(Vec::new());
    let bytes = tar_of(|b| {
        for i in 0..2500 {
            file(b, &format!("f{i}"), 0o644, b"abc");
        }
    });
    let p = env.write("many.tar", &bytes);
    let t = read_source_in(&p, &env.spill_parent(), &Limits::default(), &|x| {
        seen.borrow_mut().push(x)
    })
    .unwrap();
    assert_eq!(t.entries.len(), 2500);
    let seen = seen.into_inner();
    assert!(seen.contains(&Progress::Entries(1000)));
    assert!(seen.contains(&Progress::Entries(2000)));
    assert_eq!(
        &seen[seen.len() - 2..],
        [Progress::Entries(2500), Progress::Bytes(7500)]
    );
}

// ---------------------------------------------------------------------------------------
// Hostile archives

#[test]
fn refuses_dotdot_and_absolute() {
    for name in [&b"../x"[..], b"a/../../x", b"./../x", b"a/.."] {
        let e = refused(&tar_of(|b| raw(b, EntryType::Regular, name, b"", b"pwned")));
        assert!(matches!(e, IngestError::DotDot { .. }), "{e}");
        assert_msg(
            &e,
            &[&format!("{:?}", std::str::from_utf8(name).unwrap()), "'..'"],
        );
    }
    for name in [&b"/etc/passwd"[..], b"//x"] {
        let e = refused(&tar_of(|b| raw(b, EntryType::Regular, name, b"", b"pwned")));
        assert!(matches!(e, IngestError::AbsolutePath { .. }), "{e}");
        assert_msg(&e, &["absolute", std::str::from_utf8(name).unwrap()]);
    }
    // A directory or a symlink named so is just as bad.
    let e = refused(&tar_of(|b| {
        raw(b, EntryType::Directory, b"../d/", b"", b"")
    }));
    assert!(matches!(e, IngestError::DotDot { .. }), "{e}");
    let e = refused(&tar_of(|b| {
        raw(b, EntryType::Symlink, b"/etc/x", b"y", b"")
    }));
    assert!(matches!(e, IngestError::AbsolutePath { .. }), "{e}");
    // Other bad paths.
    let e = refused(&tar_of(|b| raw(b, EntryType::Regular, b"a/./b", b"", b"")));
    assert_msg(&e, &["\"a/./b\"", "'.' component"]);
    let e = refused(&tar_of(|b| raw(b, EntryType::Regular, b"", b"", b"")));
    assert_msg(&e, &["empty"]);
}

#[test]
fn refuses_writing_through_symlinks() {
    let e = refused(&tar_of(|b| {
        symlink(b, "lib", "/etc");
        file(b, "lib/passwd", 0o644, b"root::0:0::/:/bin/sh\n");
    }));
    assert!(matches!(e, IngestError::ThroughSymlink { .. }), "{e}");
    assert_msg(&e, &["\"lib/passwd\"", "\"lib\"", "symlink"]);
    // Deeper, and with the symlink coming later.
    let e = refused(&tar_of(|b| {
        file(b, "./a/b/c/d", 0o644, b"x");
        symlink(b, "./a/b", "../../..");
    }));
    assert!(matches!(e, IngestError::ThroughSymlink { .. }), "{e}");
    assert_msg(&e, &["\"a/b/c/d\"", "\"a/b\""]);
    // A directory entry under a symlink.
    let e = refused(&tar_of(|b| {
        symlink(b, "x", "/");
        dir(b, "x/y", 0o755);
    }));
    assert!(matches!(e, IngestError::ThroughSymlink { .. }), "{e}");
    // Under a regular file.
    let e = refused(&tar_of(|b| {
        file(b, "f", 0o644, b"x");
        file(b, "f/g", 0o644, b"y");
    }));
    assert!(matches!(e, IngestError::ParentNotDir { .. }), "{e}");
    assert_msg(&e, &["\"f/g\"", "\"f\"", "not a directory"]);
}

#[test]
fn refuses_bad_hard_links() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "symlink",
            tar_of(|b| {
                symlink(b, "s", "/etc/shadow");
                hardlink(b, "h", "s");
            }),
            "the target is a symlink",
        ),
        (
            "dir",
            tar_of(|b| {
                dir(b, "d", 0o755);
                hardlink(b, "h", "d");
            }),
            "the target is a directory",
        ),
        (
            "missing",
            tar_of(|b| hardlink(b, "h", "etc/passwd")),
            "not an earlier entry",
        ),
        (
            "later",
            tar_of(|b| {
                hardlink(b, "h", "f");
                file(b, "f", 0o644, b"x");
            }),
            "not an earlier entry",
        ),
        (
            "absolute",
            tar_of(|b| raw(b, EntryType::Link, b"h", b"/etc/passwd", b"")),
            "absolute",
        ),
        (
            "dotdot",
            tar_of(|b| raw(b, EntryType::Link, b"h", b"../../etc/passwd", b"")),
            "'..'",
        ),
        (
            "through symlink",
            tar_of(|b| {
                symlink(b, "lib", "/etc");
                hardlink(b, "h", "lib/passwd");
            }),
            "not an earlier entry",
        ),
        (
            "itself",
            tar_of(|b| hardlink(b, "h", "h")),
            "not an earlier entry",
        ),
        (
            "empty",
            tar_of(|b| raw(b, EntryType::Link, b"h", b"", b"")),
            "no target",
        ),
    ];
    for (what, bytes, why) in cases {
        let e = refused(&bytes);
        assert!(matches!(e, IngestError::BadHardLink { .. }), "{what}: {e}");
        assert_msg(&e, &["hard link \"h\"", why]);
    }
}

#[test]
fn refuses_special_files() {
    for (ty, kind) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "FIFO"),
    ] {
        let e = refused(&tar_of(|b| {
            let mut h = hdr(ty, 0o666, 0);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            b.append_data(&mut h, "dev/null", &[][..]).unwrap();
        }));
        assert!(matches!(e, IngestError::SpecialFile { .. }), "{e}");
        assert_msg(&e, &["\"dev/null\"", kind]);
    }
}

#[test]
fn refuses_duplicates() {
    let cases: Vec<Vec<u8>> = vec![
        tar_of(|b| {
            file(b, "a", 0o644, b"1");
            file(b, "a", 0o644, b"2");
        }),
        tar_of(|b| {
            dir(b, "d", 0o755);
            dir(b, "d", 0o700);
        }),
        tar_of(|b| {
            file(b, "x", 0o644, b"1");
            dir(b, "x", 0o755);
        }),
        tar_of(|b| {
            dir(b, "x", 0o755);
            symlink(b, "./x", "/");
        }),
        tar_of(|b| {
            file(b, "p/q", 0o644, b"1");
            file(b, "./p/q", 0o644, b"2");
        }),
        tar_of(|b| {
            dir(b, "./", 0o755);
            dir(b, ".", 0o755);
        }),
    ];
    for bytes in cases {
        let e = refused(&bytes);
        assert!(matches!(e, IngestError::Duplicate { .. }), "{e}");
        assert_msg(&e, &["more than once"]);
    }
}

#[test]
fn refuses_non_utf8_and_bad_symlink_targets() {
    let e = refused(&tar_of(|b| {
        raw(b, EntryType::Regular, b"caf\xe9", b"", b"x")
    }));
    assert!(matches!(e, IngestError::NonUtf8Name { .. }), "{e}");
    assert_msg(&e, &["not UTF-8", "caf\u{FFFD}"]);

    let e = refused(&tar_of(|b| raw(b, EntryType::Symlink, b"s", b"", b"")));
    assert!(matches!(e, IngestError::BadSymlinkTarget { .. }), "{e}");
    assert_msg(&e, &["symlink \"s\"", "empty"]);

    let long = "t/".repeat(2100);
    let e = refused(&tar_of(|b| symlink(b, "s", &long)));
    assert!(matches!(e, IngestError::BadSymlinkTarget { .. }), "{e}");
    assert_msg(&e, &["longer than 4096"]);

    let e = refused(&tar_of(|b| {
        pax(b, EntryType::XHeader, &[("linkpath", b"a\0b")]);
        symlink(b, "s", "x");
    }));
    assert!(matches!(e, IngestError::BadSymlinkTarget { .. }), "{e}");
    assert_msg(&e, &["NUL"]);

    let e = refused(&tar_of(|b| raw(b, EntryType::Symlink, b"s", b"\xff", b"")));
    assert_msg(&e, &["symlink \"s\"", "not UTF-8"]);

    // A root entry that is not a directory.
    let e = refused(&tar_of(|b| raw(b, EntryType::Symlink, b"./", b"/etc", b"")));
    assert!(matches!(e, IngestError::RootNotDir { .. }), "{e}");
}

#[test]
fn refuses_unsupported_entry_types() {
    let e = refused(&tar_of(|b| {
        raw(b, EntryType::new(b'V'), b"label", b"", b"")
    }));
    assert_msg(&e, &["\"label\"", "volume label"]);
    let e = refused(&tar_of(|b| {
        pax(
            b,
            EntryType::XHeader,
            &[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0")],
        );
        file(b, "GNUSparseFile.0/f", 0o644, b"x");
    }));
    assert!(matches!(e, IngestError::Unsupported { .. }), "{e}");
    assert_msg(&e, &["PAX-format sparse"]);
}

#[test]
fn refuses_over_limits() {
    let three = tar_of(|b| {
        file(b, "a", 0o644, b"12345");
        file(b, "b", 0o644, b"12345");
        file(b, "c", 0o644, b"12345");
    });
    let e = refused_with(
        &three,
        &Limits {
            max_entries: 2,
            ..Limits::default()
        },
    );
    assert!(
        matches!(e, IngestError::TooManyEntries { limit: 2, .. }),
        "{e}"
    );
    // Synthesised parents count too.
    let deep = tar_of(|b| file(b, "a/b/c", 0o644, b""));
    let e = refused_with(
        &deep,
        &Limits {
            max_entries: 2,
            ..Limits::default()
        },
    );
    assert!(matches!(e, IngestError::TooManyEntries { .. }), "{e}");
    let e = refused_with(
        &three,
        &Limits {
            max_total_bytes: 12,
            ..Limits::default()
        },
    );
    assert!(
        matches!(e, IngestError::TooManyBytes { limit: 12, .. }),
        "{e}"
    );
    assert_msg(&e, &["\"c\""]);
    let e = refused_with(
        &three,
        &Limits {
            max_file_bytes: 4,
            ..Limits::default()
        },
    );
    assert!(matches!(e, IngestError::FileTooBig { size: 5, .. }), "{e}");
    assert_msg(&e, &["\"a\""]);
}

#[test]
fn refuses_decompression_bombs_and_huge_headers() {
    // A directory entry carrying 70 MiB of zeros: no file bytes, but the decompressed
    // stream runs over 2 * 1 MiB + 64 MiB.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let big = 70u64 << 20;
    let mut h = hdr(EntryType::Directory, 0o755, big);
    h.set_path("d").unwrap();
    h.set_cksum();
    e.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..70 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let err = refused_with(
        &bomb,
        &Limits {
            max_total_bytes: 1 << 20,
            ..Limits::default()
        },
    );
    assert!(
        matches!(err, IngestError::DecompressedTooBig { .. }),
        "{err}"
    );
    assert_msg(&err, &["decompression bomb"]);

    // A 5 MiB GNU long name.
    let name = "n".repeat(5 << 20);
    let mut h = hdr(EntryType::GNULongName, 0o644, name.len() as u64 + 1);
    h.set_path("././@LongLink").unwrap();
    h.set_cksum();
    let mut data = name.into_bytes();
    data.push(0);
    let bytes = tar_of(|b| {
        b.append(&h, &data[..]).unwrap();
        file(b, "x", 0o644, b"");
    });
    let err = refused(&bytes);
    assert!(matches!(err, IngestError::HeaderTooBig { .. }), "{err}");
}

#[test]
fn refuses_corrupt_and_truncated() {
    let good = tar_of(|b| {
        file(b, "a", 0o644, &[7u8; 3000]);
        file(b, "b", 0o644, b"x");
    });
    // Cut in the middle of a's data.
    let e = refused(&good[..512 + 1000]);
    assert!(matches!(e, IngestError::Truncated { .. }), "{e}");
    assert_msg(&e, &["\"a\"", "3000", "1000"]);
    // Cut in the middle of b's header.
    let e = refused(&good[..512 + 3072 + 100]);
    assert!(matches!(e, IngestError::Corrupt { .. }), "{e}");
    assert_msg(&e, &["after entry \"a\""]);
    // A damaged header checksum.
    let mut bad = good.clone();
    bad[512 + 3072 + 10] ^= 0x55;
    let e = refused(&bad);
    assert!(matches!(e, IngestError::Corrupt { .. }), "{e}");
    // Truncated and damaged compressed streams.
    for c in [gz(&good), xz(&good), zst(&good)] {
        let e = refused(&c[..c.len() - 20]);
        assert!(matches!(e, IngestError::Corrupt { .. }), "{e}");
    }
    // gzip and xz carry checksums, so any damage is caught (zstd frames need not).
    for c in [gz(&good), xz(&good)] {
        let mut d = c.clone();
        let n = d.len();
        d[n / 2] ^= 0xff;
        d[n / 2 + 1] ^= 0xff;
        let e = refused(&d);
        assert!(
            matches!(
                e,
                IngestError::Corrupt { .. } | IngestError::Truncated { .. }
            ),
            "{e}"
        );
    }
}

#[test]
fn refuses_unknown_kinds() {
    for (bytes, found) in [
        (
            &b"just some text that is not an archive at all"[..],
            "a file of another kind",
        ),
        (b"", "an empty file"),
        (b"BZh91AY&SY", "bzip2"),
    ] {
        let e = refused(bytes);
        assert!(matches!(e, IngestError::NotASource { .. }), "{e}");
        assert_msg(
            &e,
            &[
                found,
                "not a directory, tar, tar.gz, tar.xz, tar.zst or .deb",
            ],
        );
    }
    let e = refused(&gz(&[b'x'; 2000]));
    assert_msg(&e, &["gzip-compressed data that is not a tar archive"]);
    // An ar archive that is not a .deb.
    let e = refused(&ar(&[("foo.o", b"x")]));
    assert_msg(&e, &["first member is \"foo.o\""]);
}

// ---------------------------------------------------------------------------------------
// Directory sources

#[test]
fn directory_source() {
    let env = Env::new();
    let root = env.dir.path().join("root");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o700)).unwrap();
    // Symlinks are kept, never followed, even into a directory full of files.
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    std::os::unix::fs::symlink("tool", root.join("usr/bin/t")).unwrap();
    let t = read_source(&root, &Limits::default(), &|_| {}).unwrap();
    check_invariants(&t);
    assert!(t.spill_dir().is_none());
    let v = view(&t);
    assert_eq!(
        v,
        vec![
            ("empty".to_string(), "dir 700".to_string()),
            ("etc".into(), "link /etc".into()),
            ("usr".into(), "dir 755".into()),
            ("usr/bin".into(), "dir 755".into()),
            ("usr/bin/t".into(), "link tool".into()),
            ("usr/bin/tool".into(), "file 755 10 #!/bin/sh\n".into()),
        ]
    );
    match t.get("usr/bin/tool") {
        Some(Node::File {
            content: Content::Path(p),
            ..
        }) => assert!(p.is_absolute() && p.ends_with("root/usr/bin/tool")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn directory_source_refusals() {
    let env = Env::new();
    let root = env.dir.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    let st = Command::new("mkfifo")
        .arg(root.join("sub/pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    let e = read_source(&root, &Limits::default(), &|_| {}).unwrap_err();
    assert!(matches!(e, IngestError::SpecialFile { .. }), "{e}");
    assert_msg(&e, &["\"sub/pipe\"", "FIFO"]);

    // The FIFO itself as the source: refused without opening it (which would block).
    let e = read_source(&root.join("sub/pipe"), &Limits::default(), &|_| {}).unwrap_err();
    assert!(matches!(e, IngestError::NotASource { .. }), "{e}");
    assert_msg(&e, &["a FIFO"]);
    fs::remove_file(root.join("sub/pipe")).unwrap();

    // Non-UTF-8 names.
    use std::os::unix::ffi::OsStrExt;
    let bad = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::write(&bad, b"x").unwrap();
    let e = read_source(&root, &Limits::default(), &|_| {}).unwrap_err();
    assert!(matches!(e, IngestError::NonUtf8Name { .. }), "{e}");
    fs::remove_file(&bad).unwrap();

    // A device node, if we may make one (root in a container may not).
    let dev = root.join("null");
    if Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        let e = read_source(&root, &Limits::default(), &|_| {}).unwrap_err();
        assert_msg(&e, &["\"null\"", "character device"]);
        fs::remove_file(&dev).unwrap();
    }

    // Limits apply.
    fs::write(root.join("sub/f"), [0u8; 100]).unwrap();
    let e = read_source(
        &root,
        &Limits {
            max_file_bytes: 99,
            ..Limits::default()
        },
        &|_| {},
    )
    .unwrap_err();
    assert!(matches!(e, IngestError::FileTooBig { .. }), "{e}");
    read_source(&root, &Limits::default(), &|_| {}).unwrap();
}

// ---------------------------------------------------------------------------------------
// .deb files

fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut v = b"!<arch>\n".to_vec();
    for (name, data) in members {
        v.extend(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                100644,
                data.len()
            )
            .as_bytes(),
        );
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(b'\n');
        }
    }
    v
}

const CONTROL: &str = "Package: stork-test\n\
Version: 1:2.3-4\n\
Architecture: all\n\
Maintainer: Nobody <nobody@example.org>\n\
Depends: libc6 (>= 2.36),\n libfoo1 | libbar2\n\
Pre-Depends: dpkg (>= 1.19)\n\
Description: a test package\n A longer description\n .\n over lines.\n";

fn control_tar() -> Vec<u8> {
    tar_of(|b| {
        dir(b, "./", 0o755);
        file(b, "./control", 0o644, CONTROL.as_bytes());
        file(b, "./md5sums", 0o644, b"");
    })
}

fn check_control(c: &DebControl) {
    assert_eq!(c.package, "stork-test");
    assert_eq!(c.version, "1:2.3-4");
    assert_eq!(
        c.depends.as_deref(),
        Some("libc6 (>= 2.36), libfoo1 | libbar2, dpkg (>= 1.19)")
    );
    assert_eq!(
        c.field("description"),
        Some("a test package\n A longer description\n .\n over lines.")
    );
    assert_eq!(c.field("Architecture"), Some("all"));
}

#[test]
fn hand_made_debs() {
    let env = Env::new();
    let data = good_tar();
    let deb = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &gz(&control_tar())),
        ("data.tar.zst", &zst(&data)),
    ]);
    let t = env.read(&deb).unwrap();
    check_control(t.deb.as_ref().unwrap());
    assert_eq!(view(&t), view(&env.read(&data).unwrap()));

    // GNU ar's trailing '/' and '_' members are fine; plain tar members too.
    let deb = ar(&[
        ("debian-binary/", b"2.0\n"),
        ("control.tar/", &control_tar()),
        ("_gpgorigin", b"sig"),
        ("data.tar.xz/", &xz(&data)),
    ]);
    check_control(env.read(&deb).unwrap().deb.as_ref().unwrap());

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &gz(&control_tar())),
            ]),
            "no data.tar member",
        ),
        (
            ar(&[("debian-binary", b"2.0\n"), ("data.tar", &data)]),
            "no control.tar member",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                (
                    "control.tar",
                    &tar_of(|b| file(b, "./postinst", 0o755, b"")),
                ),
                ("data.tar", &data),
            ]),
            "no \"control\" file",
        ),
        (
            ar(&[("debian-binary", b"3.0\n"), ("data.tar", &data)]),
            "only format 2.x",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.bz2", b"BZh"),
                ("data.tar", &data),
            ]),
            "compressed in a way",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar", &control_tar()),
                ("evil", b""),
                ("data.tar", &data),
            ]),
            "unexpected member \"evil\"",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar", &control_tar()),
                ("data.tar", &data),
                ("data.tar", &data),
            ]),
            "two data.tar",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar", &control_tar()),
                ("data.tar.gz", b"\x1f\x8bnot really"),
            ]),
            "corrupt",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar", &control_tar()),
                ("data.tar", b"plain text, not a tar"),
            ]),
            "member \"data.tar\" is a file of another kind",
        ),
    ];
    for (bytes, why) in cases {
        let e = refused(&bytes);
        assert_msg(&e, &[why]);
    }
    // A .deb cut short.
    let deb = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control_tar()),
        ("data.tar", &data),
    ]);
    let e = refused(&deb[..deb.len() - 700]);
    assert!(
        matches!(
            e,
            IngestError::Corrupt { .. } | IngestError::Truncated { .. }
        ),
        "{e}"
    );
    // Hostile data is refused in a .deb like anywhere else.
    let evil = tar_of(|b| {
        symlink(b, "./lib", "/etc");
        file(b, "./lib/passwd", 0o644, b"x");
    });
    let deb = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control_tar()),
        ("data.tar", &evil),
    ]);
    let e = refused(&deb);
    assert!(matches!(e, IngestError::ThroughSymlink { .. }), "{e}");
}

#[test]
fn control_parsing() {
    let f = Path::new("x.deb");
    let c = deb::parse_control(f, CONTROL).unwrap();
    check_control(&c);
    assert_eq!(c.fields.len(), 7);
    let c = deb::parse_control(f, "Package: a\nVersion: 1\n").unwrap();
    assert_eq!(c.depends, None);
    for (text, why) in [
        (" leading continuation\n", "continuation line"),
        (
            "Package: a\nVersion: 1\nno colon here\n",
            "not a `Field: value` line",
        ),
        ("Package: a\nPackage: b\nVersion: 1\n", "appears twice"),
        ("Package: a\n", "no Version field"),
        ("Version: 1\n", "no Package field"),
        ("Package: a\nVersion: 1\n\nPackage: b\n", "second paragraph"),
        ("", "no fields"),
    ] {
        let e = deb::parse_control(f, text).unwrap_err();
        assert_msg(&e, &["x.deb", "control file", why]);
    }
}

/// Runs a command, failing the test with its stderr if it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Checks a tree against `dpkg-deb -c` of the same file: every listed file is there with
/// its size and mode, every directory and symlink too.
fn check_against_dpkg(deb: &Path, t: &Tree) {
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = 0;
    for line in listing.lines() {
        // perms owner size date time name[ -> target | link to target]
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..5 {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap();
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let name = rest.trim_start();
        let perms = fields[0];
        let size: u64 = fields[2].parse().unwrap();
        let (name, target) = match name.split_once(" -> ") {
            Some((n, t)) => (n, Some(t)),
            None => match name.split_once(" link to ") {
                Some((n, t)) => (n, Some(t)),
                None => (name, None),
            },
        };
        let path = name.trim_start_matches("./").trim_end_matches('/');
        if path.is_empty() {
            continue;
        }
        let node = t.get(path).unwrap_or_else(|| panic!("{path} missing"));
        match (perms.as_bytes()[0], node) {
            (
                b'-',
                Node::File {
                    size: s,
                    content: Content::Path(c),
                    ..
                },
            ) => {
                assert_eq!(*s, size, "{path}");
                assert_eq!(fs::metadata(c).unwrap().len(), size, "{path}");
                files += 1;
            }
            (b'h', Node::File { .. }) => {
                let target = target.unwrap().trim_start_matches("./");
                assert_eq!(t.get(target), Some(node), "{path}");
            }
            (b'd', Node::Dir { .. }) => {}
            (b'l', Node::Symlink { target: tt }) => assert_eq!(Some(tt.as_str()), target),
            (p, n) => panic!("{path}: dpkg says {}, we have {n:?}", p as char),
        }
    }
    assert!(files > 0);
}

#[test]
fn deb_built_by_dpkg_deb() {
    let env = Env::new();
    let root = env.dir.path().join("pkg");
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::create_dir_all(root.join(format!("usr/share/{}", "long-name-".repeat(12)))).unwrap();
    fs::write(root.join("DEBIAN/control"), CONTROL).unwrap();
    fs::write(root.join("usr/bin/tool"), vec![b'x'; 100_000]).unwrap();
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        root.join(format!(
            "usr/share/{}/{}",
            "long-name-".repeat(12),
            "f".repeat(120)
        )),
        b"long",
    )
    .unwrap();
    std::os::unix::fs::symlink("tool", root.join("usr/bin/t")).unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).unwrap();
    for z in ["gzip", "xz", "zstd", "none"] {
        let deb = env.dir.path().join(format!("stork-test-{z}.deb"));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Z", z, "--build"])
            .arg(&root)
            .arg(&deb));
        let t = read_source(&deb, &Limits::default(), &|_| {}).unwrap();
        check_invariants(&t);
        check_control(t.deb.as_ref().unwrap());
        check_against_dpkg(&deb, &t);
        assert!(matches!(
            t.get("usr/bin/tool"),
            Some(Node::File {
                mode: 0o755,
                size: 100_000,
                ..
            })
        ));
        assert_eq!(t.get("usr/bin/tool"), t.get("usr/bin/tool2"));
        assert!(t.get("DEBIAN").is_none());
    }
}

#[test]
fn deb_downloaded_with_apt() {
    let env = Env::new();
    // Let apt's sandbox user write here.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    run(Command::new("apt-get")
        .args(["download", "hello"])
        .current_dir(env.dir.path()));
    let deb = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("apt-get download produced no .deb");
    let t = read_source(&deb, &Limits::default(), &|_| {}).unwrap();
    check_invariants(&t);
    let c = t.deb.as_ref().unwrap();
    assert_eq!(c.package, "hello");
    let field = |f: &str| {
        run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f))
            .trim_end()
            .to_string()
    };
    assert_eq!(c.version, field("Version"));
    assert_eq!(c.depends.as_deref(), Some(field("Depends").as_str()));
    assert_eq!(c.field("Architecture").unwrap(), field("Architecture"));
    check_against_dpkg(&deb, &t);
    assert!(matches!(
        t.get("usr/bin/hello"),
        Some(Node::File { mode: 0o755, .. })
    ));
}

#[test]
fn sparse_files_from_gnu_tar() {
    let env = Env::new();
    let src = env.dir.path().join("sparse-src");
    fs::create_dir(&src).unwrap();
    let f = fs::File::create(src.join("holes")).unwrap();
    f.set_len(3 << 20).unwrap();
    drop(f);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(src.join("holes"))
        .unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(b"middle").unwrap();
    drop(f);
    // Old GNU sparse ('S' entries): read as a plain file with the holes as zeros.
    let gnu = env.dir.path().join("gnu.tar");
    run(Command::new("tar")
        .args(["--format=gnu", "--sparse", "-cf"])
        .arg(&gnu)
        .arg("-C")
        .arg(&src)
        .arg("holes"));
    let t = read_source(&gnu, &Limits::default(), &|_| {}).unwrap();
    match t.get("holes") {
        Some(Node::File {
            size,
            content: Content::Path(p),
            ..
        }) => {
            assert_eq!(*size, 3 << 20);
            assert_eq!(fs::read(p).unwrap(), fs::read(src.join("holes")).unwrap());
        }
        other => panic!("{other:?}"),
    }
    // PAX sparse (GNU.sparse.* records): refused rather than misread.
    let paxf = env.dir.path().join("pax.tar");
    run(Command::new("tar")
        .args(["--format=pax", "--sparse", "-cf"])
        .arg(&paxf)
        .arg("-C")
        .arg(&src)
        .arg("holes"));
    let e = read_source(&paxf, &Limits::default(), &|_| {}).unwrap_err();
    assert!(matches!(e, IngestError::Unsupported { .. }), "{e}");
    assert_msg(&e, &["PAX-format sparse"]);
}
