//! The event model: what clients submit, what is stored, and how input is checked.

mod arena;
mod input;
mod json;
mod model;
mod validate;

pub use input::{NewEvent, DEFAULT_TENANT};
pub use json::parse_event_json;
pub(crate) use arena::Chunk;
pub use model::{ArchivedEvent, Event, StoredEvent};
pub use validate::{validate_batch, validate_event, validate_tenant, Field, Limits, ValidationError};
