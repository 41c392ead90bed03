//! Differential tests: random operation sequences run on the core and on a real directory of
//! the host kernel; every result (value or errno) and the resulting trees must match.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use agentfs::store::OpenMode;
use agentfs::vfs::{Creds, FileKind, Ino, RenameFlags, SetAttr, Vfs, VfsError};
use proptest::prelude::*;

const NAMES: &[&str] = &["a", "b", "c"];
const TARGETS: &[&str] = &["a", "b", "a/b", "c/a", "zz", "b/../a"];

#[derive(Debug, Clone)]
enum Op {
    Create(String, u32),
    Mkdir(String, u32),
    Unlink(String),
    Rmdir(String),
    Rename(String, String, u8),
    Link(String, String),
    Symlink(&'static str, String),
    Write(String, u64, u16, u8),
    Truncate(String, u64),
    Read(String, u64, u16),
    Chmod(String, u32),
    PunchHole(String, u64, u64),
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(NAMES), 1..=3).prop_map(|v| v.join("/"))
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..64, 4090u64..4100, 8000u64..20000]
}

fn op() -> impl Strategy<Value = Op> {
    let perm = prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o4755, 0o1777]);
    prop_oneof![
        3 => (path(), perm.clone()).prop_map(|(p, m)| Op::Create(p, m)),
        3 => (path(), perm.clone()).prop_map(|(p, m)| Op::Mkdir(p, m)),
        1 => path().prop_map(Op::Unlink),
        1 => path().prop_map(Op::Rmdir),
        2 => (path(), path(), 0u8..3).prop_map(|(a, b, f)| Op::Rename(a, b, f)),
        1 => (path(), path()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (prop::sample::select(TARGETS), path()).prop_map(|(t, p)| Op::Symlink(t, p)),
        3 => (path(), offset(), 0u16..9000, any::<u8>()).prop_map(|(p, o, l, b)| Op::Write(p, o, l, b)),
        1 => (path(), offset()).prop_map(|(p, s)| Op::Truncate(p, s)),
        2 => (path(), offset(), 0u16..9000).prop_map(|(p, o, l)| Op::Read(p, o, l)),
        1 => (path(), perm).prop_map(|(p, m)| Op::Chmod(p, m)),
        1 => (path(), offset(), 1u64..10000).prop_map(|(p, o, l)| Op::PunchHole(p, o, l)),
    ]
}

/// What an operation returned: data for reads, nothing otherwise, or an errno.
type Outcome = Result<Vec<u8>, i32>;

fn errno_of(e: std::io::Error) -> i32 {
    e.raw_os_error().expect("host errors carry an errno")
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn check(r: libc::c_int) -> Result<(), i32> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(())
    }
}

/// The host side: the same operations through real syscalls in a temporary directory.
struct Host {
    root: PathBuf,
}

impl Host {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn open(&self, rel: &str, write: bool) -> Result<std::fs::File, i32> {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.p(rel))
            .map_err(errno_of)
    }

    fn apply(&self, op: &Op) -> Outcome {
        // SAFETY (all libc calls below): arguments are valid C strings and plain integers.
        match op {
            Op::Create(p, m) => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*m)
                .open(self.p(p))
                .map(|_| Vec::new())
                .map_err(errno_of),
            Op::Mkdir(p, m) => {
                check(unsafe { libc::mkdir(cstr(&self.p(p)).as_ptr(), *m) }).map(|_| vec![])
            }
            Op::Unlink(p) => {
                check(unsafe { libc::unlink(cstr(&self.p(p)).as_ptr()) }).map(|_| vec![])
            }
            Op::Rmdir(p) => {
                check(unsafe { libc::rmdir(cstr(&self.p(p)).as_ptr()) }).map(|_| vec![])
            }
            Op::Rename(a, b, f) => {
                let flags = match f {
                    0 => 0,
                    1 => libc::RENAME_NOREPLACE,
                    _ => libc::RENAME_EXCHANGE,
                };
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        cstr(&self.p(a)).as_ptr(),
                        libc::AT_FDCWD,
                        cstr(&self.p(b)).as_ptr(),
                        flags,
                    )
                };
                check(r).map(|_| vec![])
            }
            Op::Link(a, b) => {
                check(unsafe { libc::link(cstr(&self.p(a)).as_ptr(), cstr(&self.p(b)).as_ptr()) })
                    .map(|_| vec![])
            }
            Op::Symlink(t, p) => {
                let t = CString::new(*t).unwrap();
                check(unsafe { libc::symlink(t.as_ptr(), cstr(&self.p(p)).as_ptr()) })
                    .map(|_| vec![])
            }
            Op::Write(p, off, len, byte) => {
                let f = self.open(p, true)?;
                f.write_all_at(&vec![*byte; *len as usize], *off)
                    .map_err(errno_of)?;
                Ok(vec![])
            }
            Op::Truncate(p, size) => {
                let f = self.open(p, true)?;
                f.set_len(*size).map_err(errno_of)?;
                Ok(vec![])
            }
            Op::Read(p, off, len) => {
                let f = self.open(p, false)?;
                let mut buf = vec![0u8; *len as usize];
                let mut got = 0;
                loop {
                    let n = f
                        .read_at(&mut buf[got..], off + got as u64)
                        .map_err(errno_of)?;
                    if n == 0 || got + n == buf.len() {
                        got += n;
                        break;
                    }
                    got += n;
                }
                buf.truncate(got);
                Ok(buf)
            }
            Op::Chmod(p, m) => {
                check(unsafe { libc::chmod(cstr(&self.p(p)).as_ptr(), *m) }).map(|_| vec![])
            }
            Op::PunchHole(p, off, len) => {
                let f = self.open(p, true)?;
                use std::os::fd::AsRawFd;
                let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                check(unsafe { libc::fallocate(f.as_raw_fd(), mode, *off as i64, *len as i64) })
                    .map(|_| vec![])
            }
        }
    }

    fn tree(&self) -> BTreeMap<String, Node> {
        let mut out = BTreeMap::new();
        self.walk(&self.root, "", &mut out);
        out
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut BTreeMap<String, Node>) {
        let md = std::fs::symlink_metadata(dir).unwrap();
        out.insert(
            rel.to_string(),
            Node {
                kind: 'd',
                perm: md.mode() & 0o7777,
                nlink: md.nlink(),
                data: vec![],
            },
        );
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let name = format!("{rel}/{}", e.file_name().to_string_lossy());
            let md = std::fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            if ft.is_dir() {
                self.walk(&path, &name, out);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&path).unwrap();
                out.insert(
                    name,
                    Node {
                        kind: 'l',
                        perm: 0,
                        nlink: md.nlink(),
                        data: t.as_os_str().as_bytes().to_vec(),
                    },
                );
            } else {
                let data = std::fs::read(&path).unwrap();
                out.insert(
                    name,
                    Node {
                        kind: 'f',
                        perm: md.mode() & 0o7777,
                        nlink: md.nlink(),
                        data,
                    },
                );
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: char,
    perm: u32,
    nlink: u64,
    data: Vec<u8>,
}

