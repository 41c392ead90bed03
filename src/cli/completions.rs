//! `agentfs completions`: shell completion scripts, and the dynamic completer they call.
//!
//! The script `agentfs completions SHELL` prints only registers a function with the shell;
//! at each TAB the shell calls `AGENTFS_COMPLETE=SHELL agentfs -- <words>` and [`complete_if_asked`]
//! answers from the live command definition, so session ids are those in `$AGENTFS_HOME`
//! at that moment.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::CommandFactory;
use clap_complete::engine::{
    ArgValueCandidates, ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter,
};
use clap_complete::env::Shells;
use clap_complete::{CompleteEnv, Shell};

/// The environment variable that asks `agentfs` for completions instead of running.
const VAR: &str = "AGENTFS_COMPLETE";

/// Arguments of `agentfs completions`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Install (the script calls agentfs at each TAB, so it stays current):
  bash:  echo 'source <(agentfs completions bash)' >> ~/.bashrc
  zsh:   echo 'source <(agentfs completions zsh)' >> ~/.zshrc
  fish:  agentfs completions fish > ~/.config/fish/completions/agentfs.fish"
)]
pub struct Args {
    /// The shell to print the completion script of.
    shell: Shell,
}

/// Prints the registration script for the shell.
pub fn run(args: Args) -> Result<ExitCode> {
    let name = args.shell.to_string();
    let shells = Shells::builtins();
    let shell = shells
        .completer(&name)
        .ok_or_else(|| anyhow!("no dynamic completion for {name}"))?;
    let mut script = Vec::new();
    shell
        .write_registration(VAR, "agentfs", "agentfs", &completer_path(), &mut script)
        .context("cannot write the completion script")?;
    io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// The program the script calls for candidates: `agentfs` when it was run by name (found on
/// `$PATH` at TAB time), else this binary's path made absolute, as `CompleteEnv` does.
fn completer_path() -> String {
    let arg0 = PathBuf::from(
        std::env::args_os()
            .next()
            .unwrap_or_else(|| "agentfs".into()),
    );
    let path = if arg0.components().count() > 1 {
        std::path::absolute(&arg0).unwrap_or(arg0)
    } else {
        arg0
    };
    path.to_string_lossy().into_owned()
}

/// Answers a completion request (`AGENTFS_COMPLETE=SHELL agentfs -- WORDS...`) and exits; returns
/// at once on an ordinary run.
pub fn complete_if_asked() {
    CompleteEnv::with_factory(super::Cli::command)
        .var(VAR)
        .bin("agentfs")
        .complete();
}

/// Completer of a SESSION argument: ids of the sessions in `$AGENTFS_HOME`, and file names
/// once the word looks like a path (a SESSION may be a path to a .db file).
pub fn session() -> ArgValueCompleter {
    ArgValueCompleter::new(SessionCompleter)
}

struct SessionCompleter;

impl ValueCompleter for SessionCompleter {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let Some(prefix) = current.to_str() else {
            return Vec::new();
        };
        if prefix.contains('/') || prefix.starts_with('.') {
            return PathCompleter::any().complete(current);
        }
        let Ok(home) = agentfs::session::home() else {
            return Vec::new();
        };
        agentfs::session::list_ids(&home)
            .into_iter()
            .filter(|id| id.starts_with(prefix))
            .map(CompletionCandidate::new)
            .collect()
    }
}

/// Candidates of `agentfs sql --query NAME`: the named queries, with their summaries.
pub fn named_query() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        agentfs::repl::QUERIES
            .iter()
            .map(|q| CompletionCandidate::new(q.name).help(Some(q.summary().into())))
            .collect::<Vec<_>>()
    })
}
