//! Exit codes and the one-line error, chosen in one place for both programs.

use std::io::ErrorKind;

/// Success.
pub const OK: i32 = 0;
/// The command failed; the reason is on stderr.
pub const FAILED: i32 = 1;
/// The command line was wrong (clap uses the same code).
pub const USAGE: i32 = 2;
/// The daemon could not be reached.
pub const NO_DAEMON: i32 = 3;

/// Marks an error that should exit with a specific code.
#[derive(Debug)]
pub struct Code(pub i32);

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}
impl std::error::Error for Code {}

/// Prints `program: cause: cause…` on one line and exits with the right code. A closed
/// stdout pipe (`storkctl list | head`) is not an error.
pub fn finish(program: &str, result: anyhow::Result<()>) -> ! {
    let Err(err) = result else {
        std::process::exit(OK);
    };
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == ErrorKind::BrokenPipe {
                std::process::exit(OK);
            }
        }
    }
    let code = err
        .chain()
        .find_map(|c| c.downcast_ref::<Code>().map(|c| c.0))
        .unwrap_or(FAILED);
    // `{err:#}` without the exit-code marker, which is for us, not for the reader.
    let text = err
        .chain()
        .filter(|c| !c.is::<Code>())
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    eprintln!("{program}: {}", policy::sanitize::escape(&text));
    std::process::exit(code);
}
