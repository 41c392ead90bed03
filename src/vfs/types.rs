//! Plain data types of the filesystem API: inode numbers, handles, attributes, entries.

use std::time::{SystemTime, UNIX_EPOCH};

/// An inode number; [`Ino::ROOT`] is the root directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

impl Ino {
    pub const ROOT: Ino = Ino(1);
}

/// An open-file handle returned by `open`/`create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fh(pub u64);

/// A point in time with nanoseconds, as stored in `fs_inode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }

    pub fn as_nanos(self) -> i64 {
        self.sec
            .saturating_mul(1_000_000_000)
            .saturating_add(self.nsec as i64)
    }
}

/// File type, from the `S_IFMT` bits of `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            _ => return None,
        })
    }

    pub fn type_bits(self) -> u32 {
        match self {
            FileKind::File => libc::S_IFREG,
            FileKind::Dir => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::Socket => libc::S_IFSOCK,
            FileKind::CharDevice => libc::S_IFCHR,
            FileKind::BlockDevice => libc::S_IFBLK,
        }
    }
}

/// What `getattr` reports about an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits only (`mode & 0o7777`).
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks, estimated from the size.
    pub blocks: u64,
    pub rdev: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

/// A time argument to `setattr`, as utimensat(2) takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// UTIME_NOW.
    Now,
    /// An explicit time.
    At(Timestamp),
}

/// Fields to change in `setattr`; `None` leaves a field alone (UTIME_OMIT for times).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    /// Clear set-user-ID, and set-group-ID where the group may execute (as Linux does on
    /// chown, and on a write or truncate by a caller without CAP_FSETID). Not for directories.
    pub kill_suidgid: bool,
}

/// Who creates an inode: owner and group for new files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
}

/// One directory entry from `readdir`. `offset` is the cursor to pass to get the entries after
/// this one; it stays valid while other entries are added or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub offset: u64,
    pub ino: Ino,
    pub kind: FileKind,
    pub name: Vec<u8>,
}

/// `statfs` figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: u32,
}

/// Flags for `rename`, as renameat2(2) takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

/// How `setxattr` treats an existing attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrMode {
    #[default]
    Any,
    /// XATTR_CREATE: fail with EEXIST if it exists.
    Create,
    /// XATTR_REPLACE: fail with ENODATA if it does not.
    Replace,
}

/// A change journal row, as a mount needs it to invalidate caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub seq: i64,
    pub ino: Option<Ino>,
    pub path: Option<Vec<u8>>,
    pub old_path: Option<Vec<u8>>,
}

/// A base entry to copy into the delta (see `Vfs::copy_up`).
pub struct CopyUp<'a> {
    pub kind: FileKind,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub symlink_target: Option<&'a [u8]>,
    /// The file's bytes (regular files only).
    pub data: Option<&'a mut dyn std::io::Read>,
    /// The base inode number, kept in `fs_origin`.
    pub base_ino: u64,
    /// The entry's path in the base, kept with its identity (`fs_base_identity`).
    pub base_path: &'a [u8],
    /// The base entry's size (its identity, with `mtime` and the hash of the bytes read).
    pub size: u64,
    /// Partial copy-up (with `data` None): the base file's bytes stay in the base until
    /// they change (`fs_base_backing`); no hash is recorded (size and mtime identify it).
    pub backed_by_base: bool,
    /// The blake3 of the base file's bytes when they are known without copying them (a
    /// file copied up only to be emptied).
    pub base_hash: Option<[u8; 32]>,
    /// A write to make in the same transaction (the change that needed the copy), so a
    /// first write into a base file commits once.
    pub then_write: Option<(u64, &'a [u8])>,
}
