//! Errors of shipping to and restoring from an object store.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("object store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("object store, {op} {key}: {}", chain(source))]
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
    Failed(String),
}

/// An error and its causes, `: `-separated (the HTTP client's own message alone, "builder error", says
/// nothing of why).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
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
