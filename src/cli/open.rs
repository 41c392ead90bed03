//! Opening the existing session a command names.

use anyhow::Result;

use agentfs::session::SessionRef;
use agentfs::store::OpenMode;
use agentfs::vfs::Vfs;

/// The session named by `arg` (an id or a .db path), which must exist, opened.
pub fn open_existing(arg: &str) -> Result<(SessionRef, Vfs)> {
    let r = SessionRef::parse(arg)?;
    r.require_exists()?;
    let vfs = Vfs::open_session(&r.path, OpenMode::Existing)?;
    Ok((r, vfs))
}
