//! One trace: the conversation, its tool calls and metadata, and the annotation form.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::db::annotations::{Annotation, OthersAnnotation};
use crate::db::datasets::Dataset;
use crate::db::scope::Scope;
use crate::db::trace_view;
use crate::db::traces::{Trace, Turn};
use crate::db::users::User;
use crate::domain::Verdict;
use crate::domain::annotation::AnnotationErrors;
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::extract::OnTrace;
use crate::web::htmx::Htmx;
use crate::web::pages::{Nav, Progress};
use crate::web::{markdown, render, urls};

#[derive(Template, WebTemplate)]
#[template(path = "trace.html", blocks = ["main"])]
pub struct TracePage {
    pub nav: Option<Nav>,
    pub ds_name: String,
    pub list_url: String,
    pub trace: Trace,
    pub total_turns: i64,
    pub earlier: Vec<Turn>,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
    pub annotate_url: String,
    pub history_url: String,
    pub skip_url: String,
    pub undo_url: String,
    pub progress: Progress,
    pub mine: Option<Annotation>,
    /// The viewer skipped this trace and has not saved it since.
    pub skipped: bool,
    pub others: Vec<OthersAnnotation>,
    pub version: i64,
    pub form_note: String,
    pub form_codes: String,
    pub form_comments: String,
    pub errors: AnnotationErrors,
    pub fail_open: bool,
    pub conflict: Option<Conflict>,
    /// A verdict that would replace a different saved one, waiting for confirmation.
    pub confirm: Option<Confirm>,
    pub write_failed: bool,
    pub flash: Option<String>,
}

impl TracePage {
    /// The codes offered in the open-codes field (`/d/{dataset}/codes.json`).
    pub fn codes_url(&self) -> String {
        format!("{}/codes.json", self.list_url.trim_end_matches("/traces"))
    }

    /// The viewer's saved verdict, if any.
    pub fn mine_verdict(&self) -> Option<Verdict> {
        self.mine.as_ref().map(|a| a.verdict)
    }

    /// Whether the form for `verdict` confirms replacing the saved verdict when sent.
    pub fn confirms(&self, verdict: &str) -> bool {
        self.confirm
            .as_ref()
            .is_some_and(|c| c.verdict.as_str() == verdict)
    }

    /// A message (untrusted model or user text) as sanitized HTML, or `None` to show it as
    /// escaped plain text (see `web::markdown`).
    pub fn md(&self, text: &str) -> Option<String> {
        markdown::render_message(text)
    }

    /// The BotDojo "thinking" steps of this turn (from its `AI Message` cell), shown collapsed.
    pub fn thinking(&self) -> Vec<String> {
        self.trace
            .metadata
            .get("AI Message")
            .map(crate::domain::tool_calls::thinking_steps)
            .unwrap_or_default()
    }

    /// The metadata, fields with a value first (each group in file order).
    pub fn metadata_fields(&self) -> Vec<(&str, &str)> {
        let (mut filled, empty): (Vec<_>, Vec<_>) = self
            .trace
            .metadata
            .iter()
            .partition(|(_, v)| !v.trim().is_empty());
        filled.extend(empty);
        filled
    }

    /// A metadata value that is one web address with a safe scheme, as a link target.
    pub fn link_of(&self, value: &str) -> Option<String> {
        markdown::safe_url(value)
    }
}

/// A save refused until the annotator confirms it replaces their saved verdict.
#[derive(Debug, Clone)]
pub struct Confirm {
    /// The verdict they asked for.
    pub verdict: Verdict,
    /// What is saved now (its note, codes and comments stay in the history).
    pub current: Annotation,
}

/// A save refused because the annotation changed elsewhere: what is saved now, if anything.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub current: Option<Annotation>,
}

impl Conflict {
    pub fn saved_version(&self) -> i64 {
        self.current.as_ref().map_or(0, |a| a.version)
    }

    pub fn saved_verdict(&self) -> Option<Verdict> {
        self.current.as_ref().map(|a| a.verdict)
    }

    pub fn saved_note(&self) -> &str {
        self.current
            .as_ref()
            .map_or("", |a| a.first_failure_note.as_str())
    }
}

/// What the annotation form shows when it is re-rendered after a refused save.
#[derive(Debug, Default)]
pub struct FormState {
    pub note: String,
    pub codes: String,
    pub comments: String,
    pub version: i64,
    pub errors: AnnotationErrors,
    pub conflict: Option<Conflict>,
    pub confirm: Option<Confirm>,
    /// The database could not commit the save (say so; nothing was saved).
    pub write_failed: bool,
}

impl FormState {
    /// The form showing the saved annotation (or an empty one).
    pub fn saved(mine: Option<&Annotation>) -> FormState {
        match mine {
            Some(a) => FormState {
                note: a.first_failure_note.clone(),
                codes: a.open_codes.joined(),
                comments: a.comments.clone(),
                version: a.version,
                ..FormState::default()
            },
            None => FormState::default(),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}/t/{trace_id}", get(view))
}

async fn view(State(state): State<AppState>, htmx: Htmx, at: OnTrace) -> AppResult<Response> {
    let page = trace_page(
        &state,
        &at.user,
        &at.dataset,
        &at.scope,
        at.trace,
        None,
        None,
    )
    .await?;
    Ok(if htmx.fragment {
        render(&page.as_main())
    } else {
        page.into_response()
    })
}

/// Assembles the trace view. `form` is `None` for a fresh view (the form shows the saved
/// annotation), or what the annotator typed when a save was refused.
pub async fn trace_page(
    state: &AppState,
    user: &User,
    dataset: &Dataset,
    scope: &Scope,
    trace: Trace,
    form: Option<FormState>,
    flash: Option<String>,
) -> AppResult<TracePage> {
    let trace_view::ViewParts {
        turns,
        prev,
        next,
        mine,
        others,
        counts,
        assigned,
        skipped,
    } = trace_view::view_parts(&state.db, scope, &trace).await?;
    let total_turns = trace.total_turns.unwrap_or(turns.len() as i64);
    let earlier: Vec<Turn> = turns
        .into_iter()
        .filter(|t| t.turn_number < trace.turn_number)
        .collect();
    let url = urls::trace(&dataset.slug, &trace.trace_id);
    let form = form.unwrap_or_else(|| FormState::saved(mine.as_ref()));
    let fail_open = !form.errors.is_empty()
        || form.conflict.is_some()
        || form
            .confirm
            .as_ref()
            .is_some_and(|c| c.verdict == Verdict::Fail)
        || (form.write_failed && !form.note.is_empty());
    Ok(TracePage {
        nav: Nav::of(user),
        ds_name: dataset.name.clone(),
        list_url: urls::list(&dataset.slug),
        total_turns,
        earlier,
        prev_url: prev.map(|id| urls::trace(&dataset.slug, &id)),
        next_url: next.map(|id| urls::trace(&dataset.slug, &id)),
        annotate_url: format!("{url}/annotate"),
        history_url: format!("{url}/history"),
        skip_url: format!("{url}/skip"),
        undo_url: urls::undo(&dataset.slug),
        progress: Progress::of(counts, assigned.unwrap_or(dataset.trace_count)),
        mine,
        skipped,
        others,
        version: form.version,
        form_note: form.note,
        form_codes: form.codes,
        form_comments: form.comments,
        errors: form.errors,
        fail_open,
        conflict: form.conflict,
        confirm: form.confirm,
        write_failed: form.write_failed,
        flash,
        trace,
    })
}
