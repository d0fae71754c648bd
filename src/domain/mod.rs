//! Domain types: parsed once at the edge, trusted everywhere else.

pub mod agreement;
pub mod annotation;
pub mod dataset_name;
pub mod judge_stats;
pub mod order;
pub mod slug;
pub mod tool_calls;

pub use annotation::{AnnotationInput, OpenCodes, Verdict};
pub use dataset_name::{DatasetName, NameError};
pub use order::SortKey;
pub use slug::Slug;
pub use tool_calls::ToolCall;
