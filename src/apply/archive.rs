//! A tar archive of what a session created or changed: its files, symlinks and new
//! directories with their current contents, modes and times (deletions cannot be expressed
//! in a tar archive and are left out).

use std::io::Write;

use super::ApplyError;
use super::plan::Item;
use super::tree::SessionTree;
use crate::progress::Progress;
use crate::vfs::FileKind;

/// Writes the entries the session has at the paths of `items` to `out` (files, symlinks,
/// directories; special files are left out); returns the number of entries written.
/// Tells `progress` of each item done, with the bytes of the session's file there.
pub fn write_tar(
    items: &[Item],
    session: &SessionTree,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<usize, ApplyError> {
    let w = |e| ApplyError::io(std::path::Path::new("tar output"), e);
    let mut builder = tar::Builder::new(out);
    let mut count = 0;
    progress.start(
        "exporting",
        Some(items.len() as u64),
        Some(items.iter().map(|i| i.session.file_bytes()).sum()),
    );
    for item in items {
        progress.advance(1, item.session.file_bytes());
        let Some(attr) = session.attr(&item.path)? else {
            continue;
        };
        let name = item.path.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_mode(attr.perm);
        header.set_uid(attr.uid as u64);
        header.set_gid(attr.gid as u64);
        header.set_mtime(attr.mtime.sec.max(0) as u64);
        match attr.kind {
            FileKind::File => {
                let mut bytes = Vec::with_capacity(attr.size as usize);
                session.copy_to(&attr, &mut bytes)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, name, &bytes[..])
                    .map_err(w)?;
            }
            FileKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{name}/"), std::io::empty())
                    .map_err(w)?;
            }
            FileKind::Symlink => {
                use std::os::unix::ffi::OsStrExt;
                let target = session.readlink(&attr)?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, name, std::ffi::OsStr::from_bytes(&target))
                    .map_err(w)?;
            }
            // Fifos, sockets and devices are no content to carry over.
            _ => continue,
        }
        count += 1;
    }
    builder.into_inner().map_err(w)?.flush().map_err(w)?;
    progress.finish();
    Ok(count)
}
