//! The FUSE adapter: decodes kernel requests, calls the core, encodes the replies.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};

use crate::overlay::Overlay;
use crate::runners::{self, RunnerResolver};
use crate::vfs::{
    Attr, Creds, Fh, FileKind, Ino, RenameFlags, RunnerScope, SetAttr, TimeSet, Timestamp,
    VfsError, XattrMode,
};

/// How long the kernel may trust names and attributes without asking again, by default, in
/// seconds. Changes made through this mount are seen at once; changes other processes record
/// in the journal are pushed to the kernel by the mount's watcher within ~100 ms; anything
/// else (hand edits with sqlite3) shows up after at most this long.
pub const DEFAULT_TTL_SECS: f64 = 10.0;

/// Directory offsets: 1 and 2 follow "." and ".."; entry cookies are dentry ids shifted by 2.
const DOT_OFFSETS: u64 = 2;

/// Flags for opened files: the page cache stays valid across opens (FUSE_AUTO_INVAL_DATA
/// drops it when the kernel sees a new mtime or size), and close sends no FLUSH (every write
/// is committed when it returns, so there is nothing to flush).
const FILE_OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE.union(FopenFlags::FOPEN_NOFLUSH);

/// Base files smaller than this are read through the daemon (and then the page cache)
/// rather than with FUSE passthrough.
const PASSTHROUGH_MIN_SIZE: u64 = 256 * 1024;

/// The handle of files the kernel opened without asking us (OPEN declined).
const UNOPENED: u64 = 0;

thread_local! {
    /// Each worker's buffer for reads of base files, reused so its pages stay mapped.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Entries fetched from the database per readdir batch: about what fits in the kernel's
/// 4 KiB reply buffer, so a request does not fetch rows it cannot send.
const READDIR_BATCH: usize = 128;

/// The same for readdirplus, whose entries carry attributes (about 160 bytes each).
const READDIRPLUS_BATCH: usize = 32;

/// A session served to the kernel.
pub struct AgentFs {
    fs: Arc<Overlay>,
    ttl: Duration,
    /// Whether to answer OPEN so that untouched base files can use FUSE passthrough
    /// (`--passthrough`); otherwise OPEN is declined and files are read and written by
    /// inode, which saves two round trips per open.
    want_passthrough: bool,
    /// Whether the kernel accepted FUSE passthrough (set at init).
    passthrough: bool,
    /// Kernel backing files of open base files, per inode (one while any handle is open)
    /// and per handle (dropped at release).
    backing: Mutex<Backing>,
    /// Set when the kernel ends the session (DESTROY), before the final clean-up.
    ending: Arc<std::sync::atomic::AtomicBool>,
    /// Which runner each requesting process works for (named in the journal).
    runners: RunnerResolver,
    /// Whether extended attributes are served (`--xattrs`). Off, every xattr request is
    /// answered ENOSYS once, after which the kernel answers EOPNOTSUPP itself: `ls -l` asks
    /// for two (ACL, security label) per entry, a write for security.capability, and each
    /// would be a round trip to the daemon that the kernel never caches.
    xattrs: bool,
}

#[derive(Default)]
struct Backing {
    by_ino: HashMap<u64, Weak<fuser::BackingId>>,
    by_handle: HashMap<u64, Arc<fuser::BackingId>>,
}

impl AgentFs {
    pub fn new(fs: Arc<Overlay>, ttl: Duration, want_passthrough: bool) -> AgentFs {
        AgentFs {
            fs,
            ttl,
            want_passthrough,
            passthrough: false,
            ending: Arc::default(),
            runners: RunnerResolver::new(),
            backing: Mutex::new(Backing::default()),
            xattrs: false,
        }
    }

    /// Serves extended attributes (off by default: see the field's doc).
    pub fn with_xattrs(mut self, on: bool) -> AgentFs {
        self.xattrs = on;
        self
    }

    /// A flag the kernel's DESTROY sets: the session is ending as it should.
    pub fn ending(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.ending.clone()
    }

    /// Makes the changes of this request count as the requesting process's runner's.
    fn runner_scope(&self, req: &Request) -> RunnerScope {
        let vfs = self.fs.vfs();
        let runner = self.runners.runner_of(req.pid(), |ns| {
            let store = vfs.store().ok()?;
            runners::runner_with_ns(&store.conn, ns).ok()
        });
        RunnerScope::enter(runner)
    }

    /// Lets the kernel read an untouched base file itself (FUSE passthrough), at disk speed.
    /// Falls back to reads through the daemon if the kernel refuses.
    fn reply_passthrough(&self, ino: u64, fh: Fh, reply: ReplyOpen) {
        let Some(file) = self.fs.base_file_of(fh) else {
            return reply.opened(FileHandle(fh.0), FILE_OPEN_FLAGS);
        };
        // A small file is read through us once and then from the page cache (kept across
        // opens); passthrough would cost two more calls into the kernel at every open and
        // close, more than reading it (measured: `cat` of 5,000 small files 1.8x faster).
        if file
            .metadata()
            .is_ok_and(|m| m.len() < PASSTHROUGH_MIN_SIZE)
        {
            return reply.opened(FileHandle(fh.0), FILE_OPEN_FLAGS);
        }
        let mut backing = self.backing.lock().unwrap_or_else(|e| e.into_inner());
        let id = match backing.by_ino.get(&ino).and_then(Weak::upgrade) {
            Some(id) => id,
            None => match reply.open_backing(&file) {
                Ok(id) => {
                    let id = Arc::new(id);
                    backing.by_ino.insert(ino, Arc::downgrade(&id));
                    id
                }
                Err(_) => return reply.opened(FileHandle(fh.0), FILE_OPEN_FLAGS),
            },
        };
        backing.by_handle.insert(fh.0, id.clone());
        reply.opened_passthrough(FileHandle(fh.0), FopenFlags::empty(), &id);
    }
}

fn to_system_time(t: Timestamp) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + Duration::from_nanos(t.nsec as u64)
    }
}

