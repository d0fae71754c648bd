//! Domain types: parsed once at the edge, trusted everywhere else.

pub mod annotation;
pub mod ids;
pub mod import;
pub mod order;
pub mod slug;
pub mod tool_calls;
pub mod trace;

pub use annotation::{AnnotationInput, OpenCodes, Verdict};
pub use ids::{AnnotationId, DatasetId, ImportId, TracePk, UserId};
pub use import::{ImportState, RowError};
pub use order::SortKey;
pub use slug::Slug;
pub use tool_calls::ToolCall;
pub use trace::{Metadata, NewTrace};
