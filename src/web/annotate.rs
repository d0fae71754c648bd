//! Saving a verdict: Pass & Next, Fail with a note, stale-save conflicts, a verdict that
//! replaces a different one (confirmed first), and saves the database could not commit
//! (the form comes back as typed).

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tower_sessions::Session;

use crate::db::saves::{self, SaveOutcome, TraceRef};
use crate::db::write::is_write_fault;
use crate::domain::{AnnotationInput, Verdict};
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::extract::OnTrace;
use crate::web::htmx::Htmx;
use crate::web::navigation::{self, Leaving};
use crate::web::render;
use crate::web::trace_view::{self, Confirm, Conflict, FormState, TracePage};

#[derive(Deserialize)]
pub struct AnnotateForm {
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    codes: String,
    #[serde(default)]
    comments: String,
    #[serde(default)]
    version: i64,
    /// Set by the confirmation step: this verdict may replace a different saved one.
    #[serde(default)]
    replace: String,
}

impl AnnotateForm {
    /// The form again as typed, with why it was not saved.
    fn as_typed(&self, version: i64) -> FormState {
        FormState {
            note: self.note.clone(),
            codes: self.codes.clone(),
            comments: self.comments.clone(),
            version,
            ..FormState::default()
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}/t/{trace_id}/annotate", post(annotate))
}

async fn annotate(
    State(state): State<AppState>,
    htmx: Htmx,
    session: Session,
    at: OnTrace,
    Form(form): Form<AnnotateForm>,
) -> AppResult<Response> {
    let OnTrace {
        user,
        dataset,
        scope,
        trace,
    } = at;
    let refused = |status, typed: FormState, trace| {
        let (state, user, dataset, scope) = (&state, &user, &dataset, &scope);
        async move {
            let page =
                trace_view::trace_page(state, user, dataset, scope, trace, Some(typed), None)
                    .await?;
            AppResult::Ok(refused_page(status, htmx, page))
        }
    };
    let input = match AnnotationInput::parse(
        &form.verdict,
        &form.note,
        &form.codes,
        &form.comments,
        form.version,
    ) {
        Ok(input) => input.replacing(!form.replace.is_empty()),
        Err(errors) => {
            let typed = FormState {
                errors,
                ..form.as_typed(form.version)
            };
            return refused(StatusCode::UNPROCESSABLE_ENTITY, typed, trace).await;
        }
    };
    let target = TraceRef {
        pk: trace.id,
        dataset_id: dataset.id,
        sort_key: trace.sort_key,
    };
    let by = crate::auth::session_tag(&session).await?;
    let outcome = match saves::save(&state.db, target, &scope, &input, by).await {
        Ok(outcome) => outcome,
        Err(err) if is_write_fault(&err) => {
            // Not committed (a full disk, an I/O error…): the form again as typed, saying so.
            tracing::warn!(error = %err, "a save was not committed");
            let typed = FormState {
                write_failed: true,
                ..form.as_typed(form.version)
            };
            let mut res = refused(StatusCode::SERVICE_UNAVAILABLE, typed, trace).await?;
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return Ok(res);
        }
        Err(err) => return Err(err.into()),
    };
    match outcome {
        SaveOutcome::Conflict { current } => {
            metrics::counter!("tracecoder_annotation_conflicts_total").increment(1);
            let current = current.map(|c| *c);
            let version = current.as_ref().map_or(0, |c| c.version);
            let typed = FormState {
                conflict: Some(Conflict { current }),
                ..form.as_typed(version)
            };
            refused(StatusCode::CONFLICT, typed, trace).await
        }
        SaveOutcome::NeedsConfirm { current } => {
            // A Fail keeps what was typed for it; a Pass has nothing typed, so the fail form
            // keeps showing what is saved.
            let shown = match input.verdict {
                Verdict::Fail => form.as_typed(form.version),
                Verdict::Pass => FormState::saved(Some(&current)),
            };
            let typed = FormState {
                confirm: Some(Confirm {
                    verdict: input.verdict,
                    current: *current,
                }),
                ..shown
            };
            refused(StatusCode::CONFLICT, typed, trace).await
        }
        SaveOutcome::Saved { .. } => {
            metrics::counter!("tracecoder_annotations_saved_total", "verdict" => input.verdict.as_str()).increment(1);
            let flash = format!("Saved {} for {}.", input.verdict.label(), trace.trace_id);
            let from = Leaving {
                current: Some(&trace),
                fallback: None,
            };
            navigation::go_next(&state, htmx, &user, &dataset, &scope, from, Some(flash)).await
        }
    }
}

/// The same trace again, with the form as typed and why it was not saved.
fn refused_page(status: StatusCode, htmx: Htmx, page: TracePage) -> Response {
    let body = if htmx.fragment {
        render(&page.as_main())
    } else {
        page.into_response()
    };
    (status, body).into_response()
}
