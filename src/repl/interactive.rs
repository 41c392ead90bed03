//! The interactive `agentfs sql` prompt: rustyline editing with persistent history,
//! completion and hints, statements over several lines, Ctrl-C to cancel a running query.

use std::borrow::Cow;
use std::io;
use std::path::PathBuf;

use super::ReplError;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::history::DefaultHistory;

use super::{DOT_COMMANDS, Flow, QUERIES, Shell, statement_complete};

/// Completion and hints for the prompt.
pub struct Helper {
    /// Tables, views, columns, functions (refreshed after each statement).
    pub words: Vec<String>,
    history: HistoryHinter,
}

impl Helper {
    pub fn new(words: Vec<String>) -> Helper {
        Helper {
            words,
            history: HistoryHinter::new(),
        }
    }

    /// Candidates for the word that ends at `pos`, and where that word starts.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let head = &line[..pos];
        let start = head
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let prefix = &head[start..];
        let trimmed = head.trim_start();
        let pool: Vec<&str> = if trimmed.starts_with(".q ") || trimmed.starts_with(".q\t") {
            QUERIES.iter().map(|q| q.name).collect()
        } else if trimmed.starts_with('.') && start == head.len() - trimmed.len() {
            DOT_COMMANDS.iter().map(|d| d.name).collect()
        } else if prefix.is_empty() {
            return (start, Vec::new());
        } else {
            self.words.iter().map(String::as_str).collect()
        };
        let mut out: Vec<String> = pool
            .into_iter()
            .filter(|w| w.starts_with(prefix))
            .map(str::to_string)
            .collect();
        out.sort();
        out.dedup();
        (start, out)
    }

    /// The rest of a dot-command's name and its arguments, once the typed prefix names
    /// one command.
    fn dot_hint(line: &str) -> Option<String> {
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        if !rest.is_empty() || !name.starts_with('.') || line.ends_with(' ') {
            return None;
        }
        let matches: Vec<_> = DOT_COMMANDS
            .iter()
            .filter(|d| d.name.starts_with(name))
            .collect();
        let [d] = matches[..] else { return None };
        let tail = &d.name[name.len()..];
        let args = if d.args.is_empty() {
            String::new()
        } else {
            format!(" {}", d.args)
        };
        Some(format!("{tail}{args}"))
    }
}

impl Completer for Helper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for Helper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, ctx: &rustyline::Context<'_>) -> Option<String> {
        if pos < line.len() {
            return None;
        }
        Helper::dot_hint(line).or_else(|| self.history.hint(line, pos, ctx))
    }
}

impl Highlighter for Helper {
    /// Hints are dimmed so they read as suggestions.
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[2m{hint}\x1b[m"))
    }
}

impl rustyline::validate::Validator for Helper {}
impl rustyline::Helper for Helper {}

/// Reads and runs lines until `.quit` or Ctrl-D. `history`: the file kept across runs.
pub fn run(shell: &mut Shell, history: Option<PathBuf>) -> Result<(), ReplError> {
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor = rustyline::Editor::<Helper, DefaultHistory>::with_config(config)?;
    editor.set_helper(Some(Helper::new(shell.completion_words())));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    // While a statement runs the terminal is in cooked mode, so Ctrl-C is SIGINT: it
    // interrupts the statement (sqlite3_interrupt), not the shell. At the prompt rustyline
    // reads Ctrl-C as a key and we drop the line being typed.
    let handle = shell.interrupt_handle();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT])
        .map_err(ReplError::Signals)?;
    let signal_thread = signals.handle();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            handle.interrupt();
        }
    });
    eprintln!("agentfs sql: .help for commands, .queries for named queries, Ctrl-D to leave");
    let mut pending = String::new();
    let remember = |editor: &mut rustyline::Editor<Helper, DefaultHistory>, entry: &str| {
        let _ = editor.add_history_entry(entry);
        // Saved at once, so a killed shell keeps its history too.
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
    };
    loop {
        let prompt = if pending.is_empty() {
            "agentfs> "
        } else {
            "    ...> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if pending.is_empty() && line.trim_start().starts_with('.') {
                    remember(&mut editor, line.trim());
                    match shell.run_dot(line.trim(), &mut io::stdout()) {
                        Ok(Flow::Quit) => break,
                        Ok(Flow::Continue) => {}
                        Err(e) => eprintln!("error: {}", crate::report::Chain(&e)),
                    }
                    continue;
                }
                if pending.is_empty() && line.trim().is_empty() {
                    continue;
                }
                pending.push_str(&line);
                pending.push('\n');
                if statement_complete(&pending) {
                    let sql = std::mem::take(&mut pending);
                    remember(&mut editor, sql.trim());
                    if let Err(e) = shell.run_sql(&sql, &mut io::stdout()) {
                        eprintln!("error: {}", crate::report::Chain(&e));
                    }
                    if let Some(h) = editor.helper_mut() {
                        h.words = shell.completion_words();
                    }
                }
            }
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    signal_thread.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_dot_commands_queries_and_words() {
        let h = Helper::new(vec![
            "fs_change".into(),
            "fs_changes".into(),
            "path_of".into(),
        ]);
        assert_eq!(h.candidates(".ti", 3), (0, vec![".timer".to_string()]));
        assert_eq!(
            h.candidates(".q rec", 6),
            (3, vec!["recent_changes".to_string()])
        );
        assert_eq!(
            h.candidates("SELECT * FROM fs_chan", 21).1,
            vec!["fs_change", "fs_changes"]
        );
        assert!(h.candidates("SELECT ", 7).1.is_empty());
    }

    #[test]
    fn dot_commands_hint_their_arguments() {
        assert_eq!(Helper::dot_hint(".sch").as_deref(), Some("ema [TABLE]"));
        assert_eq!(
            Helper::dot_hint(".mode").as_deref(),
            Some(" table|csv|json|line|list")
        );
        assert_eq!(Helper::dot_hint(".t"), None);
    }
}
