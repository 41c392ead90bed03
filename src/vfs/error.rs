//! Typed filesystem errors and their one mapping to errno.

use crate::store::StoreError;

/// Why a filesystem operation failed. [`VfsError::errno`] is the only place that turns these
/// into errno values.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("file name longer than 255 bytes")]
    NameTooLong,
    #[error("invalid argument")]
    Invalid,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("bad file handle")]
    BadHandle,
    #[error("no such extended attribute")]
    NoAttr,
    #[error("too many levels of symbolic links")]
    Loop,
    #[error("not a symbolic link")]
    NotSymlink,
    #[error("file too large")]
    TooBig,
    #[error("operation not supported")]
    NotSupported,
    #[error("no space left on device")]
    NoSpace,
    #[error("cannot move this directory within the overlay (it has base content)")]
    CrossDevice,
    /// The base file under a partially copied-up file cannot be read, or changed on the host
    /// since the copy-up (its bytes are no longer the ones the session started from).
    #[error("the base file under this partially copied-up file {0}")]
    BaseRead(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for VfsError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => VfsError::NoSpace,
            _ => VfsError::Store(e.into()),
        }
    }
}

impl VfsError {
    /// The errno a kernel adapter reports for this error.
    pub fn errno(&self) -> i32 {
        match self {
            VfsError::NotFound => libc::ENOENT,
            VfsError::Exists => libc::EEXIST,
            VfsError::NotDir => libc::ENOTDIR,
            VfsError::IsDir => libc::EISDIR,
            VfsError::NotEmpty => libc::ENOTEMPTY,
            VfsError::NameTooLong => libc::ENAMETOOLONG,
            VfsError::Invalid => libc::EINVAL,
            VfsError::NotPermitted => libc::EPERM,
            VfsError::BadHandle => libc::EBADF,
            VfsError::NoAttr => libc::ENODATA,
            VfsError::Loop => libc::ELOOP,
            VfsError::NotSymlink => libc::EINVAL,
            VfsError::TooBig => libc::EFBIG,
            VfsError::NotSupported => libc::EOPNOTSUPP,
            VfsError::NoSpace => libc::ENOSPC,
            VfsError::CrossDevice => libc::EXDEV,
            VfsError::BaseRead(_) => libc::EIO,
            VfsError::Store(StoreError::Io { source, .. }) => {
                source.raw_os_error().unwrap_or(libc::EIO)
            }
            VfsError::Store(_) => libc::EIO,
        }
    }
}

pub type VfsResult<T> = Result<T, VfsError>;
