//! Saving a verdict: Pass & Next, Fail with a note, stale-save conflicts, and saves the
//! database could not commit (the form comes back as typed).

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::db::annotations::{self, SaveOutcome, TraceRef};
use crate::db::write::is_write_fault;
use crate::domain::AnnotationInput;
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::htmx::Htmx;
use crate::web::render;
use crate::web::traces::{self, FormState};

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
}

pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}/t/{trace_id}/annotate", post(annotate))
}

async fn annotate(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    htmx: Htmx,
    Path((slug, trace_id)): Path<(String, String)>,
    Form(form): Form<AnnotateForm>,
) -> AppResult<Response> {
    let dataset = traces::dataset(&state, &slug).await?;
    let trace = traces::trace(&state, &dataset, &trace_id).await?;
    let typed = |errors, conflict, version| FormState {
        note: form.note.clone(),
        codes: form.codes.clone(),
        comments: form.comments.clone(),
        version,
        errors,
        conflict,
        write_failed: false,
    };
    let input = match AnnotationInput::parse(
        &form.verdict,
        &form.note,
        &form.codes,
        &form.comments,
        form.version,
    ) {
        Ok(input) => input,
        Err(errors) => {
            let page = traces::trace_page(
                &state,
                &user,
                &dataset,
                trace,
                Some(typed(errors, None, form.version)),
                None,
            )
            .await?;
            return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, htmx, page));
        }
    };
    let target = TraceRef {
        pk: trace.id,
        dataset_id: dataset.id,
        sort_key: trace.sort_key,
    };
    let outcome = match annotations::save(&state.db, target, user.id, &input).await {
        Ok(outcome) => outcome,
        Err(err) if is_write_fault(&err) => {
            // Not committed (a full disk, an I/O error…): the form again as typed, saying so.
            tracing::warn!(error = %err, "a save was not committed");
            let typed = FormState {
                write_failed: true,
                ..typed(Default::default(), None, form.version)
            };
            let page =
                traces::trace_page(&state, &user, &dataset, trace, Some(typed), None).await?;
            let mut res = refused(StatusCode::SERVICE_UNAVAILABLE, htmx, page);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return Ok(res);
        }
        Err(err) => return Err(err.into()),
    };
    match outcome {
        SaveOutcome::Conflict { current } => {
            metrics::counter!("tracecoder_annotation_conflicts_total").increment(1);
            let version = current.version;
            let state_ = typed(Default::default(), Some(*current), version);
            let page =
                traces::trace_page(&state, &user, &dataset, trace, Some(state_), None).await?;
            Ok(refused(StatusCode::CONFLICT, htmx, page))
        }
        SaveOutcome::Saved { .. } => {
            metrics::counter!("tracecoder_annotations_saved_total", "verdict" => input.verdict.as_str()).increment(1);
            let flash = format!("Saved {} for {}.", input.verdict.label(), trace.trace_id);
            traces::go_next(
                &state,
                htmx,
                &user,
                &dataset,
                Some(&trace),
                None,
                Some(flash),
            )
            .await
        }
    }
}

/// The same trace again, with the form as typed and why it was not saved.
fn refused(status: StatusCode, htmx: Htmx, page: traces::TracePage) -> Response {
    let body = if htmx.fragment {
        render(&page.as_main())
    } else {
        page.into_response()
    };
    (status, body).into_response()
}
