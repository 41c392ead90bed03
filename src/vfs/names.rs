//! File names as bytes: validation, and how they are stored in TEXT columns.
//!
//! A UTF-8 name is stored as TEXT, so SPEC 0.4 tools read it as usual; any other byte string
//! is stored as a BLOB in the same column. SQLite never converts a BLOB to TEXT, and a valid
//! UTF-8 name is always TEXT, so one name has exactly one stored form and lookups stay exact.

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::error::{VfsError, VfsResult};

/// Longest name, in bytes, as NAME_MAX on Linux.
pub const NAME_MAX: usize = 255;

/// Checks a name for one directory entry: not empty, not `.`/`..`, no `/` or NUL, at most
/// [`NAME_MAX`] bytes.
pub fn check_name(name: &[u8]) -> VfsResult<()> {
    if name.len() > NAME_MAX {
        return Err(VfsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0)
    {
        return Err(VfsError::Invalid);
    }
    Ok(())
}

/// The SQL value a name (or a path) is stored as.
pub fn to_sql(bytes: &[u8]) -> ToSqlOutput<'_> {
    match std::str::from_utf8(bytes) {
        Ok(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Err(_) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
    }
}

/// Reads back a name stored by [`to_sql`] (TEXT or BLOB).
pub fn from_sql(value: ValueRef<'_>) -> rusqlite::Result<Vec<u8>> {
    match value {
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(b.to_vec()),
        other => Err(rusqlite::Error::InvalidColumnType(
            0,
            "name".into(),
            other.data_type(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slash_nul_or_dots_are_invalid() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(matches!(check_name(bad), Err(VfsError::Invalid)), "{bad:?}");
        }
    }

    #[test]
    fn name_of_256_bytes_is_too_long_and_255_is_fine() {
        assert!(matches!(
            check_name(&[b'x'; 256]),
            Err(VfsError::NameTooLong)
        ));
        assert!(check_name(&[b'x'; 255]).is_ok());
    }

    #[test]
    fn non_utf8_names_become_blobs() {
        assert!(matches!(
            to_sql(b"caf\xc3\xa9"),
            ToSqlOutput::Borrowed(ValueRef::Text(_))
        ));
        assert!(matches!(
            to_sql(b"caf\xe9"),
            ToSqlOutput::Borrowed(ValueRef::Blob(_))
        ));
    }
}
