//! `agentfs apply --interactive`: the changes of a session offered one by one, as `git add -p`
//! offers hunks, each applied or left in the session as the user answers.
//!
//! This module holds the rules; showing and asking go through an [`Answerer`] (the terminal
//! in the binary, a script in the tests). The questions come first and change nothing; then
//! the accepted changes are applied together by [`super::apply_items`], against a fresh plan,
//! so every guarantee of `apply` holds: atomic writes, conflicts checked at the moment of
//! writing, applied paths forgotten by the session, the declined ones left in it.
//!
//! One question covers one change of the plan, except where changes cannot be applied
//! apart: a directory the session deleted, or turned into a file (or a file into a
//! directory), comes with everything below it; a new directory is not asked about but comes
//! with the first accepted change below it (one with nothing below it is asked about).

use std::path::Path;
use std::sync::Arc;

use crate::diff::{self, Patch};
use crate::vfs::Vfs;

use super::conflict::{Checker, Conflict};
use super::plan::{Item, Status, ancestors, within};
use super::tree::{BaseTree, Entry, SessionTree};
use super::{ApplyError, Options, Report};

/// What the user answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `y`: apply this change.
    Yes,
    /// `n`: leave it in the session.
    No,
    /// `a`: apply this change and all the remaining ones.
    All,
    /// `q`: apply nothing more (what was answered `y` is still applied).
    Quit,
    /// `f`: show the whole new file, then ask again.
    File,
    /// `?`: show the help, then ask again.
    Help,
    /// Anything else: the help, then ask again.
    Unknown,
}

impl Answer {
    /// The answer a line typed at the prompt gives: its first character.
    pub fn parse(line: &str) -> Answer {
        match line.trim().chars().next().map(|c| c.to_ascii_lowercase()) {
            Some('y') => Answer::Yes,
            Some('n') => Answer::No,
            Some('a') => Answer::All,
            Some('q') => Answer::Quit,
            Some('f') => Answer::File,
            Some('?') => Answer::Help,
            _ => Answer::Unknown,
        }
    }
}

/// What each answer does, for `?`.
pub const HELP: &str = "\
y - apply this change
n - do not apply this change (it stays in the session)
a - apply this change and all the remaining ones
q - quit: apply nothing more (the changes answered y are applied)
f - show the whole new file
? - print this help
";

/// The prompt after each change.
pub const CHOICES: &str = "[y,n,a,q,f,?]";

/// One change as it is shown.
#[derive(Debug, Clone)]
pub struct Shown {
    /// Its place among the changes asked about, from 1.
    pub index: usize,
    pub total: usize,
    /// One line: `M /src/main.rs`, `R /a -> /b`, `D /old/`.
    pub summary: String,
    /// Lines saying more: sizes of binary files, a mode change, a symlink's target, what
    /// else a directory's change takes along, a conflict overwritten with --force.
    pub notes: Vec<String>,
    /// The unified diff of a text file (without colour).
    pub patch: Option<String>,
}

/// What the session has at a change's path, for `f`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewFile {
    Text(String),
    Binary {
        size: u64,
    },
    Symlink {
        target: String,
    },
    /// Not a file: why (deleted, a directory...).
    None(&'static str),
}

/// Shows changes and asks about them: the terminal, or a script in tests.
pub trait Answerer {
    /// A change is about to be asked about.
    fn show(&mut self, shown: &Shown) -> Result<(), ApplyError>;
    /// What to do with it (`Quit` at the end of the input).
    fn ask(&mut self, shown: &Shown) -> Result<Answer, ApplyError>;
    /// The whole new file, after `f`.
    fn show_file(&mut self, shown: &Shown, file: &NewFile) -> Result<(), ApplyError>;
    /// The help, after `?` (`Help`) or an answer not understood (`Unknown`).
    fn help(&mut self, answer: Answer) -> Result<(), ApplyError>;
    /// A change that is not asked about: the host changed it, and --force was not given.
    /// Told before any question.
    fn skipped(&mut self, summary: &str, conflict: &Conflict) -> Result<(), ApplyError>;
}

/// What an interactive apply did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// What was applied, and the conflicts: those skipped without asking, those found while
    /// writing, and accepted changes that changed while the user was deciding.
    pub report: Report,
    /// The summaries of the changes declined (or not reached after `q`): still in the
    /// session.
    pub declined: Vec<String>,
}

