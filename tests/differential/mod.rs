//! What the differential tests share: random operations on paths, and the host side that
//! runs them through real syscalls in a directory of the host kernel.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use agentfs::vfs::Creds;
use proptest::prelude::*;

pub const NAMES: &[&str] = &["a", "b", "c"];
pub const TARGETS: &[&str] = &["a", "b", "a/b", "c/a", "zz", "b/../a"];

#[derive(Debug, Clone)]
pub enum Op {
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

pub fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(NAMES), 1..=3).prop_map(|v| v.join("/"))
}

pub fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..64, 4090u64..4100, 8000u64..20000]
}

pub fn op() -> impl Strategy<Value = Op> {
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
pub type Outcome = Result<Vec<u8>, i32>;

pub fn errno_of(e: std::io::Error) -> i32 {
    e.raw_os_error().expect("host errors carry an errno")
}

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn check(r: libc::c_int) -> Result<(), i32> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(())
    }
}

/// The host side: the same operations through real syscalls in a temporary directory.
pub struct Host {
    pub root: PathBuf,
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

    pub fn apply(&self, op: &Op) -> Outcome {
        match op {
            Op::Create(p, m) => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*m)
                .open(self.p(p))
                .map(|_| Vec::new())
                .map_err(errno_of),
            Op::Mkdir(p, m) => {
                // SAFETY: valid C strings and plain integers.
                check(unsafe { libc::mkdir(cstr(&self.p(p)).as_ptr(), *m) }).map(|_| vec![])
            }
            Op::Unlink(p) => {
                // SAFETY: valid C strings and plain integers.
                check(unsafe { libc::unlink(cstr(&self.p(p)).as_ptr()) }).map(|_| vec![])
            }
            Op::Rmdir(p) => {
                // SAFETY: valid C strings and plain integers.
                check(unsafe { libc::rmdir(cstr(&self.p(p)).as_ptr()) }).map(|_| vec![])
            }
            Op::Rename(a, b, f) => {
                let flags = match f {
                    0 => 0,
                    1 => libc::RENAME_NOREPLACE,
                    _ => libc::RENAME_EXCHANGE,
                };
                // SAFETY: valid C strings and plain integers.
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
                // SAFETY: valid C strings and plain integers.
                check(unsafe { libc::link(cstr(&self.p(a)).as_ptr(), cstr(&self.p(b)).as_ptr()) })
                    .map(|_| vec![])
            }
            Op::Symlink(t, p) => {
                let t = CString::new(*t).unwrap();
                // SAFETY: valid C strings and plain integers.
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
                // SAFETY: valid C strings and plain integers.
                check(unsafe { libc::chmod(cstr(&self.p(p)).as_ptr(), *m) }).map(|_| vec![])
            }
            Op::PunchHole(p, off, len) => {
                let f = self.open(p, true)?;
                use std::os::fd::AsRawFd;
                let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                // SAFETY: valid C strings and plain integers.
                check(unsafe { libc::fallocate(f.as_raw_fd(), mode, *off as i64, *len as i64) })
                    .map(|_| vec![])
            }
        }
    }

    pub fn tree(&self) -> BTreeMap<String, Node> {
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

#[derive(PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub perm: u32,
    pub nlink: u64,
    pub data: Vec<u8>,
}

pub const CREDS: Creds = Creds { uid: 0, gid: 0 };

pub fn split(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}

impl std::fmt::Debug for Node {
    /// Short: a file's bytes as their length and first few, so a failing case stays readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = String::from_utf8_lossy(&self.data[..self.data.len().min(12)]).into_owned();
        write!(
            f,
            "{} {:o} nlink {} {} bytes {head:?}",
            self.kind,
            self.perm,
            self.nlink,
            self.data.len()
        )
    }
}

/// The entries where two trees differ, one per line (empty when they match).
pub fn tree_diff(got: &BTreeMap<String, Node>, want: &BTreeMap<String, Node>) -> String {
    let mut out = String::new();
    for (k, w) in want {
        match got.get(k) {
            None => out += &format!("missing {k:?}: want {w:?}\n"),
            Some(g) if g != w => out += &format!("{k:?}: got {g:?}, want {w:?}\n"),
            Some(_) => {}
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            out += &format!("extra {k:?}: {g:?}\n");
        }
    }
    out
}
