//! The runners of a session (rows of `fs_runner`): recording them, telling which still live,
//! and naming the runner a process belongs to, by the mount namespace its sandbox created.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

/// One row of `fs_runner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    pub id: i64,
    pub pid: u32,
    /// The command, as a JSON array of strings.
    pub argv: String,
    pub cwd: String,
    pub started_at_ns: i64,
    pub ended_at_ns: Option<i64>,
    pub exit_status: Option<i32>,
    pub pid_start: Option<u64>,
}

impl Runner {
    /// The command as one line, arguments separated by spaces.
    pub fn command_line(&self) -> String {
        serde_json::from_str::<Vec<String>>(&self.argv)
            .map(|v| v.join(" "))
            .unwrap_or_else(|_| self.argv.clone())
    }

    /// Whether the runner's process still runs (the same process: a reused pid is not).
    pub fn is_alive(&self) -> bool {
        self.ended_at_ns.is_none()
            && process_start(self.pid).is_some_and(|start| Some(start) == self.pid_start)
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The start time of process `pid` (clock ticks after boot), if it runs and is not a zombie.
/// With the pid it identifies a process for good: pids are reused, start times are not.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces): state is
    // field 3, starttime field 22.
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The inode number of the mount namespace of process `pid`.
pub fn mount_ns_of(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("mnt:[")?.strip_suffix(']')?.parse().ok()
}

/// Records a runner that starts now: `pid` is the process that waits for the command.
pub fn register(conn: &Connection, argv: &[String], cwd: &Path, pid: u32) -> rusqlite::Result<i64> {
    let argv = serde_json::to_string(argv).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "INSERT INTO fs_runner (pid, argv, cwd, started_at_ns, pid_start) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            pid,
            argv,
            cwd.to_string_lossy(),
            now_ns(),
            process_start(pid).map(|s| s as i64)
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Records the mount namespace that runner `id`'s processes share.
pub fn set_mount_ns(conn: &Connection, id: i64, ns: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE fs_runner SET mnt_ns = ?2 WHERE id = ?1",
        params![id, ns as i64],
    )?;
    Ok(())
}

/// Records that runner `id` ended, with the command's exit status (None: killed, unknown).
pub fn finish(conn: &Connection, id: i64, exit_status: Option<i32>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE fs_runner SET ended_at_ns = ?2, exit_status = ?3 \
         WHERE id = ?1 AND ended_at_ns IS NULL",
        params![id, now_ns(), exit_status],
    )?;
    Ok(())
}

fn runner_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Runner> {
    Ok(Runner {
        id: r.get(0)?,
        pid: r.get(1)?,
        argv: r.get(2)?,
        cwd: r.get(3)?,
        started_at_ns: r.get(4)?,
        ended_at_ns: r.get(5)?,
        exit_status: r.get(6)?,
        pid_start: r.get::<_, Option<i64>>(7)?.map(|s| s as u64),
    })
}

/// Runners not recorded as ended, oldest first (some may have died without saying so).
pub fn open_runners(conn: &Connection) -> rusqlite::Result<Vec<Runner>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, pid, argv, cwd, started_at_ns, ended_at_ns, exit_status, pid_start \
         FROM fs_runner WHERE ended_at_ns IS NULL ORDER BY id",
    )?;
    stmt.query_map([], runner_from_row)?.collect()
}

/// Runners whose process still runs.
pub fn live(conn: &Connection) -> rusqlite::Result<Vec<Runner>> {
    Ok(open_runners(conn)?
        .into_iter()
        .filter(Runner::is_alive)
        .collect())
}

/// Marks runners whose process is gone (killed before it could say so) as ended, with an
/// unknown exit status; returns how many.
pub fn close_dead(conn: &Connection) -> rusqlite::Result<usize> {
    let mut closed = 0;
    for r in open_runners(conn)? {
        if !r.is_alive() {
            finish(conn, r.id, None)?;
            closed += 1;
        }
    }
    Ok(closed)
}