/// Whether applying `item` needs everything below its path applied with it: a directory
/// removed, or replaced by a file, or a file replaced by a directory.
fn takes_what_is_below(item: &Item) -> bool {
    (item.base.is_dir() && !item.session.is_dir())
        || (item.session.is_dir() && !item.base.is_dir() && !item.base.is_missing())
}

/// A new directory with other changes below it: applied with the first of them accepted.
fn is_implicit(items: &[Item], i: usize) -> bool {
    let item = &items[i];
    item.status == Status::Added
        && item.session.is_dir()
        && items
            .iter()
            .any(|o| o.path != item.path && within(&o.path, &item.path))
}

/// The changes asked about, each the plan items (indexes) applied together, the one shown
/// first; the new directories applied with what is below them are in none.
fn group(items: &[Item]) -> Vec<Vec<usize>> {
    let n = items.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let roots: Vec<usize> = (0..n).filter(|&i| takes_what_is_below(&items[i])).collect();
    for i in 0..n {
        for &r in &roots {
            let below = items[i]
                .touched()
                .iter()
                .any(|(p, _)| *p != items[r].path && within(p, &items[r].path));
            if i != r && below {
                let (a, b) = (find(&mut parent, i), find(&mut parent, r));
                // The lower index (the shorter path of the two, for a directory and what
                // is below it) leads.
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut changes: Vec<Vec<usize>> = Vec::new();
    let mut lead_of: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        let r = find(&mut parent, i);
        if r == i && !roots.contains(&i) && is_implicit(items, i) {
            continue;
        }
        match lead_of[r] {
            Some(k) => changes[k].push(i),
            None => {
                lead_of[r] = Some(changes.len());
                changes.push(vec![i]);
            }
        }
    }
    // Shown in the order of their leading item (a directory before its entries).
    for c in &mut changes {
        let lead = c
            .iter()
            .copied()
            .find(|&i| roots.contains(&i))
            .unwrap_or(c[0]);
        c.retain(|&i| i != lead);
        c.insert(0, lead);
    }
    changes.sort_by_key(|c| c[0]);
    changes
}

/// Asks about each change of the session (at or below `opts.paths`), then applies those
/// accepted. `on_applied` hears of each path applied, as in [`super::apply`].
pub fn run(
    vfs: &Arc<Vfs>,
    base: &Path,
    opts: &Options,
    answerer: &mut dyn Answerer,
    on_applied: &mut dyn FnMut(&Item),
) -> Result<Outcome, ApplyError> {
    let items = super::plan(vfs, base, &opts.paths)?;
    let base_tree = BaseTree::new(base.to_path_buf());
    let checker = Checker::load(&vfs.store()?.conn, &items)?;
    let changes = group(&items);
    let mut outcome = Outcome::default();

    // The host changed these: not asked about (unless --force), and said so first.
    let mut asked = Vec::new();
    let mut conflicts = Vec::new();
    for change in &changes {
        let mut found = None;
        for &i in change {
            if let Some(c) = checker.check(&base_tree, &items[i])? {
                found = Some(c);
                break;
            }
        }
        match found {
            Some(c) if !opts.force => {
                answerer.skipped(&items[change[0]].to_string(), &c)?;
                outcome.report.conflicts.push(c);
            }
            found => {
                asked.push(change.clone());
                conflicts.push(found);
            }
        }
    }

    let session = SessionTree::new(vfs.clone(), base);
    let total = asked.len();
    let mut accepted = vec![false; total];
    let mut all = false;
    'changes: for (k, change) in asked.iter().enumerate() {
        if all {
            accepted[k] = true;
            continue;
        }
        let shown = describe(
            &items,
            change,
            conflicts[k].as_ref(),
            &base_tree,
            &session,
            (k + 1, total),
        )?;
        answerer.show(&shown)?;
        loop {
            match answerer.ask(&shown)? {
                Answer::Yes => {
                    accepted[k] = true;
                    break;
                }
                Answer::No => break,
                Answer::All => {
                    accepted[k] = true;
                    all = true;
                    break;
                }
                Answer::Quit => break 'changes,
                Answer::File => {
                    let file = new_file(&items[change[0]], &session)?;
                    answerer.show_file(&shown, &file)?;
                }
                a @ (Answer::Help | Answer::Unknown) => answerer.help(a)?,
            }
        }
    }
    drop(session);

    // Applied against the session and the base as they are now: the user may have taken
    // a while, and the conflict check must see what the host has at the moment of writing.
    let fresh = super::plan(vfs, base, &opts.paths)?;
    let mut selected = vec![false; fresh.len()];
    for (change, ok) in asked.iter().zip(&accepted) {
        if !ok {
            outcome.declined.push(items[change[0]].to_string());
            continue;
        }
        let found: Option<Vec<usize>> = change
            .iter()
            .map(|&i| fresh.iter().position(|f| same(f, &items[i])))
            .collect();
        match found {
            Some(at) => at.into_iter().for_each(|j| selected[j] = true),
            None => outcome.report.conflicts.push(Conflict {
                path: items[change[0]].path.clone(),
                reason: "changed (in the session or on the host) while you were deciding; \
                         run apply again"
                    .to_string(),
            }),
        }
    }
    // The new directories the accepted changes need.
    let needed: std::collections::BTreeSet<String> = fresh
        .iter()
        .zip(&selected)
        .filter(|(_, s)| **s)
        .flat_map(|(i, _)| ancestors(&i.path))
        .collect();
    for (i, s) in fresh.iter().zip(selected.iter_mut()) {
        if i.status == Status::Added && i.session.is_dir() && needed.contains(&i.path) {
            *s = true;
        }
    }
    let complete = selected.iter().all(|s| *s);
    let chosen: Vec<Item> = fresh
        .into_iter()
        .zip(selected)
        .filter(|(_, s)| *s)
        .map(|(i, _)| i)
        .collect();
    let earlier = std::mem::take(&mut outcome.report.conflicts);
    outcome.report = if chosen.is_empty() {
        Report::default()
    } else {
        super::apply_items(
            vfs,
            base,
            chosen,
            opts,
            complete,
            &crate::progress::NoProgress,
            on_applied,
        )?
    };
    outcome.report.conflicts.splice(0..0, earlier);
    Ok(outcome)
}

/// Whether `a` and `b` are the same change: same paths, same status, same entries.
fn same(a: &Item, b: &Item) -> bool {
    a.path == b.path
        && a.status == b.status
        && a.base == b.base
        && a.session == b.session
        && a.base_from == b.base_from
}

/// How change `change` (plan indexes, the lead first) is shown.
fn describe(
    items: &[Item],
    change: &[usize],
    conflict: Option<&Conflict>,
    base: &BaseTree,
    session: &SessionTree,
    (index, total): (usize, usize),
) -> Result<Shown, ApplyError> {
    let item = &items[change[0]];
    let mut notes = Vec::new();
    let mut patch = None;
    if let Some(c) = conflict {
        notes.push(format!(
            "conflict: {c}; applying it overwrites the host's version (--force)"
        ));
    }
    let old_path = match &item.status {
        Status::Renamed { from } => from.as_str(),
        _ => item.path.as_str(),
    };
    let old = match &item.status {
        Status::Renamed { .. } => &item.base_from,
        _ => &item.base,
    };
    match (old, &item.session) {
        (Entry::File { perm: a, .. }, Entry::File { perm: b, .. }) => {
            if a != b {
                notes.push(format!("mode {a:o} -> {b:o}"));
            }
            let (ob, nb) = (base.read(old_path)?, session.read(&item.path)?);
            if ob == nb {
                if matches!(item.status, Status::Renamed { .. }) {
                    notes.push("contents unchanged".to_string());
                }
            } else {
                match diff::unified(Some(&ob), Some(&nb), old_path, &item.path) {
                    Patch::Text { text, .. } => patch = Some(text),
                    Patch::Binary => {
                        notes.push(format!("binary file, {} -> {} bytes", ob.len(), nb.len()))
                    }
                }
            }
        }
        (Entry::Missing, Entry::File { size, .. }) => {
            let nb = session.read(&item.path)?;
            match diff::unified(None, Some(&nb), &item.path, &item.path) {
                Patch::Text { text, .. } if !text.is_empty() => patch = Some(text),
                Patch::Text { .. } => notes.push("new empty file".to_string()),
                Patch::Binary => notes.push(format!("new binary file, {size} bytes")),
            }
        }
        (Entry::File { size, .. }, Entry::Missing) => {
            notes.push(format!("deletes the file ({size} bytes)"));
        }
        (Entry::Dir { .. }, Entry::Missing) => {
            notes.push("deletes the directory and everything in it".to_string());
        }
        (Entry::Dir { perm: a }, Entry::Dir { perm: b }) => {
            notes.push(format!("directory mode {a:o} -> {b:o}"));
        }
        (Entry::Missing, Entry::Dir { .. }) => notes.push("new empty directory".to_string()),
        (Entry::Dir { .. }, _) => notes.push(format!(
            "the directory is replaced by {}",
            kind_name(&item.session)
        )),
        (_, Entry::Dir { .. }) => {
            notes.push(format!("{} is replaced by a directory", kind_name(old)))
        }
        (old, new) => {
            let side = |e: &Entry| match e {
                Entry::Symlink { target } => {
                    format!("symlink -> {}", String::from_utf8_lossy(target))
                }
                e => kind_name(e).to_string(),
            };
            notes.push(match (old, new) {
                (Entry::Missing, n) => format!("new {}", side(n)),
                (o, Entry::Missing) => format!("deletes the {}", side(o)),
                (o, n) => format!("{} becomes {}", side(o), side(n)),
            });
        }
    }
    if change.len() > 1 {
        notes.push(format!("applied together with {}:", change.len() - 1));
        for &i in &change[1..] {
            notes.push(format!("  {}", items[i]));
        }
    }
    Ok(Shown {
        index,
        total,
        summary: item.to_string(),
        notes,
        patch,
    })
}

fn kind_name(e: &Entry) -> &'static str {
    match e {
        Entry::Missing => "nothing",
        Entry::File { .. } => "a file",
        Entry::Dir { .. } => "a directory",
        Entry::Symlink { .. } => "a symlink",
        Entry::Special { .. } => "a special file",
    }
}

