//! Counts the requests the kernel sends to one FUSE mount, through the `fuse_request_send`
//! tracepoint in a tracing instance of our own (so tests running at once do not mix), filtered
//! by the mount's connection. Needs root and tracefs, as CI has.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const TRACEFS: &str = "/sys/kernel/tracing";

/// A running count of the requests sent to one mount; stopped and removed when dropped.
pub struct RequestTrace {
    instance: PathBuf,
}

impl RequestTrace {
    /// Starts counting the requests sent to the FUSE mount at `mnt`.
    pub fn start(mnt: &Path) -> RequestTrace {
        if !Path::new(TRACEFS).join("events").exists() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", TRACEFS])
                .status();
        }
        let dev = fs::metadata(mnt).unwrap().dev();
        // The kernel's dev_t: FUSE connections have major 0, so the minor is the number.
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let instance =
            Path::new(TRACEFS).join(format!("instances/agentfs-test-{}-{n}", std::process::id()));
        fs::create_dir(&instance).expect("tracefs instances need root");
        let event = instance.join("events/fuse/fuse_request_send");
        fs::write(event.join("filter"), format!("connection == {minor}")).unwrap();
        fs::write(instance.join("buffer_size_kb"), "8192").unwrap();
        fs::write(event.join("enable"), "1").unwrap();
        RequestTrace { instance }
    }

    /// Requests sent so far, by opcode name (`LOOKUP`, `GETXATTR`, ...), and clears the count.
    pub fn take(&self) -> BTreeMap<String, usize> {
        let text = fs::read_to_string(self.instance.join("trace")).unwrap();
        fs::write(self.instance.join("trace"), "").unwrap();
        let mut counts = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some(op) = line
                .split("(FUSE_")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
            {
                *counts.entry(op.to_string()).or_insert(0) += 1;
            }
        }
        counts
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        let _ = fs::write(
            self.instance.join("events/fuse/fuse_request_send/enable"),
            "0",
        );
        let _ = fs::remove_dir(&self.instance);
    }
}

/// The total of `counts`.
pub fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}
