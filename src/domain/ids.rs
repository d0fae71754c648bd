//! Typed ids of the rows that cross layers, so a trace's row id can never be passed where a
//! dataset or a user is meant. Each wraps the row's BIGINT primary key.

use std::fmt;

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

row_id!(
    /// A trace's row (`traces.id`) — not the `trace_id` text people see in URLs.
    TracePk
);
row_id!(
    /// A dataset (`datasets.id`).
    DatasetId
);
row_id!(
    /// A person (`users.id`).
    UserId
);
row_id!(
    /// One annotator's annotation of one trace (`annotations.id`).
    AnnotationId
);
row_id!(
    /// One import attempt (`imports.id`).
    ImportId
);
row_id!(
    /// A person named in a dataset's assignment (`assignees.id`), by email.
    AssigneeId
);
row_id!(
    /// A failure mode of a dataset's codebook (`failure_modes.id`).
    ModeId
);
