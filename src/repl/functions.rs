//! SQL functions added to every connection of `agentfs sql` and `agentfs diff`, so queries
//! can name files by path, read both sides of a change and show it as a patch:
//! `path_of`, `content`, `content_hash`, `base_content`, `blake3`, `unified_diff`, `is_text`,
//! `human_size` (SPEC.md, "SQL functions").

use std::path::PathBuf;

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};

use crate::diff::{self, DiffError, Patch};
use crate::vfs::{Ino, rows};

/// Registers the functions on `conn`; `base_content` reads below `base` (none: always NULL).
pub fn register(conn: &Connection, base: Option<PathBuf>) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    let pure = flags | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("path_of", 1, flags, |ctx| {
        let Some(ino) = ino_arg(ctx)? else {
            return Ok(Value::Null);
        };
        // SAFETY: the connection is used only inside this call, on this thread.
        let conn = unsafe { ctx.get_connection()? };
        Ok(match rows::path_of(&conn, ino).map_err(user_error)? {
            Some(p) => Value::Text(String::from_utf8_lossy(&p).into_owned()),
            None => Value::Null,
        })
    })?;
    conn.create_scalar_function("content", 1, flags, |ctx| {
        let Some(ino) = ino_arg(ctx)? else {
            return Ok(Value::Null);
        };
        // SAFETY: as above.
        let conn = unsafe { ctx.get_connection()? };
        let bytes = diff::file_bytes(&conn, ino).map_err(user_error)?;
        Ok(bytes.map_or(Value::Null, Value::Blob))
    })?;
    conn.create_scalar_function("content_hash", 1, flags, |ctx| {
        let Some(ino) = ino_arg(ctx)? else {
            return Ok(Value::Null);
        };
        // SAFETY: as above.
        let conn = unsafe { ctx.get_connection()? };
        let bytes = diff::file_bytes(&conn, ino).map_err(user_error)?;
        Ok(bytes.map_or(Value::Null, |b| {
            Value::Text(blake3::hash(&b).to_hex().to_string())
        }))
    })?;
    conn.create_scalar_function("base_content", 1, flags, move |ctx| {
        let (Some(base), Some(path)) = (&base, ctx.get::<Option<String>>(0)?) else {
            return Ok(Value::Null);
        };
        Ok(diff::base_bytes(base, &path).map_or(Value::Null, Value::Blob))
    })?;
    conn.create_scalar_function("blake3", 1, pure, |ctx| {
        Ok(bytes_arg(ctx, 0)?.map_or(Value::Null, |b| {
            Value::Text(blake3::hash(&b).to_hex().to_string())
        }))
    })?;
    conn.create_scalar_function("is_text", 1, pure, |ctx| {
        Ok(bytes_arg(ctx, 0)?.map_or(Value::Null, |b| Value::Integer(diff::is_text(&b) as i64)))
    })?;
    conn.create_scalar_function("human_size", 1, pure, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Integer(n) => Value::Text(human_size(n as f64)),
            ValueRef::Real(n) => Value::Text(human_size(n)),
            _ => Value::Null,
        })
    })?;
    for n_args in [2, 3] {
        conn.create_scalar_function("unified_diff", n_args, pure, |ctx| {
            let old = bytes_arg(ctx, 0)?;
            let new = bytes_arg(ctx, 1)?;
            let name = if ctx.len() > 2 {
                ctx.get::<Option<String>>(2)?
            } else {
                None
            }
            .unwrap_or_else(|| "file".to_string());
            Ok(Value::Text(
                match diff::unified(old.as_deref(), new.as_deref(), &name, &name) {
                    Patch::Text { text, .. } => text,
                    Patch::Binary => {
                        let name = name.trim_start_matches('/');
                        format!("Binary files a/{name} and b/{name} differ\n")
                    }
                },
            ))
        })?;
    }
    Ok(())
}

/// `1.5 KiB`, `12 B`: powers of 1024, one decimal above bytes.
pub fn human_size(n: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn ino_arg(ctx: &Context<'_>) -> rusqlite::Result<Option<Ino>> {
    Ok(ctx.get::<Option<i64>>(0)?.map(|i| Ino(i as u64)))
}

/// A BLOB or TEXT argument as bytes; NULL as `None`; numbers as their text.
fn bytes_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        ValueRef::Real(f) => Some(f.to_string().into_bytes()),
    })
}

fn user_error(e: impl Into<DiffError>) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(12.0), "12 B");
        assert_eq!(human_size(1536.0), "1.5 KiB");
        assert_eq!(human_size(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }

    #[test]
    fn pure_functions_work_on_a_bare_connection() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, None).unwrap();
        let row: (String, i64, i64, Option<Vec<u8>>, String, String) = conn
            .query_row(
                "SELECT blake3(x'616263'), is_text('abc'), is_text(x'00'), \
                 base_content('/x'), unified_diff('a\nb\n', 'a\nc\n', 'f'), \
                 unified_diff(x'00', 'a', 'bin')",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(row.0, blake3::hash(b"abc").to_hex().to_string());
        assert_eq!((row.1, row.2, row.3), (1, 0, None));
        assert!(row.4.contains("-b\n+c\n"), "{}", row.4);
        assert_eq!(row.5, "Binary files a/bin and b/bin differ\n");
    }
}
