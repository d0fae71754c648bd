//! Domain types: parsed once at the edge, trusted everywhere else.

pub mod annotation;
pub mod code_clusters;
pub mod order;
pub mod saturation;
pub mod slug;
pub mod tool_calls;

pub use annotation::{AnnotationInput, OpenCodes, Verdict};
pub use order::SortKey;
pub use slug::Slug;
pub use tool_calls::ToolCall;
