//! Who sees what: the one rule for which traces and whose annotations a request may see,
//! used by the list, next-unannotated, the trace view, the counts and the export.
//!
//! Every scoped statement binds the dataset as `$1` and the viewer as `$2`; the fragments
//! refer to them by those numbers (an assignee id, read from the database, is written into
//! the statement as a literal).
//!
//! The rules:
//! - traces of an import that is not done are never visible;
//! - under an assignment an annotator sees exactly their assigned traces (an annotator who
//!   is not assigned sees none); admins see every trace;
//! - an annotator's queue ("next unannotated") is their assigned traces, an admin's too when
//!   they are an assignee;
//! - annotators see only their own annotations; admins see everyone's in lists and exports;
//! - blind coding on the trace view: nobody sees another person's annotation of a trace
//!   before saving their own. Admins then see everyone's — and on traces they are not
//!   assigned to code (under an assignment that does not name them for it) they see them at
//!   once, since they are not coding those. A dataset setting keeps admins blind too: the
//!   trace view then shows no one else's annotation at all.

use crate::domain::{AssigneeId, DatasetId, UserId};

/// A viewer's scope in one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub dataset: DatasetId,
    pub viewer: UserId,
    /// Whose annotations are in scope: everyone's (admins, or a command-line export of
    /// everything), or only the viewer's own.
    pub annotations: Annotations,
    /// Which traces the viewer may see.
    pub traces: Traces,
    /// The viewer's queue under an assignment (their assignee row), if they have one.
    pub queue: Option<AssigneeId>,
    /// Whether other annotators' annotations may appear on the trace view (after the rule
    /// above) or never.
    pub others: Others,
    /// Whether the dataset has an assignment.
    pub under_assignment: bool,
}

/// Whose annotations a scope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Annotations {
    OwnOnly,
    Everyone,
}

/// Which traces a scope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Traces {
    /// Every visible trace of the dataset.
    All,
    /// Only the traces assigned to this assignee.
    Assigned(AssigneeId),
    /// None: the dataset has an assignment that does not name the viewer.
    Unassigned,
}

/// Whether others' annotations may show on the trace view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Others {
    /// Never (annotators; admins of a dataset that keeps admins blind).
    Never,
    /// A lead's view, blind until their own save (see the module doc).
    Blind,
}

/// How a viewer stands towards a dataset's assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// The dataset has no assignment: everyone may code everything.
    None,
    /// The dataset has one; the viewer is this assignee, or not named (`None`).
    Active(Option<AssigneeId>),
}

impl Scope {
    /// An annotator: their own annotations, their assigned traces.
    pub fn annotator(dataset: DatasetId, viewer: UserId, assignment: Assignment) -> Scope {
        let (traces, queue) = match assignment {
            Assignment::None => (Traces::All, None),
            Assignment::Active(Some(id)) => (Traces::Assigned(id), Some(id)),
            Assignment::Active(None) => (Traces::Unassigned, None),
        };
        Scope {
            dataset,
            viewer,
            annotations: Annotations::OwnOnly,
            traces,
            queue,
            others: Others::Never,
            under_assignment: assignment != Assignment::None,
        }
    }

    /// A lead: every trace and everyone's annotations (blind on the trace view unless
    /// `blind_admins` keeps them out of it entirely); their queue if they are an assignee.
    pub fn lead(
        dataset: DatasetId,
        viewer: UserId,
        assignment: Assignment,
        blind_admins: bool,
    ) -> Scope {
        Scope {
            dataset,
            viewer,
            annotations: Annotations::Everyone,
            traces: Traces::All,
            queue: match assignment {
                Assignment::Active(id) => id,
                Assignment::None => None,
            },
            others: if blind_admins {
                Others::Never
            } else {
                Others::Blind
            },
            under_assignment: assignment != Assignment::None,
        }
    }

    /// An annotator's scope without an assignment (saves and tests that need no more).
    pub fn own(dataset: DatasetId, viewer: UserId) -> Scope {
        Scope::annotator(dataset, viewer, Assignment::None)
    }

    /// Everyone's annotations on every trace, seen by no one in particular.
    pub fn everyone(dataset: DatasetId, viewer: UserId) -> Scope {
        Scope::lead(dataset, viewer, Assignment::None, false)
    }

    /// The command line (an export of everything): everyone's annotations, and no viewer
    /// of its own (the viewer parameter is bound but matches no one).
    pub fn command_line(dataset: DatasetId) -> Scope {
        Scope::everyone(dataset, UserId(0))
    }

