//! Directory sources: walked without following symlinks.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use policy::TreePath;

use super::build::{symlink_target, Builder};
use super::{Content, IngestError, Node};

/// Walks `root` (already known to be a directory) into `b`.
pub(crate) fn read_dir_tree(root: &Path, b: &mut Builder) -> Result<(), IngestError> {
    let io = |file: &Path, doing: &str, error| IngestError::Io {
        file: file.into(),
        doing: doing.into(),
        error,
    };
    // Messages name the source as the caller gave it.
    let src = b.file.clone();
    let mut stack: Vec<(PathBuf, Option<TreePath>)> = vec![(root.to_path_buf(), None)];
    while let Some((dir, rel)) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(|e| io(&dir, "list the directory", e))?;
        for de in rd {
            let de = de.map_err(|e| io(&dir, "list the directory", e))?;
            let abs = de.path();
            let os_name = de.file_name();
            let shown = match &rel {
                Some(r) => format!("{r}/{}", os_name.to_string_lossy()),
                None => os_name.to_string_lossy().into_owned(),
            };
            b.count_entry()?;
            let Some(name) = os_name.to_str() else {
                return Err(IngestError::NonUtf8Name {
                    file: src.clone(),
                    entry: shown,
                });
            };
            let path = match &rel {
                Some(r) => r.join(name),
                None => TreePath::new(name),
            }
            .map_err(|e| IngestError::BadPath {
                file: src.clone(),
                entry: shown.clone(),
                why: match e {
                    policy::NameError::Path { why, .. } => why,
                    other => other.to_string(),
                },
            })?;
            let md = fs::symlink_metadata(&abs).map_err(|e| io(&abs, "stat", e))?;
            let ft = md.file_type();
            let mode = md.permissions().mode() & 0o7777;
            let node = if ft.is_dir() {
                stack.push((abs.clone(), Some(path.clone())));
                Node::Dir { mode }
            } else if ft.is_file() {
                let size = md.len();
                b.reserve_bytes(&shown, size)?;
                b.add_bytes(size);
                Node::File {
                    mode,
                    size,
                    content: Content::Path(abs.clone()),
                }
            } else if ft.is_symlink() {
                let t = fs::read_link(&abs).map_err(|e| io(&abs, "read the symlink", e))?;
                Node::Symlink {
                    target: symlink_target(&src, &shown, t.as_os_str().as_bytes())?,
                }
            } else {
                let kind = if ft.is_fifo() {
                    "FIFO"
                } else if ft.is_socket() {
                    "socket"
                } else if ft.is_char_device() {
                    "character device"
                } else if ft.is_block_device() {
                    "block device"
                } else {
                    "file of unknown type"
                };
                return Err(IngestError::SpecialFile {
                    file: src.clone(),
                    entry: shown,
                    kind: kind.into(),
                });
            };
            b.insert(&shown, path, node)?;
        }
    }
    Ok(())
}
