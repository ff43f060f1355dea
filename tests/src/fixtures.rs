//! Sources to publish: sample and real trees, archives made by the system's tools,
//! hostile archives made with the `tar` crate, real `.deb`s.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::Cmd;

/// `len` deterministic pseudo-random bytes (xorshift64 from `seed`): incompressible.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a small tree exercising every kind of entry under `dir` (created) and returns
/// `dir`:
///
/// ```text
/// bin/tool            0755, 3000 bytes       bin/tool-again   hard link to bin/tool
/// lib/libdemo.so.1    2.5 MiB (3 chunks)     lib/libdemo.so   -> libdemo.so.1
/// share/doc/README    text                   share/doc/COPY   same bytes as README
/// share/doc/empty     0 bytes                share/empty-dir/ a directory, nothing in it
/// etc/secret.conf     0600                   share/abs        -> /usr/share/doc (absolute)
/// ```
pub fn sample_tree(dir: &Path) -> PathBuf {
    let w = |rel: &str, bytes: &[u8], mode: u32| {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let tool: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    w("bin/tool", &tool, 0o755);
    fs::hard_link(dir.join("bin/tool"), dir.join("bin/tool-again")).unwrap();
    w("lib/libdemo.so.1", &pseudo_random(1, 2_500_000), 0o644);
    std::os::unix::fs::symlink("libdemo.so.1", dir.join("lib/libdemo.so")).unwrap();
    let readme = "Stork sample package.\n".repeat(50);
    w("share/doc/README", readme.as_bytes(), 0o644);
    w("share/doc/COPY", readme.as_bytes(), 0o644);
    w("share/doc/empty", b"", 0o644);
    fs::create_dir_all(dir.join("share/empty-dir")).unwrap();
    std::os::unix::fs::symlink("/usr/share/doc", dir.join("share/abs")).unwrap();
    w("etc/secret.conf", b"key = value\n", 0o600);
    for d in ["bin", "lib", "share", "share/doc", "share/empty-dir", "etc"] {
        fs::set_permissions(dir.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.to_path_buf()
}

/// Archives of `tree` made by the system's `tar` (with gzip, xz and zstd):
/// `[name.tar, name.tar.gz, name.tar.xz, name.tar.zst]` in `out`.
pub fn system_archives(tree: &Path, out: &Path, name: &str) -> Vec<PathBuf> {
    [
        ("tar", ""),
        ("tar.gz", "--gzip"),
        ("tar.xz", "--xz"),
        ("tar.zst", "--zstd"),
    ]
    .iter()
    .map(|(ext, flag)| {
        let p = out.join(format!("{name}.{ext}"));
        let mut c = Cmd::new("tar").arg("-C").arg(tree).arg("-cf").arg(&p);
        if !flag.is_empty() {
            c = c.arg(flag);
        }
        c.arg(".").ok();
        p
    })
    .collect()
}

// ---------------------------------------------------------------------------------------
// Hostile archives

/// An archive `stork-repo add` must refuse.
pub struct Hostile {
    /// What is wrong with it.
    pub name: &'static str,
    /// The tar bytes.
    pub tar: Vec<u8>,
    /// The entry the refusal must name.
    pub entry: &'static str,
}

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

fn file(b: &mut TarB, path: &str, data: &[u8]) {
    let mut h = hdr(EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut TarB, path: &str) {
    let mut h = hdr(EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn link(b: &mut TarB, ty: EntryType, path: &str, target: &str) {
    let mut h = hdr(ty, 0o777, 0);
    b.append_link(&mut h, path, target).unwrap();
}

/// An entry whose name bytes go into the header verbatim (the tar crate refuses to
/// write `..` and absolute paths itself).
fn raw(b: &mut TarB, ty: EntryType, name: &str, data: &[u8]) {
    let mut h = hdr(ty, 0o644, data.len() as u64);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn special(b: &mut TarB, ty: EntryType, path: &str) {
    let mut h = hdr(ty, 0o666, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, path, &[][..]).unwrap();
}

/// One tar per kind of attack, each with a harmless file first (so nothing is refused
/// merely for being empty).
pub fn hostile_tars() -> Vec<Hostile> {
    vec![
        Hostile {
            name: "a ../ path",
            tar: tar_of(|b| {
                file(b, "ok.txt", b"fine");
                raw(b, EntryType::Regular, "../escaped", b"evil");
            }),
            entry: "../escaped",
        },
        Hostile {
            name: "an absolute path",
            tar: tar_of(|b| {
                file(b, "ok.txt", b"fine");
                raw(b, EntryType::Regular, "/etc/stork-evil", b"evil");
            }),
            entry: "/etc/stork-evil",
        },
        Hostile {
            name: "an entry through a symlink of the same archive",
            tar: tar_of(|b| {
                file(b, "ok.txt", b"fine");
                link(b, EntryType::Symlink, "lib", "/etc");
                file(b, "lib/cron.d/evil", b"* * * * * root sh");
            }),
            entry: "lib/cron.d/evil",
        },
        Hostile {
            name: "a character device",
            tar: tar_of(|b| {
                file(b, "ok.txt", b"fine");
                dir(b, "dev");
                special(b, EntryType::Char, "dev/mem");
            }),
            entry: "dev/mem",
        },
        Hostile {
            name: "a FIFO",
            tar: tar_of(|b| {
                file(b, "ok.txt", b"fine");
                special(b, EntryType::Fifo, "pipe");
            }),
            entry: "pipe",
        },
        Hostile {
            name: "a duplicate entry",
            tar: tar_of(|b| {
                file(b, "ok.txt", b"fine");
                file(b, "twice", b"first");
                file(b, "twice", b"second");
            }),
            entry: "twice",
        },
        Hostile {
            name: "a hard link to a symlink",
            tar: tar_of(|b| {
                file(b, "ok.txt", b"fine");
                link(b, EntryType::Symlink, "shadow-link", "/etc/shadow");
                link(b, EntryType::Link, "hard", "shadow-link");
            }),
            entry: "hard",
        },
    ]
}

// ---------------------------------------------------------------------------------------
// .debs

/// Builds `DIR/NAME_VERSION.deb` with `dpkg-deb --build --root-owner-group` from a tree
/// holding `files` (path, bytes, mode) and a control file with `depends` (omitted when
/// empty).
pub fn build_deb(
    dir: &Path,
    package: &str,
    version: &str,
    depends: &str,
    files: &[(&str, &[u8], u32)],
) -> PathBuf {
    let root = dir.join(format!("{package}-{version}-root"));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    let mut control = format!(
        "Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: Stork Tests <tests@example.org>\n"
    );
    if !depends.is_empty() {
        control.push_str(&format!("Depends: {depends}\n"));
    }
    control.push_str("Description: a package built by the Stork tests\n");
    fs::write(root.join("DEBIAN/control"), control).unwrap();
    for (path, bytes, mode) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
    }
    let deb = dir.join(format!("{package}_{version}_all.deb"));
    Cmd::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .ok();
    deb
}

/// Downloads the real package `pkg` with `apt-get download` into `dir`; returns the
/// `.deb`. Fails the test (never skips) when apt cannot fetch it: run `apt-get update`.
#[track_caller]
pub fn apt_download(pkg: &str, dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    // apt drops to its sandbox user (_apt) to write the file.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    let o = Cmd::new("apt-get")
        .args(["download", pkg])
        .current_dir(dir)
        .run();
    assert!(
        o.status.success(),
        "`apt-get download {pkg}` failed: this test needs a real .deb from the Debian mirrors \
         (run `apt-get update` first)\n{o}"
    );
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "deb")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{pkg}_"))
        })
        .unwrap_or_else(|| panic!("apt-get download {pkg} left no {pkg}_*.deb in {dir:?}\n{o}"))
}

/// A field of a `.deb`'s control file, from `dpkg-deb -f` ("" when absent).
pub fn deb_field(deb: &Path, field: &str) -> String {
    Cmd::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(field)
        .ok()
        .trim_end()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Real trees

/// A real Python library tree on this machine: the standard library directory of the
/// system's `/usr/bin/python3` (Debian's python3 package), else of the `python3` on PATH.
pub fn python_tree() -> PathBuf {
    let code = "import sysconfig; print(sysconfig.get_paths()['stdlib'])";
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Cmd::new(python).args(["-c", code]).ok();
    let p = PathBuf::from(out.trim());
    assert!(
        p.join("os.py").is_file(),
        "{python} says its stdlib is {p:?}, which has no os.py"
    );
    p
}

/// Copies the pure-Python part of [`python_tree`] restricted to the top-level modules
/// and packages named in `names` (e.g. `["json", "email", "os.py"]`) into `dst`, keeping
/// modes and symlinks; returns `dst`.
pub fn python_subset(dst: &Path, names: &[&str]) -> PathBuf {
    let src = python_tree();
    fs::create_dir_all(dst).unwrap();
    for n in names {
        assert!(src.join(n).exists(), "{src:?} has no {n}");
        Cmd::new("cp").arg("-a").arg(src.join(n)).arg(dst).ok();
    }
    dst.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_tars_parse_as_tar() {
        for h in hostile_tars() {
            let mut a = tar::Archive::new(h.tar.as_slice());
            let names: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
                .collect();
            assert!(names.iter().any(|n| n == h.entry), "{}: {names:?}", h.name);
        }
    }

    #[test]
    fn python_tree_is_real() {
        let p = python_tree();
        assert!(p.join("json/__init__.py").is_file());
    }
}
