//! Admin imports through the HTML form: the upload is spooled to disk as it arrives, the
//! import runs in the background, and its page shows progress until it is done.

use std::io::Write;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::RequireAdmin;
use crate::db::datasets;
use crate::db::imports::{self, ImportRecord};
use crate::domain::{DatasetName, ImportId, ImportState, RowError};
use crate::error::{AppError, AppResult};
use crate::import::{self, PendingImport, StartError};
use crate::state::AppState;
use crate::web::htmx::Htmx;
use crate::web::pages::Nav;
use crate::web::render;

/// How long the upload request waits for a small import to finish, so small files get
/// their result at once and large ones a progress page.
const INLINE_WAIT: Duration = Duration::from_secs(3);

#[derive(Template, WebTemplate)]
#[template(path = "import.html")]
pub struct ImportPage {
    nav: Option<Nav>,
    dataset: String,
    dataset_names: Vec<String>,
    recent: Vec<ImportRecord>,
    max_mb: u64,
}

#[derive(Template, WebTemplate)]
#[template(path = "import_status.html", blocks = ["status"])]
pub struct ImportStatusPage {
    nav: Option<Nav>,
    imp: ImportRecord,
    percent: i64,
    /// While running: the rows the file holds, estimated from the share of bytes read.
    rows_estimate: Option<i64>,
    errors: Vec<RowError>,
}

impl ImportStatusPage {
    fn new(nav: Option<Nav>, mut imp: ImportRecord) -> Self {
        let percent = if imp.state == ImportState::Done {
            100
        } else if imp.bytes_total > 0 {
            (imp.bytes_read * 100 / imp.bytes_total).min(99)
        } else {
            0
        };
        let rows_estimate = (imp.state == ImportState::Running
            && imp.bytes_read > 0
            && imp.bytes_total >= imp.bytes_read)
            .then(|| {
                let est = i128::from(imp.rows_read) * i128::from(imp.bytes_total)
                    / i128::from(imp.bytes_read);
                (est as i64).max(imp.rows_read)
            });
        let errors = std::mem::take(&mut imp.errors);
        ImportStatusPage {
            nav,
            imp,
            percent,
            rows_estimate,
            errors,
        }
    }

    fn status(&self) -> StatusCode {
        if self.imp.state == ImportState::Failed {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        }
    }
}

/// The form and progress pages (admins only: guarded by the router layer in `web`).
pub fn router() -> Router<crate::state::AppState> {
    Router::new()
        .route("/admin/import", get(form_page))
        .route("/admin/imports/{id}", get(status_page))
        .route("/admin/imports/{id}/status", get(status_fragment))
}

/// The upload itself (rate limited, no default body limit: it streams to disk).
pub fn upload_router() -> Router<crate::state::AppState> {
    Router::new()
        .route("/admin/import", axum::routing::post(upload))
        .layer(DefaultBodyLimit::disable())
}

async fn form_page(
    State(state): State<AppState>,
    RequireAdmin(user): RequireAdmin,
) -> AppResult<ImportPage> {
    Ok(ImportPage {
        nav: Nav::of(&user),
        dataset: String::new(),
        dataset_names: datasets::names(&state.db).await?,
        recent: imports::recent(&state.db, 20).await?,
        max_mb: state.config.max_upload_bytes / (1024 * 1024),
    })
}

async fn load(state: &AppState, id: ImportId) -> AppResult<ImportRecord> {
    imports::by_id(&state.db, id)
        .await?
        .ok_or_else(|| AppError::NotFound("There is no such import.".into()))
}

async fn status_page(
    State(state): State<AppState>,
    RequireAdmin(user): RequireAdmin,
    Path(id): Path<ImportId>,
) -> AppResult<Response> {
    let page = ImportStatusPage::new(Nav::of(&user), load(&state, id).await?);
    Ok((page.status(), page).into_response())
}

async fn status_fragment(
    State(state): State<AppState>,
    RequireAdmin(user): RequireAdmin,
    Path(id): Path<ImportId>,
) -> AppResult<Response> {
    let page = ImportStatusPage::new(Nav::of(&user), load(&state, id).await?);
    Ok(render(&page.as_status()))
}

fn too_large(limit: u64) -> AppError {
    AppError::PayloadTooLarge(format!(
        "The file is larger than the {} MB upload limit. Split it into smaller files, or import it \
         from the command line with `tracecoder import FILE --dataset NAME`.",
        limit.div_ceil(1024 * 1024)
    ))
}

async fn upload(
    State(state): State<AppState>,
    RequireAdmin(user): RequireAdmin,
    htmx: Htmx,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> AppResult<Response> {
    let limit = state.config.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Multipart framing adds a little; anything well past the limit is refused up front.
    if declared.is_some_and(|len| len > limit + 64 * 1024) {
        return Err(too_large(limit));
    }
    let mut dataset_name = String::new();
    let mut spooled: Option<(tempfile::NamedTempFile, String, u64)> = None;
    let bad_form = |_| {
        AppError::BadRequest(
            "The upload was interrupted or is not a valid form. Please try again.".into(),
        )
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("dataset") => dataset_name = field.text().await.map_err(bad_form)?,
            Some("file") => {
                // A name that will be refused is refused before the file is received.
                if !dataset_name.is_empty() {
                    DatasetName::parse(&dataset_name)
                        .map_err(|e| AppError::BadRequest(e.to_string()))?;
                }
                let file_name = field.file_name().unwrap_or("upload.csv").to_string();
                let mut tmp = tempfile::NamedTempFile::new_in(&state.upload_dir)
                    .map_err(|e| AppError::Internal(e.into()))?;
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(too_large(limit));
                    }
                    tmp.write_all(&chunk)
                        .map_err(|e| AppError::Internal(e.into()))?;
                }
                tmp.flush().map_err(|e| AppError::Internal(e.into()))?;
                spooled = Some((tmp, file_name, size));
            }
            _ => {}
        }
    }
    let Some((tmp, file_name, size)) = spooled.filter(|(_, name, _)| !name.is_empty()) else {
        return Err(AppError::BadRequest("Choose a CSV file to import.".into()));
    };
    let pending = match import::register(
        &state.db,
        &dataset_name,
        &file_name,
        Some(user.id),
        size as i64,
    )
    .await
    {
        Ok(p) => p,
        Err(StartError::Db(e)) => return Err(e.into()),
        Err(e @ StartError::Busy(_)) => return Err(AppError::Conflict(e.to_string())),
        Err(e) => return Err(AppError::BadRequest(e.to_string())),
    };
    let pending = PendingImport {
        pause_between_batches: state.config.import_pause,
        heartbeat_every: import::heartbeat_every(state.config.import_stale_after),
        shutdown: state.imports.stop_token(),
        ..pending
    };
    let import_id = pending.import_id;
    let db = state.db.clone();
    let task = state.imports.spawn(async move {
        let file = tmp.reopen()?;
        let reader = std::io::BufReader::with_capacity(256 * 1024, file);
        let res = import::run(&db, &pending, reader, None).await;
        drop(tmp); // removes the spooled upload
        res
    });
    // Small files: an HTMX upload gets the result at once. Everything else goes to the import's
    // own page (done or still in progress), so the address bar names the import and a reload
    // never posts the file again.
    let finished = tokio::time::timeout(INLINE_WAIT, task).await.is_ok();
    if finished && htmx.fragment {
        let page = ImportStatusPage::new(Nav::of(&user), load(&state, import_id).await?);
        return Ok((page.status(), render(&page.as_status())).into_response());
    }
    Ok(Redirect::to(&format!("/admin/imports/{import_id}")).into_response())
}
