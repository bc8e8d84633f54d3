//! The SQL layer's errors: what the client did wrong (bad SQL, a refused statement, a limit) apart from
//! what went wrong inside.

use datafusion::error::DataFusionError;

use crate::config::SqlLimits;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("invalid tenant: {0}")]
    Tenant(String),
    /// The parser's or the planner's message.
    #[error("{0}")]
    Invalid(String),
    /// DDL, DML, COPY, SET and the like: the store answers queries only.
    #[error("read-only: {0}; only queries (SELECT, WITH, EXPLAIN, VALUES) are allowed")]
    ReadOnly(String),
    #[error("the query needs more memory than its limit of {limit_bytes} bytes ({message})")]
    MemoryLimit { limit_bytes: u64, message: String },
    #[error("the query ran longer than its limit of {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("the answer has more than {max_rows} rows; add a LIMIT, or ask for application/x-ndjson or application/vnd.apache.arrow.stream, which stream without a row cap")]
    TooManyRows { max_rows: u64 },
    /// The query failed while running (a bad cast, a division by zero).
    #[error("{0}")]
    Execution(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl SqlError {
    /// Sorts a DataFusion error by its root cause.
    pub fn from_datafusion(e: DataFusionError, limits: &SqlLimits) -> SqlError {
        let message = e.to_string();
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => SqlError::Invalid(message),
            DataFusionError::ResourcesExhausted(m) => SqlError::MemoryLimit { limit_bytes: limits.memory_limit_bytes, message: m.clone() },
            DataFusionError::Execution(_) | DataFusionError::ArrowError(..) | DataFusionError::External(_) => SqlError::Execution(message),
            _ => SqlError::Internal(message),
        }
    }

    /// A stable code for clients (the `error` field of the JSON answer).
    pub fn code(&self) -> &'static str {
        match self {
            SqlError::Tenant(_) => "bad_request",
            SqlError::Invalid(_) => "invalid_sql",
            SqlError::ReadOnly(_) => "read_only",
            SqlError::MemoryLimit { .. } => "memory_limit_exceeded",
            SqlError::Timeout { .. } => "query_timeout",
            SqlError::TooManyRows { .. } => "too_many_rows",
            SqlError::Execution(_) => "query_failed",
            SqlError::Internal(_) => "internal",
        }
    }
}
