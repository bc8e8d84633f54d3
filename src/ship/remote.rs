//! The object store a data directory ships to: opened from a URL (`s3://BUCKET/PREFIX`, `file:///DIR`),
//! and the keys of what is shipped under its prefix (docs/FORMAT.md, "Object store").

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use super::error::ShipError;

/// One request's retries inside the client; a round that still fails is retried by the shipper with its
/// own back-off, so these stay short enough for `/health` to report a down store within seconds.
fn retry_config() -> RetryConfig {
    RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(15), ..RetryConfig::default() }
}

#[derive(Clone)]
pub struct Remote {
    pub store: Arc<dyn ObjectStore>,
    pub url: String,
}

impl Remote {
    /// `s3://BUCKET[/PREFIX]` (credentials, region and endpoint from the standard `AWS_*` variables, e.g.
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`) or `file:///DIR` (created if missing).
    pub fn open(url: &str) -> Result<Remote, ShipError> {
        let bad = |reason: String| ShipError::BadUrl { url: url.to_string(), reason };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let prefix = parsed.path().trim_matches('/').to_string();
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" | "s3a" => {
                // The HTTP client's TLS needs a process-wide provider; a second install fails harmlessly.
                // ring (deprecated in rustls for lacking post-quantum key exchange) rather than building
                // aws-lc from C: object_store already builds ring for request signing.
                #[allow(deprecated)]
                let _ = rustls::crypto::ring::default_provider().install_default();
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(bad("no bucket: use s3://BUCKET/PREFIX".into()));
                }
                let client = ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(120));
                // The timeouts first: the AWS_* variables (AWS_ALLOW_HTTP is a client option) go on top.
                let mut s3 = AmazonS3Builder::new().with_client_options(client).with_retry(retry_config());
                for (name, value) in std::env::vars().filter(|(name, _)| name.starts_with("AWS_")) {
                    if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                        s3 = s3.with_config(key, value);
                    }
                }
                let s3 = s3.with_url(url).build().map_err(|e| bad(e.to_string()))?;
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                }
            }
            "file" => {
                let dir = parsed.to_file_path().map_err(|_| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(format!("create {}: {e}", dir.display())))?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?)
            }
            other => return Err(bad(format!("scheme {other:?} is not supported (s3:// or file://)"))),
        };
        Ok(Remote { store, url: url.to_string() })
    }
}

pub const META_KEY: &str = "tidelog.json";
pub const EPOCHS_KEY: &str = "EPOCHS";
/// Written at the end of every round that shipped everything: when that round started.
pub const SHIPPED_KEY: &str = "SHIPPED.json";

pub fn shard_prefix(shard: usize) -> String {
    format!("shard-{shard}")
}

pub fn wal_prefix(shard: usize) -> Key {
    Key::from(format!("shard-{shard}/wal"))
}

pub fn checkpoint_prefix(shard: usize) -> Key {
    Key::from(format!("shard-{shard}/checkpoints"))
}

/// Bytes `offset..` of a WAL segment (up to the end of a record, or of a sealed segment).
pub fn part_key(shard: usize, first_position: u64, offset: u64) -> Key {
    Key::from(format!("shard-{shard}/wal/{first_position:020}.log.{offset:020}.part"))
}

pub fn checkpoint_key(shard: usize, file: &str) -> Key {
    Key::from(format!("shard-{shard}/checkpoints/{file}"))
}

/// What a key under `shard-<k>/wal/` names.
#[derive(Debug, PartialEq, Eq)]
pub enum WalObject {
    Part { first_position: u64, offset: u64 },
}

pub fn parse_wal_name(name: &str) -> Option<WalObject> {
    let number = |s: &str| if s.len() == 20 { s.parse::<u64>().ok() } else { None };
    let rest = name.strip_suffix(".part")?;
    let (stem, offset) = rest.split_once(".log.")?;
    Some(WalObject::Part { first_position: number(stem)?, offset: number(offset)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_names_round_trip() {
        let part = part_key(1, 42, 4096);
        assert_eq!(parse_wal_name(part.filename().unwrap()), Some(WalObject::Part { first_position: 42, offset: 4096 }));
        assert_eq!(parse_wal_name("00000000000000000042.log"), None);
        assert_eq!(parse_wal_name("00000000000000000042.log.tmp"), None);
    }
}
