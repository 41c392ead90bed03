//! The requests the kernel sends to a mount for everyday work, counted through the FUSE
//! tracepoint, pinned so they cannot silently grow back: each one is a round trip to the
//! daemon (60-340 us on these machines) that a plain directory does not pay.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::fuse_trace::{RequestTrace, total};
use common::{Unmount, agentfs};

/// A base of `files` small files and an overlay session over it, mounted with `extra`.
struct Mounted {
    top: tempfile::TempDir,
    mnt: PathBuf,
    _unmount: Unmount,
}

impl Mounted {
    fn new(files: usize, extra: &[&str]) -> Mounted {
        let top = tempfile::tempdir().unwrap();
        let base = top.path().join("base");
        fs::create_dir(&base).unwrap();
        for i in 0..files {
            fs::write(base.join(format!("f{i:03}")), format!("{i}\n")).unwrap();
        }
        let mnt = top.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let home = top.path().join("home");
        agentfs(&home, &["init", "s", "--base", base.to_str().unwrap()]);
        let mut args = vec!["mount", "s", mnt.to_str().unwrap()];
        args.extend_from_slice(extra);
        agentfs(&home, &args);
        let unmount = Unmount(mnt.clone());
        Mounted {
            top,
            mnt,
            _unmount: unmount,
        }
    }
}

fn ls_l(dir: &Path) {
    let out = Command::new("ls").arg("-l").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn setxattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the length given.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn getxattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length given.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

#[test]
fn ls_l_of_100_files_asks_for_no_xattr_after_the_first() {
    let m = Mounted::new(100, &[]);
    let trace = RequestTrace::start(&m.mnt);
    ls_l(&m.mnt);
    let first = trace.take();
    assert!(
        first.get("GETXATTR").copied().unwrap_or(0) <= 1,
        "the first ls -l: {first:?}"
    );
    ls_l(&m.mnt);
    let again = trace.take();
    assert_eq!(again.get("GETXATTR"), None, "ls -l again: {again:?}");
    // Within the cache lifetime, the listing and the attributes come from the kernel.
    assert!(total(&again) <= 3, "ls -l again: {again:?}");
}

#[test]
fn untar_of_100_files_sends_at_most_eight_requests_per_file() {
    let m = Mounted::new(100, &[]);
    let tar = m.top.path().join("t.tar");
    let st = Command::new("tar")
        .arg("cf")
        .arg(&tar)
        .arg("-C")
        .arg(m.top.path().join("base"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let into = m.mnt.join("x");
    fs::create_dir(&into).unwrap();
    let trace = RequestTrace::start(&m.mnt);
    let st = Command::new("tar")
        .arg("xf")
        .arg(&tar)
        .arg("-C")
        .arg(&into)
        .status()
        .unwrap();
    assert!(st.success());
    let counts = trace.take();
    // Per file: LOOKUP (the name is new), CREATE, WRITE, three SETATTRs (tar restores the
    // times, owner and mode), RELEASE (not waited for), and a GETATTR of the directory,
    // whose attributes the kernel drops after every create.
    assert!(
        counts.get("GETXATTR").copied().unwrap_or(0) <= 1,
        "{counts:?}"
    );
    assert!(total(&counts) <= 8 * 100 + 10, "{counts:?}");
    assert_eq!(fs::read_to_string(into.join("f042")).unwrap(), "42\n");
}

#[test]
fn xattrs_are_served_only_when_asked_for() {
    let off = Mounted::new(1, &[]);
    let f = off.mnt.join("f000");
    let e = setxattr(&f, "user.k", b"v").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
    for _ in 0..2 {
        let trace = RequestTrace::start(&off.mnt);
        let e = getxattr(&f, "user.k").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
        // The first is answered ENOSYS; from then on the kernel answers itself.
        let asked = trace.take().get("GETXATTR").copied().unwrap_or(0);
        assert!(asked <= 1, "the kernel asked {asked} times");
    }
    let trace = RequestTrace::start(&off.mnt);
    getxattr(&f, "user.k").unwrap_err();
    assert_eq!(trace.take().get("GETXATTR"), None, "the kernel asked again");

    let on = Mounted::new(1, &["--xattrs"]);
    let f = on.mnt.join("f000");
    setxattr(&f, "user.k", b"v").unwrap();
    assert_eq!(getxattr(&f, "user.k").unwrap(), b"v");
}
