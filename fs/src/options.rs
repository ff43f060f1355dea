//! The command line and `-o` options, parsed once into one validated [`MountOptions`].
//!
//! `storkfs REPO_URL MOUNTPOINT [-o OPT[,OPT...]]... [-f]` follows the calling convention
//! of `mount.fuse3`, so an fstab line of type `fuse.storkfs` works. Every option has a
//! default; an unknown or malformed option is an error that names it. Generic mount
//! options that mount(8) and mount.fuse3 pass along (`_netdev`, `nofail`, `auto`,
//! `defaults`, `x-systemd.*`, ...) are accepted and ignored; options that would weaken
//! the mount (`rw`, `suid`, `dev`, which mount(8) adds for `defaults` and as root) are
//! accepted and have no effect: the mount is always read-only, nosuid and nodev.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use thiserror::Error;

/// Where log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (the default with `-f`).
    Stderr,
    /// The system log via /dev/log (the default in the background, when it exists).
    Syslog,
    /// Appended to a file.
    File(PathBuf),
}

/// The cache size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// A number of bytes.
    Bytes(u64),
    /// A percentage of the cache's filesystem size (the default is 10%).
    Percent(u8),
}

/// Everything the daemon is told at start, validated.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// The repository's base URL (always ends with `/`).
    pub repo: Url,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Stay in the foreground (`-f`).
    pub foreground: bool,
    /// `cache=`: the node's cache directory.
    pub cache_dir: PathBuf,
    /// `trust=`: the trust file.
    pub trust_file: PathBuf,
    /// `socket=`: the control socket.
    pub socket: PathBuf,
    /// `mirrors=`: tried in order after the origin.
    pub mirrors: Vec<Url>,
    /// `proxy=`: an HTTP proxy for every source (else `http_proxy`/`https_proxy`).
    pub proxy: Option<Url>,
    /// `peers=`: other nodes' verified caches.
    pub peers: Vec<Url>,
    /// `serve=`: serve this node's verified cache to peers.
    pub serve: Option<SocketAddr>,
    /// `quota=`: the cache limit.
    pub quota: Quota,
    /// `refresh=`: how often to look for a new index.
    pub refresh: Duration,
    /// `timeout=`: the longest a read waits on the network before EIO.
    pub timeout: Duration,
    /// `log=`: where log lines go; `None` picks the default for the mode.
    pub log: Option<LogTarget>,
    /// `log_level=`: a tracing filter such as `info` or `storkfs=debug`.
    pub log_level: String,
    /// `allow_other`: let every uid use the mount (what slices need).
    pub allow_other: bool,
    /// `noexec`: forbid running programs from the mount.
    pub noexec: bool,
    /// `threads=`: FUSE request loops.
    pub threads: usize,
}

/// A command line that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionError {
    /// Not an option we know.
    #[error("unknown option '{0}' (storkfs --help lists them)")]
    Unknown(String),
    /// A known option with a bad value.
    #[error("option '{name}': {why}")]
    Bad {
        /// The option.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The positional arguments are wrong.
    #[error("{0}")]
    Usage(String),
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    /// Mount.
    Mount(Box<MountOptions>),
    /// Print help.
    Help,
    /// Print the version.
    Version,
}

/// Help text for `storkfs --help`.
pub const HELP: &str = "\
storkfs: mount a Stork repository read-only, fetching and verifying files on first use

