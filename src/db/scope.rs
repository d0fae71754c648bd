//! Who sees what: the one rule for which traces and whose annotations a request may see,
//! used by the list, next-unannotated, the trace view, the counts and the export.
//!
//! Every scoped statement binds the dataset as `$1` and the viewer as `$2`; the fragments
//! refer to them by those numbers. Assignment will narrow [`Scope::traces`] here, in one
//! place.

use crate::domain::{DatasetId, UserId};

/// A viewer's scope in one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub dataset: DatasetId,
    pub viewer: UserId,
    /// Whose annotations are in scope: everyone's (admins, or a command-line export of
    /// everything), or only the viewer's own.
    pub annotations: Annotations,
}

/// Whose annotations a scope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Annotations {
    OwnOnly,
    Everyone,
}

impl Scope {
    /// An annotator: their own annotations.
    pub fn own(dataset: DatasetId, viewer: UserId) -> Scope {
        Scope {
            dataset,
            viewer,
            annotations: Annotations::OwnOnly,
        }
    }

    /// A lead (or the command line): everyone's annotations.
    pub fn everyone(dataset: DatasetId, viewer: UserId) -> Scope {
        Scope {
            dataset,
            viewer,
            annotations: Annotations::Everyone,
        }
    }

    /// The command line (an export of everything): everyone's annotations, and no viewer
    /// of its own (the viewer parameter is bound but matches no one).
    pub fn command_line(dataset: DatasetId) -> Scope {
        Scope::everyone(dataset, UserId(0))
    }

    /// SQL condition: trace `t` is visible. Traces of an import that is not done (running
    /// or failed) never are, so an import is never half-visible. The subquery reads the few
    /// import rows of one dataset (index `imports_dataset_state`) once per statement.
    pub fn traces(&self, t: &str) -> String {
        format!(
            "{t}.import_id NOT IN (SELECT i.id FROM imports i WHERE i.dataset_id = $1 AND i.state <> 'done')"
        )
    }

    /// Whether anyone else's annotation can be in scope (saves a query when not).
    pub fn shows_others(&self) -> bool {
        self.annotations == Annotations::Everyone
    }

    /// SQL condition: annotation `a` (of this dataset) is in scope. The viewer is compared
    /// even for everyone's, so the statement binds the same parameters either way.
    pub fn annotations(&self, a: &str) -> String {
        match self.annotations {
            Annotations::OwnOnly => format!("{a}.user_id = $2"),
            Annotations::Everyone => "$2 = $2".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_scope_narrows_annotations_to_the_viewer() {
        let own = Scope::own(DatasetId(1), UserId(7));
        assert_eq!(own.annotations("a"), "a.user_id = $2");
        let all = Scope::everyone(DatasetId(1), UserId(7));
        assert_eq!(all.annotations("a"), "$2 = $2");
        assert!(own.traces("t").starts_with("t.import_id NOT IN"));
        assert_eq!(
            own.traces("t"),
            all.traces("t"),
            "traces do not depend on the role yet"
        );
    }
}
