//! Errors of shipping to and restoring from an object store.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("object store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("object store, {op} {key}: {source}")]
    Remote {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The prefix holds another store's files: shipping there would mix two stores' histories.
    #[error("{url} holds another store (its tidelog.json differs from this data directory's): not shipping there")]
    OtherStore { url: String },
    #[error("{0}")]
    Restore(String),
}

impl ShipError {
    pub(crate) fn remote<'a>(op: &'static str, key: &'a object_store::path::Path) -> impl FnOnce(object_store::Error) -> ShipError + 'a {
        move |source| ShipError::Remote { op, key: key.to_string(), source }
    }

    pub(crate) fn io<'a>(op: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> ShipError + 'a {
        move |source| ShipError::Io { op, path: path.to_path_buf(), source }
    }
}

impl From<ShipError> for crate::Error {
    fn from(e: ShipError) -> crate::Error {
        match e {
            ShipError::Io { op, path, source } => crate::Error::io(format!("{op} {}", path.display()), source),
            other => crate::Error::ObjectStore(other.to_string()),
        }
    }
}
