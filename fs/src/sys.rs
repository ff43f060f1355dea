//! Small wrappers over the operating system.
//!
//! Almost everything goes through `nix`'s safe wrappers; the one `unsafe` block adopts
//! the readiness pipe our parent passed by number.

use std::io;
use std::path::Path;

/// Raises the open-file limit to its hard maximum (the cache keeps object files open).
pub fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Size and free space of the filesystem holding `path`, in bytes.
pub fn fs_space(path: &Path) -> io::Result<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let frag = s.fragment_size() as u64;
    Ok((s.blocks() as u64 * frag, s.blocks_available() as u64 * frag))
}

/// Starts a new session, detaching from the terminal of whoever started us.
pub fn detach() {
    let _ = nix::unistd::setsid();
}

/// Whether `path` is a FUSE mount whose daemon is gone ("Transport endpoint is not
/// connected").
pub fn is_dead_mount(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// Detaches a mount that is busy (`umount -l`): it leaves the namespace at once and
/// ends when its last open file is closed.
pub fn detach_mount(path: &Path) -> io::Result<()> {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).map_err(io::Error::from)
}

/// Takes ownership of a descriptor our parent passed us by number (the readiness pipe),
/// if it is open.
pub fn inherited_fd(fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd <= 2 || nix::fcntl::fcntl(unsafe_borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return None;
    }
    // SAFETY: `fd` is open (F_GETFD succeeded), was inherited from our parent for this
    // purpose only (STORK_READY_FD), and nothing else in this process owns or uses it;
    // we read the variable once, at start, before any other thread exists.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for the F_GETFD probe above, on a descriptor number that is
    // either open (then borrowing it briefly is fine) or closed (then fcntl fails with
    // EBADF, which is what we test for); the borrow does not outlive the call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
