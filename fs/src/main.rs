//! `storkfs REPO_URL MOUNTPOINT [-o OPTS] [-f]`.

use storkfs::options::{self, Invocation, HELP};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match options::parse_args(args.clone()) {
        Ok(Invocation::Help) => {
            print!("{HELP}");
            Ok(())
        }
        Ok(Invocation::Version) => {
            println!("storkfs {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Ok(Invocation::Mount(opts)) if opts.foreground => storkfs::daemon::run_foreground(*opts),
        Ok(Invocation::Mount(opts)) => storkfs::daemon::run_background(&opts, &args),
        Err(e) => {
            eprintln!("storkfs: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("storkfs: {}", policy::sanitize::escape(&format!("{e:#}")));
        std::process::exit(1);
    }
}
