//! Domain types: parsed once at the edge, trusted everywhere else; and the statistics of
//! the analysis pages, as pure functions.

pub mod agreement;
pub mod annotation;
pub mod assignment;
pub mod code_clusters;
pub mod codebook;
pub mod dataset_name;
pub mod ids;
pub mod import;
pub mod judge_stats;
pub mod order;
pub mod review;
pub mod saturation;
pub mod search;
pub mod slug;
pub mod tool_calls;
pub mod trace;

pub use annotation::{AnnotationInput, OpenCodes, Verdict};
pub use dataset_name::{DatasetName, NameError};
pub use ids::{AnnotationId, AssigneeId, DatasetId, ImportId, ModeId, TracePk, UserId};
pub use import::{ImportState, RowError};
pub use order::SortKey;
pub use slug::Slug;
pub use tool_calls::ToolCall;
pub use trace::{Metadata, NewTrace};
