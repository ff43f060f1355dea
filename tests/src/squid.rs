//! [`Squid`]: a real squid forward proxy on 127.0.0.1 with a memory-only cache.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::{free_port, Cmd, Daemon, TestDir};

/// One line of squid's native access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquidEntry {
    /// The cache result, e.g. `TCP_MISS`, `TCP_MEM_HIT`, `TCP_REFRESH_UNMODIFIED`.
    pub result: String,
    /// The HTTP status sent to the client.
    pub status: u16,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// The method.
    pub method: String,
    /// The URL requested.
    pub url: String,
}

impl SquidEntry {
    /// Whether squid answered from its cache (a HIT of any kind, or a successful
    /// revalidation).
    pub fn is_hit(&self) -> bool {
        self.result.contains("HIT") || self.result.contains("UNMODIFIED")
    }
}

/// squid's access log, parsed.
#[derive(Clone, Debug, Default)]
pub struct SquidLog {
    /// Proxied requests (`http://` URLs) in order; squid's own probes are left out.
    pub entries: Vec<SquidEntry>,
}

impl SquidLog {
    /// Every proxied request.
    pub fn requests(&self) -> usize {
        self.entries.len()
    }

    /// Those answered from the cache.
    pub fn hits(&self) -> usize {
        self.entries.iter().filter(|e| e.is_hit()).count()
    }

    /// Those fetched from the origin.
    pub fn misses(&self) -> usize {
        self.requests() - self.hits()
    }

    /// Those whose URL contains `s`.
    pub fn for_url(&self, s: &str) -> Vec<&SquidEntry> {
        self.entries.iter().filter(|e| e.url.contains(s)).collect()
    }
}

/// A real squid (`/usr/sbin/squid -N`) as a forward proxy on a free 127.0.0.1 port, with
/// its own configuration, logs and memory-only cache in a temporary directory; stopped on
/// drop. As root it runs as the `proxy` user, which gets the directory.
pub struct Squid {
    daemon: Daemon,
    dir: TestDir,
    port: u16,
}

/// (uid, gid) of a user from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && f[0] == name {
            return Some((f[2].parse().ok()?, f[3].parse().ok()?));
        }
    }
    None
}

impl Squid {
    /// Starts squid and waits until it answers.
    pub fn start() -> Squid {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let user = root.then(|| {
            let name = ["proxy", "nobody"]
                .into_iter()
                .find(|n| user_ids(n).is_some())
                .expect("neither a proxy nor a nobody user in /etc/passwd");
            (name, user_ids(name).unwrap())
        });
        let mut last = String::new();
        for _ in 0..5 {
            let dir = TestDir::new();
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let port = free_port();
            let conf = config(dir.path(), port, user.map(|u| u.0));
            let conf_path = dir.write("squid.conf", conf);
            if let Some((_, (uid, gid))) = user {
                std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            }
            let mut daemon = Cmd::new("/usr/sbin/squid")
                .args(["-N", "-f"])
                .arg(&conf_path)
                .spawn();
            let url = format!("http://127.0.0.1:{port}/");
            let up = crate::wait_for(Duration::from_secs(30), format!("squid on {url}"), || {
                if daemon.try_status().is_some() {
                    return Ok(false);
                }
                crate::http::Request::get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .map(|_| true)
                    .map_err(|e| format!("{e}\n{}", daemon.describe()))
            });
            if up {
                return Squid { daemon, dir, port };
            }
            last = format!(
                "{}\n--- cache.log ---\n{}",
                daemon.describe(),
                fs::read_to_string(dir.join("cache.log")).unwrap_or_default()
            );
            if !last.contains("Address already in use") {
                break;
            }
        }
        panic!("squid did not start\n{last}");
    }

    /// The proxy's URL, `http://127.0.0.1:PORT` (for `proxy=` options and `curl -x`).
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The access log so far, parsed.
    pub fn requests_logged(&self) -> SquidLog {
        let text = fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let entries = text
            .lines()
            .filter_map(|l| {
                // time elapsed client result/status bytes method URL user hierarchy type
                let f: Vec<&str> = l.split_whitespace().collect();
                let (result, status) = f.get(3)?.split_once('/')?;
                let e = SquidEntry {
                    result: result.to_string(),
                    status: status.parse().ok()?,
                    bytes: f.get(4)?.parse().ok()?,
                    method: f.get(5)?.to_string(),
                    url: f.get(6)?.to_string(),
                };
                e.url.starts_with("http://").then_some(e)
            })
            .collect();
        SquidLog { entries }
    }

    /// Everything about it, for failure messages.
    pub fn describe(&mut self) -> String {
        format!(
            "{}\n--- cache.log ---\n{}\n--- access.log ---\n{}",
            self.daemon.describe(),
            fs::read_to_string(self.dir.join("cache.log")).unwrap_or_default(),
            fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
        )
    }
}

fn config(dir: &Path, port: u16, user: Option<&str>) -> String {
    let d = dir.display();
    let user = user
        .map(|u| format!("cache_effective_user {u}\n"))
        .unwrap_or_default();
    format!(
        r#"# Written by the Stork test harness: a forward proxy for 127.0.0.1 only.
http_port 127.0.0.1:{port}
{user}pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log stdio:{d}/access.log squid
cache_store_log none
coredump_dir {d}
logfile_rotate 0
buffered_logs off
pinger_enable off
netdb_filename none
visible_hostname stork-test-proxy
shutdown_lifetime 0 seconds
# Memory-only cache (no cache_dir): big enough for test objects.
cache_mem 64 MB
maximum_object_size_in_memory 16 MB
maximum_object_size 16 MB
acl from_here src 127.0.0.1/32
http_access allow from_here
http_access deny all
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{http::Request, wait_for, Origin, SOON};

    #[test]
    fn proxies_and_caches_immutable_objects() {
        let d = TestDir::new();
        d.write("index.json", b"{}");
        d.write("objects/ab/abcd", vec![7u8; 5000]);
        let origin = Origin::serve(d.path());
        let squid = Squid::start();
        let obj = format!("{}objects/ab/abcd", origin.url());
        for _ in 0..3 {
            let r = Request::get(&obj).proxy(&squid.proxy_url()).send().unwrap();
            assert_eq!((r.status, r.body.len()), (200, 5000));
        }
        let r = Request::get(&format!("{}index.json", origin.url()))
            .proxy(&squid.proxy_url())
            .send()
            .unwrap();
        assert_eq!(r.body, b"{}");
        // The object came from the origin once; the log shows 1 miss and 2 hits.
        assert_eq!(origin.requests("abcd"), 1, "{}", origin.describe());
        let log = wait_for(SOON, "squid to log 4 requests", || {
            let l = squid.requests_logged();
            if l.requests() >= 4 {
                Ok(l)
            } else {
                Err(format!("{l:?}"))
            }
        });
        let obj_entries = log.for_url("abcd");
        assert_eq!(obj_entries.len(), 3, "{log:?}");
        assert_eq!(
            obj_entries.iter().filter(|e| e.is_hit()).count(),
            2,
            "{log:?}"
        );
    }
}