const CREDS: Creds = Creds { uid: 0, gid: 0 };

fn split(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}

/// The core side. Paths are resolved as the kernel would before calling the core: parents
/// follow symlinks; the last component is never followed (the host side uses O_NOFOLLOW).
struct Core {
    vfs: Vfs,
}

impl Core {
    fn parent(&mut self, p: &str) -> Result<(Ino, String), VfsError> {
        let (dir, name) = split(p);
        let ino = self.vfs.resolve(dir.as_bytes(), true)?;
        // Path walk: every component before the last must be a directory.
        if self.vfs.getattr(ino)?.kind != FileKind::Dir {
            return Err(VfsError::NotDir);
        }
        Ok((ino, name.to_string()))
    }

    /// The inode at `p` as open(O_NOFOLLOW) finds it.
    fn file(&mut self, p: &str) -> Result<Ino, VfsError> {
        let (dir, name) = self.parent(p)?;
        let a = self.vfs.lookup(dir, name.as_bytes())?;
        if a.kind == FileKind::Symlink {
            return Err(VfsError::Loop);
        }
        Ok(a.ino)
    }

    fn writable_file(&mut self, p: &str) -> Result<Ino, VfsError> {
        let ino = self.file(p)?;
        if self.vfs.getattr(ino)?.kind == FileKind::Dir {
            return Err(VfsError::IsDir);
        }
        Ok(ino)
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        self.run(op).map_err(|e| e.errno())
    }

    fn run(&mut self, op: &Op) -> Result<Vec<u8>, VfsError> {
        match op {
            Op::Create(p, m) => {
                let (d, n) = self.parent(p)?;
                let (_, fh) = self.vfs.create(d, n.as_bytes(), *m, CREDS)?;
                self.vfs.release(fh)?;
            }
            Op::Mkdir(p, m) => {
                let (d, n) = self.parent(p)?;
                self.vfs.mkdir(d, n.as_bytes(), *m, CREDS)?;
            }
            Op::Unlink(p) => {
                let (d, n) = self.parent(p)?;
                self.vfs.unlink(d, n.as_bytes())?;
            }
            Op::Rmdir(p) => {
                let (d, n) = self.parent(p)?;
                self.vfs.rmdir(d, n.as_bytes())?;
            }
            Op::Rename(a, b, f) => {
                let (da, na) = self.parent(a)?;
                let (db, nb) = self.parent(b)?;
                let flags = RenameFlags {
                    noreplace: *f == 1,
                    exchange: *f == 2,
                };
                self.vfs
                    .rename(da, na.as_bytes(), db, nb.as_bytes(), flags)?;
            }
            Op::Link(a, b) => {
                let (da, na) = self.parent(a)?;
                let src = self.vfs.lookup(da, na.as_bytes())?.ino;
                let (db, nb) = self.parent(b)?;
                self.vfs.link(src, db, nb.as_bytes())?;
            }
            Op::Symlink(t, p) => {
                let (d, n) = self.parent(p)?;
                self.vfs.symlink(d, n.as_bytes(), t.as_bytes(), CREDS)?;
            }
            Op::Write(p, off, len, byte) => {
                let ino = self.writable_file(p)?;
                let fh = self.vfs.open(ino)?;
                let r = self.vfs.write(fh, *off, &vec![*byte; *len as usize]);
                self.vfs.release(fh)?;
                r?;
            }
            Op::Truncate(p, size) => {
                let ino = self.writable_file(p)?;
                self.vfs.setattr(
                    ino,
                    &SetAttr {
                        size: Some(*size),
                        ..Default::default()
                    },
                )?;
            }
            Op::Read(p, off, len) => {
                let ino = self.file(p)?;
                return self.vfs.read_ino(ino, *off, *len as u32);
            }
            Op::Chmod(p, m) => {
                let ino = self.vfs.resolve(p.as_bytes(), true)?;
                self.vfs.setattr(
                    ino,
                    &SetAttr {
                        mode: Some(*m),
                        ..Default::default()
                    },
                )?;
            }
            Op::PunchHole(p, off, len) => {
                let ino = self.writable_file(p)?;
                let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                self.vfs.fallocate(ino, *off, *len, mode)?;
            }
        }
        Ok(vec![])
    }