/// What the session has at the change's path, for `f`.
fn new_file(item: &Item, session: &SessionTree) -> Result<NewFile, ApplyError> {
    Ok(match &item.session {
        Entry::File { size, .. } => {
            let bytes = session.read(&item.path)?;
            if diff::is_text(&bytes) {
                NewFile::Text(String::from_utf8_lossy(&bytes).into_owned())
            } else {
                NewFile::Binary { size: *size }
            }
        }
        Entry::Symlink { target } => NewFile::Symlink {
            target: String::from_utf8_lossy(target).into_owned(),
        },
        Entry::Missing => NewFile::None("the session deletes it"),
        Entry::Dir { .. } => NewFile::None("it is a directory"),
        Entry::Special { .. } => NewFile::None("it is a special file"),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::session::{self, SessionRef};
    use crate::store::OpenMode;
    use crate::tools::Tools;

    /// A base directory and a session over it, changed through the session's tools.
    struct Env {
        dir: tempfile::TempDir,
        tools: Tools,
    }

    impl Env {
        /// A base with `files`, then a session over it.
        fn new(files: &[(&str, &str)]) -> Env {
            let dir = tempfile::tempdir().unwrap();
            let base = dir.path().join("base");
            std::fs::create_dir(&base).unwrap();
            for (path, text) in files {
                let p = base.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            }
            let base = std::fs::canonicalize(base).unwrap();
            let db = dir.path().join("s.db");
            let r = SessionRef::parse(db.to_str().unwrap()).unwrap();
            session::create(&r, Some(&base)).unwrap();
            let tools = Tools::open(&db, false, None).unwrap();
            Env { dir, tools }
        }

        /// A base with mod.txt, del.txt and old.txt, and a session that adds add.txt,
        /// deletes del.txt, modifies mod.txt and renames old.txt to new.txt: in the plan's
        /// order, A /add.txt, D /del.txt, M /mod.txt, R /old.txt -> /new.txt.
        fn four() -> Env {
            let env = Env::new(&[
                ("mod.txt", "one\ntwo\nthree\n"),
                ("del.txt", "gone\n"),
                ("old.txt", "moved\n"),
                ("keep.txt", "kept\n"),
            ]);
            env.call(
                "write_file",
                json!({"path": "/add.txt", "content": "new\n"}),
            );
            env.call("remove", json!({"path": "/del.txt"}));
            env.call(
                "write_file",
                json!({"path": "/mod.txt", "content": "one\nTWO\nthree\n"}),
            );
            env.call("rename", json!({"from": "/old.txt", "to": "/new.txt"}));
            env
        }

        fn call(&self, tool: &str, args: serde_json::Value) {
            self.tools.call(tool, &args).unwrap();
        }

        fn base(&self) -> PathBuf {
            std::fs::canonicalize(self.dir.path().join("base")).unwrap()
        }

        fn vfs(&self) -> Arc<Vfs> {
            Arc::new(Vfs::open_session(&self.dir.path().join("s.db"), OpenMode::Existing).unwrap())
        }

        /// Runs the dialog with `answers` (then q); what the script saw, and the outcome.
        fn run(&self, answers: &[Answer], force: bool) -> (Script, Outcome) {
            let mut script = Script::new(answers);
            let opts = Options {
                force,
                ..Options::default()
            };
            let outcome = run(&self.vfs(), &self.base(), &opts, &mut script, &mut |_| {}).unwrap();
            (script, outcome)
        }

        /// The changes still in the session, as `apply` lists them.
        fn left(&self) -> Vec<String> {
            super::super::plan(&self.vfs(), &self.base(), &[])
                .unwrap()
                .iter()
                .map(Item::to_string)
                .collect()
        }

        fn read(&self, path: &str) -> Option<String> {
            std::fs::read_to_string(self.base().join(path)).ok()
        }
    }

    /// Something done at a question.
    type Hook = Box<dyn FnMut(&Shown)>;

    /// Answers from a list (q once it runs out), noting what it was shown and asked.
    struct Script {
        answers: VecDeque<Answer>,
        log: Vec<String>,
        shown: Vec<Shown>,
        files: Vec<NewFile>,
        /// Run at each question (the host changing a file while the user decides).
        during: Option<Hook>,
    }

    impl Script {
        fn new(answers: &[Answer]) -> Script {
            Script {
                answers: answers.iter().copied().collect(),
                log: Vec::new(),
                shown: Vec::new(),
                files: Vec::new(),
                during: None,
            }
        }
    }

    impl Answerer for Script {
        fn show(&mut self, shown: &Shown) -> Result<(), ApplyError> {
            self.log.push(format!(
                "show {}/{} {}",
                shown.index, shown.total, shown.summary
            ));
            self.shown.push(shown.clone());
            Ok(())
        }

        fn ask(&mut self, shown: &Shown) -> Result<Answer, ApplyError> {
            if let Some(f) = &mut self.during {
                f(shown);
            }
            let a = self.answers.pop_front().unwrap_or(Answer::Quit);
            self.log.push(format!("ask {a:?}"));
            Ok(a)
        }

        fn show_file(&mut self, shown: &Shown, file: &NewFile) -> Result<(), ApplyError> {
            self.log.push(format!("file {}", shown.summary));
            self.files.push(file.clone());
            Ok(())
        }

        fn help(&mut self, answer: Answer) -> Result<(), ApplyError> {
            self.log.push(format!("help {answer:?}"));
            Ok(())
        }

        fn skipped(&mut self, summary: &str, conflict: &Conflict) -> Result<(), ApplyError> {
            self.log
                .push(format!("skipped {summary}: {}", conflict.path));
            Ok(())
        }
    }

    use Answer::{All, File, Help, No, Quit, Unknown, Yes};

    fn applied(o: &Outcome) -> Vec<String> {
        o.report.applied.iter().map(Item::to_string).collect()
    }

    #[test]
    fn answers_are_read_from_the_first_letter() {
        assert_eq!(Answer::parse("y\n"), Yes);
        assert_eq!(Answer::parse("  No\n"), No);
        assert_eq!(Answer::parse("A"), All);
        assert_eq!(Answer::parse("q"), Quit);
        assert_eq!(Answer::parse("f"), File);
        assert_eq!(Answer::parse("?"), Help);
        assert_eq!(Answer::parse(""), Unknown);
        assert_eq!(Answer::parse("x"), Unknown);
    }

    #[test]
    fn yes_applies_and_no_leaves_the_change_in_the_session() {
        let env = Env::four();
        let (script, outcome) = env.run(&[Yes, No, Yes, No], false);
        assert_eq!(
            script.log,
            [
                "show 1/4 A /add.txt",
                "ask Yes",
                "show 2/4 D /del.txt",
                "ask No",
                "show 3/4 M /mod.txt",
                "ask Yes",
                "show 4/4 R /old.txt -> /new.txt",
                "ask No",
            ]
        );
        assert_eq!(applied(&outcome), ["A /add.txt", "M /mod.txt"]);
        assert!(outcome.report.conflicts.is_empty());
        assert_eq!(outcome.declined, ["D /del.txt", "R /old.txt -> /new.txt"]);
        assert_eq!(env.read("add.txt").as_deref(), Some("new\n"));
        assert_eq!(env.read("mod.txt").as_deref(), Some("one\nTWO\nthree\n"));
        assert_eq!(env.read("del.txt").as_deref(), Some("gone\n"));
        assert_eq!(env.read("old.txt").as_deref(), Some("moved\n"));
        assert_eq!(env.read("new.txt"), None);
        assert_eq!(env.left(), ["D /del.txt", "R /old.txt -> /new.txt"]);
    }

    #[test]
    fn all_applies_the_rest_without_asking() {
        let env = Env::four();
        let (script, outcome) = env.run(&[No, All], false);
        assert_eq!(script.shown.len(), 2);
        assert_eq!(
            applied(&outcome),
            ["D /del.txt", "M /mod.txt", "R /old.txt -> /new.txt"]
        );
        assert_eq!(env.read("del.txt"), None);
        assert_eq!(env.read("old.txt"), None);
        assert_eq!(env.read("new.txt").as_deref(), Some("moved\n"));
        assert_eq!(env.read("add.txt"), None);
        assert_eq!(env.left(), ["A /add.txt"]);
        assert_eq!(env.read("keep.txt").as_deref(), Some("kept\n"));
    }

    #[test]
    fn quit_applies_what_was_accepted_and_nothing_more() {
        let env = Env::four();
        let (script, outcome) = env.run(&[Yes, Quit], false);
        assert_eq!(script.shown.len(), 2);
        assert_eq!(applied(&outcome), ["A /add.txt"]);
        assert_eq!(outcome.declined.len(), 3);
        assert_eq!(
            env.left(),
            ["D /del.txt", "M /mod.txt", "R /old.txt -> /new.txt"]
        );
        assert_eq!(env.read("mod.txt").as_deref(), Some("one\ntwo\nthree\n"));

        // Quitting at once applies nothing.
        let (_, outcome) = env.run(&[Quit], false);
        assert!(outcome.report.applied.is_empty());
        assert_eq!(env.left().len(), 3);
        // And all of it in the end leaves nothing.
        let (_, outcome) = env.run(&[All], false);
        assert_eq!(outcome.report.applied.len(), 3);
        assert!(env.left().is_empty());
    }

    #[test]
    fn file_and_help_show_something_then_ask_again() {
        let env = Env::four();
        let (script, outcome) = env.run(&[File, Yes, Help, Unknown, File, No, Yes], false);
        assert_eq!(
            script.log[..9],
            [
                "show 1/4 A /add.txt",
                "ask File",
                "file A /add.txt",
                "ask Yes",
                "show 2/4 D /del.txt",
                "ask Help",
                "help Help",
                "ask Unknown",
                "help Unknown",
            ]
        );
        assert_eq!(
            script.files,
            [
                NewFile::Text("new\n".to_string()),
                NewFile::None("the session deletes it")
            ]
        );
        // The third answer was for M /mod.txt; the rest were not reached (q).
        assert_eq!(applied(&outcome), ["A /add.txt", "M /mod.txt"]);
    }

    #[test]
    fn text_changes_come_with_a_diff_and_the_others_with_a_line() {
        let env = Env::four();
        let (script, _) = env.run(&[No, No, No, No], false);
        let s = &script.shown;
        assert_eq!(
            s[0].patch.as_deref(),
            Some("--- /dev/null\n+++ b/add.txt\n@@ -0,0 +1 @@\n+new\n")
        );
        assert_eq!(s[1].patch, None);
        assert_eq!(s[1].notes, ["deletes the file (5 bytes)"]);
        let m = s[2].patch.as_deref().unwrap();
        assert!(m.contains("-two\n+TWO\n"), "{m}");
        assert_eq!(s[3].patch, None);
        assert_eq!(s[3].notes, ["contents unchanged"]);
        // Nothing was applied, nothing changed.
        assert_eq!(env.left().len(), 4);
    }

    #[test]
    fn binary_files_are_summed_up_in_a_line() {
        let env = Env::new(&[]);
        let bytes: String = "\0\u{1}x".repeat(10);
        env.call("write_file", json!({"path": "/bin", "content": bytes}));
        let (script, _) = env.run(&[File, No], false);
        assert_eq!(script.shown[0].patch, None);
        assert_eq!(script.shown[0].notes, ["new binary file, 30 bytes"]);
        assert_eq!(script.files, [NewFile::Binary { size: 30 }]);
    }

    #[test]
    fn a_deleted_directory_is_one_change_and_new_directories_come_with_their_files() {
        let env = Env::new(&[("old/a", "a\n"), ("old/sub/b", "b\n"), ("x", "x\n")]);
        env.call("remove", json!({"path": "/old", "recursive": true}));
        env.call(
            "write_file",
            json!({"path": "/new/dir/f", "content": "f\n"}),
        );
        env.call("mkdir", json!({"path": "/empty"}));
        let (script, outcome) = env.run(&[Yes, Yes, No], false);
        let asked: Vec<&str> = script.shown.iter().map(|s| s.summary.as_str()).collect();
        assert_eq!(asked, ["A /empty/", "A /new/dir/f", "D /old/"]);
        assert_eq!(
            script.shown[2].notes,
            [
                "deletes the directory and everything in it",
                "applied together with 3:",
                "  D /old/a",
                "  D /old/sub/",
                "  D /old/sub/b",
            ]
        );
        assert_eq!(
            applied(&outcome),
            ["A /empty/", "A /new/", "A /new/dir/", "A /new/dir/f"]
        );
        assert!(env.base().join("empty").is_dir());
        assert_eq!(env.read("new/dir/f").as_deref(), Some("f\n"));
        assert_eq!(env.read("old/sub/b").as_deref(), Some("b\n"));
        assert_eq!(
            env.left(),
            ["D /old/", "D /old/a", "D /old/sub/", "D /old/sub/b"]
        );

        // Declining the file leaves its new directories in the session too.
        let env = Env::new(&[]);
        env.call("write_file", json!({"path": "/new/f", "content": "f\n"}));
        let (_, outcome) = env.run(&[No], false);
        assert!(outcome.report.applied.is_empty());
        assert!(!env.base().join("new").exists());
        assert_eq!(env.left(), ["A /new/", "A /new/f"]);
    }

    #[test]
    fn a_host_change_is_skipped_without_asking_unless_forced() {
        let env = Env::four();
        // The session copied mod.txt up; the host changes it since.
        std::fs::write(env.base().join("mod.txt"), "host\n").unwrap();
        let (script, outcome) = env.run(&[Yes, Yes, Yes], false);
        assert_eq!(script.log[0], "skipped M /mod.txt: /mod.txt");
        let asked: Vec<&str> = script.shown.iter().map(|s| s.summary.as_str()).collect();
        assert_eq!(
            asked,
            ["A /add.txt", "D /del.txt", "R /old.txt -> /new.txt"]
        );
        assert_eq!(script.shown[0].index, 1);
        assert_eq!(script.shown[0].total, 3);
        let conflicts: Vec<&str> = outcome
            .report
            .conflicts
            .iter()
            .map(|c| c.path.as_str())
            .collect();
        assert_eq!(conflicts, ["/mod.txt"]);
        assert_eq!(env.read("mod.txt").as_deref(), Some("host\n"));
        assert_eq!(env.left(), ["M /mod.txt"]);

        // With --force it is asked about, said to be a conflict, and overwritten on y.
        let (script, outcome) = env.run(&[Yes], true);
        assert!(script.shown[0].notes[0].starts_with("conflict: /mod.txt"));
        assert!(outcome.report.conflicts.is_empty());
        assert_eq!(env.read("mod.txt").as_deref(), Some("one\nTWO\nthree\n"));
        assert!(env.left().is_empty());
    }

    #[test]
    fn a_host_change_made_while_the_user_decides_is_not_overwritten() {
        let env = Env::four();
        let mut script = Script::new(&[No, No, Yes, No]);
        let host = env.base().join("mod.txt");
        script.during = Some(Box::new(move |shown: &Shown| {
            if shown.summary == "M /mod.txt" {
                std::fs::write(&host, "host meanwhile\n").unwrap();
            }
        }));
        let outcome = run(
            &env.vfs(),
            &env.base(),
            &Options::default(),
            &mut script,
            &mut |_| {},
        )
        .unwrap();
        assert!(outcome.report.applied.is_empty());
        assert_eq!(outcome.report.conflicts.len(), 1);
        assert_eq!(outcome.report.conflicts[0].path, "/mod.txt");
        assert_eq!(env.read("mod.txt").as_deref(), Some("host meanwhile\n"));
        assert_eq!(env.left().len(), 4);
    }
}
