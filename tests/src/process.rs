//! Running commands ([`Cmd`]) and background processes ([`Daemon`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, http::Request, wait_for, HttpResponse};

/// A command to run, built up like `std::process::Command`, whose failures print
/// everything: the command line, the status, stdout and stderr.
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// What a finished [`Cmd`] did.
pub struct Outcome {
    /// The command line, shell-quoted.
    pub line: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
    /// Its standard output, as bytes.
    pub stdout_bytes: Vec<u8>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.line, self.status, self.stdout, self.stderr
        )
    }
}

impl Outcome {
    /// stdout then stderr.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Cmd {
    /// A command running `program` (a path or a name looked up in `PATH`).
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            stdin: None,
        }
    }

    /// A command running workspace binary `name` (see [`bin`]).
    pub fn bin(name: &str) -> Cmd {
        Cmd::new(bin(name))
    }

    /// Adds an argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Feeds `bytes` on standard input (otherwise it is empty).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// The command line, shell-quoted.
    pub fn line(&self) -> String {
        let mut s = quote(&self.program);
        for a in &self.args {
            s.push(' ');
            s.push_str(&quote(a));
        }
        if let Some(d) = &self.dir {
            s = format!("(cd {} && {s})", quote(d.as_os_str()));
        }
        s
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    /// Runs it to completion, whatever the outcome.
    pub fn run(self) -> Outcome {
        let line = self.line();
        let mut c = self.command();
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {line}: {e} (is it installed?)"));
        let input = self.stdin.unwrap_or_default();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("cannot wait for {line}: {e}"));
        let _ = writer.join();
        Outcome {
            line,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout_bytes: out.stdout,
        }
    }

    /// Runs it, asserts success, returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        let o = self.run();
        assert!(o.status.success(), "expected success\n{o}");
        o.stdout
    }

    /// Runs it, asserts a clean failure (a non-zero exit code, not a signal nor a Rust
    /// panic), returns stderr.
    #[track_caller]
    pub fn fails(self) -> String {
        let o = self.run();
        o.assert_clean_failure();
        o.stderr
    }

    /// Starts it in the background, in its own process group, with stdout and stderr
    /// going to files (see [`Daemon`]).
    pub fn spawn(self) -> Daemon {
        let line = self.line();
        let logs = tempfile::Builder::new()
            .prefix("stork-daemon-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let out_path = logs.path().join("stdout");
        let err_path = logs.path().join("stderr");
        let mut c = self.command();
        c.stdin(Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap())
            .process_group(0);
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {line}: {e} (is it installed?)"));
        Daemon {
            line,
            child,
            out_path,
            err_path,
            _logs: logs,
            exited: None,
            reaped: false,
        }
    }
}

impl Outcome {
    /// Asserts a clean failure (see [`Cmd::fails`]).
    #[track_caller]
    pub fn assert_clean_failure(&self) {
        match self.status.code() {
            Some(0) => panic!("expected a failure\n{self}"),
            Some(101) => panic!("expected a clean failure, got a panic (exit 101)\n{self}"),
            Some(_) => {}
            None => panic!(
                "expected a clean failure, got signal {:?}\n{self}",
                self.status.signal()
            ),
        }
        assert!(
            !self.stderr.contains("panicked at"),
            "expected a clean failure, got a panic\n{self}"
        );
    }
}

/// A background process (and its process group), stopped on drop: SIGTERM, then SIGKILL
/// if it has not exited within a few seconds. Its output is kept in files.
pub struct Daemon {
    line: String,
    child: Child,
    out_path: PathBuf,
    err_path: PathBuf,
    _logs: tempfile::TempDir,
    exited: Option<ExitStatus>,
    reaped: bool,
}

impl Daemon {
    /// Its process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.out_path).unwrap_or_default()).into_owned()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.err_path).unwrap_or_default()).into_owned()
    }

    /// Everything about it, for failure messages.
    pub fn describe(&mut self) -> String {
        let status = match self.try_status() {
            Some(s) => format!("exited: {s}"),
            None => "running".into(),
        };
        format!(
            "process: {} (pid {}, {status})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.line,
            self.pid(),
            self.stdout(),
            self.stderr()
        )
    }

    /// Its exit status if it has exited. The process is left a zombie (not reaped) until
    /// [`Daemon::stop`], so its process group id cannot be reused by another process
    /// before the group is killed.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            // SAFETY: waitid(2) writes only into `info`, which we own; WNOWAIT leaves the
            // child unreaped.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.child.id() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                )
            };
            // SAFETY: the fields are valid after a successful waitid.
            let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
            if r == 0 && pid != 0 {
                let raw = if info.si_code == libc::CLD_EXITED {
                    (status & 0xff) << 8
                } else {
                    status & 0x7f
                };
                self.exited = Some(ExitStatus::from_raw(raw));
            }
        }
        self.exited
    }

    /// Panics (describing it) unless it is still running.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if self.try_status().is_some() {
            panic!("exited unexpectedly\n{}", self.describe());
        }
    }

    /// Waits until `url` answers any HTTP response, failing at once if the process dies.
    pub fn wait_for_http(&mut self, url: &str, timeout: Duration) -> HttpResponse {
        wait_for(timeout, format!("{url} to answer"), || {
            if self.try_status().is_some() {
                panic!("exited before answering {url}\n{}", self.describe());
            }
            Request::get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .map_err(|e| format!("{e}\n{}", self.describe()))
        })
    }

    /// Waits for it to exit by itself, for at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for(timeout, format!("{} to exit", self.line), || {
            self.try_status().ok_or_else(|| "still running".to_string())
        })
    }

    /// Sends `signal` to its process group (nothing once it has been reaped).
    pub fn signal(&self, signal: i32) {
        if self.reaped {
            return;
        }
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) has no memory-safety preconditions; the group is our child's.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }

    /// Stops it (and its process group): SIGTERM, up to 5 s to exit, then SIGKILL to
    /// whatever is left of the group (workers, helpers), then reaps it.
    pub fn stop(&mut self) {
        if self.reaped {
            return;
        }
        if self.try_status().is_none() {
            self.signal(libc::SIGTERM);
            let until = Instant::now() + Duration::from_secs(5);
            while self.try_status().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The leader is alive or a zombie, so the group id is still ours.
        self.signal(libc::SIGKILL);
        if let Ok(s) = self.child.wait() {
            self.exited = Some(s);
        }
        self.reaped = true;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