fn from_system_time(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            let mut sec = -(d.as_secs() as i64);
            let mut nsec = d.subsec_nanos();
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timestamp { sec, nsec }
        }
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

/// The reply to a lookup of a name that does not exist: node id 0 makes it a negative entry.
const NEGATIVE_ENTRY: FileAttr = FileAttr {
    ino: INodeNo(0),
    size: 0,
    blocks: 0,
    atime: UNIX_EPOCH,
    mtime: UNIX_EPOCH,
    ctime: UNIX_EPOCH,
    crtime: UNIX_EPOCH,
    kind: FileType::RegularFile,
    perm: 0,
    nlink: 0,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 4096,
    flags: 0,
};

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: to_system_time(a.atime),
        mtime: to_system_time(a.mtime),
        ctime: to_system_time(a.ctime),
        crtime: UNIX_EPOCH,
        kind: file_type(a.kind),
        perm: a.perm as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(from_system_time(t)),
    }
}

/// The errno for a core error; storage failures are logged here, once, with the operation.
fn errno(op: &str, ino: u64, e: VfsError) -> Errno {
    if let VfsError::Store(inner) = &e {
        eprintln!("agentfs: {op} on inode {ino} failed: {inner}");
    }
    Errno::from_i32(e.errno())
}

fn creds(req: &Request) -> Creds {
    Creds {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// Answers a getxattr/listxattr request: the size when asked for it, else the bytes.
fn reply_sized(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(data);
    }
}

/// What a session's end does: gives the space of deleted files back and compacts.
pub fn finish(vfs: &crate::vfs::Vfs) {
    if let Err(e) = vfs.free_forgotten() {
        eprintln!("agentfs: could not free deleted files at unmount: {e}");
    }
    if let Err(e) = vfs.compact() {
        eprintln!("agentfs: could not compact the session at unmount: {e}");
    }
}

impl Filesystem for AgentFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Each is best effort: an older kernel without a feature still mounts.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_ASYNC_READ
            // We clear set-id bits ourselves (see `setattr` and `write`). In return the kernel
            // stops asking for security.capability before every write, only before an inode's
            // first, and stops re-reading attributes before every chown.
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        let _ = config.add_capabilities(wanted & config.capabilities());
        // Passthrough lets the kernel read untouched base files itself (overlay sessions).
        if self.want_passthrough
            && self.fs.has_base()
            && config.capabilities().contains(InitFlags::FUSE_PASSTHROUGH)
            && config.set_max_stack_depth(2).is_ok()
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
        {
            self.passthrough = true;
        } else {
            if self.want_passthrough {
                eprintln!(
                    "agentfs: --passthrough is not available here (it needs an overlay \
                     session, kernel 6.9+ and root); base files are read through the daemon"
                );
            }
            // OPEN will be declined, so the kernel keeps files open without telling us: a
            // file that loses its last link lives until the kernel forgets its inode.
            self.fs.vfs().free_on_forget();
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.ending.store(true, std::sync::atomic::Ordering::SeqCst);
        finish(self.fs.vfs());
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(Ino(parent.0), name.as_bytes()) {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            // A negative entry: the kernel remembers the name is absent for the TTL, so
            // builds and tools probing for files that are not there (include paths, make's
            // implicit rules, .gitignore in every directory) ask once. Creations through this
            // mount update the kernel's cache; the journal watcher invalidates names other
            // processes create.
            Err(VfsError::NotFound) => reply.entry(&self.ttl, &NEGATIVE_ENTRY, Generation(0)),
            Err(e) => reply.error(errno("lookup", parent.0, e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(Ino(ino.0)) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno("getattr", ino.0, e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _runner = self.runner_scope(req);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            // FUSE_HANDLE_KILLPRIV_V2 leaves it to us on chown, and on truncate by a caller
            // without CAP_FSETID, which the kernel flags but fuser does not pass on: uid 0
            // stands for it.
            kill_suidgid: uid.is_some() || gid.is_some() || (size.is_some() && req.uid() != 0),
        };
        match self.fs.setattr(Ino(ino.0), &set) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno("setattr", ino.0, e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(Ino(ino.0)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno("readlink", ino.0, e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _runner = self.runner_scope(req);
        let Some(kind) = FileKind::from_mode(mode) else {
            return reply.error(Errno::from_i32(libc::EINVAL));
        };
        match self
            .fs
            .mknod(Ino(parent.0), name.as_bytes(), kind, mode, rdev, creds(req))
        {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno("mknod", parent.0, e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let _runner = self.runner_scope(req);
        match self
            .fs
            .mkdir(Ino(parent.0), name.as_bytes(), mode, creds(req))
        {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno("mkdir", parent.0, e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _runner = self.runner_scope(req);
        match self.fs.unlink(Ino(parent.0), name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("unlink", parent.0, e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _runner = self.runner_scope(req);
        match self.fs.rmdir(Ino(parent.0), name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("rmdir", parent.0, e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _runner = self.runner_scope(req);
        match self.fs.symlink(
            Ino(parent.0),
            link_name.as_bytes(),
            target.as_os_str().as_bytes(),
            creds(req),
        ) {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno("symlink", parent.0, e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _runner = self.runner_scope(req);
        if flags.contains(fuser::RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::from_i32(libc::EINVAL));
        }
        let flags = RenameFlags {
            noreplace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
        };
        match self.fs.rename(
            Ino(parent.0),
            name.as_bytes(),
            Ino(newparent.0),
            newname.as_bytes(),
            flags,
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("rename", parent.0, e)),
        }
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _runner = self.runner_scope(req);
        match self
            .fs
            .link(Ino(ino.0), Ino(newparent.0), newname.as_bytes())
        {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno("link", ino.0, e)),
        }
    }

    // fuser's batch_forget calls this for each node (its node type is not public).
    fn forget(&self, _req: &Request, ino: INodeNo, _nlookup: u64) {
        if let Err(e) = self.fs.forget(&[Ino(ino.0)]) {
            eprintln!("agentfs: could not free a deleted file: {e}");
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // Declined once, the kernel opens every file itself from then on (no OPEN, FLUSH or
        // RELEASE round trips; page cache kept), and reads and writes come with handle 0.
        if !self.passthrough {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        let _runner = self.runner_scope(req);
        let write = flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        match self.fs.open(Ino(ino.0), write) {
            Ok(fh) if self.passthrough && !write => self.reply_passthrough(ino.0, fh, reply),
            Ok(fh) => reply.opened(FileHandle(fh.0), FILE_OPEN_FLAGS),
            Err(e) => reply.error(errno("open", ino.0, e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if fh.0 == UNOPENED {
            return READ_BUFFER.with_borrow_mut(|buf| {
                match self.fs.read_node(Ino(ino.0), offset, size, buf) {
                    Ok(()) => reply.data(buf),
                    Err(e) => reply.error(errno("read", ino.0, e)),
                }
            });
        }
        match self.fs.read(Fh(fh.0), offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno("read", ino.0, e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _runner = self.runner_scope(req);
        // The kernel asks this (FUSE_HANDLE_KILLPRIV_V2) when a caller without CAP_FSETID
        // writes to a set-id file.
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            let kill = SetAttr {
                kill_suidgid: true,
                ..SetAttr::default()
            };
            if let Err(e) = self.fs.setattr(Ino(ino.0), &kill) {
                return reply.error(errno("write", ino.0, e));
            }
        }
        let written = if fh.0 == UNOPENED {
            self.fs.write_node(Ino(ino.0), offset, data)
        } else {
            self.fs.write(Fh(fh.0), offset, data)
        };
        match written {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno("write", ino.0, e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Every write is committed when it returns: nothing is buffered to flush. Declining
        // tells the kernel never to send FLUSH again (files it opened itself have no
        // FOPEN_NOFLUSH to say so).
        if self.passthrough {
            reply.ok();
        } else {
            reply.error(Errno::from_i32(libc::ENOSYS));
        }
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if fh.0 == UNOPENED {
            return reply.ok();
        }
        let _runner = self.runner_scope(req);
        if self.passthrough {
            let mut backing = self.backing.lock().unwrap_or_else(|e| e.into_inner());
            if backing.by_handle.remove(&fh.0).is_some() {
                backing.by_ino.retain(|_, id| id.strong_count() > 0);
            }
        }
        match self.fs.release(Fh(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("release", ino.0, e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.fsync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("fsync", ino.0, e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // The kernel may cache listings (FOPEN_CACHE_DIR); it drops them itself when the
        // directory changes through this mount, and the journal watcher for other changes.
        let flags = FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE;
        // Declined once, the kernel opens directories itself from then on (no OPENDIR or
        // RELEASEDIR round trips), caching listings all the same; readdir comes with
        // handle 0.
        if !self.passthrough {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        if !self.fs.has_base() {
            // The kernel opens only directories, so there is nothing to look up.
            return reply.opened(FileHandle(0), flags);
        }
        // An overlay directory is listed once per open: offsets index into that snapshot.
        match self.fs.opendir(Ino(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), flags),
            Err(e) => reply.error(errno("opendir", ino.0, e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dir = Ino(ino.0);
        if offset < 1 && reply.add(ino, 1, FileType::Directory, ".") {
            return reply.ok();
        }
        if offset < 2 {
            let parent = match self.fs.parent_of(dir) {
                Ok(p) => p,
                Err(e) => return reply.error(errno("readdir", ino.0, e)),
            };
            if reply.add(INodeNo(parent.0), 2, FileType::Directory, "..") {
                return reply.ok();
            }
        }
        if self.fs.has_base() {
            let from = offset.saturating_sub(DOT_OFFSETS) as usize;
            let listing = match self.fs.snapshot(fh.0, dir, offset) {
                Ok(l) => l,
                Err(e) => return reply.error(errno("readdir", ino.0, e)),
            };
            for (i, e) in listing.iter().enumerate().skip(from) {
                let cookie = i as u64 + DOT_OFFSETS + 1;
                let name = OsStr::from_bytes(&e.name);
                if reply.add(INodeNo(e.attr.ino.0), cookie, file_type(e.attr.kind), name) {
                    break;
                }
            }
            return reply.ok();
        }
        let mut after = offset.saturating_sub(DOT_OFFSETS);
        loop {
            let batch = match self.fs.vfs().readdir(dir, after, READDIR_BATCH) {
                Ok(b) => b,
                Err(e) => return reply.error(errno("readdir", ino.0, e)),
            };
            let done = batch.len() < READDIR_BATCH;
            for e in batch {
                let name = OsStr::from_bytes(&e.name);
                if reply.add(
                    INodeNo(e.ino.0),
                    e.offset + DOT_OFFSETS,
                    file_type(e.kind),
                    name,
                ) {
                    return reply.ok();
                }
                after = e.offset;
            }
            if done {
                return reply.ok();
            }
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let dir = Ino(ino.0);
        if offset < 2 {
            let this = match self.fs.getattr(dir) {
                Ok(a) => a,
                Err(e) => return reply.error(errno("readdirplus", ino.0, e)),
            };
            if offset < 1 && reply.add(ino, 1, ".", &self.ttl, &file_attr(&this), Generation(0)) {
                return reply.ok();
            }
            let parent = match self.fs.parent_of(dir).and_then(|p| self.fs.getattr(p)) {
                Ok(a) => a,
                Err(e) => return reply.error(errno("readdirplus", ino.0, e)),
            };
            if reply.add(
                INodeNo(parent.ino.0),
                2,
                "..",
                &self.ttl,
                &file_attr(&parent),
                Generation(0),
            ) {
                return reply.ok();
            }
        }
        if self.fs.has_base() {
            let from = offset.saturating_sub(DOT_OFFSETS) as usize;
            let listing = match self.fs.snapshot(fh.0, dir, offset) {
                Ok(l) => l,
                Err(e) => return reply.error(errno("readdirplus", ino.0, e)),
            };
            for (i, e) in listing.iter().enumerate().skip(from) {
                let cookie = i as u64 + DOT_OFFSETS + 1;
                let name = OsStr::from_bytes(&e.name);
                let attr = file_attr(&e.attr);
                if reply.add(attr.ino, cookie, name, &self.ttl, &attr, Generation(0)) {
                    break;
                }
            }
            return reply.ok();
        }
        let mut after = offset.saturating_sub(DOT_OFFSETS);
        loop {
            let batch = match self.fs.vfs().readdir_plus(dir, after, READDIRPLUS_BATCH) {
                Ok(b) => b,
                Err(e) => return reply.error(errno("readdirplus", ino.0, e)),
            };
            let done = batch.len() < READDIRPLUS_BATCH;
            for (e, attr) in batch {
                let name = OsStr::from_bytes(&e.name);
                if reply.add(
                    INodeNo(e.ino.0),
                    e.offset + DOT_OFFSETS,
                    name,
                    &self.ttl,
                    &file_attr(&attr),
                    Generation(0),
                ) {
                    return reply.ok();
                }
                after = e.offset;
            }
            if done {
                return reply.ok();
            }
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.fsync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("fsyncdir", ino.0, e)),
        }
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_available,
                s.files,
                s.files_free,
                s.block_size,
                s.name_max,
                s.block_size,
            ),
            Err(e) => reply.error(errno("statfs", ino.0, e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        if !self.xattrs {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        let _runner = self.runner_scope(req);
        let mode = if flags & libc::XATTR_CREATE != 0 {
            XattrMode::Create
        } else if flags & libc::XATTR_REPLACE != 0 {
            XattrMode::Replace
        } else {
            XattrMode::Any
        };
        match self.fs.setxattr(Ino(ino.0), name.as_bytes(), value, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("setxattr", ino.0, e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if !self.xattrs {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        match self.fs.getxattr(Ino(ino.0), name.as_bytes()) {
            Ok(v) => reply_sized(reply, size, &v),
            Err(e) => reply.error(errno("getxattr", ino.0, e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if !self.xattrs {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        match self.fs.listxattr(Ino(ino.0)) {
            Ok(names) => {
                let mut list = Vec::new();
                for n in names {
                    list.extend_from_slice(&n);
                    list.push(0);
                }
                reply_sized(reply, size, &list);
            }
            Err(e) => reply.error(errno("listxattr", ino.0, e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if !self.xattrs {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        let _runner = self.runner_scope(req);
        match self.fs.removexattr(Ino(ino.0), name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("removexattr", ino.0, e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // The kernel checks permissions itself (default_permissions).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let _runner = self.runner_scope(req);
        match self
            .fs
            .create(Ino(parent.0), name.as_bytes(), mode, creds(req))
        {
            Ok((a, fh)) => {
                // With OPEN declined the kernel sends no RELEASE, not even for a file it
                // created: that file too is then read and written by inode.
                let fh = if self.passthrough {
                    fh.0
                } else {
                    if let Err(e) = self.fs.release(fh) {
                        eprintln!("agentfs: create: {e}");
                    }
                    UNOPENED
                };
                reply.created(
                    &self.ttl,
                    &file_attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FILE_OPEN_FLAGS,
                )
            }
            Err(e) => reply.error(errno("create", parent.0, e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _runner = self.runner_scope(req);
        match self.fs.fallocate(Ino(ino.0), offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("fallocate", ino.0, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_1970_round_trip() {
        for t in [
            Timestamp { sec: -1, nsec: 5 },
            Timestamp { sec: 0, nsec: 0 },
            Timestamp {
                sec: 1_700_000_000,
                nsec: 999_999_999,
            },
            Timestamp {
                sec: -86_400 * 365,
                nsec: 0,
            },
        ] {
            assert_eq!(from_system_time(to_system_time(t)), t);
        }
    }
}
