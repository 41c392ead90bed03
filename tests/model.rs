//! Differential tests: random operation sequences run on the core and on a real directory of
//! the host kernel; every result (value or errno) and the resulting trees must match.

use std::collections::BTreeMap;

use agentfs::store::OpenMode;
use agentfs::vfs::{FileKind, Ino, RenameFlags, SetAttr, Vfs, VfsError};
use proptest::prelude::*;

mod differential;
use differential::*;

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
        let d = tree_diff(&core.tree(), &host.tree());
        prop_assert!(
            d.is_empty(),
            "trees differ after op #{} {:?}:\n{}",
            i,
            op,
            d
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