    fn tree(&mut self) -> BTreeMap<String, Node> {
        let mut out = BTreeMap::new();
        self.walk(Ino::ROOT, "", &mut out);
        out
    }

    fn walk(&mut self, dir: Ino, rel: &str, out: &mut BTreeMap<String, Node>) {
        let a = self.vfs.getattr(dir).unwrap();
        out.insert(
            rel.to_string(),
            Node {
                kind: 'd',
                perm: a.perm,
                nlink: a.nlink as u64,
                data: vec![],
            },
        );
        for e in self.vfs.readdir(dir, 0, usize::MAX).unwrap() {
            let name = format!("{rel}/{}", String::from_utf8_lossy(&e.name));
            let a = self.vfs.getattr(e.ino).unwrap();
            match a.kind {
                FileKind::Dir => self.walk(e.ino, &name, out),
                FileKind::Symlink => {
                    let t = self.vfs.readlink(e.ino).unwrap();
                    assert_eq!(a.size, t.len() as u64, "symlink size is its target length");
                    out.insert(
                        name,
                        Node {
                            kind: 'l',
                            perm: 0,
                            nlink: a.nlink as u64,
                            data: t,
                        },
                    );
                }
                _ => {
                    let data = self.vfs.read_ino(e.ino, 0, a.size as u32 + 1).unwrap();
                    assert_eq!(a.size, data.len() as u64, "size matches the bytes read");
                    out.insert(
                        name,
                        Node {
                            kind: 'f',
                            perm: a.perm,
                            nlink: a.nlink as u64,
                            data,
                        },
                    );
                }
            }
        }
    }
}

fn run_both(ops: &[Op]) -> Result<(), TestCaseError> {
    // SAFETY: umask only changes this process's creation mask; the core never applies one.
    unsafe { libc::umask(0) };
    let dir = tempfile::tempdir().unwrap();
    let host = Host {
        root: dir.path().join("host"),
    };
    std::fs::create_dir(&host.root).unwrap();
    std::fs::set_permissions(
        &host.root,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut core = Core {
        vfs: Vfs::open_session(&dir.path().join("s.db"), OpenMode::Create).unwrap(),
    };
    for (i, op) in ops.iter().enumerate() {
        let want = host.apply(op);
        let got = core.apply(op);
        prop_assert_eq!(&got, &want, "op #{} {:?}", i, op);
        prop_assert_eq!(
            core.tree(),
            host.tree(),
            "trees differ after op #{} {:?}",
            i,
            op
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn core_matches_host_kernel(ops in prop::collection::vec(op(), 1..40)) {
        run_both(&ops)?;
    }
}

#[test]
fn renaming_a_dir_into_itself_is_einval_and_over_its_ancestor_is_enotempty() {
    let ops = vec![
        Op::Mkdir("a".into(), 0o755),
        Op::Mkdir("a/b".into(), 0o755),
        Op::Rename("a".into(), "a/b/c".into(), 0),
        Op::Rename("a/b".into(), "a".into(), 0),
        Op::Rename("a/b".into(), "a".into(), 2),
    ];
    run_both(&ops).unwrap();
}

#[test]
fn sparse_writes_and_holes_match() {
    let ops = vec![
        Op::Create("a".into(), 0o644),
        Op::Write("a".into(), 9000, 10, 7),
        Op::Write("a".into(), 10, 5, 1),
        Op::Truncate("a".into(), 4097),
        Op::Write("a".into(), 19000, 3, 9),
        Op::PunchHole("a".into(), 5, 9000),
        Op::Read("a".into(), 0, 20000),
    ];
    run_both(&ops).unwrap();
}