/// Names the runner a process works for, from its mount namespace; remembers each answer
/// (a namespace belongs to one runner for its whole life). Processes outside any runner's
/// sandbox (the host, `agentfs mount` users) have none.
pub struct RunnerResolver {
    /// Recent answers per namespace. Not kept for good: the kernel gives a freed
    /// namespace's number to the next namespace made, so once a runner's sandbox is gone
    /// its number may come back as another runner's.
    by_ns: Mutex<HashMap<u64, (std::time::Instant, Option<i64>)>>,
    /// Recent answers per pid: reading /proc/PID/ns/mnt costs more than the rest of a small
    /// request, and a pid is not reused within `MEMORY`.
    by_pid: Mutex<HashMap<u32, (std::time::Instant, Option<i64>)>>,
    /// The namespace this process runs in, which no runner has.
    own_ns: Option<u64>,
}

/// How long the runner found for a pid or a namespace is trusted without looking again.
const MEMORY: std::time::Duration = std::time::Duration::from_secs(1);

impl Default for RunnerResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl RunnerResolver {
    pub fn new() -> RunnerResolver {
        RunnerResolver {
            by_ns: Mutex::new(HashMap::new()),
            by_pid: Mutex::new(HashMap::new()),
            own_ns: mount_ns_of(std::process::id()),
        }
    }

    /// The runner of process `pid`; `lookup` finds the runner of a namespace not seen before.
    pub fn runner_of(
        &self,
        pid: u32,
        lookup: impl FnOnce(u64) -> Option<Option<i64>>,
    ) -> Option<i64> {
        if pid == 0 {
            return None;
        }
        let now = std::time::Instant::now();
        if let Some((at, r)) = self
            .by_pid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            && now.duration_since(*at) < MEMORY
        {
            return *r;
        }
        let found = self.runner_of_ns(pid, now, lookup);
        let mut by_pid = self.by_pid.lock().unwrap_or_else(|e| e.into_inner());
        if by_pid.len() > 4096 {
            by_pid.retain(|_, (at, _)| now.duration_since(*at) < MEMORY);
        }
        by_pid.insert(pid, (now, found));
        found
    }

    fn runner_of_ns(
        &self,
        pid: u32,
        now: std::time::Instant,
        lookup: impl FnOnce(u64) -> Option<Option<i64>>,
    ) -> Option<i64> {
        let ns = mount_ns_of(pid)?;
        if Some(ns) == self.own_ns {
            return None;
        }
        let mut known = self.by_ns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, r)) = known.get(&ns)
            && now.duration_since(*at) < MEMORY
        {
            return *r;
        }
        // A failed lookup is not remembered: the next request asks again.
        let found = lookup(ns)?;
        if known.len() > 4096 {
            known.retain(|_, (at, _)| now.duration_since(*at) < MEMORY);
        }
        known.insert(ns, (now, found));
        found
    }
}

/// The runner whose sandbox has mount namespace `ns`, if any.
pub fn runner_with_ns(conn: &Connection, ns: u64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT max(id) FROM fs_runner WHERE mnt_ns = ?1")?
        .query_row([ns as i64], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_a_start_time_and_namespace() {
        let me = std::process::id();
        assert!(process_start(me).is_some());
        assert!(mount_ns_of(me).is_some());
        assert_eq!(process_start(u32::MAX), None);
    }

    #[test]
    fn resolver_remembers_and_skips_its_own_namespace() {
        let r = RunnerResolver::new();
        let me = std::process::id();
        // Our own namespace is known to have no runner: no lookup.
        assert_eq!(r.runner_of(me, |_| panic!("looked up own namespace")), None);
        assert_eq!(r.runner_of(0, |_| panic!("looked up pid 0")), None);
        // A fresh resolver that has not seen the namespace asks once, then remembers.
        let r = RunnerResolver {
            by_ns: Mutex::new(HashMap::new()),
            by_pid: Mutex::new(HashMap::new()),
            own_ns: None,
        };
        assert_eq!(r.runner_of(me, |_| Some(Some(7))), Some(7));
        assert_eq!(r.runner_of(me, |_| panic!("asked twice")), Some(7));
        // An answer older than MEMORY is asked again: the namespace's number may belong to
        // another runner by now.
        let long_ago = std::time::Instant::now() - MEMORY * 2;
        for (at, _) in r.by_pid.lock().unwrap().values_mut() {
            *at = long_ago;
        }
        for (at, _) in r.by_ns.lock().unwrap().values_mut() {
            *at = long_ago;
        }
        assert_eq!(r.runner_of(me, |_| Some(Some(8))), Some(8));
    }
}
