//! A fresh `$AGENTFS_HOME` and the `agentfs` binary run in it through assert_cmd, for the
//! tests of the command line.

use assert_cmd::Command;

pub struct Home(pub tempfile::TempDir);

impl Home {
    pub fn new() -> Home {
        Home(tempfile::tempdir().unwrap())
    }

    /// A fresh home with the sessions `ids` made by `agentfs init`.
    pub fn with(ids: &[&str]) -> Home {
        let h = Home::new();
        for id in ids {
            h.cmd(&["init", id]).assert().success();
        }
        h
    }

    /// `agentfs ARGS` in this home (never asked for completions by the environment).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("agentfs").unwrap();
        c.env("AGENTFS_HOME", self.0.path())
            .env_remove("AGENTFS_COMPLETE")
            .args(args);
        c
    }

    /// The stdout of `agentfs ARGS`, which must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self
            .cmd(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    }

    /// A path in the home, as text for a command line.
    pub fn path(&self, name: &str) -> String {
        self.0.path().join(name).to_string_lossy().into_owned()
    }

    /// Makes session `id` with 50 files, checkpoints everything into its main file, and
    /// smashes every page after the first: SQLite opens it and finds it damaged.
    pub fn damaged_session(&self, id: &str) {
        self.ok(&["init", id]);
        for i in 0..50 {
            self.ok(&["fs", id, "write", &format!("/f{i}"), "--data", "some data"]);
        }
        let db = self.0.path().join(format!("{id}.db"));
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let mut bytes = std::fs::read(&db).unwrap();
        for b in bytes[4096..].iter_mut() {
            *b = 0xA5;
        }
        std::fs::write(&db, bytes).unwrap();
    }
}