usage: storkfs REPO_URL MOUNTPOINT [-o OPT[,OPT...]] [-f]

  -f               stay in the foreground (otherwise return once the mount is ready)
  -o OPTIONS       comma-separated options:
     cache=DIR        cache directory                     [/var/cache/stork]
     trust=FILE       trust file                          [/etc/stork/trust.toml]
     socket=PATH      control socket for storkctl         [/run/stork/ctl.sock]
     mirrors=URL|URL  mirrors, tried in order after REPO_URL
     proxy=URL        HTTP proxy (default: $http_proxy / $https_proxy)
     peers=URL|URL    other nodes serving their caches (accepted; not in this version)
     serve=ADDR:PORT  serve this node's cache to peers (accepted; not in this version)
     quota=SIZE       cache limit, e.g. 20G, 512M, or 15% of the cache filesystem [10%]
     refresh=SECONDS  how often to look for a new index   [300]
     timeout=SECONDS  longest a read waits on the network before EIO [30]
     log=FILE|syslog|stderr  where logs go [stderr with -f, else syslog]
     log_level=FILTER e.g. info, debug, storkfs=trace     [info]
     allow_other      let every user (slice) read the mount
     threads=N        FUSE request loops                  [4]
     ro, noexec, nosuid, nodev, default_permissions, _netdev, nofail, auto, noauto,
     defaults, user, users, noatime, relatime, x-systemd.*, comment=...  accepted;
     rw, suid, dev are accepted and ignored: the mount is always ro, nosuid, nodev
  -h, --help       this help
  -V, --version    the version

The mount is always read-only, nosuid and nodev. Unmount with umount MOUNTPOINT
or fusermount3 -u MOUNTPOINT.
";

impl MountOptions {
    fn defaults(repo: Url, mountpoint: PathBuf) -> MountOptions {
        MountOptions {
            repo,
            mountpoint,
            foreground: false,
            cache_dir: PathBuf::from("/var/cache/stork"),
            trust_file: PathBuf::from("/etc/stork/trust.toml"),
            socket: PathBuf::from("/run/stork/ctl.sock"),
            mirrors: vec![],
            proxy: None,
            peers: vec![],
            serve: None,
            quota: Quota::Percent(10),
            refresh: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            log: None,
            log_level: "info".into(),
            allow_other: false,
            noexec: false,
            threads: 4,
        }
    }

    /// The log target in effect.
    pub fn log_target(&self) -> LogTarget {
        match &self.log {
            Some(t) => t.clone(),
            None if self.foreground => LogTarget::Stderr,
            None => LogTarget::Syslog,
        }
    }

    /// The `-o` string that gives these options back (used when re-running in the
    /// background).
    pub fn apply(&mut self, opt: &str) -> Result<(), OptionError> {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let bad = |why: &str| OptionError::Bad {
            name: name.to_string(),
            why: why.to_string(),
        };
        let need = || {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad("needs a value"))
        };
        let flag = || match value {
            None => Ok(()),
            Some(_) => Err(bad("takes no value")),
        };
        match name {
            "cache" => self.cache_dir = absolute(need()?, name)?,
            "trust" => self.trust_file = absolute(need()?, name)?,
            "socket" => self.socket = absolute(need()?, name)?,
            "mirrors" => self.mirrors = urls(need()?, name)?,
            "peers" => self.peers = urls(need()?, name)?,
            "proxy" => self.proxy = Some(url(need()?, name)?),
            "serve" => {
                self.serve = Some(
                    need()?
                        .parse()
                        .map_err(|_| bad("expected ADDR:PORT, e.g. 0.0.0.0:7070"))?,
                )
            }
            "quota" => self.quota = parse_quota(need()?).map_err(|w| bad(&w))?,
            "refresh" => self.refresh = seconds(need()?, name, 1, 7 * 86400)?,
            "timeout" => self.timeout = seconds(need()?, name, 1, 3600)?,
            "threads" => {
                self.threads = need()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| bad("expected a number of threads from 1 to 64"))?
            }
            "log" => {
                self.log = Some(match need()? {
                    "stderr" => LogTarget::Stderr,
                    "syslog" => LogTarget::Syslog,
                    path => LogTarget::File(absolute(path, name)?),
                })
            }
            "log_level" => {
                let v = need()?;
                tracing_subscriber::EnvFilter::try_new(v)
                    .map_err(|e| bad(&format!("not a log filter: {e}")))?;
                self.log_level = v.to_string();
            }
            "allow_other" => {
                flag()?;
                self.allow_other = true
            }
            "noexec" => {
                flag()?;
                self.noexec = true
            }
            // mount(8) and mount.fuse3 pass these for `defaults` or as root; the mount is
            // read-only, nosuid and nodev whatever they say.
            "rw" | "suid" | "dev" => flag()?,
            // Always in effect, or meaningful only to mount(8) and its helpers.
            "ro"
            | "nosuid"
            | "nodev"
            | "default_permissions"
            | "exec"
            | "_netdev"
            | "nofail"
            | "auto"
            | "noauto"
            | "defaults"
            | "user"
            | "users"
            | "nouser"
            | "owner"
            | "group"
            | "atime"
            | "noatime"
            | "relatime"
            | "strictatime"
            | "nodiratime"
            | "lazytime"
            | "async"
            | "sync"
            | "dirsync"
            | "allow_root" => flag()?,
            "comment" | "fsname" | "subtype" => {}
            n if n.starts_with("x-") => {}
            _ => return Err(OptionError::Unknown(opt.to_string())),
        }
        Ok(())
    }
}

