//! tidelog: a durable, thread-per-core event store.
//!
//! One shard per core, each a glommio executor with its own io_uring WAL (group commit), its own
//! DashMaps of rkyv-archived events and its own indexes. [`Store`] is the handle applications use.
//!
//! ```no_run
//! use tidelog::{NewEvent, Query, Store, StoreConfig};
//! let store = Store::open(StoreConfig::new("./tidelog-data").fsync_interval_ms(0))?;
//! let ack = futures_lite::future::block_on(
//!     store.append(NewEvent::new("user-1", "user.created", &serde_json::json!({"name": "Ada"}))),
//! )?;
//! let page = futures_lite::future::block_on(store.query(&Query::tenant("default").entity("user-1")))?;
//! assert_eq!(page.events[0].id(), ack.id);
//! store.close()?;
//! # Ok::<(), tidelog::Error>(())
//! ```

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod durable;
pub mod epoch;
pub mod error;
pub mod event;
pub mod layout;
#[cfg(feature = "bench")]
pub mod loadgen;
pub mod meta;
pub mod query;
#[cfg(feature = "server")]
pub mod server;
pub mod shard;
#[cfg(feature = "object-store")]
pub mod ship;
pub mod store;
#[cfg(feature = "side-runtime")]
pub mod side_runtime;
#[cfg(feature = "sql")]
pub mod sql;
pub mod time;
pub mod wal;

pub use config::StoreConfig;
pub use store::{AckFuture, AppendAck, Producer, ShardStatus, Store};
pub use error::Error;
pub use event::{NewEvent, StoredEvent, DEFAULT_TENANT};
pub use query::{EntityState, Order, Query, QueryResult, TenantStats, TypeFilter};
pub use shard::RecoveryReport;
pub use wal::{BatchDecision, BatchOutcome, FsyncMode, MidLogCorruption, WalRecovery};
