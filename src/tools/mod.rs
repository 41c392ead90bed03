//! The tools agents call on a session without a mount (`agentfs serve mcp`): files, key-value
//! pairs, the changes, diffs and read-only SQL, on the merged view exactly as the mount shows
//! it (base files read in place, no copy-up on read, whiteouts hide). Every call is a
//! `tool_calls` row, and the journal rows a call made name it (`fs_change.tool_call_id`).

mod files;
pub mod record;
mod search;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::overlay::Overlay;
use crate::store::OpenMode;
use crate::vfs::{FileKind, ToolCallScope, Vfs, VfsError};
use files::Files;

/// Rows a `sql` call returns unless it asks for fewer.
const DEFAULT_SQL_ROWS: usize = 100;
/// Lines a `read_file` call returns unless it asks for fewer.
const DEFAULT_READ_LINES: usize = 2000;
/// Matches a `search` call returns unless it asks for fewer.
const DEFAULT_SEARCH_RESULTS: usize = 100;

/// Why a tool call failed; its Display is what the agent reads.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{path}: {problem}")]
    Path { path: String, problem: String },
    #[error("{0}")]
    BadInput(String),
    #[error("{0} changes the session, and this server is read-only (started with --read-only)")]
    ReadOnly(String),
    #[error("no tool named {0:?} here (tools/list names those this server offers)")]
    Unknown(String),
    #[error("the session database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the session: {0}")]
    Vfs(#[from] VfsError),
    #[error("cannot open the session: {0}")]
    Open(#[from] crate::store::StoreError),
    #[error("{0}")]
    Diff(#[from] crate::diff::DiffError),
}

impl ToolError {
    /// `path` failed with `e`, said the way a shell would.
    fn path(path: &str, e: VfsError) -> ToolError {
        let problem = match e {
            VfsError::NotFound => "no such file or directory".to_string(),
            VfsError::NotDir => "a component of the path is not a directory".to_string(),
            VfsError::IsDir => "is a directory".to_string(),
            VfsError::Exists => "already exists".to_string(),
            VfsError::NotEmpty => "is a directory that is not empty".to_string(),
            VfsError::Loop => "too many levels of symbolic links".to_string(),
            other => other.to_string(),
        };
        ToolError::Path {
            path: path.to_string(),
            problem,
        }
    }
}

/// A tool as clients see it.
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether it changes the session (refused by a read-only server).
    pub writes: bool,
    /// The JSON Schema of its arguments.
    pub schema: fn() -> Value,
}

fn path_schema(what: &str) -> Value {
    json!({"type": "string", "description": format!("{what}, from the session's root (e.g. /src/main.rs)")})
}

/// Every tool, in the order clients list them.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "read_file",
        description: "Read a text file of the session, as numbered lines. offset is the first line (1-based), limit how many lines.",
        writes: false,
        schema: || json!({"type": "object", "properties": {"path": path_schema("The file"), "offset": {"type": "integer", "minimum": 1}, "limit": {"type": "integer", "minimum": 1}}, "required": ["path"]}),
    },
    ToolSpec {
        name: "write_file",
        description: "Write a file (created with its missing directories, or replaced).",
        writes: true,
        schema: || json!({"type": "object", "properties": {"path": path_schema("The file"), "content": {"type": "string"}}, "required": ["path", "content"]}),
    },
    ToolSpec {
        name: "edit_file",
        description: "Replace an exact string in a file: old_string must occur exactly once, unless replace_all.",
        writes: true,
        schema: || json!({"type": "object", "properties": {"path": path_schema("The file"), "old_string": {"type": "string"}, "new_string": {"type": "string"}, "replace_all": {"type": "boolean"}}, "required": ["path", "old_string", "new_string"]}),
    },
    ToolSpec {
        name: "list_dir",
        description: "List a directory: one entry per line, '/' after directories, '-> target' after symlinks, sizes of files.",
        writes: false,
        schema: || json!({"type": "object", "properties": {"path": path_schema("The directory")}, "required": ["path"]}),
    },
    ToolSpec {
        name: "mkdir",
        description: "Create a directory and its missing parents.",
        writes: true,
        schema: || json!({"type": "object", "properties": {"path": path_schema("The directory")}, "required": ["path"]}),
    },
    ToolSpec {
        name: "remove",
        description: "Remove a file, symlink or empty directory; recursive removes a whole tree.",
        writes: true,
        schema: || json!({"type": "object", "properties": {"path": path_schema("The entry"), "recursive": {"type": "boolean"}}, "required": ["path"]}),
    },
    ToolSpec {
        name: "rename",
        description: "Move an entry (a file at the destination is replaced).",
        writes: true,
        schema: || json!({"type": "object", "properties": {"from": path_schema("The entry"), "to": path_schema("Its new path")}, "required": ["from", "to"]}),
    },
    ToolSpec {
        name: "stat",
        description: "An entry's type, size, mode, link count and modification time (JSON).",
        writes: false,
        schema: || json!({"type": "object", "properties": {"path": path_schema("The entry")}, "required": ["path"]}),
    },
    ToolSpec {
        name: "search",
        description: "Find entries below path whose relative path matches glob (e.g. '**/*.rs'), and/or lines of text files matching the regular expression pattern; at most max_results lines.",
        writes: false,
        schema: || json!({"type": "object", "properties": {"path": path_schema("Where to search (default: /)"), "glob": {"type": "string"}, "pattern": {"type": "string"}, "max_results": {"type": "integer", "minimum": 1}}}),
    },
    ToolSpec {
        name: "kv_get",
        description: "The JSON value stored under key in the session's key-value store.",
        writes: false,
        schema: || json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
    },
    ToolSpec {
        name: "kv_set",
        description: "Store a JSON value under key.",
        writes: true,
        schema: || json!({"type": "object", "properties": {"key": {"type": "string"}, "value": {}}, "required": ["key", "value"]}),
    },
    ToolSpec {
        name: "kv_delete",
        description: "Remove key from the key-value store.",
        writes: true,
        schema: || json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
    },
    ToolSpec {
        name: "kv_list",
        description: "Every key of the key-value store with its value (a JSON object).",
        writes: false,
        schema: || json!({"type": "object", "properties": {}}),
    },
    ToolSpec {
        name: "changes",
        description: "What the session changed against its base (the rows of fs_changes, JSON): added, modified, deleted, renamed paths.",
        writes: false,
        schema: || json!({"type": "object", "properties": {"path": path_schema("Only changes at or below this path")}}),
    },
    ToolSpec {
        name: "diff",
        description: "The unified diff of what the session changed against its base, as git diff prints it (optionally of one path).",
        writes: false,
        schema: || json!({"type": "object", "properties": {"path": path_schema("Only changes at or below this path")}}),
    },
    ToolSpec {
        name: "sql",
        description: "Run one read-only SQL query on the session database (tables fs_inode, fs_dentry, fs_change, the view fs_changes, tool_calls, kv_store ...); JSON rows, at most limit.",
        writes: false,
        schema: || json!({"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}}, "required": ["query"]}),
    },
];

/// The tools of one session.
pub struct Tools {
    files: Files,
    db: PathBuf,
    read_only: bool,
    offered: Vec<&'static ToolSpec>,
}

impl Tools {
    /// Opens the session at `db`; `only` limits the tools offered (None: all).
    pub fn open(
        db: &std::path::Path,
        read_only: bool,
        only: Option<&[String]>,
    ) -> Result<Tools, ToolError> {
        if let Some(names) = only {
            for n in names {
                if !TOOLS.iter().any(|t| t.name == n) {
                    return Err(ToolError::Unknown(n.clone()));
                }
            }
        }
        let vfs = Vfs::open_session(db, OpenMode::Existing)?;
        let base = vfs.store()?.base_path()?;
        let overlay = Arc::new(Overlay::new(Arc::new(vfs), base));
        let offered = TOOLS
            .iter()
            .filter(|t| only.is_none_or(|n| n.iter().any(|x| x == t.name)))
            .collect();
        Ok(Tools {
            files: Files { overlay },
            db: db.to_path_buf(),
            read_only,
            offered,
        })
    }

    /// The tools this server offers.
    pub fn offered(&self) -> &[&'static ToolSpec] {
        &self.offered
    }

    /// Runs tool `name` with its JSON arguments, recorded as a `tool_calls` row; the text
    /// for the agent, or the error it reads.
    pub fn call(&self, name: &str, args: &Value) -> Result<String, ToolError> {
        let spec = self
            .offered
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ToolError::Unknown(name.to_string()))?;
        let vfs = self.files.overlay.vfs();
        let id = record::start(&vfs.store()?.conn, name, &args.to_string())?;
        let started = Instant::now();
        let outcome = {
            let _call = ToolCallScope::enter(Some(id));
            if spec.writes && self.read_only {
                Err(ToolError::ReadOnly(name.to_string()))
            } else if spec.writes {
                // A call's changes (a file replaced, a tree removed) commit together or
                // not at all.
                self.files.overlay.atomically(|| self.run(name, args))
            } else {
                self.run(name, args)
            }
        };
        let shown = outcome
            .as_ref()
            .map(String::as_str)
            .map_err(ToString::to_string);
        record::finish(
            &vfs.store()?.conn,
            id,
            shown.as_deref().map_err(String::as_str),
            started.elapsed(),
        )?;
        outcome
    }

    fn run(&self, name: &str, args: &Value) -> Result<String, ToolError> {
        let f = &self.files;
        match name {
            "read_file" => {
                let path = text(args, "path")?;
                let bytes = f.read(path)?;
                if !crate::diff::is_text(&bytes) {
                    return Err(ToolError::Path {
                        path: path.to_string(),
                        problem: format!("is a binary file ({} bytes)", bytes.len()),
                    });
                }
                let offset = count(args, "offset")?.unwrap_or(1).max(1);
                let limit = count(args, "limit")?.unwrap_or(DEFAULT_READ_LINES);
                let text = String::from_utf8_lossy(&bytes);
                Ok(text
                    .lines()
                    .enumerate()
                    .skip(offset - 1)
                    .take(limit)
                    .map(|(n, l)| format!("{:>6}\t{l}\n", n + 1))
                    .collect())
            }
            "write_file" => {
                let path = text(args, "path")?;
                let content = text(args, "content")?;
                let created = f.write(path, content.as_bytes())?;
                let verb = if created { "created" } else { "replaced" };
                Ok(format!("{verb} {path} ({} bytes)", content.len()))
            }
            "edit_file" => {
                let path = text(args, "path")?;
                let old = text(args, "old_string")?;
                let new = text(args, "new_string")?;
                let all = args
                    .get("replace_all")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if old.is_empty() {
                    return Err(ToolError::BadInput("old_string is empty".into()));
                }
                let bytes = f.read(path)?;
                let content = String::from_utf8(bytes).map_err(|_| ToolError::Path {
                    path: path.to_string(),
                    problem: "is not UTF-8 text".into(),
                })?;
                let n = content.matches(old).count();
                let problem = match n {
                    0 => Some("old_string does not occur in the file".to_string()),
                    1 => None,
                    n if !all => Some(format!(
                        "old_string occurs {n} times; give more context, or replace_all"
                    )),
                    _ => None,
                };
                if let Some(problem) = problem {
                    return Err(ToolError::Path {
                        path: path.to_string(),
                        problem,
                    });
                }
                f.write(path, content.replace(old, new).as_bytes())?;
                Ok(format!(
                    "replaced {n} occurrence{} in {path}",
                    if n == 1 { "" } else { "s" }
                ))
            }
            "list_dir" => {
                let path = text(args, "path")?;
                let ino = f.walk(path, true)?;
                let at = |e| ToolError::path(path, e);
                if f.overlay.getattr(ino).map_err(at)?.kind != FileKind::Dir {
                    return Err(at(VfsError::NotDir));
                }
                let mut entries = f.overlay.list(ino).map_err(at)?;
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                let mut out = String::new();
                for e in entries {
                    let name = String::from_utf8_lossy(&e.name);
                    match e.attr.kind {
                        FileKind::Dir => out += &format!("{name}/\n"),
                        FileKind::Symlink => {
                            let t = f.overlay.readlink(e.attr.ino).map_err(at)?;
                            out += &format!("{name} -> {}\n", String::from_utf8_lossy(&t));
                        }
                        _ => out += &format!("{name}  ({} bytes)\n", e.attr.size),
                    }
                }
                Ok(out)
            }
            "mkdir" => {
                let path = text(args, "path")?;
                f.mkdir_all(path)?;
                Ok(format!("made {path}"))
            }
            "remove" => {
                let path = text(args, "path")?;
                let recursive = args
                    .get("recursive")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                f.remove(path, recursive)?;
                Ok(format!("removed {path}"))
            }
            "rename" => {
                let (from, to) = (text(args, "from")?, text(args, "to")?);
                f.rename(from, to)?;
                Ok(format!("moved {from} to {to}"))
            }
            "stat" => {
                let path = text(args, "path")?;
                let a = f.attr(path, false)?;
                let kind = match a.kind {
                    FileKind::Dir => "directory",
                    FileKind::File => "file",
                    FileKind::Symlink => "symlink",
                    _ => "special",
                };
                let target = match a.kind {
                    FileKind::Symlink => Some(
                        String::from_utf8_lossy(
                            &f.overlay
                                .readlink(a.ino)
                                .map_err(|e| ToolError::path(path, e))?,
                        )
                        .into_owned(),
                    ),
                    _ => None,
                };
                Ok(json!({
                    "path": path, "type": kind, "size": a.size,
                    "mode": format!("{:o}", a.perm), "nlink": a.nlink,
                    "mtime": a.mtime.sec, "target": target,
                })
                .to_string())
            }
            "search" => {
                let root = args.get("path").and_then(Value::as_str).unwrap_or("/");
                let glob = match args.get("glob").and_then(Value::as_str) {
                    Some(g) => Some(
                        globset::GlobBuilder::new(g)
                            .literal_separator(true)
                            .build()
                            .map_err(|e| ToolError::BadInput(format!("glob {g:?}: {e}")))?
                            .compile_matcher(),
                    ),
                    None => None,
                };
                let regex = match args.get("pattern").and_then(Value::as_str) {
                    Some(p) => Some(regex::bytes::Regex::new(p).map_err(|e| {
                        ToolError::BadInput(format!(
                            "pattern is not a valid regular expression: {e}"
                        ))
                    })?),
                    None => None,
                };
                if glob.is_none() && regex.is_none() {
                    return Err(ToolError::BadInput(
                        "give a glob, a pattern, or both".into(),
                    ));
                }
                let max_results = count(args, "max_results")?.unwrap_or(DEFAULT_SEARCH_RESULTS);
                let q = search::Query {
                    root,
                    glob,
                    regex,
                    max_results,
                };
                let (lines, cut) = search::search(f, &q)?;
                let mut out = lines.join("\n");
                if cut {
                    out += &format!("\n(stopped at {max_results} results; narrow the search)");
                } else if lines.is_empty() {
                    out = "no matches".into();
                }
                Ok(out)
            }
            "kv_get" => {
                let key = text(args, "key")?;
                let store = f.overlay.vfs().store()?;
                crate::kv::get(&store.conn, key)?
                    .ok_or_else(|| ToolError::BadInput(format!("no key {key:?} in the store")))
            }
            "kv_set" => {
                let key = text(args, "key")?;
                let value = args
                    .get("value")
                    .ok_or_else(|| ToolError::BadInput("value is missing".into()))?
                    .to_string();
                crate::kv::check(key, &value).map_err(|e| ToolError::BadInput(e.to_string()))?;
                crate::kv::set(&f.overlay.vfs().store()?.conn, key, &value)?;
                Ok(format!("stored {key}"))
            }
            "kv_delete" => {
                let key = text(args, "key")?;
                match crate::kv::delete(&f.overlay.vfs().store()?.conn, key)? {
                    true => Ok(format!("deleted {key}")),
                    false => Err(ToolError::BadInput(format!("no key {key:?} in the store"))),
                }
            }
            "kv_list" => {
                let store = f.overlay.vfs().store()?;
                let mut all = serde_json::Map::new();
                for e in crate::kv::list(&store.conn)? {
                    let v = serde_json::from_str(&e.value).unwrap_or(Value::String(e.value));
                    all.insert(e.key, v);
                }
                Ok(Value::Object(all).to_string())
            }
            "changes" | "diff" => {
                let only: Vec<String> = args
                    .get("path")
                    .and_then(Value::as_str)
                    .map(|p| vec![format!("/{}", p.trim_matches('/'))])
                    .unwrap_or_default();
                let store = f.overlay.vfs().store()?;
                let changes = crate::diff::changes(&store.conn, &only)?;
                let base = crate::diff::base_dir(&store.conn)?;
                if name == "changes" {
                    Ok(crate::diff::render::json(
                        &store.conn,
                        base.as_deref(),
                        &changes,
                    )?)
                } else {
                    let patch = crate::diff::render::patches(
                        &store.conn,
                        base.as_deref(),
                        &changes,
                        false,
                    )?;
                    Ok(if patch.is_empty() {
                        "no changes".into()
                    } else {
                        patch
                    })
                }
            }
            "sql" => self.sql(text(args, "query")?, count(args, "limit")?),
            other => Err(ToolError::Unknown(other.to_string())),
        }
    }

    /// One read-only query, on a connection that cannot write.
    fn sql(&self, query: &str, limit: Option<usize>) -> Result<String, ToolError> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut stmt = conn
            .prepare(query)
            .map_err(|e| ToolError::BadInput(format!("sql: {e}")))?;
        if !stmt.readonly() {
            return Err(ToolError::BadInput(
                "sql runs queries only (SELECT, WITH, read-only PRAGMA); changes go through the other tools".into(),
            ));
        }
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let limit = limit.unwrap_or(DEFAULT_SQL_ROWS);
        let mut rows = stmt
            .query([])
            .map_err(|e| ToolError::BadInput(format!("sql: {e}")))?;
        let mut out = Vec::new();
        let mut truncated = false;
        while let Some(row) = rows
            .next()
            .map_err(|e| ToolError::BadInput(format!("sql: {e}")))?
        {
            if out.len() == limit {
                truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                use rusqlite::types::ValueRef;
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(x) => x.into(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    ValueRef::Blob(b) => format!("<{} bytes>", b.len()).into(),
                });
            }
            out.push(Value::Array(values));
        }
        Ok(json!({"columns": columns, "rows": out, "truncated": truncated}).to_string())
    }
}

/// The string argument `key`, which must be there.
fn text<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ToolError::BadInput(format!("{key} must be a string"))),
        None => Err(ToolError::BadInput(format!("{key} is missing"))),
    }
}

/// The optional positive integer argument `key`.
fn count(args: &Value, key: &str) -> Result<Option<usize>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .map(|n| Some(n as usize))
            .ok_or_else(|| ToolError::BadInput(format!("{key} must be a positive integer"))),
    }
}