/// Parses the command line (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Invocation, OptionError> {
    let mut positional = Vec::new();
    let mut opts = Vec::new();
    let mut foreground = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "-f" => foreground = true,
            "-o" => opts.push(
                it.next()
                    .ok_or_else(|| OptionError::Usage("-o needs a list of options".into()))?,
            ),
            s if s.starts_with("-o") && s.len() > 2 => opts.push(s[2..].to_string()),
            // mount(8) passes -n (no mtab), -s (sloppy), -v (verbose): harmless.
            "-n" | "-s" | "-v" => {}
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(OptionError::Usage(format!(
                    "unknown flag '{s}' (storkfs --help lists them)"
                )))
            }
            _ => positional.push(a),
        }
    }
    let [repo, mountpoint] = <[String; 2]>::try_from(positional).map_err(|p| {
        OptionError::Usage(format!(
            "expected REPO_URL MOUNTPOINT, got {} arguments (storkfs --help)",
            p.len()
        ))
    })?;
    let repo = url(&repo, "REPO_URL")?;
    let mountpoint = PathBuf::from(&mountpoint);
    let mut m = MountOptions::defaults(repo, mountpoint);
    m.foreground = foreground;
    for group in &opts {
        for opt in group.split(',').filter(|o| !o.is_empty()) {
            m.apply(opt)?;
        }
    }
    Ok(Invocation::Mount(Box::new(m)))
}

fn url(s: &str, name: &str) -> Result<Url, OptionError> {
    let bad = |why: String| OptionError::Bad {
        name: name.to_string(),
        why,
    };
    let mut u = Url::parse(s).map_err(|e| bad(format!("{s:?} is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad(format!(
            "{s:?}: only http and https URLs are supported"
        )));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad(format!(
            "{s:?}: a repository URL has no query or fragment"
        )));
    }
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    Ok(u)
}

fn urls(s: &str, name: &str) -> Result<Vec<Url>, OptionError> {
    s.split('|').map(|u| url(u, name)).collect()
}

fn absolute(s: &str, name: &str) -> Result<PathBuf, OptionError> {
    let p = PathBuf::from(s);
    if !p.is_absolute() {
        return Err(OptionError::Bad {
            name: name.to_string(),
            why: format!("{s:?} must be an absolute path"),
        });
    }
    Ok(p)
}

fn seconds(s: &str, name: &str, min: u64, max: u64) -> Result<Duration, OptionError> {
    s.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .map(Duration::from_secs)
        .ok_or_else(|| OptionError::Bad {
            name: name.to_string(),
            why: format!("expected whole seconds from {min} to {max}, got {s:?}"),
        })
}

