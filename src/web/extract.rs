//! Path resources as extractors: the dataset (`{slug}`) and the trace (`{trace_id}`) a
//! route names, resolved for the signed-in viewer in their scope — or the 404 page.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::db::datasets::{self, Dataset};
use crate::db::scope::{Assignment, Scope, Traces};
use crate::db::traces::{self, Trace};
use crate::db::users::User;
use crate::error::AppError;
use crate::state::AppState;

/// The viewer's scope in a dataset (`db::scope` has the rules): admins are leads,
/// everyone else an annotator; both as the dataset's assignment names them.
pub fn scope_for(dataset: &Dataset, user: &User, assignment: Assignment) -> Scope {
    if user.admin() {
        Scope::lead(dataset.id, user.id, assignment, dataset.blind_admins)
    } else {
        Scope::annotator(dataset.id, user.id, assignment)
    }
}

/// A route under `/d/{slug}`: the signed-in viewer, the dataset, and the viewer's scope.
pub struct InDataset {
    pub user: User,
    pub dataset: Dataset,
    pub scope: Scope,
}

/// A route under `/d/{slug}/t/{trace_id}`: [`InDataset`] and the trace, if in scope.
pub struct OnTrace {
    pub user: User,
    pub dataset: Dataset,
    pub scope: Scope,
    pub trace: Trace,
}

/// A path parameter by name (percent-decoded).
async fn path_param(parts: &mut Parts, state: &AppState, name: &str) -> Result<String, Response> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("route has no {{{name}}} parameter")).into_response()
        })
}

impl FromRequestParts<AppState> for InDataset {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let slug = path_param(parts, state, "slug").await?;
        let (dataset, assignment) = match datasets::for_viewer(&state.db, &slug, &user.email).await
        {
            Ok(Some((d, a))) if d.trace_count > 0 => (d, a),
            Ok(_) => {
                return Err(
                    AppError::NotFound(format!("There is no dataset \"{slug}\".")).into_response(),
                );
            }
            Err(e) => return Err(AppError::from(e).into_response()),
        };
        let scope = scope_for(&dataset, &user, assignment);
        Ok(InDataset {
            user,
            dataset,
            scope,
        })
    }
}

impl FromRequestParts<AppState> for OnTrace {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let InDataset {
            user,
            dataset,
            scope,
        } = InDataset::from_request_parts(parts, state).await?;
        let trace_id = path_param(parts, state, "trace_id").await?;
        let trace = find_trace(state, &dataset, &scope, &trace_id)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(OnTrace {
            user,
            dataset,
            scope,
            trace,
        })
    }
}

/// One trace of the dataset in the viewer's scope, or the 404 page.
pub async fn find_trace(
    state: &AppState,
    dataset: &Dataset,
    scope: &Scope,
    trace_id: &str,
) -> Result<Trace, AppError> {
    if let Some(trace) = traces::by_trace_id(&state.db, scope, trace_id).await? {
        return Ok(trace);
    }
    // Outside the viewer's assignment: say so rather than pretend it does not exist.
    if scope.traces != Traces::All
        && traces::by_trace_id(&state.db, &Scope::command_line(dataset.id), trace_id)
            .await?
            .is_some()
    {
        return Err(AppError::Forbidden(format!(
            "The trace \"{trace_id}\" is assigned to someone else in {}.",
            dataset.name
        )));
    }
    Err(AppError::NotFound(format!(
        "There is no trace \"{trace_id}\" in {}.",
        dataset.name
    )))
}
