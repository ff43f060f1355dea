//! [`Nginx`]: a real nginx serving a repository directory like `stork-repo serve`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::{free_port, Cmd, Daemon, TestDir};

/// The nginx `server` block for a Stork repository (the README shows the same). It sends
/// the caching headers `stork-repo serve` sends: objects are immutable, everything else
/// (notably `index.json`) must be revalidated; hidden files (`.lock`, `.tmp/`) and
/// symlinks are never served. Replace `listen` and `root` with yours.
pub const NGINX_SITE: &str = r#"server {
    listen 80;
    server_name _;
    root /srv/stork;
    autoindex off;
    disable_symlinks on;
    types { application/json json; }
    default_type application/octet-stream;

    # Hidden files (.lock, .tmp/) are the publisher's business.
    location ~ /\. {
        return 404;
    }
    # Content-addressed objects never change: cache them forever.
    location /objects/ {
        add_header Cache-Control "public, max-age=31536000, immutable" always;
    }
    # index.json (and the release records) change: always revalidate.
    location / {
        add_header Cache-Control "no-cache" always;
    }
}
"#;

/// A real nginx (`/usr/sbin/nginx`, in the foreground) serving a directory on a free
/// port of 127.0.0.1 with [`NGINX_SITE`]; stopped on drop.
pub struct Nginx {
    daemon: Daemon,
    dir: TestDir,
    port: u16,
    tls: bool,
}

impl Nginx {
    /// Starts nginx over `root` and waits until it answers.
    pub fn serve(root: &Path) -> Nginx {
        Nginx::start(root, None)
    }

    /// Starts nginx over `root` on HTTPS with this certificate and key (PEM files), and
    /// waits until it answers. [`Nginx::url`] is then `https://localhost:PORT/`.
    pub fn serve_tls(root: &Path, cert: &Path, key: &Path) -> Nginx {
        Nginx::start(root, Some((cert, key)))
    }

    fn start(root: &Path, tls: Option<(&Path, &Path)>) -> Nginx {
        let root = fs::canonicalize(root).unwrap_or_else(|e| panic!("{root:?}: {e}"));
        let mut last = String::new();
        // A port found free may be taken before nginx binds it: try a few.
        for _ in 0..5 {
            let dir = TestDir::new();
            let port = free_port();
            let conf = config(dir.path(), &root, port, tls);
            let conf_path = dir.write("nginx.conf", conf);
            let mut daemon = Cmd::new("/usr/sbin/nginx")
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .args(["-g", "daemon off;"])
                .spawn();
            let url = format!("http://127.0.0.1:{port}/");
            let up = crate::wait_for(Duration::from_secs(20), format!("nginx on {url}"), || {
                if daemon.try_status().is_some() {
                    return Ok(false);
                }
                if tls.is_some() {
                    // Any answer over TLS will do (the certificate is checked by the test).
                    let o = Cmd::new("curl")
                        .args(["-sk", "-o", "/dev/null", "--max-time", "2"])
                        .arg(format!("https://127.0.0.1:{port}/"))
                        .run();
                    return if o.status.success() {
                        Ok(true)
                    } else {
                        Err(format!("{o}\n{}", daemon.describe()))
                    };
                }
                crate::http::Request::get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .map(|_| true)
                    .map_err(|e| format!("{e}\n{}", daemon.describe()))
            });
            if up {
                return Nginx {
                    daemon,
                    dir,
                    port,
                    tls: tls.is_some(),
                };
            }
            last = format!(
                "{}\n--- error.log ---\n{}",
                daemon.describe(),
                fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            if !last.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx did not start\n{last}");
    }

    /// `http://127.0.0.1:PORT/`, or `https://localhost:PORT/` with TLS.
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/", self.port)
        } else {
            format!("http://127.0.0.1:{}/", self.port)
        }
    }

    /// Its access log so far.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Everything about it, for failure messages.
    pub fn describe(&mut self) -> String {
        format!(
            "{}\n--- error.log ---\n{}\n--- access.log ---\n{}",
            self.daemon.describe(),
            self.error_log(),
            self.access_log()
        )
    }
}

fn config(prefix: &Path, root: &Path, port: u16, tls: Option<(&Path, &Path)>) -> String {
    let p = prefix.display();
    let listen = match tls {
        None => format!("listen 127.0.0.1:{port};"),
        Some((cert, key)) => format!(
            "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
            cert.display(),
            key.display()
        ),
    };
    let site = NGINX_SITE.replacen("listen 80;", &listen, 1).replacen(
        "root /srv/stork;",
        &format!("root {};", root.display()),
        1,
    );
    assert!(site.contains(&format!(":{port}")) && site.contains(&root.display().to_string()));
    format!(
        r#"# Written by the Stork test harness.
user root;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    sendfile on;
{site}}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curl;

    #[test]
    fn serves_with_the_site_headers() {
        let d = TestDir::new();
        d.write("index.json", b"{}");
        d.write("objects/ab/abcd", b"object");
        d.write(".lock", b"");
        d.symlink("link.json", "index.json");
        let n = Nginx::serve(d.path());
        let r = curl(&format!("{}index.json", n.url()), &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert_eq!(r.header("Cache-Control"), Some("no-cache"));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let r = curl(&format!("{}objects/ab/abcd", n.url()), &[]);
        assert_eq!(r.body, b"object");
        assert_eq!(
            r.header("Cache-Control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(curl(&format!("{}.lock", n.url()), &[]).status, 404);
        assert_eq!(curl(&format!("{}link.json", n.url()), &[]).status, 403);
    }
}