/// Parses `20G`, `512M`, `1.5T`? (no: whole numbers), `4096`, or `15%`.
pub fn parse_quota(s: &str) -> Result<Quota, String> {
    if let Some(p) = s.strip_suffix('%') {
        return p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=95).contains(p))
            .map(Quota::Percent)
            .ok_or_else(|| format!("{s:?}: a percentage must be from 1% to 95%"));
    }
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("{s:?}: the unit must be K, M, G or T")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n >= 1 << 20)
        .map(Quota::Bytes)
        .ok_or_else(|| format!("{s:?}: expected a size of at least 1M, e.g. 20G"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<MountOptions, OptionError> {
        match parse_args(args.iter().map(|s| s.to_string()))? {
            Invocation::Mount(m) => Ok(*m),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_fstab_line_parses() {
        let m = parse(&[
            "https://repo.example.org/stork",
            "/stork",
            "-o",
            "ro,allow_other,_netdev,cache=/var/cache/stork,trust=/etc/stork/trust.toml",
        ])
        .unwrap();
        assert_eq!(m.repo.as_str(), "https://repo.example.org/stork/");
        assert!(m.allow_other);
        assert!(!m.foreground);
        assert_eq!(m.cache_dir, PathBuf::from("/var/cache/stork"));
    }

    #[test]
    fn every_option() {
        let m = parse(&[
            "http://127.0.0.1:8080/",
            "/mnt",
            "-f",
            "-o",
            "mirrors=http://a/|http://b/x,proxy=http://p:3128,peers=http://n1:7070",
            "-oserve=0.0.0.0:7070,quota=25M,refresh=60,timeout=5,log=/tmp/s.log,log_level=debug,socket=/tmp/s.sock,threads=2,nofail,x-systemd.automount,comment=x",
        ])
        .unwrap();
        assert!(m.foreground);
        assert_eq!(m.mirrors.len(), 2);
        assert_eq!(m.mirrors[1].as_str(), "http://b/x/");
        assert_eq!(m.quota, Quota::Bytes(25 << 20));
        assert_eq!(m.timeout, Duration::from_secs(5));
        assert_eq!(m.log_target(), LogTarget::File("/tmp/s.log".into()));
        assert_eq!(m.threads, 2);
        assert!(m.serve.is_some() && m.proxy.is_some() && m.peers.len() == 1);
    }

    #[test]
    fn errors_name_the_option() {
        let e = |o: &str| {
            parse(&["http://x/", "/m", "-o", o])
                .unwrap_err()
                .to_string()
        };
        assert!(e("colour=blue").contains("'colour=blue'"));
        assert!(e("timeout=0").contains("'timeout'"));
        assert!(e("timeout=abc").contains("'timeout'"));
        assert!(e("quota=12Q").contains("'quota'"));
        assert!(e("quota=0%").contains("'quota'"));
        assert!(e("cache=relative").contains("absolute"));
        assert!(e("mirrors=ftp://x").contains("http"));
        // mount(8) passes these for `defaults`; they never weaken the mount.
        assert!(parse(&["http://x/", "/m", "-o", "rw,suid,dev"]).is_ok());
        assert!(e("allow_other=1").contains("takes no value"));
        assert!(e("cache=").contains("needs a value"));
        assert!(parse(&["http://x/"]).is_err());
        assert!(parse(&["file:///x", "/m"])
            .unwrap_err()
            .to_string()
            .contains("http"));
        assert!(parse(&["http://x/", "/m", "-q"]).is_err());
    }

    #[test]
    fn quotas() {
        assert_eq!(parse_quota("20G").unwrap(), Quota::Bytes(20 << 30));
        assert_eq!(parse_quota("15%").unwrap(), Quota::Percent(15));
        assert_eq!(parse_quota("1048576").unwrap(), Quota::Bytes(1 << 20));
        assert!(parse_quota("100").is_err());
        assert!(parse_quota("99999999999T").is_err());
    }
}
