//! A repository over HTTPS, as the fstab example in the README has it: the system's
//! certificate authorities (here, a site CA given through SSL_CERT_FILE, as an admin with
//! an internal CA would install it) are trusted, and an untrusted certificate is refused
//! with a clear reason rather than served.

use std::path::{Path, PathBuf};

use harness::{assert_contains, Cmd, Mount, Nginx, Repo, TestDir};

/// A site CA and a certificate for localhost signed by it: (ca.pem, cert.pem, key.pem).
fn site_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let ssl = |args: &[&str]| {
        Cmd::new("openssl").args(args).current_dir(dir).ok();
    };
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Stork test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
    ]);
    std::fs::write(p("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

fn repo(t: &TestDir) -> (Repo, harness::Publisher) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = t.mkdir("src");
    t.write("src/hello.txt", b"hello over https\n");
    repo.add(&alice, "hello", "1.0", &src, &[]);
    repo.publish();
    (repo, alice)
}

#[test]
fn a_repository_over_https_with_a_site_ca() {
    let t = TestDir::new();
    let (repo, alice) = repo(&t);
    let (ca, cert, key) = site_ca(&t.mkdir("pki"));
    let nginx = Nginx::serve_tls(repo.dir(), &cert, &key);
    assert!(nginx.url().starts_with("https://"));
    let trust = repo.trust_toml(&[(&alice, &["*"])]);
    let m = Mount::new(&nginx.url(), &trust)
        .env("SSL_CERT_FILE", &ca.display().to_string())
        .start();
    assert_eq!(
        std::fs::read(m.path("hello/1.0/hello.txt")).unwrap(),
        b"hello over https\n"
    );
}

#[test]
fn an_untrusted_certificate_is_refused_with_the_reason() {
    let t = TestDir::new();
    let (repo, alice) = repo(&t);
    let (_ca, cert, key) = site_ca(&t.mkdir("pki"));
    let nginx = Nginx::serve_tls(repo.dir(), &cert, &key);
    // The node does not trust the site CA: no cached index, so the mount fails, naming
    // the repository and the certificate problem.
    let o = Mount::new(&nginx.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("timeout=10")
        .start_fails();
    assert_contains(&o.stderr, &["no cached index", &nginx.url()]);
    assert!(
        o.stderr.to_lowercase().contains("certificate"),
        "the reason should name the certificate:\n{o}"
    );
}
