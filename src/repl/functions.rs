//! SQL functions the shell adds to a session connection, so queries can name files by path
//! and look at their contents: `path_of(ino)`, `content(ino)`, `content_hash(ino)`.

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::Value;

use crate::vfs::{Ino, data, rows};

/// Registers the functions on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("path_of", 1, flags, |ctx| {
        let Some(ino) = ino_arg(ctx)? else {
            return Ok(Value::Null);
        };
        // SAFETY: the connection is used only inside this call, on this thread.
        let conn = unsafe { ctx.get_connection()? };
        Ok(match rows::path_of(&conn, ino).map_err(to_sql_error)? {
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
        Ok(contents(&conn, ino)?.map_or(Value::Null, Value::Blob))
    })?;
    conn.create_scalar_function("content_hash", 1, flags, |ctx| {
        let Some(ino) = ino_arg(ctx)? else {
            return Ok(Value::Null);
        };
        // SAFETY: as above.
        let conn = unsafe { ctx.get_connection()? };
        Ok(contents(&conn, ino)?.map_or(Value::Null, |bytes| {
            Value::Text(blake3::hash(&bytes).to_hex().to_string())
        }))
    })?;
    Ok(())
}

fn ino_arg(ctx: &Context<'_>) -> rusqlite::Result<Option<Ino>> {
    Ok(ctx.get::<Option<i64>>(0)?.map(|i| Ino(i as u64)))
}

fn to_sql_error(e: crate::vfs::VfsError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e))
}

/// The bytes of a regular file, holes as zeros; `None` for other kinds or missing inodes.
fn contents(conn: &Connection, ino: Ino) -> rusqlite::Result<Option<Vec<u8>>> {
    let attr = match rows::attr(conn, ino) {
        Ok(a) => a,
        Err(crate::vfs::VfsError::NotFound) => return Ok(None),
        Err(e) => return Err(to_sql_error(e)),
    };
    if attr.kind != crate::vfs::FileKind::File {
        return Ok(None);
    }
    let chunk_size: u64 = conn
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM fs_config WHERE key = 'chunk_size'",
            [],
            |r| r.get::<_, i64>(0),
        )?
        .max(1) as u64;
    let mut out = Vec::with_capacity(attr.size as usize);
    let mut offset = 0;
    while offset < attr.size {
        let step = (64u64 << 20).min(attr.size - offset) as u32;
        let part =
            data::read(conn, chunk_size, ino, attr.size, offset, step).map_err(to_sql_error)?;
        if part.is_empty() {
            break;
        }
        offset += part.len() as u64;
        out.extend_from_slice(&part);
    }
    Ok(Some(out))
}