    /// SQL condition: trace `t` is visible. Traces of an import that is not done (running
    /// or failed) never are, so an import is never half-visible: the subquery reads the few
    /// import rows of one dataset (index `imports_dataset_state`) once per statement. Under
    /// an assignment an annotator's traces are probed in `trace_assignments`' primary key.
    pub fn traces(&self, t: &str) -> String {
        let done = format!(
            "{t}.import_id NOT IN (SELECT i.id FROM imports i WHERE i.dataset_id = $1 AND i.state <> 'done')"
        );
        match self.traces {
            Traces::All => done,
            // A probe of the assignee's row for this trace (primary key), written as a
            // scalar subquery with LIMIT so that Postgres keeps it a probe: as `EXISTS` it
            // became a semi-join that merged all of the assignee's rows into every walk of
            // `traces` (16 ms instead of 0.2 ms for a neighbour at 100,000 traces).
            Traces::Assigned(id) => format!(
                "{done} AND (SELECT 1 FROM trace_assignments x WHERE x.dataset_id = $1 \
                 AND x.assignee = {id} AND x.sort_key = {t}.sort_key LIMIT 1) IS NOT NULL"
            ),
            Traces::Unassigned => format!("{done} AND 1 = 0"),
        }
    }

    /// The walk of the viewer's queue: its FROM clause (with `t` the trace) and the column it
    /// is ordered by. Without an assignment it is the dataset's `(dataset_id, sort_key)`
    /// index; with one, the assignee's rows of `trace_assignments` (its primary key), so an
    /// annotator's next trace is as fast to find at a million traces as without one.
    pub fn queue_walk(&self) -> (String, &'static str) {
        match self.queue {
            Some(id) => (
                format!(
                    "trace_assignments q JOIN traces t ON t.id = q.trace_pk \
                     AND q.dataset_id = $1 AND q.assignee = {id}"
                ),
                "q.sort_key",
            ),
            None => ("traces t".to_string(), "t.sort_key"),
        }
    }

    /// Whether the viewer has a queue at all (an unassigned annotator under an assignment
    /// has none).
    pub fn has_queue(&self) -> bool {
        self.traces != Traces::Unassigned || self.queue.is_some()
    }

    /// Whether anyone else's annotation can show on the trace view (saves a query when not).
    pub fn shows_others(&self) -> bool {
        self.others == Others::Blind
    }

    /// SQL condition on annotation `a` of another person, for the trace view: the blind
    /// rule. The viewer's own annotation of the same trace exists, or the viewer is not
    /// assigned to code that trace under the dataset's assignment.
    pub fn others_visible(&self, a: &str) -> String {
        let saved_own = format!(
            "EXISTS (SELECT 1 FROM annotations m WHERE m.trace_pk = {a}.trace_pk AND m.user_id = $2)"
        );
        match (self.others, self.queue) {
            (Others::Never, _) => "1 = 0".to_string(),
            (Others::Blind, Some(id)) => format!(
                "({saved_own} OR NOT EXISTS (SELECT 1 FROM trace_assignments x \
                 WHERE x.trace_pk = {a}.trace_pk AND x.assignee = {id}))"
            ),
            // A lead of an assigned dataset who is not an assignee codes nothing there.
            (Others::Blind, None) if self.under_assignment => "1 = 1".to_string(),
            (Others::Blind, None) => saved_own,
        }
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

    const D: DatasetId = DatasetId(1);
    const U: UserId = UserId(7);

    #[test]
    fn annotators_see_their_own_annotations_and_assigned_traces() {
        let own = Scope::own(D, U);
        assert_eq!(own.annotations("a"), "a.user_id = $2");
        assert!(!own.traces("t").contains("trace_assignments"));
        assert!(!own.shows_others());
        let assigned = Scope::annotator(D, U, Assignment::Active(Some(AssigneeId(3))));
        assert!(assigned.traces("t").contains("x.assignee = 3"));
        assert_eq!(assigned.queue_walk().1, "q.sort_key");
        let outside = Scope::annotator(D, U, Assignment::Active(None));
        assert!(outside.traces("t").ends_with("AND 1 = 0"));
        assert!(!outside.has_queue());
        assert!(own.has_queue() && assigned.has_queue());
    }

    #[test]
    fn leads_see_every_trace_and_others_only_after_their_own_save() {
        let lead = Scope::lead(D, U, Assignment::None, false);
        assert_eq!(lead.annotations("a"), "$2 = $2");
        assert!(!lead.traces("t").contains("trace_assignments"));
        assert!(
            lead.others_visible("a")
                .starts_with("EXISTS (SELECT 1 FROM annotations m")
        );
        // An assignee lead: after their own save, or on traces not theirs to code.
        let coding = Scope::lead(D, U, Assignment::Active(Some(AssigneeId(4))), false);
        assert!(coding.others_visible("a").contains("x.assignee = 4"));
        assert_eq!(coding.queue_walk().1, "q.sort_key");
        // A lead outside the assignment codes nothing: sees everyone's.
        let reviewer = Scope::lead(D, U, Assignment::Active(None), false);
        assert_eq!(reviewer.others_visible("a"), "1 = 1");
        assert_eq!(reviewer.queue_walk().1, "t.sort_key");
        // Admins kept blind: never.
        let blind = Scope::lead(D, U, Assignment::None, true);
        assert!(!blind.shows_others());
        assert_eq!(blind.others_visible("a"), "1 = 0");
    }
}
